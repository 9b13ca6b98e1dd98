// A small program using the dlog client library: it creates a topic (if
// needed), subscribes, publishes ten messages (a few with a key), receives
// them back and acknowledges each.
//
//   dlog_example_produce_consume [dlog://127.0.0.1:6650] [tenant/ns/topic]
#include <cstdio>
#include <string>

#include "dlog/dlog.h"

namespace dc = dlog::client;

int main(int argc, char** argv) {
  dc::ClientConfig config;
  if (argc > 1) config.service_url = argv[1];
  const std::string topic = argc > 2 ? argv[2] : "public/default/example";

  auto client = dc::Client::Create(config);
  if (!client.ok()) {
    std::fprintf(stderr, "client: %s\n", client.status().ToString().c_str());
    return 1;
  }
  dlog::Status created = (*client)->CreateTopic(topic, 2);
  if (!created.ok() && !created.Is(dc::ClientErrc::kTopicExists)) {
    std::fprintf(stderr, "create topic: %s\n", created.ToString().c_str());
    return 1;
  }

  // Subscribe first: a new subscription starts at the latest message.
  dc::ConsumerConfig cc;
  cc.subscription_type = dc::SubscriptionType::kShared;
  auto consumer = (*client)->Subscribe(topic, "example-sub", cc);
  if (!consumer.ok()) {
    std::fprintf(stderr, "subscribe: %s\n", consumer.status().ToString().c_str());
    return 1;
  }

  auto producer = (*client)->CreateProducer(topic);
  if (!producer.ok()) {
    std::fprintf(stderr, "producer: %s\n", producer.status().ToString().c_str());
    return 1;
  }
  for (int i = 0; i < 10; ++i) {
    dc::Message m = dc::Message::Create("message " + std::to_string(i));
    if (i % 3 == 0) m.SetKey("key-" + std::to_string(i % 2));
    m.SetProperty("index", std::to_string(i));
    // Async send: the callback runs on the client's thread; it must not block.
    producer->SendAsync(std::move(m), [i](dlog::Result<dc::MessageId> r) {
      if (!r.ok()) std::fprintf(stderr, "send %d: %s\n", i, r.status().ToString().c_str());
    });
  }
  if (dlog::Status st = producer->Flush(); !st.ok()) {
    std::fprintf(stderr, "flush: %s\n", st.ToString().c_str());
    return 1;
  }

  for (int received = 0; received < 10;) {
    auto m = consumer->Receive(5000);
    if (!m.ok()) {
      std::fprintf(stderr, "receive: %s\n", m.status().ToString().c_str());
      return 1;
    }
    ++received;
    std::printf("%s  %.*s  (key %s, partition %d)\n", m->id().ToString().c_str(), static_cast<int>(m->size()),
                m->payload().data(), m->has_key() ? m->key().c_str() : "-", m->partition());
    if (dlog::Status st = consumer->Acknowledge(*m); !st.ok()) {
      std::fprintf(stderr, "ack: %s\n", st.ToString().c_str());
    }
  }
  // Closing the client closes the producer and consumer too.
  return (*client)->Close().ok() ? 0 : 1;
}
