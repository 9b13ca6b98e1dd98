// Timers: one uv timer on the client's loop driving every deadline of the
// client (batch delays, send and request timeouts, backoffs, keepalive,
// ack timeout, negative-ack delays). A min-heap of (deadline, id); the uv
// timer is armed for the earliest. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <queue>
#include <unordered_map>
#include <utility>
#include <vector>

#include "net/event_loop.h"

namespace dlog::client {

class Timers {
 public:
  explicit Timers(net::EventLoop* loop) : loop_(loop) {}
  ~Timers();  // Shutdown() must have run (or Start() never did)
  Timers(const Timers&) = delete;
  Timers& operator=(const Timers&) = delete;

  void Start();
  // Closes the uv timer; pending callbacks are dropped without running.
  void Shutdown();

  // Runs `fn` on the loop after `delay_ms` (>= 0). Returns an id for Cancel.
  uint64_t Schedule(int64_t delay_ms, std::function<void()> fn);
  void Cancel(uint64_t id);

 private:
  void Fire();
  void Arm();

  net::EventLoop* loop_;
  uv_timer_t* timer_ = nullptr;
  bool shut_down_ = false;
  uint64_t next_id_ = 1;
  using Entry = std::pair<int64_t, uint64_t>;  // deadline (MonoMillis), id
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  std::unordered_map<uint64_t, std::function<void()>> fns_;
  int64_t armed_for_ = -1;
};

}  // namespace dlog::client
