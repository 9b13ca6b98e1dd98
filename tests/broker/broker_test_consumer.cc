// A consumer process for fault tests: subscribes to TOPIC as SUBSCRIPTION
// (Failover), then receives and acks forever, one message at a time, each
// ack waited for until persisted; prints "acked <payload>" after each.
//   broker_test_consumer SERVICE_URL TOPIC SUBSCRIPTION NAME
#include <cstdio>

#include "dlog/client.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s SERVICE_URL TOPIC SUBSCRIPTION NAME\n", argv[0]);
    return 2;
  }
  dlog::client::ClientConfig cc;
  cc.service_url = argv[1];
  auto client = dlog::client::Client::Create(cc);
  if (!client.ok()) {
    std::fprintf(stderr, "client: %s\n", client.status().ToString().c_str());
    return 1;
  }
  dlog::client::ConsumerConfig conf;
  conf.subscription_type = dlog::client::SubscriptionType::kFailover;
  conf.initial_position = dlog::client::InitialPosition::kEarliest;
  conf.consumer_name = argv[4];
  conf.ack_receipt_enabled = true;
  conf.receiver_queue_size = 10;
  auto consumer = (*client)->Subscribe(argv[2], argv[3], conf);
  if (!consumer.ok()) {
    std::fprintf(stderr, "subscribe: %s\n", consumer.status().ToString().c_str());
    return 1;
  }
  std::printf("subscribed\n");
  std::fflush(stdout);
  for (;;) {
    auto m = consumer->Receive(1000);
    if (!m.ok()) continue;
    if (!consumer->Acknowledge(*m).ok()) continue;
    std::printf("acked %.*s\n", static_cast<int>(m->payload().size()), m->payload().data());
    std::fflush(stdout);
  }
}
