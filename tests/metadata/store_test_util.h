// Helpers shared by the metadata store tests: a running EventLoop, a
// thread-safe recorder of watch and session events, and store factories.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "metadata/embedded_store.h"
#include "metadata/metadata_store.h"
#include "metadata/zk_store.h"
#include "net/event_loop.h"
#include "tests/metadata/zk_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::metadata::testing {

class RunningLoop {
 public:
  RunningLoop() : loop_("meta-test") { loop_.Start(); }
  ~RunningLoop() { loop_.Stop(); }
  net::EventLoop* get() { return &loop_; }

 private:
  net::EventLoop loop_;
};

// Records watch events (on the loop) for checks on the test thread.
class Recorder {
 public:
  WatchCallback Watch() {
    return [this](const WatchEvent& ev) {
      std::lock_guard<std::mutex> l(mu_);
      watch_.push_back(ev);
    };
  }
  SessionCallback Session() {
    return [this](const SessionEvent& ev) {
      std::lock_guard<std::mutex> l(mu_);
      session_.push_back(ev);
    };
  }
  std::vector<WatchEvent> watch_events() {
    std::lock_guard<std::mutex> l(mu_);
    return watch_;
  }
  std::vector<SessionEvent> session_events() {
    std::lock_guard<std::mutex> l(mu_);
    return session_;
  }
  size_t CountWatch(WatchEventType t, const std::string& path) {
    size_t n = 0;
    for (auto& e : watch_events()) n += (e.type == t && e.path == path) ? 1 : 0;
    return n;
  }
  size_t CountSession(SessionState s) {
    size_t n = 0;
    for (auto& e : session_events()) n += e.state == s ? 1 : 0;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<WatchEvent> watch_;
  std::vector<SessionEvent> session_;
};

inline ZkStoreOptions ZkOptions(const test::ZkServer& zk) {
  ZkStoreOptions o;
  o.connect = zk.connect();
  o.session_timeout = std::chrono::milliseconds(2000);
  o.connect_timeout = test::Scaled(std::chrono::milliseconds(10000));
  o.resolve_timeout = test::Scaled(std::chrono::milliseconds(15000));
  return o;
}

}  // namespace dlog::metadata::testing
