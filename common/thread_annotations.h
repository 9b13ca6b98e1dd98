// Clang thread-safety annotations (no-ops on other compilers). Every field a
// mutex protects says so with DLOG_GUARDED_BY; use dlog::Mutex / dlog::MutexLock
// so the analysis sees lock and unlock.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define DLOG_TSA(x) __attribute__((x))
#else
#define DLOG_TSA(x)
#endif

#define DLOG_CAPABILITY(x) DLOG_TSA(capability(x))
#define DLOG_SCOPED_CAPABILITY DLOG_TSA(scoped_lockable)
#define DLOG_GUARDED_BY(x) DLOG_TSA(guarded_by(x))
#define DLOG_PT_GUARDED_BY(x) DLOG_TSA(pt_guarded_by(x))
#define DLOG_REQUIRES(...) DLOG_TSA(requires_capability(__VA_ARGS__))
#define DLOG_EXCLUDES(...) DLOG_TSA(locks_excluded(__VA_ARGS__))
#define DLOG_ACQUIRE(...) DLOG_TSA(acquire_capability(__VA_ARGS__))
#define DLOG_RELEASE(...) DLOG_TSA(release_capability(__VA_ARGS__))
#define DLOG_NO_THREAD_SAFETY_ANALYSIS DLOG_TSA(no_thread_safety_analysis)

namespace dlog {

class DLOG_CAPABILITY("mutex") Mutex {
 public:
  void lock() DLOG_ACQUIRE() { mu_.lock(); }
  void unlock() DLOG_RELEASE() { mu_.unlock(); }
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class DLOG_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) DLOG_ACQUIRE(mu) : mu_(mu) { mu_->lock(); }
  ~MutexLock() DLOG_RELEASE() { mu_->unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mu_;
};

// Condition variable over dlog::Mutex. Wait() must be called with the mutex held.
class CondVar {
 public:
  void Wait(Mutex* mu) DLOG_REQUIRES(mu) {
    std::unique_lock<std::mutex> lk(mu->native(), std::adopt_lock);
    cv_.wait(lk);
    lk.release();
  }
  // Returns false on timeout.
  template <typename Duration>
  bool WaitFor(Mutex* mu, Duration d) DLOG_REQUIRES(mu) {
    std::unique_lock<std::mutex> lk(mu->native(), std::adopt_lock);
    bool r = cv_.wait_for(lk, d) == std::cv_status::no_timeout;
    lk.release();
    return r;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace dlog
