// Blocking work (loading programs, netlink, setns) runs on the libuv thread pool and settles a
// Promise. `exec` runs off the JS thread and must not touch napi values: it throws Failure;
// `done` runs on the JS thread and builds the result.
#pragma once
#include <napi.h>

#include <functional>
#include <string>

#include "errors.h"

namespace weft {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Exec = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  static Napi::Promise Run(Napi::Env env, const char* name, Exec exec, Done done) {
    auto* w = new PromiseWorker(env, name, std::move(exec), std::move(done));
    Napi::Promise p = w->deferred_.Promise();
    w->Queue();
    return p;
  }

 protected:
  void Execute() override {
    try {
      exec_();
    } catch (const Failure& f) {
      failure_ = f;
      failed_ = true;
    } catch (const ArgFailure& a) {
      arg_ = a;
      argFailed_ = true;
    } catch (const std::exception& e) {
      failure_ = Failure{EIO, name_, e.what(), ""};
      failed_ = true;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) return deferred_.Reject(ErrnoError(env, failure_).Value());
    if (argFailed_) return deferred_.Reject(ArgumentError(env, arg_.param, arg_.message).Value());
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const Failure& f) {
      deferred_.Reject(ErrnoError(env, f).Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  PromiseWorker(Napi::Env env, const char* name, Exec exec, Done done)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), name_(name), exec_(std::move(exec)), done_(std::move(done)) {}

  Napi::Promise::Deferred deferred_;
  std::string name_;
  Exec exec_;
  Done done_;
  Failure failure_{};
  ArgFailure arg_{};
  bool failed_ = false;
  bool argFailed_ = false;
};

}  // namespace weft
