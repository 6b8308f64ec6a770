// One way to fail: every libbpf or syscall failure becomes a JS Error carrying `errno` (positive,
// as in C), `code` ('EPERM', …), `syscall` (the operation that failed) and, for loads, the libbpf
// log. Worker threads cannot touch JS, so they throw a plain `Failure` and the completion
// callback on the JS thread turns it into an Error with ErrnoError().
#pragma once
#include <napi.h>

#include <string>

namespace weft {

struct Failure {
  int err;             // positive errno
  std::string op;      // the libbpf function or syscall, e.g. "bpf_link_create"
  std::string detail;  // what it was applied to, e.g. a path
  std::string log;     // libbpf / verifier output captured during the call, if any
};

// Bad argument detected at the native boundary (the TS facade checks first; this is the backstop).
struct ArgFailure {
  std::string param;
  std::string message;
};

Napi::Error ErrnoError(Napi::Env env, const Failure& f);
Napi::Error ArgumentError(Napi::Env env, const std::string& param, const std::string& message);

// Throws Failure{errno-of-ret} when `ret` < 0. libbpf 1.x returns -errno; plain syscalls return
// -1 and set errno: pass `ret` from libbpf and use CheckSys for syscalls.
int Check(int ret, const char* op, const std::string& detail = "");
int CheckSys(int ret, const char* op, const std::string& detail = "");

// Runs `fn`, translating Failure / ArgFailure into thrown JS errors (for synchronous entry points).
template <typename F>
auto Guard(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Failure& f) {
    throw ErrnoError(env, f);
  } catch (const ArgFailure& a) {
    throw ArgumentError(env, a.param, a.message);
  }
}

}  // namespace weft
