// BrokerCluster: real processes on loopback for broker tests — a throwaway
// ZooKeeper, four `dlogd logstore` nodes and `dlogd broker` processes — and
// a client library Client connected to them. Namespaces the brokers create
// use E=3, Qw=3, Qa=2 (a fourth node leaves room for an ensemble change).
// Every process is a child of the test, killed by its PID only.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "dlog/client.h"
#include "tests/metadata/zk_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::test {

// A `dlogd broker` child process with a fixed port (kept across restarts).
class BrokerProcess {
 public:
  BrokerProcess(std::string dir, std::string metadata_url, int64_t session_timeout_ms)
      : dir_(std::move(dir)),
        url_(std::move(metadata_url)),
        session_ms_(session_timeout_ms),
        port_(FreePort()),
        metrics_port_(FreePort()) {}

  bool Start() {
    ProcessOptions o;
    o.argv = {DlogdPath(),
              "broker",
              "--metadata",
              url_,
              "--listen",
              address(),
              "--data-dir",
              dir_ + "/data",
              "--metadata-session-timeout",
              std::to_string(session_ms_) + "ms",
              "--ensemble-size=3",
              "--write-quorum=3",
              "--ack-quorum=2",
              "--backlog-check-interval=1s",
              "--metrics-listen",
              "127.0.0.1:" + std::to_string(metrics_port_)};
    for (auto& a : extra_) o.argv.push_back(a);
    ++starts_;
    o.stdout_path = dir_ + "/broker" + std::to_string(starts_) + ".out";
    o.stderr_path = dir_ + "/broker" + std::to_string(starts_) + ".err";
    WriteFile(o.stdout_path, "");
    proc_ = std::make_unique<Process>(o);
    if (!proc_->Start()) return false;
    return proc_->WaitForOutput("dlogd broker ready", std::chrono::milliseconds(20000)).has_value();
  }
  void Kill9() {
    if (proc_) proc_->Kill9AndWait();
  }
  int Stop() {
    if (!proc_ || !proc_->Running()) return 0;
    proc_->Signal(SIGTERM);
    auto st = proc_->Wait(std::chrono::milliseconds(30000));
    return st ? *st : -1;
  }
  void Pause() { proc_->Signal(SIGSTOP); }
  void Resume() { proc_->Signal(SIGCONT); }
  bool Running() { return proc_ && proc_->Running(); }
  pid_t pid() const { return proc_ ? proc_->pid() : -1; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  uint16_t metrics_port() const { return metrics_port_; }
  std::string Stderr() const { return proc_ ? proc_->Stderr() : ""; }
  void set_extra(std::vector<std::string> extra) { extra_ = std::move(extra); }

 private:
  std::string dir_;
  std::string url_;
  int64_t session_ms_;
  uint16_t port_;
  uint16_t metrics_port_;
  std::vector<std::string> extra_;
  std::unique_ptr<Process> proc_;
  int starts_ = 0;
};

class BrokerCluster : public ::testing::Test {
 protected:
  static constexpr int kNodes = 4;
  int64_t session_ms() const { return 4000; }

  void StartCluster(int brokers = 2) {
    ASSERT_TRUE(ZkServer::Available()) << "ZooKeeper is not installed (scripts/install-deps.sh)";
    ASSERT_TRUE(zk_.Start()) << zk_.Log();
    url_ = "zk://" + zk_.connect() + "/dlog";
    for (int i = 0; i < kNodes; ++i) {
      node_dirs_.push_back(std::make_unique<TempDir>());
      nodes_.push_back(std::make_unique<LogstoreNode>(
          node_dirs_.back()->path(), FreePort(),
          std::vector<std::string>{"--metadata", url_, "--metadata-session-timeout", "4s"}));
      ASSERT_TRUE(nodes_.back()->Start(true)) << nodes_.back()->Stderr();
    }
    for (int i = 0; i < brokers; ++i) {
      broker_dirs_.push_back(std::make_unique<TempDir>());
      brokers_.push_back(std::make_unique<BrokerProcess>(broker_dirs_.back()->path(), url_, session_ms()));
      brokers_.back()->set_extra(broker_extra_);
      ASSERT_TRUE(brokers_.back()->Start()) << brokers_.back()->Stderr();
    }
  }

  void TearDown() override {
    for (auto& b : brokers_) {
      if (b->Running()) b->Resume();
    }
    // A broker still running must shut down cleanly (exit 0) on SIGTERM.
    for (auto& b : brokers_) {
      if (b->Running())
        EXPECT_EQ(b->Stop(), 0) << "broker " << b->address() << " did not exit cleanly\n"
                                << b->Stderr().substr(0, 20000);
    }
    for (auto& n : nodes_) {
      if (n->Running()) n->Stop();
    }
  }

  std::string ServiceUrl() const {
    std::string url = "dlog://";
    for (size_t i = 0; i < brokers_.size(); ++i) url += (i ? "," : "") + brokers_[i]->address();
    return url;
  }

  std::unique_ptr<client::Client> NewClient(int64_t operation_timeout_ms = 30000) {
    client::ClientConfig c;
    c.service_url = ServiceUrl();
    c.operation_timeout_ms = operation_timeout_ms;
    auto r = client::Client::Create(c);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  // The broker process serving `address`, or null.
  BrokerProcess* BrokerAt(const std::string& address) {
    for (auto& b : brokers_) {
      if (b->address() == address) return b.get();
    }
    return nullptr;
  }

  std::string AllStderr() {
    std::string s;
    for (auto& b : brokers_) s += "---- broker " + b->address() + "\n" + b->Stderr().substr(0, 20000);
    return s;
  }

  ZkServer zk_{200};
  std::string url_;
  std::vector<std::unique_ptr<TempDir>> node_dirs_;
  std::vector<std::unique_ptr<LogstoreNode>> nodes_;
  std::vector<std::unique_ptr<TempDir>> broker_dirs_;
  std::vector<std::unique_ptr<BrokerProcess>> brokers_;
  std::vector<std::string> broker_extra_;  // flags for every broker
};

}  // namespace dlog::test
