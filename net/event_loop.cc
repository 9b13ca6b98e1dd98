#include "net/event_loop.h"

#include <pthread.h>

#include <csignal>
#include <mutex>
#include <utility>

#include "common/check.h"
#include "common/logging.h"

namespace dlog::net {

EventLoop::EventLoop(std::string name) : name_(std::move(name)) {
  int rc = uv_loop_init(&loop_);
  DLOG_CHECK(rc == 0) << "uv_loop_init: " << uv_strerror(rc);
  loop_.data = this;
  rc = uv_async_init(&loop_, &async_, &EventLoop::OnAsync);
  DLOG_CHECK(rc == 0) << "uv_async_init: " << uv_strerror(rc);
  async_.data = this;
}

EventLoop::~EventLoop() {
  if (!stopped_) Stop();
}

void EventLoop::Start() {
  DLOG_CHECK(!started_ && !stopped_) << "EventLoop " << name_ << " started twice";
  // libuv writes to sockets with write(2)/writev(2), which raise SIGPIPE when
  // the peer is gone (a node killed mid-request); its default action would kill
  // the whole process. Every process that runs a loop ignores it, once; the
  // write then fails with EPIPE and the connection is closed as lost.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { ::signal(SIGPIPE, SIG_IGN); });
  started_ = true;
  running_.store(true);
  thread_ = std::thread([this] {
    loop_thread_id_.store(std::this_thread::get_id());
    std::string tname = name_.substr(0, 15);
    pthread_setname_np(pthread_self(), tname.c_str());
    uv_run(&loop_, UV_RUN_DEFAULT);
    FinishShutdown();
  });
}

void EventLoop::Stop() {
  DLOG_CHECK(!InLoopThread()) << "EventLoop::Stop called on its own thread (" << name_ << ")";
  if (stopped_) return;
  stopped_ = true;
  if (started_) {
    {
      MutexLock l(&mu_);
      stop_requested_ = true;
      if (async_open_) uv_async_send(&async_);
    }
    thread_.join();
  } else {
    // Never started: run the shutdown sequence here, acting as the loop thread.
    {
      MutexLock l(&mu_);
      stop_requested_ = true;
    }
    loop_thread_id_.store(std::this_thread::get_id());
    Drain();
    BeginShutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
    FinishShutdown();
  }
  loop_thread_id_.store(std::thread::id());
  running_.store(false);
}

bool EventLoop::TryPost(std::function<void()>& task) {
  MutexLock l(&mu_);
  if (!accepting_) return false;
  // A non-empty queue means a wake-up is already pending.
  const bool wake = tasks_.empty();
  tasks_.push_back(std::move(task));
  task = nullptr;
  if (wake && async_open_) uv_async_send(&async_);
  return true;
}

void EventLoop::Post(std::function<void()> task) {
  if (!TryPost(task)) {
    DLOG_WARN << "EventLoop " << name_ << ": task posted after Stop() is dropped";
  }
}

void EventLoop::Dispatch(std::function<void()> task) {
  if (InLoopThread()) {
    task();
  } else {
    Post(std::move(task));
  }
}

bool EventLoop::InLoopThread() const { return loop_thread_id_.load() == std::this_thread::get_id(); }

bool EventLoop::IsRunning() const { return running_.load(); }

void EventLoop::RunSync(const std::function<void()>& task) {
  // On the loop thread, or with no loop thread (not started, or stopped):
  // running inline is equivalent and cannot deadlock.
  if (InLoopThread() || !running_.load()) {
    task();
    return;
  }
  Mutex mu;
  CondVar cv;
  bool done = false;
  std::function<void()> wrapped = [&] {
    task();
    MutexLock l(&mu);
    done = true;
    cv.SignalAll();
  };
  if (!TryPost(wrapped)) {
    task();  // the loop thread is gone
    return;
  }
  MutexLock l(&mu);
  while (!done) cv.Wait(&mu);
}

void EventLoop::AddResource(Resource* r) {
  if (r->linked_) return;
  r->prev_ = nullptr;
  r->next_ = resources_;
  if (resources_ != nullptr) resources_->prev_ = r;
  resources_ = r;
  r->linked_ = true;
}

void EventLoop::RemoveResource(Resource* r) {
  if (!r->linked_) return;
  if (r->prev_ != nullptr) {
    r->prev_->next_ = r->next_;
  } else {
    resources_ = r->next_;
  }
  if (r->next_ != nullptr) r->next_->prev_ = r->prev_;
  r->prev_ = r->next_ = nullptr;
  r->linked_ = false;
}

void EventLoop::OnAsync(uv_async_t* h) {
  auto* self = static_cast<EventLoop*>(h->data);
  self->Drain();
  bool stop;
  {
    MutexLock l(&self->mu_);
    stop = self->stop_requested_;
  }
  if (stop && !self->stopping_) self->BeginShutdown();
}

void EventLoop::Drain() {
  {
    MutexLock l(&mu_);
    if (tasks_.empty()) return;
    tasks_.swap(running_tasks_);  // both keep their capacity: no allocation in steady state
  }
  for (auto& t : running_tasks_) t();
  running_tasks_.clear();
}

void EventLoop::CloseAllHandles() {
  // Resources first: they close their own handles with their own callbacks.
  while (resources_ != nullptr) {
    Resource* r = resources_;
    RemoveResource(r);
    r->OnLoopStop();
  }
  // Anything left belongs to an owner that did not register; close it so the
  // loop can end (its memory is that owner's business).
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void* arg) {
        auto* self = static_cast<EventLoop*>(arg);
        if (uv_is_closing(h) || h == reinterpret_cast<uv_handle_t*>(&self->async_)) return;
        DLOG_WARN << "EventLoop " << self->name_ << ": closing a " << uv_handle_type_name(h->type)
                  << " handle left open by its owner";
        uv_close(h, nullptr);
      },
      this);
}

void EventLoop::BeginShutdown() {
  stopping_ = true;
  CloseAllHandles();
  {
    MutexLock l(&mu_);
    async_open_ = false;
  }
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&async_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  }
}

void EventLoop::FinishShutdown() {
  // Runs once uv_run returned (every handle closed). Tasks posted meanwhile
  // still run; whatever they open is closed again.
  for (;;) {
    {
      MutexLock l(&mu_);
      if (tasks_.empty()) {
        accepting_ = false;
        break;
      }
    }
    Drain();
    CloseAllHandles();
    uv_run(&loop_, UV_RUN_DEFAULT);
  }
  int rc = uv_loop_close(&loop_);
  if (rc != 0) {
    CloseAllHandles();
    uv_run(&loop_, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop_);
  }
  if (rc != 0) DLOG_ERROR << "EventLoop " << name_ << ": uv_loop_close: " << uv_strerror(rc);
}

}  // namespace dlog::net
