// Operations on BPF file descriptors: maps, pins, links, cgroup attachments, program info and
// BPF_PROG_TEST_RUN. Working on fds makes a map from an object and a map from a pin the same.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "args.h"
#include "async.h"
#include "errors.h"
#include "fd.h"
#include "names.h"

namespace weft {
namespace {

using Info = const Napi::CallbackInfo&;

Napi::Value MapLookup(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    int fd = args::Fd(args::At(info, 0), "fd");
    auto key = args::Bytes(args::At(info, 1), "key");
    auto valueSize = static_cast<size_t>(args::Integer(args::At(info, 2), "valueSize", 0, 1 << 26));
    auto flags = static_cast<uint64_t>(args::OptInteger(args::At(info, 3), "flags", 0, UINT32_MAX, 0));
    std::vector<uint8_t> value(valueSize ? valueSize : 1);
    int r = bpf_map_lookup_elem_flags(fd, key.data(), value.data(), flags);
    if (r == -ENOENT) return env.Null();
    Check(r, "bpf_map_lookup_elem");
    return Napi::Buffer<uint8_t>::Copy(env, value.data(), valueSize);
  });
}

Napi::Value MapUpdate(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    auto key = args::Bytes(args::At(info, 1), "key");
    auto value = args::Bytes(args::At(info, 2), "value");
    auto flags = static_cast<uint64_t>(args::OptInteger(args::At(info, 3), "flags", 0, UINT32_MAX, 0));
    Check(bpf_map_update_elem(fd, key.data(), value.data(), flags), "bpf_map_update_elem");
    return env.Undefined();
  });
}

Napi::Value MapDelete(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    auto key = args::Bytes(args::At(info, 1), "key");
    int r = bpf_map_delete_elem(fd, key.data());
    if (r == -ENOENT) return Napi::Boolean::New(env, false);
    Check(r, "bpf_map_delete_elem");
    return Napi::Boolean::New(env, true);
  });
}

// mapNextKey(fd, key | null, keySize): the key after `key` (the first key for null), or null.
Napi::Value MapNextKey(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    int fd = args::Fd(args::At(info, 0), "fd");
    bool first = !args::Present(args::At(info, 1));
    std::vector<uint8_t> key = first ? std::vector<uint8_t>() : args::Bytes(args::At(info, 1), "key");
    auto keySize = static_cast<size_t>(args::Integer(args::At(info, 2), "keySize", 1, 1 << 20));
    if (!first && key.size() != keySize) throw ArgFailure{"key", "must be keySize (" + std::to_string(keySize) + ") bytes"};
    std::vector<uint8_t> next(keySize);
    int r = bpf_map_get_next_key(fd, first ? nullptr : key.data(), next.data());
    if (r == -ENOENT) return env.Null();
    Check(r, "bpf_map_get_next_key");
    return Napi::Buffer<uint8_t>::Copy(env, next.data(), keySize);
  });
}

Napi::Value ObjPin(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    std::string path = args::String(args::At(info, 1), "path");
    Check(bpf_obj_pin(fd, path.c_str()), "bpf_obj_pin", path);
    return env.Undefined();
  });
}

Napi::Value ObjGet(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    std::string path = args::String(args::At(info, 0), "path");
    // bpf_obj_get fds are O_CLOEXEC (the kernel sets it for every bpf fd).
    return Napi::Number::New(env, Check(bpf_obj_get(path.c_str()), "bpf_obj_get", path));
  });
}

Napi::Value Unpin(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    std::string path = args::String(args::At(info, 0), "path");
    int r = unlink(path.c_str());
    if (r < 0 && errno == ENOENT) return Napi::Boolean::New(env, false);
    CheckSys(r, "unlink", path);
    return Napi::Boolean::New(env, true);
  });
}

Napi::Value CloseFd(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    CheckSys(close(fd), "close");
    return env.Undefined();
  });
}

Napi::Object ProgInfoObject(Napi::Env env, const bpf_prog_info& pi) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", pi.id);
  o.Set("name", std::string(pi.name, strnlen(pi.name, sizeof pi.name)));
  o.Set("type", names::ProgType(static_cast<bpf_prog_type>(pi.type)));
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
  o.Set("tag", tag);
  return o;
}

Napi::Value ProgInfo(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    bpf_prog_info pi;
    memset(&pi, 0, sizeof pi);
    uint32_t len = sizeof pi;
    Check(bpf_obj_get_info_by_fd(fd, &pi, &len), "bpf_obj_get_info_by_fd");
    return ProgInfoObject(env, pi);
  });
}

Napi::Value MapInfo(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    bpf_map_info mi;
    memset(&mi, 0, sizeof mi);
    uint32_t len = sizeof mi;
    Check(bpf_obj_get_info_by_fd(fd, &mi, &len), "bpf_obj_get_info_by_fd");
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", mi.id);
    o.Set("name", std::string(mi.name, strnlen(mi.name, sizeof mi.name)));
    o.Set("type", names::MapType(static_cast<bpf_map_type>(mi.type)));
    o.Set("keySize", mi.key_size);
    o.Set("valueSize", mi.value_size);
    o.Set("maxEntries", mi.max_entries);
    o.Set("flags", mi.map_flags);
    return o;
  });
}

Napi::Value LinkInfo(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    bpf_link_info li;
    memset(&li, 0, sizeof li);
    uint32_t len = sizeof li;
    Check(bpf_obj_get_info_by_fd(fd, &li, &len), "bpf_obj_get_info_by_fd");
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", li.id);
    o.Set("type", names::LinkType(static_cast<bpf_link_type>(li.type)));
    o.Set("progId", li.prog_id);
    if (li.type == BPF_LINK_TYPE_CGROUP) {
      o.Set("cgroupId", Napi::BigInt::New(env, static_cast<uint64_t>(li.cgroup.cgroup_id)));
      o.Set("attachType", names::AttachType(static_cast<bpf_attach_type>(li.cgroup.attach_type)));
    }
    return o;
  });
}

Napi::Value CgroupId(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    std::string path = args::String(args::At(info, 0), "path");
    struct stat st;
    CheckSys(stat(path.c_str(), &st), "stat", path);
    // On cgroup v2 the directory's inode number is the cgroup id BPF reports.
    return Napi::BigInt::New(env, static_cast<uint64_t>(st.st_ino));
  });
}

Fd OpenDir(const std::string& path) {
  return Fd(CheckSys(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open", path));
}

// cgroupAttach(progFd, cgroupPath, attachType): a bpf_link; returns its fd. Closing the fd
// detaches unless the link was pinned first.
Napi::Value CgroupAttach(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int progFd = args::Fd(args::At(info, 0), "progFd");
    std::string path = args::String(args::At(info, 1), "cgroupPath");
    bpf_attach_type at = names::ParseAttachType(args::String(args::At(info, 2), "attachType"), "attachType");
    Fd cg = OpenDir(path);
    int link = Check(bpf_link_create(progFd, cg.get(), at, nullptr), "bpf_link_create", path);
    return Napi::Number::New(env, link);
  });
}

Napi::Value LinkDetach(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    Check(bpf_link_detach(fd), "bpf_link_detach");
    return env.Undefined();
  });
}

Napi::Value LinkUpdate(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "linkFd");
    int prog = args::Fd(args::At(info, 1), "progFd");
    Check(bpf_link_update(fd, prog, nullptr), "bpf_link_update");
    return env.Undefined();
  });
}

// cgroupQuery(cgroupPath, attachType, effective?): programs attached there, with names.
Napi::Value CgroupQuery(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    std::string path = args::String(args::At(info, 0), "cgroupPath");
    bpf_attach_type at = names::ParseAttachType(args::String(args::At(info, 1), "attachType"), "attachType");
    bool effective = args::OptBool(args::At(info, 2), "effective", false);
    Fd cg = OpenDir(path);
    std::vector<uint32_t> ids(64);
    uint32_t cnt, attachFlags = 0;
    for (;;) {
      cnt = static_cast<uint32_t>(ids.size());
      int r = bpf_prog_query(cg.get(), at, effective ? BPF_F_QUERY_EFFECTIVE : 0, &attachFlags, ids.data(), &cnt);
      if (r == -ENOSPC) {
        ids.resize(ids.size() * 4);
        continue;
      }
      Check(r, "bpf_prog_query", path);
      break;
    }
    Napi::Array out = Napi::Array::New(env);
    for (uint32_t i = 0; i < cnt; i++) {
      Napi::Object o;
      int pfd = bpf_prog_get_fd_by_id(ids[i]);
      bpf_prog_info pi;
      memset(&pi, 0, sizeof pi);
      uint32_t len = sizeof pi;
      if (pfd >= 0 && bpf_obj_get_info_by_fd(pfd, &pi, &len) == 0) {
        o = ProgInfoObject(env, pi);
      } else {  // the program went away between the query and now
        o = Napi::Object::New(env);
        o.Set("id", ids[i]);
      }
      if (pfd >= 0) close(pfd);
      out.Set(i, o);
    }
    return out;
  });
}

// progTestRun(fd, {data, ctx?, repeat?, dataOutSize?, ctxOutSize?}): Promise<{retval, dataOut, ctxOut, durationNs}>
Napi::Value ProgTestRun(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    int fd = args::Fd(args::At(info, 0), "fd");
    Napi::Object o = args::Object(args::At(info, 1), "options");
    struct Run {
      std::vector<uint8_t> data, ctx, dataOut, ctxOut;
      bool hasData = false, hasCtx = false;
      int repeat = 1;
      uint32_t retval = 0, duration = 0;
    };
    auto run = std::make_shared<Run>();
    if (args::Present(o.Get("data"))) {
      run->data = args::Bytes(o.Get("data"), "options.data");
      run->hasData = true;
    }
    if (args::Present(o.Get("ctx"))) {
      run->ctx = args::Bytes(o.Get("ctx"), "options.ctx");
      run->hasCtx = true;
    }
    run->repeat = static_cast<int>(args::OptInteger(o.Get("repeat"), "options.repeat", 1, 100000000, 1));
    size_t dataOut = static_cast<size_t>(args::OptInteger(o.Get("dataOutSize"), "options.dataOutSize", 0, 1 << 24, run->data.size() + 256));
    size_t ctxOut = static_cast<size_t>(args::OptInteger(o.Get("ctxOutSize"), "options.ctxOutSize", 0, 1 << 20, run->ctx.size()));
    run->dataOut.resize(dataOut);
    run->ctxOut.resize(ctxOut);
    return PromiseWorker::Run(
        env, "bpf_prog_test_run_opts",
        [fd, run] {
          bpf_test_run_opts t;
          memset(&t, 0, sizeof t);
          t.sz = sizeof t;
          if (run->hasData) {
            t.data_in = run->data.data();
            t.data_size_in = run->data.size();
            t.data_out = run->dataOut.empty() ? nullptr : run->dataOut.data();
            t.data_size_out = run->dataOut.size();
          }
          if (run->hasCtx) {
            t.ctx_in = run->ctx.data();
            t.ctx_size_in = run->ctx.size();
            t.ctx_out = run->ctxOut.empty() ? nullptr : run->ctxOut.data();
            t.ctx_size_out = run->ctxOut.size();
          }
          t.repeat = run->repeat;
          Check(bpf_prog_test_run_opts(fd, &t), "bpf_prog_test_run_opts");
          run->retval = t.retval;
          run->duration = t.duration;
          run->dataOut.resize(run->hasData ? t.data_size_out : 0);
          run->ctxOut.resize(run->hasCtx ? t.ctx_size_out : 0);
        },
        [run](Napi::Env e) -> Napi::Value {
          Napi::Object r = Napi::Object::New(e);
          r.Set("retval", run->retval);
          r.Set("durationNs", run->duration);
          r.Set("dataOut", Napi::Buffer<uint8_t>::Copy(e, run->dataOut.data(), run->dataOut.size()));
          r.Set("ctxOut", Napi::Buffer<uint8_t>::Copy(e, run->ctxOut.data(), run->ctxOut.size()));
          return r;
        });
  });
}

Napi::Value NumPossibleCpus(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] { return Napi::Number::New(env, Check(libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")); });
}

}  // namespace

void InitBpfFd(Napi::Env env, Napi::Object exports) {
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapNextKey", Napi::Function::New(env, MapNextKey, "mapNextKey"));
  exports.Set("objPin", Napi::Function::New(env, ObjPin, "objPin"));
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
  exports.Set("unpin", Napi::Function::New(env, Unpin, "unpin"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo, "progInfo"));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo, "mapInfo"));
  exports.Set("linkInfo", Napi::Function::New(env, LinkInfo, "linkInfo"));
  exports.Set("cgroupId", Napi::Function::New(env, CgroupId, "cgroupId"));
  exports.Set("cgroupAttach", Napi::Function::New(env, CgroupAttach, "cgroupAttach"));
  exports.Set("cgroupQuery", Napi::Function::New(env, CgroupQuery, "cgroupQuery"));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach, "linkDetach"));
  exports.Set("linkUpdate", Napi::Function::New(env, LinkUpdate, "linkUpdate"));
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRun, "progTestRun"));
  exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus, "numPossibleCpus"));
}

}  // namespace weft
