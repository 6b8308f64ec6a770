#include "bpf-object.h"

#include <bpf/btf.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <memory>

#include "args.h"
#include "async.h"
#include "errors.h"
#include "names.h"

namespace weft {
namespace {

thread_local std::string* tCapture = nullptr;

int PrintToCapture(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (!tCapture || level == LIBBPF_DEBUG) return 0;
  char line[2048];
  int n = vsnprintf(line, sizeof line, fmt, ap);
  if (n > 0) tCapture->append(line, std::min<size_t>(n, sizeof line - 1));
  return n;
}

struct GlobalVar {
  bpf_map* map;
  std::string section;
  std::string name;
  uint32_t offset;
  uint32_t size;
};

// Section (".rodata", ".data", ".bss", ".rodata.foo") of an internal map. libbpf names them
// "<obj prefix><section>", and the object prefix never contains a dot.
std::string SectionOf(bpf_map* m) {
  std::string n = bpf_map__name(m);
  auto dot = n.find('.');
  return dot == std::string::npos ? n : n.substr(dot);
}

template <typename F>
void ForEachGlobal(bpf_object* obj, F&& fn) {
  btf* b = bpf_object__btf(obj);
  if (!b) return;
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    if (!bpf_map__is_internal(m)) continue;
    std::string sec = SectionOf(m);
    int id = btf__find_by_name_kind(b, sec.c_str(), BTF_KIND_DATASEC);
    if (id < 0) continue;
    const btf_type* ds = btf__type_by_id(b, id);
    const btf_var_secinfo* vs = btf_var_secinfos(ds);
    for (int i = 0; i < btf_vlen(ds); i++, vs++) {
      const btf_type* var = btf__type_by_id(b, vs->type);
      if (!var || !btf_is_var(var)) continue;
      fn(GlobalVar{m, sec, btf__name_by_offset(b, var->name_off), vs->offset, vs->size});
    }
  }
}

}  // namespace

LogCapture::LogCapture() : prev_(tCapture) { tCapture = &buf_; }
LogCapture::~LogCapture() { tCapture = prev_; }
void LogCapture::Install() { libbpf_set_print(PrintToCapture); }

Napi::Function BpfObjectWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeBpfObject",
                     {
                         InstanceMethod("programs", &BpfObjectWrap::Programs),
                         InstanceMethod("maps", &BpfObjectWrap::Maps),
                         InstanceMethod("globals", &BpfObjectWrap::Globals),
                         InstanceMethod("setGlobal", &BpfObjectWrap::SetGlobal),
                         InstanceMethod("getGlobal", &BpfObjectWrap::GetGlobal),
                         InstanceMethod("setAutoload", &BpfObjectWrap::SetAutoload),
                         InstanceMethod("setMaxEntries", &BpfObjectWrap::SetMaxEntries),
                         InstanceMethod("setPinPath", &BpfObjectWrap::SetPinPath),
                         InstanceMethod("reuseMapFd", &BpfObjectWrap::ReuseMapFd),
                         InstanceMethod("btfStruct", &BpfObjectWrap::BtfStruct),
                         InstanceMethod("load", &BpfObjectWrap::Load),
                         InstanceMethod("close", &BpfObjectWrap::Close),
                     });
}

// new NativeBpfObject(path, { pinRootPath? })
BpfObjectWrap::BpfObjectWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObjectWrap>(info) {
  Napi::Env env = info.Env();
  Guard(env, [&] {
    path_ = args::String(args::At(info, 0), "path");
    std::string pinRoot;
    if (args::Present(args::At(info, 1))) {
      Napi::Object o = args::Object(args::At(info, 1), "options");
      pinRoot = args::OptString(o.Get("pinRootPath"), "options.pinRootPath");
    }
    bpf_object_open_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.sz = sizeof opts;
    if (!pinRoot.empty()) opts.pin_root_path = pinRoot.c_str();
    LogCapture cap;
    bpf_object* o = bpf_object__open_file(path_.c_str(), &opts);
    if (!o) throw Failure{errno, "bpf_object__open_file", path_, cap.text()};
    obj_ = o;
    return 0;
  });
}

BpfObjectWrap::~BpfObjectWrap() {
  if (obj_) bpf_object__close(obj_);
}

bpf_object* BpfObjectWrap::Obj(const char* op) {
  if (!obj_) throw Failure{EBADF, op, "the BPF object is closed", ""};
  if (loading_) throw Failure{EBUSY, op, "the BPF object is loading", ""};
  return obj_;
}

void BpfObjectWrap::RequireNotLoaded(const char* op) {
  if (loaded_) throw Failure{EBUSY, op, "only possible before load()", ""};
}

bpf_map* BpfObjectWrap::FindMap(const std::string& name, const std::string& param) {
  bpf_map* m = bpf_object__find_map_by_name(Obj("find map"), name.c_str());
  if (!m) throw ArgFailure{param, "no map named '" + name + "' in " + path_};
  return m;
}

bpf_program* BpfObjectWrap::FindProgram(const std::string& name, const std::string& param) {
  bpf_program* p = bpf_object__find_program_by_name(Obj("find program"), name.c_str());
  if (!p) throw ArgFailure{param, "no program named '" + name + "' in " + path_};
  return p;
}

Napi::Value BpfObjectWrap::Programs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    Napi::Array out = Napi::Array::New(env);
    bpf_program* p;
    uint32_t i = 0;
    bpf_object__for_each_program(p, Obj("programs")) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", bpf_program__name(p));
      o.Set("section", bpf_program__section_name(p));
      o.Set("type", names::ProgType(bpf_program__type(p)));
      // 0 is both "none" and cgroup_inet_ingress; only cgroup_skb programs can mean the latter.
      bpf_attach_type at = bpf_program__expected_attach_type(p);
      bool hasAttach = at != 0 || bpf_program__type(p) == BPF_PROG_TYPE_CGROUP_SKB;
      o.Set("expectedAttachType", hasAttach ? Napi::Value(Napi::String::New(env, names::AttachType(at))) : env.Null());
      int fd = bpf_program__fd(p);
      o.Set("fd", fd >= 0 ? Napi::Value(Napi::Number::New(env, fd)) : env.Null());
      o.Set("autoload", bpf_program__autoload(p));
      out.Set(i++, o);
    }
    return out;
  });
}

Napi::Value BpfObjectWrap::Maps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    Napi::Array out = Napi::Array::New(env);
    bpf_map* m;
    uint32_t i = 0;
    bpf_object__for_each_map(m, Obj("maps")) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", bpf_map__name(m));
      o.Set("type", names::MapType(bpf_map__type(m)));
      int fd = bpf_map__fd(m);
      o.Set("fd", fd >= 0 ? Napi::Value(Napi::Number::New(env, fd)) : env.Null());
      o.Set("keySize", bpf_map__key_size(m));
      o.Set("valueSize", bpf_map__value_size(m));
      o.Set("maxEntries", bpf_map__max_entries(m));
      o.Set("flags", bpf_map__map_flags(m));
      o.Set("internal", bpf_map__is_internal(m));
      const char* pin = bpf_map__pin_path(m);
      o.Set("pinPath", pin ? Napi::Value(Napi::String::New(env, pin)) : env.Null());
      out.Set(i++, o);
    }
    return out;
  });
}

Napi::Value BpfObjectWrap::Globals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    ForEachGlobal(Obj("globals"), [&](const GlobalVar& g) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", g.name);
      o.Set("section", g.section);
      o.Set("offset", g.offset);
      o.Set("size", g.size);
      out.Set(i++, o);
    });
    return out;
  });
}

// setGlobal(name, Buffer): writes the initial value of a global (const volatile ones live in
// .rodata and are frozen at load, which is what makes them configuration).
Napi::Value BpfObjectWrap::SetGlobal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    std::string name = args::String(args::At(info, 0), "name");
    std::vector<uint8_t> value = args::Bytes(args::At(info, 1), "value");
    bpf_object* obj = Obj("setGlobal");
    RequireNotLoaded("setGlobal");
    bool found = false;
    ForEachGlobal(obj, [&](const GlobalVar& g) {
      if (found || g.name != name) return;
      found = true;
      if (value.size() != g.size)
        throw ArgFailure{"value", "global '" + name + "' is " + std::to_string(g.size) + " bytes, got " + std::to_string(value.size())};
      size_t sz = 0;
      auto* data = static_cast<const uint8_t*>(bpf_map__initial_value(g.map, &sz));
      if (!data || g.offset + g.size > sz) throw Failure{EINVAL, "bpf_map__initial_value", g.section, ""};
      std::vector<uint8_t> section(data, data + sz);
      memcpy(section.data() + g.offset, value.data(), value.size());
      Check(bpf_map__set_initial_value(g.map, section.data(), section.size()), "bpf_map__set_initial_value", g.section);
    });
    if (!found) throw ArgFailure{"name", "no global variable '" + name + "' in " + path_};
    return env.Undefined();
  });
}

Napi::Value BpfObjectWrap::GetGlobal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::string name = args::String(args::At(info, 0), "name");
    bpf_object* obj = Obj("getGlobal");
    Napi::Value out = env.Undefined();
    ForEachGlobal(obj, [&](const GlobalVar& g) {
      if (!out.IsUndefined() || g.name != name) return;
      size_t sz = 0;
      auto* data = static_cast<const uint8_t*>(bpf_map__initial_value(g.map, &sz));
      if (!data || g.offset + g.size > sz) throw Failure{EINVAL, "bpf_map__initial_value", g.section, ""};
      out = Napi::Buffer<uint8_t>::Copy(env, data + g.offset, g.size);
    });
    if (out.IsUndefined()) throw ArgFailure{"name", "no global variable '" + name + "' in " + path_};
    return out;
  });
}

Napi::Value BpfObjectWrap::SetAutoload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    bpf_program* p = FindProgram(args::String(args::At(info, 0), "program"), "program");
    bool on = args::OptBool(args::At(info, 1), "autoload", true);
    RequireNotLoaded("bpf_program__set_autoload");
    Check(bpf_program__set_autoload(p, on), "bpf_program__set_autoload");
    return env.Undefined();
  });
}

Napi::Value BpfObjectWrap::SetMaxEntries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    bpf_map* m = FindMap(args::String(args::At(info, 0), "map"), "map");
    auto n = static_cast<uint32_t>(args::Integer(args::At(info, 1), "maxEntries", 1, UINT32_MAX));
    RequireNotLoaded("bpf_map__set_max_entries");
    Check(bpf_map__set_max_entries(m, n), "bpf_map__set_max_entries");
    return env.Undefined();
  });
}

Napi::Value BpfObjectWrap::SetPinPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    bpf_map* m = FindMap(args::String(args::At(info, 0), "map"), "map");
    std::string path = args::String(args::At(info, 1), "path");
    RequireNotLoaded("bpf_map__set_pin_path");
    Check(bpf_map__set_pin_path(m, path.c_str()), "bpf_map__set_pin_path", path);
    return env.Undefined();
  });
}

// reuseMapFd(name, fd): use an existing map (e.g. opened from a pin) instead of creating one.
Napi::Value BpfObjectWrap::ReuseMapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    bpf_map* m = FindMap(args::String(args::At(info, 0), "map"), "map");
    int fd = args::Fd(args::At(info, 1), "fd");
    RequireNotLoaded("bpf_map__reuse_fd");
    Check(bpf_map__reuse_fd(m, fd), "bpf_map__reuse_fd");
    return env.Undefined();
  });
}

// btfStruct(name): the C layout of a struct as compiled into the object, so TypeScript codecs
// can be checked against the shared header.
Napi::Value BpfObjectWrap::BtfStruct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    std::string name = args::String(args::At(info, 0), "name");
    btf* b = bpf_object__btf(Obj("btfStruct"));
    if (!b) throw Failure{ENOENT, "bpf_object__btf", path_ + " has no BTF", ""};
    int id = btf__find_by_name_kind(b, name.c_str(), BTF_KIND_STRUCT);
    if (id < 0) id = btf__find_by_name_kind(b, name.c_str(), BTF_KIND_UNION);
    if (id < 0) throw ArgFailure{"name", "no struct '" + name + "' in the BTF of " + path_};
    const btf_type* t = btf__type_by_id(b, id);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", name);
    o.Set("size", t->size);
    Napi::Array members = Napi::Array::New(env);
    const btf_member* m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); i++, m++) {
      Napi::Object mo = Napi::Object::New(env);
      mo.Set("name", btf__name_by_offset(b, m->name_off));
      uint32_t bitOff = btf_member_bit_offset(t, i);
      uint32_t bitSize = btf_member_bitfield_size(t, i);
      mo.Set("offset", bitOff / 8);
      long sz = btf__resolve_size(b, m->type);
      mo.Set("size", sz < 0 ? 0 : sz);
      if (bitSize) {
        mo.Set("bitOffset", bitOff);
        mo.Set("bitSize", bitSize);
      }
      members.Set(i, mo);
    }
    o.Set("members", members);
    return o;
  });
}

// load(): Promise; the verifier can take a while, so it runs on the thread pool.
Napi::Value BpfObjectWrap::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bpf_object* obj = Obj("bpf_object__load");
    RequireNotLoaded("bpf_object__load");
    loading_ = true;
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    std::string path = path_;
    return PromiseWorker::Run(
        env, "bpf_object__load",
        [this, obj, path] {
          LogCapture cap;
          int err = bpf_object__load(obj);
          if (err == 0) loaded_ = true;
          loading_ = false;
          if (err) throw Failure{-err, "bpf_object__load", path, cap.text()};
        },
        [self](Napi::Env e) -> Napi::Value { return e.Undefined(); });
  });
}

Napi::Value BpfObjectWrap::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    if (obj_) {
      if (loading_) throw Failure{EBUSY, "bpf_object__close", "wait for load() to settle", ""};
      bpf_object__close(obj_);
      obj_ = nullptr;
    }
    return env.Undefined();
  });
}

}  // namespace weft
