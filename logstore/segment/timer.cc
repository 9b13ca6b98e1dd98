#include "logstore/segment/timer.h"

#include "common/check.h"

namespace dlog::segment {

struct Timer::Handle {
  uv_timer_t timer;
  std::function<void()> fn;
};

Timer::Timer(net::EventLoop* loop) : h_(new Handle) {
  int rc = uv_timer_init(loop->uv(), &h_->timer);
  DLOG_CHECK(rc == 0) << "uv_timer_init: " << uv_strerror(rc);
  h_->timer.data = h_;
}

Timer::~Timer() {
  uv_timer_stop(&h_->timer);
  h_->fn = nullptr;
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&h_->timer))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&h_->timer), [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
  }
}

void Timer::Start(uint64_t ms, std::function<void()> fn) {
  h_->fn = std::move(fn);
  uv_timer_start(
      &h_->timer,
      [](uv_timer_t* t) {
        auto* h = static_cast<Handle*>(t->data);
        // Moved out first: the callback may restart or destroy the timer.
        std::function<void()> f = std::move(h->fn);
        h->fn = nullptr;
        if (f) f();
      },
      ms, 0);
}

void Timer::Stop() {
  uv_timer_stop(&h_->timer);
  h_->fn = nullptr;
}

bool Timer::active() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(&h_->timer)) != 0; }

namespace {

// A one-shot timer that frees itself after firing. It is registered with the
// loop as a Resource so that a loop stopping with the timer still pending
// closes and frees it (and the callback's captures) instead of leaking them.
struct OneShot final : net::EventLoop::Resource {
  net::EventLoop* loop;
  uv_timer_t timer;
  std::function<void()> fn;

  void OnLoopStop() override {
    fn = nullptr;
    Close();
  }
  void Close() {
    loop->RemoveResource(this);
    uv_timer_stop(&timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), [](uv_handle_t* x) { delete static_cast<OneShot*>(x->data); });
  }
};

}  // namespace

void AfterMs(net::EventLoop* loop, uint64_t ms, std::function<void()> fn) {
  auto* h = new OneShot;
  h->loop = loop;
  int rc = uv_timer_init(loop->uv(), &h->timer);
  DLOG_CHECK(rc == 0) << "uv_timer_init: " << uv_strerror(rc);
  h->timer.data = h;
  h->fn = std::move(fn);
  loop->AddResource(h);
  uv_timer_start(
      &h->timer,
      [](uv_timer_t* t) {
        auto* hh = static_cast<OneShot*>(t->data);
        std::function<void()> f = std::move(hh->fn);
        hh->Close();
        if (f) f();
      },
      ms, 0);
}

}  // namespace dlog::segment
