// Timer: a uv timer owned by one object on one loop. Loop thread only.
// The handle is closed by the destructor (or Close) and freed in its close
// callback, so a Timer may be destroyed from inside its own callback.
//
// AfterMs: a one-shot timer that deletes itself after firing (no cancel): for
// short timeouts whose callback checks its own "still wanted" state.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>

#include "net/event_loop.h"

namespace dlog::segment {

class Timer {
 public:
  explicit Timer(net::EventLoop* loop);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // (Re)starts the timer: `fn` runs once after `ms` on the loop.
  void Start(uint64_t ms, std::function<void()> fn);
  void Stop();
  bool active() const;

  struct Handle;  // implementation detail (timer.cc)

 private:
  Handle* h_;
};

void AfterMs(net::EventLoop* loop, uint64_t ms, std::function<void()> fn);

}  // namespace dlog::segment
