// Network sysctls of another network namespace. /proc/sys/net/* shows the netns of the thread
// that opens it, so the read and the write happen inside the target netns (see netns.h).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>

#include "args.h"
#include "async.h"
#include "errors.h"
#include "fd.h"
#include "netns.h"

namespace weft {
namespace {

using Info = const Napi::CallbackInfo&;

// 'net.ipv4.ip_local_reserved_ports' -> '/proc/sys/net/ipv4/ip_local_reserved_ports'. Only
// net.* names, from [a-z0-9_.-]: nothing else is per-netns, and no path tricks.
std::string SysctlPath(const std::string& name) {
  if (name.rfind("net.", 0) != 0) throw ArgFailure{"options.name", "must be a net.* sysctl (only those belong to a network namespace)"};
  std::string path = "/proc/sys/";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) throw ArgFailure{"options.name", "may contain only a-z, 0-9, '_', '-' and '.'"};
    path += c == '.' ? '/' : c;
  }
  if (name.find("..") != std::string::npos || name.back() == '.') throw ArgFailure{"options.name", "is not a sysctl name"};
  return path;
}

std::string ReadAll(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Failure{errno, "open", path, ""};
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) throw Failure{errno, "read", path, ""};
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

void WriteAll(const std::string& path, const std::string& value) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Failure{errno, "open", path, ""};
  // One write: the kernel parses a sysctl value per write() call.
  ssize_t n = write(fd.get(), value.data(), value.size());
  if (n < 0) throw Failure{errno, "write", path, value};
  if (static_cast<size_t>(n) != value.size()) throw Failure{EIO, "write", path, "short write"};
}

// sysctlInNetns({netns?, name, value?}): Promise<string> — the value before any write.
Napi::Value SysctlInNetns(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Object o = args::Object(args::At(info, 0), "options");
    struct Spec {
      std::string netns, path, value, before;
      bool write = false;
    };
    auto s = std::make_shared<Spec>();
    s->netns = args::OptString(o.Get("netns"), "options.netns");
    s->path = SysctlPath(args::String(o.Get("name"), "options.name"));
    if (args::Present(o.Get("value"))) {
      s->value = args::String(o.Get("value"), "options.value");
      s->write = true;
    }
    return PromiseWorker::Run(
        env, "sysctlInNetns",
        [s] {
          InNetns(s->netns, [&] {
            s->before = ReadAll(s->path);
            if (s->write) WriteAll(s->path, s->value);
          });
        },
        [s](Napi::Env e) -> Napi::Value { return Napi::String::New(e, s->before); });
  });
}

}  // namespace

void InitSysctl(Napi::Env env, Napi::Object exports) {
  exports.Set("sysctlInNetns", Napi::Function::New(env, SysctlInNetns, "sysctlInNetns"));
}

}  // namespace weft
