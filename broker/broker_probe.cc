#include "broker/broker_probe.h"

namespace dlog::broker {

std::shared_ptr<TopicCounters> BrokerProbe::Topic(const std::string& topic) {
  MutexLock l(&mu_);
  auto& t = topics_[topic];
  if (!t) t = std::make_shared<TopicCounters>();
  return t;
}

void BrokerProbe::SetSubscription(const std::string& partition, const std::string& sub, SubscriptionGauges g) {
  MutexLock l(&mu_);
  subs_[{partition, sub}] = g;
}

void BrokerProbe::RemovePartition(const std::string& partition) {
  MutexLock l(&mu_);
  auto it = subs_.lower_bound({partition, std::string()});
  while (it != subs_.end() && it->first.first == partition) it = subs_.erase(it);
}

std::vector<std::pair<std::string, std::shared_ptr<TopicCounters>>> BrokerProbe::Topics() const {
  MutexLock l(&mu_);
  return {topics_.begin(), topics_.end()};
}

std::vector<std::pair<std::pair<std::string, std::string>, SubscriptionGauges>> BrokerProbe::Subscriptions() const {
  MutexLock l(&mu_);
  return {subs_.begin(), subs_.end()};
}

}  // namespace dlog::broker
