#include "net/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace dlog::net {
namespace {

TEST(EventLoop, PostRunsTasksInOrderOnTheLoopThread) {
  EventLoop loop("test-loop");
  loop.Start();
  std::vector<int> seen;  // loop thread only
  std::atomic<int> off_thread{0};
  for (int i = 0; i < 1000; ++i) {
    loop.Post([&, i] {
      if (!loop.InLoopThread()) off_thread++;
      seen.push_back(i);
    });
  }
  std::vector<int> copy;
  loop.RunSync([&] { copy = seen; });
  ASSERT_EQ(copy.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(copy[i], i);
  EXPECT_EQ(off_thread.load(), 0);
  EXPECT_FALSE(loop.InLoopThread());
  loop.Stop();
}

TEST(EventLoop, PostFromManyThreadsKeepsPerThreadOrder) {
  EventLoop loop("test-loop");
  loop.Start();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5000;
  std::vector<int> last(kThreads, -1);  // loop thread only
  int total = 0;
  bool in_order = true;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        loop.Post([&, t, i] {
          if (last[t] + 1 != i) in_order = false;
          last[t] = i;
          ++total;
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  int got = 0;
  bool ordered = false;
  loop.RunSync([&] {
    got = total;
    ordered = in_order;
  });
  EXPECT_EQ(got, kThreads * kPerThread);
  EXPECT_TRUE(ordered);
  loop.Stop();
}

TEST(EventLoop, DispatchAndRunSyncRunInlineOnTheLoopThread) {
  EventLoop loop("test-loop");
  loop.Start();
  bool inline_dispatch = false;
  bool inline_sync = false;
  loop.RunSync([&] {
    bool ran = false;
    loop.Dispatch([&] { ran = true; });
    inline_dispatch = ran;
    ran = false;
    loop.RunSync([&] { ran = true; });
    inline_sync = ran;
  });
  EXPECT_TRUE(inline_dispatch);
  EXPECT_TRUE(inline_sync);
  loop.Stop();
}

TEST(EventLoop, StopRunsPendingTasks) {
  std::atomic<int> ran{0};
  {
    EventLoop loop("test-loop");
    loop.Start();
    // Keep the loop busy so that tasks pile up behind this one.
    loop.Post([] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
    for (int i = 0; i < 10000; ++i) loop.Post([&] { ran++; });
    loop.Stop();
    EXPECT_EQ(ran.load(), 10000);
    EXPECT_FALSE(loop.IsRunning());
  }
  EXPECT_EQ(ran.load(), 10000);
}

TEST(EventLoop, TasksPostedBeforeStartRunAfterStart) {
  EventLoop loop("test-loop");
  std::atomic<int> ran{0};
  for (int i = 0; i < 10; ++i) loop.Post([&] { ran++; });
  EXPECT_FALSE(loop.IsRunning());
  loop.Start();
  loop.RunSync([] {});
  EXPECT_EQ(ran.load(), 10);
  loop.Stop();
}

TEST(EventLoop, StopWithoutStartRunsPostedTasks) {
  std::atomic<int> ran{0};
  EventLoop loop("test-loop");
  for (int i = 0; i < 10; ++i) loop.Post([&] { ran++; });
  loop.Stop();
  EXPECT_EQ(ran.load(), 10);
}

TEST(EventLoop, AfterStopTryPostRefusesAndRunSyncRunsInline) {
  EventLoop loop("test-loop");
  loop.Start();
  loop.Stop();
  bool ran = false;
  std::function<void()> task = [&] { ran = true; };
  EXPECT_FALSE(loop.TryPost(task));
  ASSERT_TRUE(static_cast<bool>(task));  // left untouched
  EXPECT_FALSE(ran);
  loop.Post([&] { ran = true; });  // dropped, with a warning
  EXPECT_FALSE(ran);
  loop.RunSync([&] { ran = true; });
  EXPECT_TRUE(ran);
}

struct CountingResource : EventLoop::Resource {
  EventLoop* loop = nullptr;
  uv_timer_t* timer = nullptr;
  bool stopped = false;
  bool freed = false;
  void OnLoopStop() override {
    stopped = true;
    uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) {
      auto* self = static_cast<CountingResource*>(h->data);
      self->freed = true;
      delete reinterpret_cast<uv_timer_t*>(h);
    });
  }
};

TEST(EventLoop, StopClosesRegisteredResourcesAndStrayHandles) {
  EventLoop loop("test-loop");
  loop.Start();
  CountingResource res;
  uv_timer_t stray;  // a handle nobody closes: Stop closes it
  loop.RunSync([&] {
    res.timer = new uv_timer_t;
    uv_timer_init(loop.uv(), res.timer);
    res.timer->data = &res;
    uv_timer_start(
        res.timer, [](uv_timer_t*) {}, 100000, 100000);
    loop.AddResource(&res);
    uv_timer_init(loop.uv(), &stray);
    uv_timer_start(
        &stray, [](uv_timer_t*) {}, 100000, 0);
  });
  loop.Stop();  // would hang if a handle stayed open
  EXPECT_TRUE(res.stopped);
  EXPECT_TRUE(res.freed);
}

TEST(EventLoop, RemovedResourceIsNotStopped) {
  EventLoop loop("test-loop");
  loop.Start();
  CountingResource a, b;
  loop.RunSync([&] {
    for (auto* r : {&a, &b}) {
      r->timer = new uv_timer_t;
      uv_timer_init(loop.uv(), r->timer);
      r->timer->data = r;
      loop.AddResource(r);
    }
    loop.RemoveResource(&a);
    a.OnLoopStop();  // its owner closes it itself
    a.stopped = false;
  });
  loop.Stop();
  EXPECT_FALSE(a.stopped);
  EXPECT_TRUE(a.freed);
  EXPECT_TRUE(b.stopped);
  EXPECT_TRUE(b.freed);
}

}  // namespace
}  // namespace dlog::net
