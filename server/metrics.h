// Metrics export: the only place that knows prometheus-cpp. Module probes
// (plain atomics and histograms) are read at scrape time by Collectables
// registered here, and served on /metrics by an Exposer.
//
// Names: dlog_<module>_<what>_<unit>, with _total / _seconds / _bytes suffixes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "broker/broker_probe.h"
#include "common/config.h"
#include "common/status.h"
#include "logstore/node/probe.h"
#include "server/log_service_probe.h"

namespace prometheus {
class Exposer;
class Registry;
class Collectable;
}  // namespace prometheus

namespace dlog::server {

class MetricsServer {
 public:
  MetricsServer();
  ~MetricsServer();
  // Serves /metrics on `listen` (port 0 picks one; port() tells which).
  Status Start(const HostPort& listen);
  uint16_t port() const { return port_; }
  // Exports the node probe's values under dlog_node_*. The probe must outlive this server.
  void AddNodeProbe(const node::NodeProbe* probe);
  // Exports the broker probe under dlog_broker_*. Same lifetime rule.
  void AddBrokerProbe(const broker::BrokerProbe* probe);
  // Exports the log service probe under dlog_log_service_*. Same lifetime rule.
  void AddLogServiceProbe(const LogServiceProbe* probe);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::shared_ptr<prometheus::Collectable>> keep_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  uint16_t port_ = 0;
};

}  // namespace dlog::server
