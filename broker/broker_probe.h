// BrokerProbe: the broker's counters and gauges, read at scrape time by
// server/metrics (the only place that knows prometheus-cpp). Per-topic
// counters are looked up once per partition load; recording is relaxed atomic
// increments. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/histogram.h"
#include "common/thread_annotations.h"

namespace dlog::broker {

struct TopicCounters {
  std::atomic<int64_t> msg_in{0};
  std::atomic<int64_t> bytes_in{0};
  std::atomic<int64_t> msg_out{0};
  std::atomic<int64_t> bytes_out{0};
  std::atomic<int64_t> redeliveries{0};
};

struct SubscriptionGauges {
  int64_t backlog_messages = 0;
  double backlog_age_seconds = 0;
};

class BrokerProbe {
 public:
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> connections_total{0};
  std::atomic<int64_t> producers{0};
  std::atomic<int64_t> consumers{0};
  std::atomic<int64_t> partitions_owned{0};
  std::atomic<int64_t> lookups_total{0};
  std::atomic<int64_t> bad_requests_total{0};
  std::atomic<int64_t> dedup_duplicates_total{0};
  Histogram publish_latency_us;  // Send received -> receipt sent (durable)

  // The counters of topic `topic` (created on first use; kept for the process' life).
  std::shared_ptr<TopicCounters> Topic(const std::string& topic);
  // Backlog of (partition name, subscription); Remove* drops them (unload, delete).
  void SetSubscription(const std::string& partition, const std::string& sub, SubscriptionGauges g);
  void RemovePartition(const std::string& partition);

  // Scrape-time copies.
  std::vector<std::pair<std::string, std::shared_ptr<TopicCounters>>> Topics() const;
  std::vector<std::pair<std::pair<std::string, std::string>, SubscriptionGauges>> Subscriptions() const;

 private:
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<TopicCounters>> topics_ DLOG_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, SubscriptionGauges> subs_ DLOG_GUARDED_BY(mu_);
};

}  // namespace dlog::broker
