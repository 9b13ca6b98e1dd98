// EventLoop: one thread running one uv_loop_t. Other threads reach it only
// through Post() (a mutex-protected task queue drained on a uv_async wake-up).
//
// Threading: Post/TryPost/Dispatch/InLoopThread/IsRunning are thread-safe.
// uv() handles may be touched only on the loop thread. Stop() must not be
// called on the loop thread; it runs the tasks already posted, asks every
// registered Resource to close its handles, closes every handle still open on
// the loop, runs the loop until they are closed, and joins. Tasks posted
// before Start() run once the loop starts. A task posted after Stop() has
// finished is dropped (TryPost reports it).
//
// Start() sets SIGPIPE to ignored for the whole process (once): socket writes
// to a vanished peer must fail with EPIPE, not kill the process.
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

  // Something that owns uv handles on this loop (a server, a client). Stop()
  // calls OnLoopStop() on the loop thread for every registered resource, so it
  // closes its handles with its own close callbacks (and fails what it has
  // pending). Used by net/ internals; register and unregister on the loop thread.
  class Resource {
   public:
    virtual void OnLoopStop() = 0;

   protected:
    virtual ~Resource() = default;

   private:
    friend class EventLoop;
    Resource* prev_ = nullptr;
    Resource* next_ = nullptr;
    bool linked_ = false;
  };

  void Start();
  void Stop();

  void Post(std::function<void()> task);
  // Like Post, but returns false and leaves `task` untouched once the loop has
  // stopped for good (the task would never run).
  bool TryPost(std::function<void()>& task);
  // Runs `task` now if called on the loop thread, else posts it.
  void Dispatch(std::function<void()> task);
  bool InLoopThread() const;
  // Posts `task` and waits until it ran. On the loop thread, or when no loop
  // thread runs (before Start, after Stop), it runs `task` inline instead.
  void RunSync(const std::function<void()>& task);

  // True between Start() and the end of Stop().
  bool IsRunning() const;

  // Loop thread only (or before Start / after Stop, from the owning thread).
  void AddResource(Resource* r);
  void RemoveResource(Resource* r);

  uv_loop_t* uv() { return &loop_; }
  const std::string& name() const { return name_; }

 private:
  static void OnAsync(uv_async_t* h);
  void Drain();
  void BeginShutdown();
  void FinishShutdown();
  void CloseAllHandles();

  std::string name_;
  uv_loop_t loop_;
  uv_async_t async_;
  std::thread thread_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::atomic<bool> running_{false};
  bool started_ = false;           // owner thread (Start/Stop)
  bool stopped_ = false;           // owner thread (Start/Stop)
  bool stopping_ = false;          // loop thread only
  Resource* resources_ = nullptr;  // loop thread only: intrusive list
  Mutex mu_;
  std::vector<std::function<void()>> tasks_ DLOG_GUARDED_BY(mu_);
  bool stop_requested_ DLOG_GUARDED_BY(mu_) = false;
  bool async_open_ DLOG_GUARDED_BY(mu_) = true;       // uv_async_send allowed
  bool accepting_ DLOG_GUARDED_BY(mu_) = true;        // Post accepted
  std::vector<std::function<void()>> running_tasks_;  // loop thread only
};

}  // namespace dlog::net
