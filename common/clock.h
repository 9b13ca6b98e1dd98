// Clocks. MonoNanos() is monotonic (for deadlines, latencies, leases);
// WallMillis() is the wall clock (for timestamps shown to people).
#pragma once

#include <chrono>
#include <cstdint>

namespace dlog {

inline int64_t MonoNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
inline int64_t MonoMicros() { return MonoNanos() / 1000; }
inline int64_t MonoMillis() { return MonoNanos() / 1000000; }
inline int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace dlog
