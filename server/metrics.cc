#include "server/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <exception>

#include "common/histogram.h"

namespace dlog::server {
namespace {

prometheus::MetricFamily Scalar(const std::string& name, const std::string& help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

// A Histogram recorded in `unit_per_second` units per second (1e6 for µs),
// exported in seconds (or as plain values when unit_per_second is 0) at fixed bounds.
prometheus::MetricFamily Hist(const std::string& name, const std::string& help, const Histogram& h,
                              const std::vector<double>& bounds, double unit_per_second) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Histogram;
  prometheus::ClientMetric m;
  const double scale = unit_per_second > 0 ? unit_per_second : 1;
  m.histogram.sample_count = h.Count();
  m.histogram.sample_sum = static_cast<double>(h.Sum()) / scale;
  for (double b : bounds) {
    prometheus::ClientMetric::Bucket bucket;
    bucket.upper_bound = b;
    bucket.cumulative_count = h.CountAtMost(static_cast<uint64_t>(b * scale));
    m.histogram.bucket.push_back(bucket);
  }
  prometheus::ClientMetric::Bucket inf;
  inf.upper_bound = std::numeric_limits<double>::infinity();
  inf.cumulative_count = h.Count();
  m.histogram.bucket.push_back(inf);
  f.metric.push_back(std::move(m));
  return f;
}

class NodeProbeCollector : public prometheus::Collectable {
 public:
  explicit NodeProbeCollector(const node::NodeProbe* p) : p_(p) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using T = prometheus::MetricType;
    auto v = [](const auto& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
    const std::vector<double> lat = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5};
    const std::vector<double> entries = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
    const std::vector<double> bytes = {1024, 4096, 16384, 65536, 262144, 1048576, 4194304};
    std::vector<prometheus::MetricFamily> out;
    out.push_back(Scalar("dlog_node_adds_total", "Entries added and acknowledged", T::Counter, v(p_->adds_total)));
    out.push_back(
        Scalar("dlog_node_add_bytes_total", "Payload bytes of acknowledged adds", T::Counter, v(p_->add_bytes_total)));
    out.push_back(Scalar("dlog_node_reads_total", "Entry reads answered", T::Counter, v(p_->reads_total)));
    out.push_back(
        Scalar("dlog_node_read_bytes_total", "Payload bytes returned by reads", T::Counter, v(p_->read_bytes_total)));
    out.push_back(
        Scalar("dlog_node_cache_hits_total", "Reads served from the tail cache", T::Counter, v(p_->cache_hits_total)));
    out.push_back(
        Scalar("dlog_node_cache_misses_total", "Reads that went to disk", T::Counter, v(p_->cache_misses_total)));
    out.push_back(Scalar("dlog_node_fences_total", "Fencing reads received", T::Counter, v(p_->fences_total)));
    out.push_back(Scalar("dlog_node_rejected_too_many_requests_total", "Requests refused because a queue was full",
                         T::Counter, v(p_->rejected_too_many_total)));
    out.push_back(Scalar("dlog_node_rejected_fenced_total", "Adds refused because the segment is fenced", T::Counter,
                         v(p_->rejected_fenced_total)));
    out.push_back(Scalar("dlog_node_bad_requests_total", "Malformed requests and protocol errors", T::Counter,
                         v(p_->bad_requests_total)));
    out.push_back(Scalar("dlog_node_journal_batches_total", "Journal write+fdatasync batches", T::Counter,
                         v(p_->journal_batches_total)));
    out.push_back(Scalar("dlog_node_journal_written_bytes_total", "Bytes written to the journal", T::Counter,
                         v(p_->journal_bytes_total)));
    out.push_back(Scalar("dlog_node_journal_fsync_errors_total", "Failed journal writes or fdatasyncs", T::Counter,
                         v(p_->journal_fsync_errors_total)));
    out.push_back(Scalar("dlog_node_connections_total", "Connections accepted", T::Counter, v(p_->connections_total)));
    out.push_back(Scalar("dlog_node_connections", "Open connections", T::Gauge, v(p_->connections_open)));
    out.push_back(Scalar("dlog_node_healthy", "1 while the journal accepts writes, 0 after a write/fsync error",
                         T::Gauge, v(p_->healthy)));
    out.push_back(Scalar("dlog_node_journal_queue_bytes", "Bytes waiting for the journal writer", T::Gauge,
                         v(p_->journal_queue_bytes)));
    out.push_back(Hist("dlog_node_add_latency_seconds", "Add request arrival to reply", p_->add_latency_us, lat, 1e6));
    out.push_back(
        Hist("dlog_node_fsync_latency_seconds", "Journal fdatasync duration", p_->fsync_latency_us, lat, 1e6));
    out.push_back(
        Hist("dlog_node_journal_batch_entries", "Records per journal batch", p_->journal_batch_entries, entries, 0));
    out.push_back(Hist("dlog_node_journal_batch_bytes", "Bytes per journal batch", p_->journal_batch_bytes, bytes, 0));
    return out;
  }

 private:
  const node::NodeProbe* p_;
};

class LogServiceProbeCollector : public prometheus::Collectable {
 public:
  explicit LogServiceProbeCollector(const LogServiceProbe* p) : p_(p) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using T = prometheus::MetricType;
    auto v = [](const auto& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
    const std::vector<double> lat = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
    std::vector<prometheus::MetricFamily> out;
    out.push_back(Scalar("dlog_log_service_requests_total", "Requests received", T::Counter, v(p_->requests_total)));
    out.push_back(
        Scalar("dlog_log_service_errors_total", "Replies with an error code", T::Counter, v(p_->errors_total)));
    out.push_back(Scalar("dlog_log_service_bad_requests_total", "Malformed requests and protocol errors", T::Counter,
                         v(p_->bad_requests_total)));
    out.push_back(Scalar("dlog_log_service_appended_records_total", "Records appended and acknowledged", T::Counter,
                         v(p_->appended_records_total)));
    out.push_back(Scalar("dlog_log_service_appended_bytes_total", "Record bytes of fully acknowledged appends",
                         T::Counter, v(p_->appended_bytes_total)));
    out.push_back(Scalar("dlog_log_service_read_records_total", "Records returned by reads", T::Counter,
                         v(p_->read_records_total)));
    out.push_back(Scalar("dlog_log_service_read_bytes_total", "Record bytes returned by reads", T::Counter,
                         v(p_->read_bytes_total)));
    out.push_back(
        Scalar("dlog_log_service_connections_total", "Connections accepted", T::Counter, v(p_->connections_total)));
    out.push_back(Scalar("dlog_log_service_connections", "Open connections", T::Gauge, v(p_->connections_open)));
    out.push_back(Scalar("dlog_log_service_writers", "Open log writers", T::Gauge, v(p_->writers_open)));
    out.push_back(Scalar("dlog_log_service_readers", "Open server-side readers", T::Gauge, v(p_->readers_open)));
    out.push_back(Hist("dlog_log_service_append_latency_seconds", "Append request arrival to reply",
                       p_->append_latency_us, lat, 1e6));
    return out;
  }

 private:
  const LogServiceProbe* p_;
};

// Broker: process-wide gauges and counters, per-topic counters (label
// topic) and per-subscription backlog (labels topic, subscription).
class BrokerProbeCollector : public prometheus::Collectable {
 public:
  explicit BrokerProbeCollector(const broker::BrokerProbe* p) : p_(p) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    auto v = [](const std::atomic<int64_t>& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
    std::vector<prometheus::MetricFamily> out;
    out.push_back(Scalar("dlog_broker_connections", "Open client connections", MetricType::Gauge, v(p_->connections)));
    out.push_back(Scalar("dlog_broker_connections_total", "Client connections accepted", MetricType::Counter,
                         v(p_->connections_total)));
    out.push_back(Scalar("dlog_broker_producers", "Open producers", MetricType::Gauge, v(p_->producers)));
    out.push_back(Scalar("dlog_broker_consumers", "Open consumers", MetricType::Gauge, v(p_->consumers)));
    out.push_back(Scalar("dlog_broker_partitions_owned", "Partitions this broker owns", MetricType::Gauge,
                         v(p_->partitions_owned)));
    out.push_back(Scalar("dlog_broker_lookups_total", "Lookups answered", MetricType::Counter, v(p_->lookups_total)));
    out.push_back(Scalar("dlog_broker_bad_requests_total", "Malformed requests and protocol violations",
                         MetricType::Counter, v(p_->bad_requests_total)));
    out.push_back(Scalar("dlog_broker_dedup_duplicates_total", "Sends recognised as retries of stored batches",
                         MetricType::Counter, v(p_->dedup_duplicates_total)));
    out.push_back(Hist("dlog_broker_publish_latency_seconds", "Send received to durable receipt",
                       p_->publish_latency_us,
                       {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}, 1e6));
    struct Fam {
      const char* name;
      const char* help;
      std::atomic<int64_t> broker::TopicCounters::*field;
    };
    const Fam fams[] = {
        {"dlog_broker_topic_messages_in_total", "Messages stored", &broker::TopicCounters::msg_in},
        {"dlog_broker_topic_bytes_in_total", "Batch bytes stored", &broker::TopicCounters::bytes_in},
        {"dlog_broker_topic_messages_out_total", "Messages dispatched to consumers", &broker::TopicCounters::msg_out},
        {"dlog_broker_topic_bytes_out_total", "Batch bytes dispatched", &broker::TopicCounters::bytes_out},
        {"dlog_broker_topic_redeliveries_total", "Records queued for redelivery", &broker::TopicCounters::redeliveries},
    };
    auto topics = p_->Topics();
    for (const Fam& fam : fams) {
      prometheus::MetricFamily f;
      f.name = fam.name;
      f.help = fam.help;
      f.type = MetricType::Counter;
      for (const auto& [topic, c] : topics) {
        prometheus::ClientMetric m;
        m.label.push_back({"topic", topic});
        m.counter.value = static_cast<double>(((*c).*(fam.field)).load(std::memory_order_relaxed));
        f.metric.push_back(std::move(m));
      }
      out.push_back(std::move(f));
    }
    auto subs = p_->Subscriptions();
    prometheus::MetricFamily backlog, age;
    backlog.name = "dlog_broker_subscription_backlog_messages";
    backlog.help = "Records not acked by the subscription (per partition)";
    backlog.type = MetricType::Gauge;
    age.name = "dlog_broker_subscription_backlog_age_seconds";
    age.help = "Age of the oldest unacked message";
    age.type = MetricType::Gauge;
    for (const auto& [key, g] : subs) {
      prometheus::ClientMetric m;
      m.label.push_back({"partition", key.first});
      m.label.push_back({"subscription", key.second});
      m.gauge.value = static_cast<double>(g.backlog_messages);
      backlog.metric.push_back(m);
      m.gauge.value = g.backlog_age_seconds;
      age.metric.push_back(std::move(m));
    }
    out.push_back(std::move(backlog));
    out.push_back(std::move(age));
    return out;
  }

 private:
  const broker::BrokerProbe* p_;
};

}  // namespace

MetricsServer::MetricsServer() : registry_(std::make_shared<prometheus::Registry>()) {}
MetricsServer::~MetricsServer() = default;

Status MetricsServer::Start(const HostPort& listen) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen.ToString(), /*num_threads=*/1);
  } catch (const std::exception& e) {
    return Status::Error(CommonErrc::kUnavailable, "cannot serve metrics on " + listen.ToString() + ": " + e.what());
  }
  exposer_->RegisterCollectable(registry_);
  for (const auto& c : keep_) exposer_->RegisterCollectable(c);
  auto ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? 0 : static_cast<uint16_t>(ports[0]);
  return Status::OK();
}

void MetricsServer::AddNodeProbe(const node::NodeProbe* probe) {
  auto c = std::make_shared<NodeProbeCollector>(probe);
  if (exposer_) exposer_->RegisterCollectable(c);
  keep_.push_back(std::move(c));
}

}  // namespace dlog::server

namespace dlog::server {

void MetricsServer::AddBrokerProbe(const broker::BrokerProbe* probe) {
  auto c = std::make_shared<BrokerProbeCollector>(probe);
  if (exposer_) exposer_->RegisterCollectable(c);
  keep_.push_back(std::move(c));
}

void MetricsServer::AddLogServiceProbe(const LogServiceProbe* probe) {
  auto c = std::make_shared<LogServiceProbeCollector>(probe);
  if (exposer_) exposer_->RegisterCollectable(c);
  keep_.push_back(std::move(c));
}

}  // namespace dlog::server
