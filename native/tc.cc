// TC (clsact) attachment of sched_cls programs on an interface inside a network namespace.
// libbpf's bpf_tc_* open a netlink socket per call, so running them on a thread that entered
// the netns makes them act there; the ifindex is resolved in that netns too.
#include <bpf/libbpf.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "args.h"
#include "async.h"
#include "errors.h"
#include "netns.h"

namespace weft {
namespace {

using Info = const Napi::CallbackInfo&;

struct TcSpec {
  std::string netns, ifname;
  bpf_tc_attach_point point = BPF_TC_INGRESS;
  int progFd = -1;
  uint32_t priority = 0, handle = 0;
  bool replace = false;
  // results
  int ifindex = 0;
  uint32_t progId = 0;
  bool found = false, created = false;
};

// The interface by name (resolved inside the netns) or by ifindex.
void ReadIface(const Napi::Object& o, TcSpec& s) {
  if (args::Present(o.Get("ifindex"))) {
    s.ifindex = static_cast<int>(args::Integer(o.Get("ifindex"), "options.ifindex", 1, INT32_MAX));
    if (args::Present(o.Get("ifname"))) throw ArgFailure{"options.ifname", "give ifname or ifindex, not both"};
    return;
  }
  s.ifname = args::String(o.Get("ifname"), "options.ifname");
  if (s.ifname.size() >= IFNAMSIZ) throw ArgFailure{"options.ifname", "longer than IFNAMSIZ-1"};
}

std::shared_ptr<TcSpec> ReadSpec(const Napi::Object& o, bool needHandle) {
  auto s = std::make_shared<TcSpec>();
  s->netns = args::OptString(o.Get("netns"), "options.netns");
  ReadIface(o, *s);
  std::string dir = args::OptString(o.Get("direction"), "options.direction", "ingress");
  if (dir == "ingress") s->point = BPF_TC_INGRESS;
  else if (dir == "egress") s->point = BPF_TC_EGRESS;
  else throw ArgFailure{"options.direction", "must be 'ingress' or 'egress'"};
  int64_t lo = needHandle ? 1 : 0;
  s->priority = static_cast<uint32_t>(args::OptInteger(o.Get("priority"), "options.priority", lo, 0xffff, needHandle ? 1 : 0));
  s->handle = static_cast<uint32_t>(args::OptInteger(o.Get("handle"), "options.handle", lo, UINT32_MAX, needHandle ? 1 : 0));
  return s;
}

bpf_tc_hook Hook(TcSpec& s) {
  if (s.ifname.empty()) s.ifname = "ifindex " + std::to_string(s.ifindex);
  else s.ifindex = static_cast<int>(if_nametoindex(s.ifname.c_str()));
  if (s.ifindex == 0) throw Failure{errno, "if_nametoindex", s.ifname + (s.netns.empty() ? "" : " in " + s.netns), ""};
  bpf_tc_hook h;
  memset(&h, 0, sizeof h);
  h.sz = sizeof h;
  h.ifindex = s.ifindex;
  h.attach_point = s.point;
  return h;
}

bpf_tc_opts Opts(const TcSpec& s) {
  bpf_tc_opts o;
  memset(&o, 0, sizeof o);
  o.sz = sizeof o;
  o.priority = s.priority;
  o.handle = s.handle;
  return o;
}

Napi::Object Result(Napi::Env env, const TcSpec& s) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("ifindex", s.ifindex);
  r.Set("handle", s.handle);
  r.Set("priority", s.priority);
  r.Set("progId", s.progId);
  return r;
}

// tcAttach({netns?, ifname | ifindex, direction?, progFd, priority?, handle?, replace?}): Promise<{ifindex, handle, priority, progId}>
Napi::Value TcAttach(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Object o = args::Object(args::At(info, 0), "options");
    auto s = ReadSpec(o, false);
    s->progFd = args::Fd(o.Get("progFd"), "options.progFd");
    s->replace = args::OptBool(o.Get("replace"), "options.replace", false);
    return PromiseWorker::Run(
        env, "tcAttach",
        [s] {
          InNetns(s->netns, [&] {
            bpf_tc_hook h = Hook(*s);
            int r = bpf_tc_hook_create(&h);
            if (r != -EEXIST) Check(r, "bpf_tc_hook_create", s->ifname);
            s->created = r == 0;
            bpf_tc_opts o = Opts(*s);
            o.prog_fd = s->progFd;
            o.flags = s->replace ? BPF_TC_F_REPLACE : 0;
            Check(bpf_tc_attach(&h, &o), "bpf_tc_attach", s->ifname);
            s->handle = o.handle;
            s->priority = o.priority;
            s->progId = o.prog_id;
          });
        },
        [s](Napi::Env e) -> Napi::Value {
          Napi::Object r = Result(e, *s);
          r.Set("hookCreated", s->created);
          return r;
        });
  });
}

// tcDetach({netns?, ifname | ifindex, direction?, priority, handle}): Promise<boolean> (false: nothing there)
Napi::Value TcDetach(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    auto s = ReadSpec(args::Object(args::At(info, 0), "options"), true);
    return PromiseWorker::Run(
        env, "tcDetach",
        [s] {
          InNetns(s->netns, [&] {
            bpf_tc_hook h = Hook(*s);
            bpf_tc_opts o = Opts(*s);
            int r = bpf_tc_detach(&h, &o);
            // ENOENT: no such filter; EINVAL: no clsact qdisc at all.
            if (r == -ENOENT || r == -EINVAL) return;
            Check(r, "bpf_tc_detach", s->ifname);
            s->found = true;
          });
        },
        [s](Napi::Env e) -> Napi::Value { return Napi::Boolean::New(e, s->found); });
  });
}

// tcQuery({netns?, ifname | ifindex, direction?, priority, handle}): Promise<{…, progId} | null>
Napi::Value TcQuery(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    auto s = ReadSpec(args::Object(args::At(info, 0), "options"), true);
    return PromiseWorker::Run(
        env, "tcQuery",
        [s] {
          InNetns(s->netns, [&] {
            bpf_tc_hook h = Hook(*s);
            bpf_tc_opts o = Opts(*s);
            int r = bpf_tc_query(&h, &o);
            if (r == -ENOENT || r == -EINVAL) return;
            Check(r, "bpf_tc_query", s->ifname);
            s->found = true;
            s->progId = o.prog_id;
          });
        },
        [s](Napi::Env e) -> Napi::Value { return s->found ? Napi::Value(Result(e, *s)) : e.Null(); });
  });
}

// tcHookDestroy({netns?, ifname | ifindex}): Promise<boolean>; removes the clsact qdisc and every filter on it.
Napi::Value TcHookDestroy(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Object o = args::Object(args::At(info, 0), "options");
    auto s = std::make_shared<TcSpec>();
    s->netns = args::OptString(o.Get("netns"), "options.netns");
    ReadIface(o, *s);
    return PromiseWorker::Run(
        env, "tcHookDestroy",
        [s] {
          InNetns(s->netns, [&] {
            bpf_tc_hook h = Hook(*s);
            h.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
            int r = bpf_tc_hook_destroy(&h);
            if (r == -ENOENT || r == -EINVAL) return;
            Check(r, "bpf_tc_hook_destroy", s->ifname);
            s->found = true;
          });
        },
        [s](Napi::Env e) -> Napi::Value { return Napi::Boolean::New(e, s->found); });
  });
}

// ifindex({netns?, ifname | ifindex}): Promise<number>
Napi::Value IfIndex(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Object o = args::Object(args::At(info, 0), "options");
    auto s = std::make_shared<TcSpec>();
    s->netns = args::OptString(o.Get("netns"), "options.netns");
    ReadIface(o, *s);
    return PromiseWorker::Run(
        env, "ifindex", [s] { InNetns(s->netns, [&] { Hook(*s); }); },
        [s](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, s->ifindex); });
  });
}

}  // namespace

void InitTc(Napi::Env env, Napi::Object exports) {
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery, "tcQuery"));
  exports.Set("tcHookDestroy", Napi::Function::New(env, TcHookDestroy, "tcHookDestroy"));
  exports.Set("ifindex", Napi::Function::New(env, IfIndex, "ifindex"));
}

}  // namespace weft
