#include "errors.h"

#include <cerrno>
#include <cstring>

namespace weft {

Napi::Error ErrnoError(Napi::Env env, const Failure& f) {
  const char* name = strerrorname_np(f.err);
  std::string code = name ? name : "E" + std::to_string(f.err);
  std::string msg = f.op + " failed";
  if (!f.detail.empty()) msg += " (" + f.detail + ")";
  msg += ": " + std::string(strerror(f.err)) + " [" + code + "]";
  if (!f.log.empty()) {
    // The tail of the log carries the verifier's reason; the full text is on `.log`.
    std::string tail = f.log.size() > 4000 ? "…" + f.log.substr(f.log.size() - 4000) : f.log;
    msg += "\n" + tail;
  }
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, f.err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("syscall", Napi::String::New(env, f.op));
  if (!f.detail.empty()) e.Set("detail", Napi::String::New(env, f.detail));
  if (!f.log.empty()) e.Set("log", Napi::String::New(env, f.log));
  return e;
}

Napi::Error ArgumentError(Napi::Env env, const std::string& param, const std::string& message) {
  Napi::Error e = Napi::TypeError::New(env, param + ": " + message);
  e.Set("code", Napi::String::New(env, "WEFT_E_INVALID_ARGUMENT"));
  e.Set("parameter", Napi::String::New(env, param));
  return e;
}

int Check(int ret, const char* op, const std::string& detail) {
  if (ret < 0) throw Failure{-ret, op, detail, ""};
  return ret;
}

int CheckSys(int ret, const char* op, const std::string& detail) {
  if (ret < 0) throw Failure{errno, op, detail, ""};
  return ret;
}

}  // namespace weft
