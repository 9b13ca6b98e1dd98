// Produce and consume end to end through real brokers (ZooKeeper, 4 logstore
// nodes, 2 brokers): every subscription type, order per partition (per key
// for Key_Shared), acked messages not redelivered, unacked ones redelivered,
// negative acks, seek, readers, topic admin.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <thread>

#include "tests/broker/broker_fixture.h"
#include "tests/broker/raw_client.h"

namespace dlog::test {
namespace {

using client::ConsumerConfig;
using client::Message;
using client::MessageId;
using client::ProducerConfig;
using client::SubscriptionType;

class BrokerTest : public BrokerCluster {
 protected:
  void SetUp() override { StartCluster(2); }

  // Sends n messages "<prefix>-<i>" (key "k<i % keys>" when keys > 0); returns their ids.
  std::vector<MessageId> Produce(client::Client* c, const std::string& topic, int n, const std::string& prefix,
                                 int keys = 0, ProducerConfig pc = {}) {
    auto p = c->CreateProducer(topic, pc);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) return {};
    std::vector<MessageId> ids(static_cast<size_t>(n));
    std::atomic<int> done{0}, failed{0};
    for (int i = 0; i < n; ++i) {
      Message m = Message::Create(prefix + "-" + std::to_string(i));
      if (keys > 0) m.SetKey("k" + std::to_string(i % keys));
      p->SendAsync(std::move(m), [&, i](Result<MessageId> r) {
        if (r.ok()) {
          ids[static_cast<size_t>(i)] = *r;
        } else {
          failed++;
        }
        done++;
      });
    }
    EXPECT_TRUE(WaitFor([&] { return done.load() == n; }, Scaled(std::chrono::milliseconds(60000))));
    EXPECT_EQ(failed.load(), 0);
    EXPECT_TRUE(p->Close().ok());
    return ids;
  }

  // Receives until `n` messages arrived or `idle_ms` passed without one.
  std::vector<Message> Drain(client::Consumer& c, size_t n, int64_t idle_ms = 3000) {
    std::vector<Message> out;
    while (out.size() < n) {
      auto m = c.Receive(idle_ms);
      if (!m.ok()) break;
      out.push_back(std::move(m).value());
    }
    return out;
  }

  static int IndexOf(const Message& m) {
    const std::string_view p = m.payload();
    return std::stoi(std::string(p.substr(p.rfind('-') + 1)));
  }
};

TEST_F(BrokerTest, ExclusiveInOrderAckedNotRedeliveredUnackedAre) {
  auto c = NewClient();
  ASSERT_TRUE(c->CreateTopic("acme/orders/events", 4).ok());
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kExclusive;
  cc.initial_position = client::InitialPosition::kEarliest;
  auto consumer = c->Subscribe("acme/orders/events", "audit", cc);
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  // A second exclusive consumer is refused.
  auto second = c->Subscribe("acme/orders/events", "audit", cc);
  EXPECT_FALSE(second.ok());

  const int n = 2000;
  auto ids = Produce(c.get(), "acme/orders/events", n, "m", 16);
  ASSERT_EQ(ids.size(), static_cast<size_t>(n));
  auto got = Drain(*consumer, n);
  ASSERT_EQ(got.size(), static_cast<size_t>(n)) << AllStderr();
  // Order per partition: message ids (and producer order) increase.
  std::map<int32_t, MessageId> last;
  std::map<int32_t, int> last_index;
  std::set<int> seen;
  for (const Message& m : got) {
    auto it = last.find(m.partition());
    if (it != last.end()) {
      EXPECT_LT(it->second, m.id());
      EXPECT_LT(last_index[m.partition()], IndexOf(m));
    }
    last[m.partition()] = m.id();
    last_index[m.partition()] = IndexOf(m);
    seen.insert(IndexOf(m));
    EXPECT_EQ(m.redelivery_count(), 0);
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(n));
  // Ack the even ones (persisted), then reconnect: exactly the odd ones come back.
  for (const Message& m : got) {
    if (IndexOf(m) % 2 == 0) ASSERT_TRUE(consumer->Acknowledge(m).ok());
  }
  ASSERT_TRUE(consumer->Close().ok());
  auto again = c->Subscribe("acme/orders/events", "audit", cc);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto redo = Drain(*again, n / 2 + 1);
  std::set<int> odd;
  for (const Message& m : redo) {
    EXPECT_EQ(IndexOf(m) % 2, 1) << "acked message " << IndexOf(m) << " was redelivered";
    odd.insert(IndexOf(m));
  }
  EXPECT_EQ(odd.size(), static_cast<size_t>(n / 2));
  EXPECT_EQ(redo.size(), static_cast<size_t>(n / 2));
}

TEST_F(BrokerTest, SharedSpreadsAcrossConsumersAndNackRedelivers) {
  auto c = NewClient();
  ASSERT_TRUE(c->CreateTopic("acme/orders/shared", 2).ok());
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kShared;
  cc.initial_position = client::InitialPosition::kEarliest;
  cc.receiver_queue_size = 50;
  cc.negative_ack_redelivery_delay_ms = 100;
  auto a = c->Subscribe("acme/orders/shared", "workers", cc);
  auto b = c->Subscribe("acme/orders/shared", "workers", cc);
  ASSERT_TRUE(a.ok() && b.ok());
  const int n = 1000;
  ProducerConfig pc;
  pc.batching_enabled = false;  // one message per record spreads them evenly
  Produce(c.get(), "acme/orders/shared", n, "s", 0, pc);
  std::set<int> acked;
  std::map<int, int> from_a, from_b;
  int nacked = -1;
  bool nack_seen_again = false;
  auto take = [&](client::Consumer& cons, std::map<int, int>& counts) {
    auto m = cons.Receive(200);
    if (!m.ok()) return false;
    const int i = IndexOf(*m);
    counts[i]++;
    if (nacked < 0) {
      nacked = i;
      cons.NegativeAcknowledge(*m);
      return true;
    }
    if (i == nacked) {
      nack_seen_again = true;
      EXPECT_GE(m->redelivery_count(), 1);
    }
    EXPECT_TRUE(cons.Acknowledge(*m).ok());
    acked.insert(i);
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + Scaled(std::chrono::milliseconds(60000));
  while (acked.size() < static_cast<size_t>(n) && std::chrono::steady_clock::now() < deadline) {
    take(*a, from_a);
    take(*b, from_b);
  }
  EXPECT_EQ(acked.size(), static_cast<size_t>(n));
  EXPECT_TRUE(nack_seen_again);
  EXPECT_GT(from_a.size(), static_cast<size_t>(n / 10));
  EXPECT_GT(from_b.size(), static_cast<size_t>(n / 10));
  // Cumulative acks are refused on Shared.
  auto extra_ids = Produce(c.get(), "acme/orders/shared", 1, "x", 0, pc);
  auto m = a->Receive(5000);
  if (!m.ok()) m = b->Receive(5000);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(a->AcknowledgeCumulative(m->id()).ok());
}

TEST_F(BrokerTest, FailoverHasOneActiveConsumerPerPartition) {
  auto c = NewClient();
  ASSERT_TRUE(c->CreateTopic("acme/orders/fo", 4).ok());
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kFailover;
  cc.initial_position = client::InitialPosition::kEarliest;
  auto a = c->Subscribe("acme/orders/fo", "fo", cc);
  auto b = c->Subscribe("acme/orders/fo", "fo", cc);
  ASSERT_TRUE(a.ok() && b.ok());
  const int n = 800;
  ProducerConfig pc;
  pc.batching_enabled = false;  // round robin routes per batch: one message per batch spreads them
  Produce(c.get(), "acme/orders/fo", n, "f", 0, pc);
  std::map<int32_t, std::set<int>> partitions_of;  // consumer 0/1 -> partitions seen
  std::set<int> all;
  std::map<int32_t, int> last;
  for (int round = 0; round < 4000 && all.size() < static_cast<size_t>(n); ++round) {
    for (int who = 0; who < 2; ++who) {
      auto& cons = who == 0 ? *a : *b;
      auto m = cons.Receive(50);
      if (!m.ok()) continue;
      partitions_of[who].insert(m->partition());
      auto it = last.find(m->partition());
      if (it != last.end()) EXPECT_LT(it->second, IndexOf(*m));
      last[m->partition()] = IndexOf(*m);
      all.insert(IndexOf(*m));
      ASSERT_TRUE(cons.Acknowledge(*m).ok());
    }
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(n));
  // Each partition went to exactly one consumer, and both got some.
  auto describe = [&] {
    std::string d;
    for (auto& [who, ps] : partitions_of) {
      d += "consumer " + std::to_string(who) + ":";
      for (int32_t p : ps) d += " " + std::to_string(p);
      d += "; ";
    }
    return d;
  };
  for (int32_t p : partitions_of[0])
    EXPECT_EQ(partitions_of[1].count(p), 0u) << "partition " << p << ": " << describe();
  EXPECT_FALSE(partitions_of[0].empty()) << describe();
  EXPECT_FALSE(partitions_of[1].empty()) << describe();
}

TEST_F(BrokerTest, KeySharedKeepsEachKeyOnOneConsumerInOrder) {
  auto c = NewClient();
  ASSERT_TRUE(c->CreateTopic("acme/orders/ks", 1).ok());
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kKeyShared;
  cc.initial_position = client::InitialPosition::kEarliest;
  auto a = c->Subscribe("acme/orders/ks", "ks", cc);
  auto b = c->Subscribe("acme/orders/ks", "ks", cc);
  ASSERT_TRUE(a.ok() && b.ok());
  const int n = 1000, keys = 40;
  ProducerConfig pc;
  pc.batching_enabled = false;
  Produce(c.get(), "acme/orders/ks", n, "k", keys, pc);
  std::map<std::string, int> owner, last;
  std::set<int> all;
  for (int round = 0; round < 10000 && all.size() < static_cast<size_t>(n); ++round) {
    for (int who = 0; who < 2; ++who) {
      auto& cons = who == 0 ? *a : *b;
      auto m = cons.Receive(20);
      if (!m.ok()) continue;
      const std::string key = m->key();
      auto o = owner.find(key);
      if (o == owner.end()) {
        owner[key] = who;
      } else {
        EXPECT_EQ(o->second, who) << "key " << key << " went to both consumers";
      }
      auto l = last.find(key);
      if (l != last.end()) EXPECT_LT(l->second, IndexOf(*m)) << "key " << key << " out of order";
      last[key] = IndexOf(*m);
      all.insert(IndexOf(*m));
      ASSERT_TRUE(cons.Acknowledge(*m).ok());
    }
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(n));
  int on_a = 0;
  for (auto& [k, who] : owner) on_a += who == 0 ? 1 : 0;
  EXPECT_GT(on_a, 0);
  EXPECT_LT(on_a, keys);
}

// Draining hashes (PIP-379): a consumer joining a Key_Shared subscription
// gets no message of a key while messages of that key are still unacked at
// the consumer that had it; afterwards each key continues in order.
TEST_F(BrokerTest, KeySharedHoldsMovedKeysUntilTheirMessagesAreAcked) {
  auto c = NewClient();
  ASSERT_TRUE(c->CreateTopic("acme/orders/drain", 1).ok());
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kKeyShared;
  cc.initial_position = client::InitialPosition::kEarliest;
  auto a = c->Subscribe("acme/orders/drain", "d", cc);
  ASSERT_TRUE(a.ok());
  ProducerConfig pc;
  pc.batching_enabled = false;
  Produce(c.get(), "acme/orders/drain", 200, "first", 20, pc);
  std::vector<Message> held = Drain(*a, 200);
  ASSERT_EQ(held.size(), 200u);  // all unacked at a
  auto b = c->Subscribe("acme/orders/drain", "d", cc);
  ASSERT_TRUE(b.ok());
  Produce(c.get(), "acme/orders/drain", 200, "second", 20, pc);
  // Every key has unacked messages at a: b gets nothing yet.
  EXPECT_FALSE(b->Receive(1500).ok()) << "a moved key was delivered while its messages were unacked elsewhere";
  for (const Message& m : held) ASSERT_TRUE(a->Acknowledge(m).ok());
  // Now both get the second round, each key in order and on one consumer.
  std::map<std::string, int> owner, last;
  int got = 0;
  for (int round = 0; round < 2000 && got < 200; ++round) {
    for (int who = 0; who < 2; ++who) {
      auto& cons = who == 0 ? *a : *b;
      auto m = cons.Receive(20);
      if (!m.ok()) continue;
      ++got;
      EXPECT_EQ(m->payload().substr(0, 6), "second");
      const std::string key = m->key();
      auto o = owner.emplace(key, who).first;
      EXPECT_EQ(o->second, who) << key;
      auto l = last.find(key);
      if (l != last.end()) EXPECT_LT(l->second, IndexOf(*m)) << key;
      last[key] = IndexOf(*m);
      ASSERT_TRUE(cons.Acknowledge(*m).ok());
    }
  }
  EXPECT_EQ(got, 200);
  int on_b = 0;
  for (auto& [k, who] : owner) on_b += who;
  EXPECT_GT(on_b, 0) << "the joining consumer never got a key";
}

TEST_F(BrokerTest, SeekAndReader) {
  auto c = NewClient();
  ASSERT_TRUE(c->CreateTopic("acme/orders/seek", 1).ok());
  ProducerConfig pc;
  pc.batching_enabled = false;
  auto ids = Produce(c.get(), "acme/orders/seek", 100, "q", 0, pc);
  ASSERT_EQ(ids.size(), 100u);
  ConsumerConfig cc;
  cc.initial_position = client::InitialPosition::kEarliest;
  auto cons = c->Subscribe("acme/orders/seek", "s", cc);
  ASSERT_TRUE(cons.ok());
  auto first = Drain(*cons, 100);
  ASSERT_EQ(first.size(), 100u);
  ASSERT_TRUE(cons->AcknowledgeCumulative(first.back().id()).ok());
  // Back to message 40: 40..99 again.
  ASSERT_TRUE(cons->Seek(ids[40]).ok());
  auto again = Drain(*cons, 60);
  ASSERT_EQ(again.size(), 60u);
  EXPECT_EQ(IndexOf(again.front()), 40);
  EXPECT_EQ(IndexOf(again.back()), 99);
  // A reader from message 90 (inclusive) sees 90..99 and stores nothing.
  client::ReaderConfig rc;
  rc.start_message_id = ids[90];
  rc.start_message_id_inclusive = true;
  auto reader = c->CreateReader("acme/orders/seek", rc);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  std::vector<int> seen;
  for (int i = 0; i < 10; ++i) {
    auto m = reader->ReadNext(5000);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    seen.push_back(IndexOf(*m));
  }
  EXPECT_EQ(seen.front(), 90);
  EXPECT_EQ(seen.back(), 99);
  auto subs = c->ListSubscriptions("acme/orders/seek");
  ASSERT_TRUE(subs.ok());
  ASSERT_EQ(subs->size(), 1u);  // the reader's is not durable
  EXPECT_EQ((*subs)[0].name, "s");
}

TEST_F(BrokerTest, TopicAdmin) {
  auto c = NewClient();
  ASSERT_TRUE(c->CreateTopic("acme/admin/t1", 3).ok());
  ASSERT_TRUE(c->CreateTopic("acme/admin/t2", 1).ok());
  EXPECT_FALSE(c->CreateTopic("acme/admin/t1", 3).ok());
  EXPECT_FALSE(c->CreateTopic("no-slashes", 1).ok());
  EXPECT_FALSE(c->CreateTopic("acme/admin/bad~name", 1).ok());
  EXPECT_FALSE(c->CreateTopic("acme/admin/zero", 0).ok());
  auto list = c->ListTopics("acme/admin");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, (std::vector<std::string>{"acme/admin/t1", "acme/admin/t2"}));
  auto n = c->GetPartitionCount("acme/admin/t1");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3);
  Produce(c.get(), "acme/admin/t1", 30, "a");
  auto stats = c->GetTopicStats("acme/admin/t1");
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->partitions, 3);
  // Metrics: the owners count the messages in, per topic.
  int64_t in = 0;
  for (auto& b : brokers_) {
    const std::string metrics = HttpGet(b->metrics_port(), "/metrics");
    EXPECT_NE(metrics.find("dlog_broker_publish_latency_seconds_bucket"), std::string::npos);
    const std::string key = "dlog_broker_topic_messages_in_total{topic=\"acme/admin/t1\"} ";
    const size_t at = metrics.find(key);
    if (at != std::string::npos) in += std::stoll(metrics.substr(at + key.size()));
  }
  EXPECT_EQ(in, 30);
  ASSERT_TRUE(c->DeleteTopic("acme/admin/t2").ok());
  list = c->ListTopics("acme/admin");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, (std::vector<std::string>{"acme/admin/t1"}));
}

// Garbage, broken frames and protocol misuse on a broker's port: errors or a
// closed connection, never a crash; other clients carry on.
TEST_F(BrokerTest, BadInputHarmsNothing) {
  auto c = NewClient();
  const std::string topic = "acme/bad/input";
  ASSERT_TRUE(c->CreateTopic(topic, 1).ok());
  ConsumerConfig cc;
  cc.initial_position = client::InitialPosition::kEarliest;
  auto consumer = c->Subscribe(topic, "ok", cc);
  ASSERT_TRUE(consumer.ok());
  auto producer = c->CreateProducer(topic);
  ASSERT_TRUE(producer.ok());
  ASSERT_TRUE(producer->Send(Message::Create("before-0")).ok());
  // The partition's owner, where the producer lives.
  auto stats = c->GetTopicStats(topic);
  ASSERT_TRUE(stats.ok());
  BrokerProcess* owner = BrokerAt(stats->partition_stats.at(0).owner);
  ASSERT_NE(owner, nullptr);
  const uint16_t port = owner->port();

  auto expect_closed = [&](const std::string& bytes, const std::string& what) {
    RawBrokerClient r(port);
    ASSERT_TRUE(r.ok());
    r.SendBytes(bytes);
    bool closed = false;
    for (int i = 0; i < 5 && !closed; ++i) r.Next(2000, &closed);
    EXPECT_TRUE(closed) << what << ": the connection stayed open";
  };
  std::mt19937 rng(5);
  for (int i = 0; i < 20; ++i) {
    std::string junk(1 + rng() % 3000, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    RawBrokerClient r(port);
    r.SendBytes(junk);
    r.Next(300);
  }
  expect_closed(std::string("\x7f\xff\xff\xff", 4) + std::string(64, 'x'), "oversized length");
  expect_closed("GET /admin/v2/clusters HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP");
  expect_closed(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(200, '\x11'), "TLS");
  {
    proto::BaseCommand cmd;
    cmd.mutable_connect()->set_protocol_version(1);
    ByteBuffer b;
    protocol::AppendFrame(&b, cmd.SerializeAsString(), "");
    std::string frame(reinterpret_cast<const char*>(b.data()), b.size());
    std::string bad_crc = frame;
    bad_crc[5] ^= 0x40;
    expect_closed(bad_crc, "bad CRC");
    std::string not_a_command = frame;
    // A valid frame whose header is not a BaseCommand.
    ByteBuffer b2;
    protocol::AppendFrame(&b2, std::string("\xff\xff\xff\xff", 4), "");
    expect_closed(std::string(reinterpret_cast<const char*>(b2.data()), b2.size()), "header not a BaseCommand");
    // Truncated: half a frame, then the client goes away.
    RawBrokerClient t(port);
    t.SendBytes(frame.substr(0, frame.size() / 2));
  }
  {  // Anything before Connect.
    RawBrokerClient r(port);
    proto::BaseCommand cmd;
    cmd.mutable_lookup()->set_request_id(1);
    cmd.mutable_lookup()->set_topic(topic);
    r.Send(cmd);
    bool closed = false;
    auto reply = r.Next(5000, &closed);
    ASSERT_TRUE(reply.has_value());
    EXPECT_TRUE(reply->has_error());
    r.Next(3000, &closed);
    EXPECT_TRUE(closed);
  }
  {  // Misuse after Connect: errors, the connection stays usable.
    RawBrokerClient r(port);
    ASSERT_TRUE(r.Connect());
    // Send before Producer.
    ASSERT_TRUE(r.SendMessage(77, "nobody", 0, "x"));
    auto e = r.Next(5000);
    ASSERT_TRUE(e && e->has_send_error()) << (e ? e->DebugString() : "none");
    EXPECT_EQ(e->send_error().error(), proto::SERVER_UNKNOWN_PRODUCER);
    // Ack for an unknown consumer.
    proto::BaseCommand ack;
    ack.mutable_ack()->set_consumer_id(5);
    ack.mutable_ack()->set_request_id(9);
    ack.mutable_ack()->add_message_ids()->set_record_seq(0);
    r.Send(ack);
    e = r.Next(5000);
    ASSERT_TRUE(e && e->has_ack_response());
    EXPECT_EQ(e->ack_response().error(), proto::SERVER_UNKNOWN_CONSUMER);
    // A consumer, then an ack of a message that does not exist and a permits overflow.
    proto::BaseCommand sub;
    sub.mutable_subscribe()->set_request_id(10);
    sub.mutable_subscribe()->set_consumer_id(1);
    sub.mutable_subscribe()->set_topic(topic);
    sub.mutable_subscribe()->set_subscription("raw");
    sub.mutable_subscribe()->set_durable(true);
    r.Send(sub);
    e = r.NextOf(proto::BaseCommand::kSuccess, 10000);
    ASSERT_TRUE(e.has_value());
    ack.mutable_ack()->set_consumer_id(1);
    ack.mutable_ack()->set_request_id(11);
    ack.mutable_ack()->mutable_message_ids(0)->set_record_seq(1000000);
    ack.mutable_ack()->mutable_message_ids(0)->set_batch_size(1);
    r.Send(ack);
    e = r.NextOf(proto::BaseCommand::kAckResponse, 5000);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->ack_response().error(), proto::SERVER_BAD_REQUEST) << e->DebugString();
    proto::BaseCommand flow;
    flow.mutable_flow()->set_consumer_id(1);
    flow.mutable_flow()->set_message_permits(0xffffffffu);
    r.Send(flow);
    e = r.NextOf(proto::BaseCommand::kError, 5000);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->error().error(), proto::SERVER_BAD_REQUEST);
    // A producer whose batch is garbage, or claims another producer's name.
    auto ps = r.Producer(12, 3, topic, 0, "raw-producer");
    ASSERT_TRUE(ps && ps->has_producer_success()) << (ps ? ps->DebugString() : "none");
    proto::BaseCommand send;
    send.mutable_send()->set_producer_id(3);
    send.mutable_send()->set_sequence_id(0);
    send.mutable_send()->set_highest_sequence_id(0);
    send.mutable_send()->set_num_messages(1);
    r.Send(send, "not a batch at all");
    e = r.NextOf(proto::BaseCommand::kSendError, 5000);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->send_error().error(), proto::SERVER_BAD_REQUEST);
    r.Send(send, RawBrokerClient::Batch("someone-else", 0, "x"));
    e = r.NextOf(proto::BaseCommand::kSendError, 5000);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->send_error().error(), proto::SERVER_BAD_REQUEST);
    // Bad topic names.
    auto bad = r.Producer(13, 4, "../../etc/passwd", 0, "p");
    ASSERT_TRUE(bad && bad->has_error());
    EXPECT_EQ(bad->error().error(), proto::SERVER_INVALID_TOPIC_NAME);
    // The connection still works.
    ASSERT_TRUE(r.SendMessage(3, "raw-producer", 0, "raw-ok"));
    e = r.NextOf(proto::BaseCommand::kSendReceipt, 10000);
    ASSERT_TRUE(e.has_value());
  }
  // Nothing harmed the brokers or the well-behaved clients.
  for (auto& b : brokers_) EXPECT_TRUE(b->Running()) << b->Stderr();
  ASSERT_TRUE(producer->Send(Message::Create("after-1")).ok());
  std::set<std::string> got;
  for (int i = 0; i < 3; ++i) {
    auto m = consumer->Receive(10000);
    ASSERT_TRUE(m.ok());
    got.insert(std::string(m->payload()));
  }
  EXPECT_EQ(got, (std::set<std::string>{"before-0", "raw-ok", "after-1"}));
}

}  // namespace
}  // namespace dlog::test
