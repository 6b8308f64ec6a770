// A libbpf bpf_object: open a .bpf.o, set globals, load, list programs and maps, close.
#pragma once
#include <bpf/libbpf.h>
#include <napi.h>

#include <atomic>
#include <string>

namespace weft {

class BpfObjectWrap : public Napi::ObjectWrap<BpfObjectWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit BpfObjectWrap(const Napi::CallbackInfo& info);
  ~BpfObjectWrap() override;

 private:
  bpf_object* Obj(const char* op);
  bpf_map* FindMap(const std::string& name, const std::string& param);
  bpf_program* FindProgram(const std::string& name, const std::string& param);
  void RequireNotLoaded(const char* op);

  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value Maps(const Napi::CallbackInfo& info);
  Napi::Value Globals(const Napi::CallbackInfo& info);
  Napi::Value SetGlobal(const Napi::CallbackInfo& info);
  Napi::Value GetGlobal(const Napi::CallbackInfo& info);
  Napi::Value SetAutoload(const Napi::CallbackInfo& info);
  Napi::Value SetMaxEntries(const Napi::CallbackInfo& info);
  Napi::Value SetPinPath(const Napi::CallbackInfo& info);
  Napi::Value ReuseMapFd(const Napi::CallbackInfo& info);
  Napi::Value BtfStruct(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bpf_object* obj_ = nullptr;
  std::string path_;
  std::atomic<bool> loading_{false};
  std::atomic<bool> loaded_{false};
};

// libbpf messages go to the calling thread's capture buffer, if one is active.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  std::string text() const { return buf_; }
  static void Install();

 private:
  std::string buf_;
  std::string* prev_;
};

}  // namespace weft
