// Network sysctls of another network namespace. /proc/sys/net/* shows the netns of the thread
// that opens it, so the read and the write happen inside the target netns (see netns.h). `dir`
// is the procfs sys directory to go through: /proc/sys, or in a container (whose /proc/sys is
// read-only) the host's /proc/sys/net mounted writable below another directory.
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
std::string SysctlPath(const std::string& dir, const std::string& name) {
  if (name.rfind("net.", 0) != 0) throw ArgFailure{"options.name", "must be a net.* sysctl (only those belong to a network namespace)"};
  if (dir.empty() || dir[0] != '/' || dir.find("..") != std::string::npos) throw ArgFailure{"options.dir", "must be an absolute path without '..'"};
  std::string path = dir.back() == '/' ? dir : dir + "/";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) throw ArgFailure{"options.name", "may contain only a-z, 0-9, '_', '-' and '.'"};
    path += c == '.' ? '/' : c;
  }
  if (name.find("..") != std::string::npos || name.back() == '.') throw ArgFailure{"options.name", "is not a sysctl name"};
  return path;
}

// A sysctl is read in one read(): a bitmap like ip_local_reserved_ports answers a second read
// with nothing, so a small buffer would cut the list off. 1 MiB holds every port (~400 KB).
std::string ReadAll(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Failure{errno, "open", path, ""};
  std::string out(1 << 20, '\0');
  ssize_t n = read(fd.get(), out.data(), out.size());
  if (n < 0) throw Failure{errno, "read", path, ""};
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// The kernel parses at most a page less one byte per write(). A longer comma-separated list
// (ip_local_reserved_ports) goes in chunks cut at commas on one open file: the first write
// replaces the bitmap, later ones add to it.
void WriteAll(const std::string& path, const std::string& value) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Failure{errno, "open", path, ""};
  const size_t kMax = 4000;
  size_t at = 0;
  do {
    size_t len = value.size() - at;
    if (len > kMax) {
      size_t comma = value.rfind(',', at + kMax);
      if (comma == std::string::npos || comma <= at) throw Failure{EINVAL, "write", path, "a value part longer than a page"};
      len = comma + 1 - at;
    }
    ssize_t n = write(fd.get(), value.data() + at, len);
    if (n < 0) throw Failure{errno, "write", path, value.substr(at, 64)};
    if (static_cast<size_t>(n) != len) throw Failure{EIO, "write", path, "short write"};
    at += len;
  } while (at < value.size());
}

// sysctlInNetns({netns?, name, value?, dir?}): Promise<string> — the value before any write.
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
    s->path = SysctlPath(args::OptString(o.Get("dir"), "options.dir", "/proc/sys"), args::String(o.Get("name"), "options.name"));
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
