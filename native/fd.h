// Owns a file descriptor until release(): every error path closes what it opened.
#pragma once
#include <unistd.h>

namespace weft {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
  void reset(int f = -1) { if (fd_ >= 0) ::close(fd_); fd_ = f; }

 private:
  int fd_ = -1;
};

}  // namespace weft
