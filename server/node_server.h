// NodeServer: one running logstore node: the Store, its I/O loop, the
// NodeService and the TcpServer, started and stopped in the right order.
// Used by `dlogd logstore` and `dlogd standalone`.
//
// Threading: Start/Stop block; call them from the main thread (not from
// the node's loop).
#pragma once

#include <csignal>
#include <cstdint>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/status.h"
#include "logstore/node/probe.h"
#include "logstore/node/store.h"
#include "server/logstore_main.h"

namespace dlog::server {

struct NodeServerOptions {
  node::StoreOptions store;  // probe is set by NodeServer
  HostPort listen;
  uint32_t max_frame_bytes = 5u << 20;
  int64_t inbound_budget_bytes = 256ll << 20;
};

// The node options of `flags` (everything but metadata and metrics), with
// each bad value named ("--journal-max-batch: ...").
Result<NodeServerOptions> NodeOptionsFromFlags(const LogstoreFlags& flags);

class NodeServer {
 public:
  // Opens the store (formats it with options.store.format) and starts serving.
  static Result<std::unique_ptr<NodeServer>> Start(NodeServerOptions options);
  // Stops if Stop() was not called.
  ~NodeServer();
  NodeServer(const NodeServer&) = delete;
  NodeServer& operator=(const NodeServer&) = delete;

  // Stops accepting, closes the store (completes what is queued, flushes the
  // index), stops the service and the loop. Returns the store's close status.
  // Idempotent.
  Status Stop();

  uint16_t port() const;
  // host:port it serves on (the bound port).
  std::string address() const;
  const std::string& node_id() const { return options_.store.node_id; }
  node::StoreInfo Info() const;
  const node::NodeProbe* probe() const { return &probe_; }

 private:
  NodeServer() = default;
  class Parts;
  NodeServerOptions options_;
  node::NodeProbe probe_;
  std::unique_ptr<Parts> parts_;
  bool stopped_ = false;
  Status stop_status_;
};

// Process set-up shared by the roles: blocks SIGINT/SIGTERM in this thread
// (every thread started later inherits it; WaitForTerminationSignal takes
// them), ignores SIGPIPE, raises RLIMIT_NOFILE's soft limit to the hard one.
sigset_t SetUpProcess();
// Waits for SIGINT or SIGTERM; returns the signal.
int WaitForTerminationSignal(const sigset_t& sigs);

}  // namespace dlog::server
