// `dlogd broker`: a broker over a ZooKeeper cluster (and BrokerServer, the
// piece `dlogd standalone` shares: cursor store, loop, broker, listener).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "broker/broker.h"
#include "common/config.h"
#include "common/status.h"
#include "logstore/log/log_client.h"

namespace dlog::server {

struct BrokerFlags {
  std::string metadata;  // zk://HOST:PORT[,...][/dlog]
  std::string cluster = "dlog";
  std::string listen = "127.0.0.1:6650";
  std::string advertise;  // default: the listen address
  std::string data_dir;   // the cursor store (RocksDB working state)
  std::string metrics_listen;
  std::string session_timeout = "10s";
  int ensemble_size = 3;
  int write_quorum = 3;
  int ack_quorum = 2;
  int auto_create_partitions = 1;
  bool no_auto_create = false;
  std::string max_frame_size = "5MiB";
  std::string cursor_cache = "64MiB";
  std::string backlog_check_interval = "10s";
  int64_t max_unacked_per_consumer = 50000;
  std::string acked_retention = "0s";  // or "forever"
};

void AddBrokerOptions(CLI::App* app, BrokerFlags* flags);
int RunBroker(const BrokerFlags& flags);

struct BrokerServerOptions {
  HostPort listen;
  std::string advertise;  // empty: listen (its port must not be 0)
  std::string cursor_dir;
  int64_t cursor_cache_bytes = 64 << 20;
  uint32_t max_frame_bytes = 5u << 20;
  broker::BrokerOptions broker;
};

// Cursor store + loop + broker + TCP listener over an open LogClient.
// Shutdown order: Stop(), then close the LogClient, then destroy this.
class BrokerServer {
 public:
  static Result<std::unique_ptr<BrokerServer>> Start(log::LogClient* logs, BrokerServerOptions options);
  ~BrokerServer();
  // Stops serving and the loop (idempotent); the objects stay until destruction.
  void Stop();
  uint16_t port() const;
  const std::string& advertise() const { return advertise_; }
  const broker::BrokerProbe* probe() const { return &probe_; }

 private:
  BrokerServer() = default;
  broker::BrokerProbe probe_;
  std::unique_ptr<broker::CursorDb> cursor_db_;
  std::unique_ptr<net::EventLoop> loop_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<net::TcpServer> server_;
  std::string advertise_;
  bool stopped_ = false;
};

}  // namespace dlog::server
