// EventLoop: one thread running one uv_loop_t. Other threads reach it only
// through Post() (a mutex-protected task queue drained on a uv_async wake-up).
//
// Threading: Post/Dispatch/InLoopThread are thread-safe. uv() handles may be
// touched only on the loop thread. Stop() must not be called on the loop
// thread; it runs the tasks already posted, closes every handle still open on
// the loop, and joins.
//
// The task queue is not bounded here: every producer of tasks is itself
// bounded upstream (connection windows, journal queue admission), which is
// where back-pressure is applied.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/thread_annotations.h"

namespace dlog::net {

class EventLoop {
 public:
  explicit EventLoop(std::string name);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void Start();
  void Stop();

  void Post(std::function<void()> task);
  // Runs `task` now if called on the loop thread, else posts it.
  void Dispatch(std::function<void()> task);
  bool InLoopThread() const;
  // Posts `task` and waits until it ran. Not on the loop thread.
  void RunSync(const std::function<void()>& task);

  uv_loop_t* uv() { return &loop_; }
  const std::string& name() const { return name_; }

 private:
  static void OnAsync(uv_async_t* h);
  void Drain();

  std::string name_;
  uv_loop_t loop_;
  uv_async_t async_;
  std::thread thread_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::atomic<bool> running_{false};
  bool stopping_ = false;  // loop thread only
  Mutex mu_;
  std::vector<std::function<void()>> tasks_ DLOG_GUARDED_BY(mu_);
  std::vector<std::function<void()>> running_tasks_;  // loop thread only
};

}  // namespace dlog::net
