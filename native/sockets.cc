// Sockets made inside a network namespace and handed to Node as fds, and socket queries
// (cookies, addresses, marks).
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "args.h"
#include "async.h"
#include "errors.h"
#include "fd.h"
#include "netns.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace weft {
namespace {

using Info = const Napi::CallbackInfo&;

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
};

Addr ParseAddr(const std::string& host, int port, const std::string& param) {
  Addr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof *v4;
    a.family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof *v6;
    a.family = AF_INET6;
  } else {
    throw ArgFailure{param, "'" + host + "' is not an IPv4 or IPv6 address"};
  }
  return a;
}

Napi::Object AddrObject(Napi::Env env, const sockaddr_storage& ss) {
  Napi::Object o = Napi::Object::New(env);
  char buf[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
    o.Set("family", "IPv4");
    o.Set("port", ntohs(v4->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
    o.Set("family", "IPv6");
    o.Set("port", ntohs(v6->sin6_port));
  } else {
    o.Set("family", "unknown");
    o.Set("port", 0);
  }
  o.Set("address", buf);
  return o;
}

void SetInt(int fd, int level, int opt, int value, const char* name) {
  CheckSys(setsockopt(fd, level, opt, &value, sizeof value), name);
}

struct SockSpec {
  std::string netns;
  bool transparent = false;
  bool hasMark = false;
  uint32_t mark = 0;
  bool reusePort = false;
  bool reuseAddr = true;
  int backlog = 511;
  bool hasBind = false;
  Addr bind;
  /** where the socket will connect: its bound 4-tuple must not be in use in the netns */
  bool hasDestination = false;
  Addr destination;
  int family = AF_INET;
};

void ReadCommon(const Napi::Object& o, SockSpec& s) {
  s.netns = args::OptString(o.Get("netns"), "options.netns");
  s.transparent = args::OptBool(o.Get("transparent"), "options.transparent", false);
  if (args::Present(o.Get("mark"))) {
    s.hasMark = true;
    s.mark = static_cast<uint32_t>(args::Integer(o.Get("mark"), "options.mark", 0, UINT32_MAX));
  }
}

Fd MakeTcpSocket(const SockSpec& s) {
  Fd fd(CheckSys(socket(s.family, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
  if (s.transparent) {
    if (s.family == AF_INET6) SetInt(fd.get(), SOL_IPV6, IPV6_TRANSPARENT, 1, "setsockopt(IPV6_TRANSPARENT)");
    else SetInt(fd.get(), SOL_IP, IP_TRANSPARENT, 1, "setsockopt(IP_TRANSPARENT)");
  }
  if (s.hasMark) SetInt(fd.get(), SOL_SOCKET, SO_MARK, static_cast<int>(s.mark), "setsockopt(SO_MARK)");
  return fd;
}

std::string Describe(const Addr& a) {
  char buf[INET6_ADDRSTRLEN] = "";
  int port;
  if (a.family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(&a.ss);
    inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
    port = ntohs(v4->sin_port);
    return std::string(buf) + ":" + std::to_string(port);
  }
  auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a.ss);
  inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
  port = ntohs(v6->sin6_port);
  return "[" + std::string(buf) + "]:" + std::to_string(port);
}

// listenInNetns({netns?, host?, port, reusePort?, reuseAddr?, transparent?, mark?, backlog?}): Promise<fd>
Napi::Value ListenInNetns(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Object o = args::Object(args::At(info, 0), "options");
    auto s = std::make_shared<SockSpec>();
    ReadCommon(o, *s);
    std::string host = args::OptString(o.Get("host"), "options.host", "0.0.0.0");
    int port = static_cast<int>(args::Integer(o.Get("port"), "options.port", 0, 65535));
    s->bind = ParseAddr(host, port, "options.host");
    s->family = s->bind.family;
    s->hasBind = true;
    s->reusePort = args::OptBool(o.Get("reusePort"), "options.reusePort", false);
    s->reuseAddr = args::OptBool(o.Get("reuseAddr"), "options.reuseAddr", true);
    s->backlog = static_cast<int>(args::OptInteger(o.Get("backlog"), "options.backlog", 1, 65535, 511));
    auto out = std::make_shared<int>(-1);
    return PromiseWorker::Run(
        env, "listenInNetns",
        [s, out] {
          InNetns(s->netns, [&] {
            Fd fd = MakeTcpSocket(*s);
            if (s->reuseAddr) SetInt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
            if (s->reusePort) SetInt(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)");
            CheckSys(bind(fd.get(), reinterpret_cast<const sockaddr*>(&s->bind.ss), s->bind.len), "bind", Describe(s->bind));
            CheckSys(listen(fd.get(), s->backlog), "listen", Describe(s->bind));
            *out = fd.release();
          });
        },
        [out](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *out); });
  });
}

// True when a TCP socket other than a listener has local address `local` and remote `remote`
// in the calling thread's netns: one exact NETLINK_SOCK_DIAG lookup (IPv4). A listener on
// `local` is what such a lookup finds when no connection matches, so it does not count.
bool TcpConnectionExists(const sockaddr_in& local, const sockaddr_in& remote) {
  Fd nl(CheckSys(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), "socket(NETLINK_SOCK_DIAG)"));
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = AF_INET;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0U;
  msg.req.id.idiag_sport = local.sin_port;
  msg.req.id.idiag_dport = remote.sin_port;
  msg.req.id.idiag_src[0] = local.sin_addr.s_addr;
  msg.req.id.idiag_dst[0] = remote.sin_addr.s_addr;
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  CheckSys(static_cast<int>(send(nl.get(), &msg, sizeof msg, 0)), "send(SOCK_DIAG_BY_FAMILY)");
  alignas(nlmsghdr) char buf[4096];
  ssize_t n = recv(nl.get(), buf, sizeof buf, 0);
  CheckSys(static_cast<int>(n), "recv(SOCK_DIAG_BY_FAMILY)");
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  if (!NLMSG_OK(h, static_cast<unsigned>(n))) return false;
  if (h->nlmsg_type == NLMSG_ERROR) {
    int err = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    if (err == 0 || err == -ENOENT) return false;
    throw Failure{-err, "sock_diag", "looking up a TCP 4-tuple"};
  }
  if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) return false;
  auto* d = reinterpret_cast<inet_diag_msg*>(NLMSG_DATA(h));
  return d->idiag_state != 10 /* TCP_LISTEN */;
}

// socketInNetns({netns?, family?, transparent?, mark?, bind?: {host, port?}, destination?: {host, port}}): Promise<fd>
Napi::Value SocketInNetns(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Object o = args::Object(args::At(info, 0), "options");
    auto s = std::make_shared<SockSpec>();
    ReadCommon(o, *s);
    int family = static_cast<int>(args::OptInteger(o.Get("family"), "options.family", 4, 6, 4));
    if (family != 4 && family != 6) throw ArgFailure{"options.family", "must be 4 or 6"};
    s->family = family == 6 ? AF_INET6 : AF_INET;
    if (args::Present(o.Get("bind"))) {
      Napi::Object b = args::Object(o.Get("bind"), "options.bind");
      std::string host = args::String(b.Get("host"), "options.bind.host");
      int port = static_cast<int>(args::OptInteger(b.Get("port"), "options.bind.port", 0, 65535, 0));
      s->bind = ParseAddr(host, port, "options.bind.host");
      s->hasBind = true;
      s->family = s->bind.family;
    }
    if (args::Present(o.Get("destination"))) {
      Napi::Object d = args::Object(o.Get("destination"), "options.destination");
      std::string host = args::String(d.Get("host"), "options.destination.host");
      int port = static_cast<int>(args::Integer(d.Get("port"), "options.destination.port", 1, 65535));
      s->destination = ParseAddr(host, port, "options.destination.host");
      s->hasDestination = true;
    }
    auto out = std::make_shared<int>(-1);
    return PromiseWorker::Run(
        env, "socketInNetns",
        [s, out] {
          InNetns(s->netns, [&] {
            Fd fd = MakeTcpSocket(*s);
            if (s->hasBind) {
              // The port is picked here, by bind(), not at connect (no IP_BIND_ADDRESS_NO_PORT):
              // connect() derives its port sequence from (saddr, daddr, dport) with a secret
              // shared by all netns, so an app dial from a client's IP would walk the very ports
              // that client's own connect()s took, and could reuse the 4-tuple of a connection
              // the proxy accepted on :15006 for it (the app's SYN then meets that socket).
              // bind() starts at a random port of the other parity; with a destination, a port
              // whose 4-tuple is taken anyway (a client that bound odd ports, SNAT) is skipped:
              // the socket that got it is held while another is bound, so bind() moves on.
              CheckSys(bind(fd.get(), reinterpret_cast<const sockaddr*>(&s->bind.ss), s->bind.len), "bind", Describe(s->bind));
              bool checkTuple = s->hasDestination && s->bind.family == AF_INET && s->destination.family == AF_INET &&
                                reinterpret_cast<sockaddr_in*>(&s->bind.ss)->sin_port == 0;
              std::vector<Fd> held;
              for (int tries = 0; checkTuple; tries++) {
                sockaddr_in bound{};
                socklen_t len = sizeof bound;
                CheckSys(getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len), "getsockname");
                if (!TcpConnectionExists(*reinterpret_cast<sockaddr_in*>(&s->destination.ss), bound)) break;
                if (tries == 64) throw Failure{EADDRINUSE, "bind", "no free source port whose 4-tuple is unused, for " + Describe(s->bind)};
                held.push_back(std::move(fd));
                fd.reset(MakeTcpSocket(*s).release());
                CheckSys(bind(fd.get(), reinterpret_cast<const sockaddr*>(&s->bind.ss), s->bind.len), "bind", Describe(s->bind));
              }
            }
            *out = fd.release();
          });
        },
        [out](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *out); });
  });
}

uint64_t GetU64(int fd, int opt, const char* name) {
  uint64_t v = 0;
  socklen_t len = sizeof v;
  CheckSys(getsockopt(fd, SOL_SOCKET, opt, &v, &len), name);
  return v;
}

Napi::Value SocketCookie(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    return Napi::BigInt::New(env, GetU64(fd, SO_COOKIE, "getsockopt(SO_COOKIE)"));
  });
}

Napi::Value NetnsCookie(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    return Napi::BigInt::New(env, GetU64(fd, SO_NETNS_COOKIE, "getsockopt(SO_NETNS_COOKIE)"));
  });
}

// netnsCookieOfPath(path): Promise<bigint>, the cookie BPF's bpf_get_netns_cookie sees there.
Napi::Value NetnsCookieOfPath(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::string path = args::String(args::At(info, 0), "netns");
    auto out = std::make_shared<uint64_t>(0);
    return PromiseWorker::Run(
        env, "netnsCookieOfPath",
        [path, out] {
          InNetns(path, [&] {
            Fd fd(CheckSys(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket"));
            *out = GetU64(fd.get(), SO_NETNS_COOKIE, "getsockopt(SO_NETNS_COOKIE)");
          });
        },
        [out](Napi::Env e) -> Napi::Value { return Napi::BigInt::New(e, *out); });
  });
}

Napi::Value LocalAddress(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    CheckSys(getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), "getsockname");
    return AddrObject(env, ss);
  });
}

Napi::Value PeerAddress(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    CheckSys(getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len), "getpeername");
    return AddrObject(env, ss);
  });
}

Napi::Value SetMark(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    auto mark = static_cast<uint32_t>(args::Integer(args::At(info, 1), "mark", 0, UINT32_MAX));
    SetInt(fd, SOL_SOCKET, SO_MARK, static_cast<int>(mark), "setsockopt(SO_MARK)");
    return env.Undefined();
  });
}

Napi::Value GetMark(Info info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    int fd = args::Fd(args::At(info, 0), "fd");
    uint32_t v = 0;
    socklen_t len = sizeof v;
    CheckSys(getsockopt(fd, SOL_SOCKET, SO_MARK, &v, &len), "getsockopt(SO_MARK)");
    return Napi::Number::New(env, v);
  });
}

}  // namespace

void InitSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("listenInNetns", Napi::Function::New(env, ListenInNetns, "listenInNetns"));
  exports.Set("socketInNetns", Napi::Function::New(env, SocketInNetns, "socketInNetns"));
  exports.Set("socketCookie", Napi::Function::New(env, SocketCookie, "socketCookie"));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie, "netnsCookie"));
  exports.Set("netnsCookieOfPath", Napi::Function::New(env, NetnsCookieOfPath, "netnsCookieOfPath"));
  exports.Set("localAddress", Napi::Function::New(env, LocalAddress, "localAddress"));
  exports.Set("peerAddress", Napi::Function::New(env, PeerAddress, "peerAddress"));
  exports.Set("setMark", Napi::Function::New(env, SetMark, "setMark"));
  exports.Set("getMark", Napi::Function::New(env, GetMark, "getMark"));
}

}  // namespace weft
