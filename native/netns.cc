#include "netns.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace weft::detail {

NetnsReturn::~NetnsReturn() {
  if (setns(home_.get(), CLONE_NEWNET) == 0) return;
  std::fprintf(stderr, "weft_native: cannot return a worker thread to its network namespace (%s); aborting so no later work lands in the wrong netns\n", std::strerror(errno));
  std::abort();
}

}  // namespace weft::detail
