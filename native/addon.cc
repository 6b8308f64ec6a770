// weft_native: Weft's binding over the system libbpf plus netns/socket helpers. Loaded only by
// agent/src/native/addon.ts.
#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <napi.h>

#include "bpf-object.h"

namespace weft {
void InitBpfFd(Napi::Env env, Napi::Object exports);
void InitSockets(Napi::Env env, Napi::Object exports);
void InitTc(Napi::Env env, Napi::Object exports);
void InitProbes(Napi::Env env, Napi::Object exports);
void InitTlsVerify(Napi::Env env, Napi::Object exports);
void InitSysctl(Napi::Env env, Napi::Object exports);
}  // namespace weft

// Node dlclose()s an addon when the last worker thread that loaded it ends. OpenSSL and libbpf
// keep pointers into this library for the life of the process (the SSL_CTX ex_data free
// callback, the print callback), so it must never be unmapped: pin it with RTLD_NODELETE.
static void PinThisLibrary() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&PinThisLibrary), &info) != 0 && info.dli_fname != nullptr) {
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  }
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PinThisLibrary();
  weft::LogCapture::Install();
  // libbpf 1.x is strict by default; set it explicitly so behaviour does not depend on the build.
  libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
  exports.Set("NativeBpfObject", weft::BpfObjectWrap::Init(env));
  weft::InitBpfFd(env, exports);
  weft::InitSockets(env, exports);
  weft::InitTc(env, exports);
  weft::InitProbes(env, exports);
  weft::InitTlsVerify(env, exports);
  weft::InitSysctl(env, exports);
  exports.Set("libbpfVersion", Napi::String::New(env, std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version())));
  return exports;
}

NODE_API_MODULE(weft_native, Init)
