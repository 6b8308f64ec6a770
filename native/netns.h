// Running code inside another network namespace. setns() changes only the calling thread, so
// the work runs on a fresh thread that enters the netns and then exits: no thread of Node's
// pool is ever left in a foreign namespace, even when something fails half-way.
#pragma once
#include <fcntl.h>
#include <sched.h>

#include <exception>
#include <string>
#include <thread>

#include "errors.h"
#include "fd.h"

namespace weft {

template <typename F>
void InNetns(const std::string& netnsPath, F&& fn) {
  if (netnsPath.empty()) {
    fn();
    return;
  }
  Fd ns(open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC));
  if (ns.get() < 0) throw Failure{errno, "open netns", netnsPath, ""};
  std::exception_ptr error;
  std::thread t([&] {
    try {
      if (setns(ns.get(), CLONE_NEWNET) < 0) throw Failure{errno, "setns", netnsPath, ""};
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace weft
