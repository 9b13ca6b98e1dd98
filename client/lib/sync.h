// Internal: the blocking twin of an async call waits on a SyncWaiter that
// the async callback fills (on the loop thread).
#pragma once

#include <memory>
#include <optional>
#include <utility>

#include "common/thread_annotations.h"

namespace dlog::client {

template <typename T>
class SyncWaiter {
 public:
  void Set(T value) {
    MutexLock l(&mu_);
    value_.emplace(std::move(value));
    cv_.SignalAll();
  }
  T Wait() {
    MutexLock l(&mu_);
    while (!value_.has_value()) cv_.Wait(&mu_);
    return std::move(*value_);
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::optional<T> value_ DLOG_GUARDED_BY(mu_);
};

// Runs `start(callback)` and waits for the callback's value.
template <typename T, typename Start>
T WaitFor(Start&& start) {
  auto w = std::make_shared<SyncWaiter<T>>();
  start([w](T v) { w->Set(std::move(v)); });
  return w->Wait();
}

}  // namespace dlog::client
