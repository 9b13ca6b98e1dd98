#include "client/lib/timers.h"

#include <algorithm>

#include "common/check.h"
#include "common/clock.h"

namespace dlog::client {

Timers::~Timers() { DLOG_CHECK(timer_ == nullptr) << "Timers destroyed before Shutdown()"; }

void Timers::Start() {
  timer_ = new uv_timer_t;
  const int rc = uv_timer_init(loop_->uv(), timer_);
  DLOG_CHECK(rc == 0) << "uv_timer_init: " << uv_strerror(rc);
  timer_->data = this;
}

void Timers::Shutdown() {
  shut_down_ = true;
  fns_.clear();
  heap_ = {};
  if (timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(timer_, nullptr)),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
}

uint64_t Timers::Schedule(int64_t delay_ms, std::function<void()> fn) {
  if (shut_down_) return 0;
  const uint64_t id = next_id_++;
  heap_.emplace(MonoMillis() + std::max<int64_t>(delay_ms, 0), id);
  fns_.emplace(id, std::move(fn));
  Arm();
  return id;
}

void Timers::Cancel(uint64_t id) { fns_.erase(id); }

void Timers::Arm() {
  while (!heap_.empty() && fns_.count(heap_.top().second) == 0) heap_.pop();
  if (timer_ == nullptr || heap_.empty()) return;
  const int64_t deadline = heap_.top().first;
  if (armed_for_ == deadline && uv_is_active(reinterpret_cast<uv_handle_t*>(timer_))) return;
  armed_for_ = deadline;
  const int64_t delay = std::max<int64_t>(deadline - MonoMillis(), 0);
  uv_timer_start(
      timer_, [](uv_timer_t* t) { static_cast<Timers*>(t->data)->Fire(); }, static_cast<uint64_t>(delay), 0);
}

void Timers::Fire() {
  armed_for_ = -1;
  const int64_t now = MonoMillis();
  // Callbacks may schedule and cancel timers; take each due one out first.
  while (!shut_down_ && !heap_.empty() && heap_.top().first <= now) {
    const uint64_t id = heap_.top().second;
    heap_.pop();
    auto it = fns_.find(id);
    if (it == fns_.end()) continue;
    std::function<void()> fn = std::move(it->second);
    fns_.erase(it);
    fn();
  }
  if (!shut_down_) Arm();
}

}  // namespace dlog::client
