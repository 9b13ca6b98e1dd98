// Named failure points, compiled in only when DLOG_FAILPOINTS is defined
// (test builds). A test arms a point by name; code asks whether it fires.
//
//   if (DLOG_FAILPOINT("journal.before_fsync")) return IoError(...);
//
// Points can also be armed in a child process through the environment:
//   DLOG_FAILPOINTS="journal.before_fsync=3,node.drop_fence=once"
// where a number is how many times it fires and "once" means 1; "always" fires forever.
// Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace dlog::failpoint {

// Arms `name` to fire `times` times (-1: forever).
void Arm(std::string_view name, int times = 1);
void Disarm(std::string_view name);
void DisarmAll();
// True if `name` is armed; consumes one firing.
bool Fire(std::string_view name);

}  // namespace dlog::failpoint

#ifdef DLOG_FAILPOINTS
#define DLOG_FAILPOINT(name) ::dlog::failpoint::Fire(name)
#else
#define DLOG_FAILPOINT(name) false
#endif
