// DLOG_CHECK: a broken invariant aborts with context; it is never "handled".
//
//   DLOG_CHECK(offset <= size) << "offset " << offset << " past " << size;
#pragma once

#include <sstream>

namespace dlog::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* expr);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return os_; }

 private:
  std::ostringstream os_;
};

// Makes `cond ? (void)0 : Voidify() & stream` well formed.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace dlog::internal

#define DLOG_CHECK(cond)          \
  (__builtin_expect(!!(cond), 1)) \
      ? (void)0                   \
      : ::dlog::internal::Voidify() & ::dlog::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()
