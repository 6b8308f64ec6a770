// Feature probes for `weft check`: does this kernel accept a program type, and a helper in it?
// Program types whose load needs an expected attach type (cgroup_sock_addr), and all helpers,
// are probed with our own small program (see RunProbe for why).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "args.h"
#include "errors.h"
#include "fd.h"
#include "names.h"

namespace weft {
namespace {

using Info = const Napi::CallbackInfo&;

struct Probe {
  bpf_prog_type type;
  bool hasAttach = false;
  bpf_attach_type attach{};
  int helper = -1;
  bool supported = false;
};

void DefaultAttach(Probe& p) {
  if (p.hasAttach) return;
  if (p.type == BPF_PROG_TYPE_CGROUP_SOCK_ADDR) {
    p.attach = BPF_CGROUP_INET4_CONNECT;
    p.hasAttach = true;
  }
}

// Loads `[call helper;] r0 = 1; exit` with an expected attach type. A helper is unsupported when
// the verifier does not know it or refuses it for this program type, as libbpf decides.
bool OwnProbe(const Probe& p) {
  bpf_insn insns[3];
  memset(insns, 0, sizeof insns);
  int n = 0;
  if (p.helper >= 0) {
    insns[n].code = BPF_JMP | BPF_CALL;
    insns[n].imm = p.helper;
    n++;
  }
  insns[n].code = BPF_ALU64 | BPF_MOV | BPF_K;  // r0 = 1: a valid verdict for every cgroup hook
  insns[n].imm = 1;
  insns[n].dst_reg = BPF_REG_0;
  n++;
  insns[n].code = BPF_JMP | BPF_EXIT;
  n++;
  char log[4096] = "";
  bpf_prog_load_opts o;
  memset(&o, 0, sizeof o);
  o.sz = sizeof o;
  o.expected_attach_type = p.attach;
  o.log_buf = log;
  o.log_size = sizeof log;
  o.log_level = 1;
  int fd = bpf_prog_load(p.type, nullptr, "GPL", insns, n, &o);
  if (fd >= 0) {
    close(fd);
    return true;
  }
  if (fd == -EPERM) throw Failure{EPERM, "bpf_prog_load", "probing needs CAP_BPF / root", ""};
  if (p.helper < 0) return false;
  // "invalid func": helper id unknown; "unknown func" (older kernels) and "cannot use helper"
  // (6.x) : known but not allowed for this program type.
  if (strstr(log, "invalid func ") || strstr(log, "unknown func ") || strstr(log, "cannot use helper")) return false;
  return true;  // refused for another reason (arguments): the helper itself is known here
}

// Helpers always go through OwnProbe: libbpf 1.1.2's helper probe does not know the 6.x
// verifier message "program of this type cannot use helper" and answers "supported".
void RunProbe(Probe& p) {
  if (p.hasAttach || p.helper >= 0) {
    p.supported = OwnProbe(p);
    return;
  }
  int r = p.helper >= 0 ? libbpf_probe_bpf_helper(p.type, static_cast<bpf_func_id>(p.helper), nullptr)
                        : libbpf_probe_bpf_prog_type(p.type, nullptr);
  if (r == -EPERM) throw Failure{EPERM, p.helper >= 0 ? "libbpf_probe_bpf_helper" : "libbpf_probe_bpf_prog_type", "probing needs CAP_BPF / root", ""};
  p.supported = r > 0;
}

// probeProgType(progType, attachType?): boolean. Synchronous: a two-instruction load takes
// microseconds, and `weft check` runs them in sequence.
Napi::Value ProbeProgType(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    auto p = std::make_shared<Probe>();
    p->type = names::ParseProgType(args::String(args::At(info, 0), "progType"), "progType");
    if (args::Present(args::At(info, 1))) {
      p->attach = names::ParseAttachType(args::String(args::At(info, 1), "attachType"), "attachType");
      p->hasAttach = true;
    }
    DefaultAttach(*p);
    RunProbe(*p);
    return Napi::Boolean::New(env, p->supported);
  });
}

// probeHelper(progType, helper, attachType?): boolean
Napi::Value ProbeHelper(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    auto p = std::make_shared<Probe>();
    p->type = names::ParseProgType(args::String(args::At(info, 0), "progType"), "progType");
    p->helper = names::ParseHelper(args::String(args::At(info, 1), "helper"), "helper");
    if (args::Present(args::At(info, 2))) {
      p->attach = names::ParseAttachType(args::String(args::At(info, 2), "attachType"), "attachType");
      p->hasAttach = true;
    }
    DefaultAttach(*p);
    RunProbe(*p);
    return Napi::Boolean::New(env, p->supported);
  });
}

}  // namespace

void InitProbes(Napi::Env env, Napi::Object exports) {
  exports.Set("probeProgType", Napi::Function::New(env, ProbeProgType, "probeProgType"));
  exports.Set("probeHelper", Napi::Function::New(env, ProbeHelper, "probeHelper"));
}

}  // namespace weft
