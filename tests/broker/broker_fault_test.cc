// Broker faults with real processes (ZooKeeper, 4 logstore nodes, 2
// brokers): kill -9 of the owning broker during produce and consume, a
// SIGSTOP'd owner that wakes after another broker took over, cursor
// durability across a kill with 100,000 ack holes, and a killed active
// consumer of a Failover subscription. A message counts as acknowledged only
// when its receipt arrived.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
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
using namespace std::chrono_literals;

class BrokerFaultTest : public BrokerCluster {
 protected:
  void SetUp() override {
    // Acked data is kept, so a reader from the start sees everything stored.
    broker_extra_ = {"--max-unacked-per-consumer=0", "--cursor-cache=1MiB", "--acked-retention=forever"};
    StartCluster(2);
  }

  std::string OwnerOf(client::Client* c, const std::string& topic, int32_t partition) {
    auto stats = c->GetTopicStats(topic);
    if (!stats.ok()) return "";
    for (const auto& p : stats->partition_stats) {
      if (p.partition == partition) return p.owner;
    }
    return "";
  }

  static int IndexOf(std::string_view p) { return std::stoi(std::string(p.substr(p.rfind('-') + 1))); }

  static std::vector<std::string> SplitLines(const std::string& text) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at < text.size()) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      out.push_back(text.substr(at, nl - at));
      at = nl + 1;
    }
    return out;
  }

  // Every message of `topic` from the start, by payload (a non-durable reader).
  std::map<std::string, int> ReadAll(client::Client* c, const std::string& topic) {
    std::map<std::string, int> out;
    client::ReaderConfig rc;
    rc.start_message_id = MessageId::Earliest();
    auto r = c->CreateReader(topic, rc);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return out;
    for (;;) {
      auto m = r->ReadNext(3000);
      if (!m.ok()) {
        if (out.empty()) ADD_FAILURE() << "reader of " << topic << ": " << m.status().ToString();
        break;
      }
      out[std::string(m->payload())]++;
    }
    return out;
  }
};

TEST_F(BrokerFaultTest, BrokerFailoverKill9DuringProduceAndConsume) {
  auto c = NewClient(120000);
  const std::string topic = "acme/fail/over";
  ASSERT_TRUE(c->CreateTopic(topic, 4).ok());
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kExclusive;
  cc.initial_position = client::InitialPosition::kEarliest;
  cc.ack_receipt_enabled = true;
  auto consumer = c->Subscribe(topic, "survivor", cc);
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  ProducerConfig pc;
  pc.producer_name = "failover-producer";
  pc.send_timeout_ms = 120000;
  auto producer = c->CreateProducer(topic, pc);
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();

  const int n = 20000;
  std::mutex mu;
  std::set<int> sent_ok, sent_failed, received, acked_persisted;
  int redelivered_after_ack = 0;
  std::atomic<int> send_done{0};
  std::thread sender([&] {
    for (int i = 0; i < n; ++i) {
      producer->SendAsync(Message::Create("m-" + std::to_string(i)), [&, i](Result<MessageId> r) {
        std::lock_guard<std::mutex> l(mu);
        (r.ok() ? sent_ok : sent_failed).insert(i);
        send_done++;
      });
      if (i % 200 == 0) std::this_thread::sleep_for(5ms);
    }
  });
  std::atomic<bool> stop{false};
  std::thread receiver([&] {
    while (!stop) {
      auto m = consumer->Receive(200);
      if (!m.ok()) continue;
      const int i = IndexOf(m->payload());
      {
        std::lock_guard<std::mutex> l(mu);
        if (acked_persisted.count(i)) redelivered_after_ack++;
        received.insert(i);
      }
      consumer->AcknowledgeAsync(m->id(), [&, i](Status st) {
        if (!st.ok()) return;
        std::lock_guard<std::mutex> l(mu);
        acked_persisted.insert(i);
      });
    }
  });
  // Kill the owner of partition 0 once a third has been consumed.
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> l(mu);
        return received.size() > static_cast<size_t>(n / 3);
      },
      Scaled(60s)));
  const std::string owner = OwnerOf(c.get(), topic, 0);
  BrokerProcess* victim = BrokerAt(owner);
  ASSERT_NE(victim, nullptr) << "owner '" << owner << "'";
  victim->Kill9();
  sender.join();
  ASSERT_TRUE(WaitFor([&] { return send_done.load() == n; }, Scaled(180s))) << AllStderr();
  // Every acknowledged message is consumed.
  const bool all = WaitFor(
      [&] {
        std::lock_guard<std::mutex> l(mu);
        for (int i : sent_ok) {
          if (!received.count(i)) return false;
        }
        return true;
      },
      Scaled(120s));
  stop = true;
  receiver.join();
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_TRUE(all) << "acknowledged messages not consumed";
    EXPECT_EQ(sent_failed.size(), 0u) << "sends failed although the send timeout outlasts the failover";
    EXPECT_EQ(redelivered_after_ack, 0) << "messages whose ack was persisted were delivered again";
    EXPECT_GT(sent_ok.size(), static_cast<size_t>(n / 2));
  }
  // Nothing stored twice (deduplication across the failover).
  auto stored = ReadAll(c.get(), topic);
  int dups = 0;
  for (auto& [payload, count] : stored) dups += count > 1 ? 1 : 0;
  EXPECT_EQ(dups, 0);
  std::lock_guard<std::mutex> l(mu);
  int missing = 0;
  std::string ranges;
  int run_start = -1, prev = -2;
  for (int i : sent_ok) {
    if (stored.count("m-" + std::to_string(i)) == 1) continue;
    ++missing;
    if (i != prev + 1) {
      if (run_start >= 0) ranges += std::to_string(run_start) + ".." + std::to_string(prev) + " ";
      run_start = i;
    }
    prev = i;
  }
  if (run_start >= 0) ranges += std::to_string(run_start) + ".." + std::to_string(prev);
  EXPECT_EQ(missing, 0) << "of " << sent_ok.size() << " acknowledged messages, " << missing
                        << " are not in the topic (a reader found " << stored.size() << "): " << ranges << "\n"
                        << AllStderr();
}

TEST_F(BrokerFaultTest, BrokerPausedPastItsSessionServesNothingAfterWaking) {
  auto c = NewClient();
  const std::string topic = "acme/pause/t";
  ASSERT_TRUE(c->CreateTopic(topic, 1).ok());
  ASSERT_TRUE(c->CreateProducer(topic).value().Send(Message::Create("first-0")).ok());
  const std::string owner = OwnerOf(c.get(), topic, 0);
  BrokerProcess* x = BrokerAt(owner);
  ASSERT_NE(x, nullptr);
  BrokerProcess* y = x == brokers_[0].get() ? brokers_[1].get() : brokers_[0].get();

  // A producer and a consumer straight on the owner's socket.
  RawBrokerClient rp(x->port()), rc(x->port());
  ASSERT_TRUE(rp.Connect() && rc.Connect());
  auto ps = rp.Producer(1, 1, topic, 0, "raw-producer");
  ASSERT_TRUE(ps && ps->has_producer_success()) << (ps ? ps->DebugString() : "none");
  ASSERT_TRUE(rp.SendMessage(1, "raw-producer", 0, "raw-0"));
  auto receipt = rp.NextOf(proto::BaseCommand::kSendReceipt, 10000);
  ASSERT_TRUE(receipt.has_value());
  proto::BaseCommand sub;
  sub.mutable_subscribe()->set_request_id(2);
  sub.mutable_subscribe()->set_consumer_id(1);
  sub.mutable_subscribe()->set_topic(topic);
  sub.mutable_subscribe()->set_subscription("paused-sub");
  sub.mutable_subscribe()->set_durable(true);
  sub.mutable_subscribe()->set_initial_position(proto::INITIAL_EARLIEST);
  ASSERT_TRUE(rc.Send(sub));
  ASSERT_TRUE(rc.NextOf(proto::BaseCommand::kSuccess, 10000).has_value());
  proto::BaseCommand flow;
  flow.mutable_flow()->set_consumer_id(1);
  flow.mutable_flow()->set_message_permits(1000);
  ASSERT_TRUE(rc.Send(flow));
  std::string payload;
  auto first = rc.NextOf(proto::BaseCommand::kMessage, 10000, &payload);
  ASSERT_TRUE(first.has_value());
  const proto::MessageIdData first_id = first->message().message_id();

  // Pause the owner for twice the session timeout; the other broker takes over.
  x->Pause();
  client::ClientConfig cfg;
  cfg.service_url = "dlog://" + y->address();
  cfg.operation_timeout_ms = 60000;
  auto cy = client::Client::Create(cfg);
  ASSERT_TRUE(cy.ok());
  ProducerConfig pc;
  pc.producer_name = "after-takeover";
  auto py = (*cy)->CreateProducer(topic, pc);
  ASSERT_TRUE(py.ok()) << py.status().ToString();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(py->Send(Message::Create("new-" + std::to_string(i))).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * session_ms()) - 2s);
  x->Resume();

  // The woken broker acknowledges no produce ...
  ASSERT_TRUE(rp.SendMessage(1, "raw-producer", 1, "raw-1"));
  bool closed = false;
  for (;;) {
    auto cmd = rp.Next(5000, &closed);
    if (!cmd) break;
    ASSERT_FALSE(cmd->has_send_receipt()) << "the resumed broker acknowledged a send: " << cmd->DebugString();
    if (cmd->has_send_error() || cmd->has_close_producer()) break;
  }
  // ... dispatches nothing written by the new owner, and accepts no ack.
  proto::BaseCommand ack;
  ack.mutable_ack()->set_consumer_id(1);
  ack.mutable_ack()->set_request_id(3);
  *ack.mutable_ack()->add_message_ids() = first_id;
  rc.Send(ack);
  for (;;) {
    std::string p;
    auto cmd = rc.Next(5000, &closed, &p);
    if (!cmd) break;
    if (cmd->has_message()) {
      EXPECT_EQ(p.find("new-"), std::string::npos) << "the resumed broker dispatched a message it does not own";
    }
    if (cmd->has_ack_response()) {
      EXPECT_NE(cmd->ack_response().error(), proto::SERVER_OK) << "the resumed broker accepted an ack";
    }
  }
  // Nothing the paused broker had was lost, and its late send is not stored.
  auto stored = ReadAll(cy->get(), topic);
  EXPECT_EQ(stored.count("raw-0"), 1u);
  EXPECT_EQ(stored.count("raw-1"), 0u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(stored.count("new-" + std::to_string(i)), 1u);
}

TEST_F(BrokerFaultTest, CursorSurvivesKill9WithHundredThousandAckHoles) {
  auto c = NewClient(120000);
  const std::string topic = "acme/cursor/holes";
  ASSERT_TRUE(c->CreateTopic(topic, 1).ok());
  ConsumerConfig cc;
  cc.initial_position = client::InitialPosition::kEarliest;
  cc.ack_receipt_enabled = true;
  cc.receiver_queue_size = 5000;
  // (The brokers run with --max-unacked-per-consumer=0: half of 200,000 stays unacked.)
  auto consumer = c->Subscribe(topic, "holes", cc);
  ASSERT_TRUE(consumer.ok());
  ProducerConfig pc;
  pc.batching_max_messages = 100;
  pc.batching_max_delay_ms = 5;
  pc.max_pending_messages = 20000;
  auto producer = c->CreateProducer(topic, pc);
  ASSERT_TRUE(producer.ok());
  const int n = 200000;
  std::atomic<int> sent{0}, send_failed{0};
  for (int i = 0; i < n; ++i) {
    producer->SendAsync(Message::Create("h-" + std::to_string(i)), [&](Result<MessageId> r) {
      if (!r.ok()) send_failed++;
      sent++;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return sent.load() == n; }, Scaled(180s)));
  ASSERT_EQ(send_failed.load(), 0);
  const std::string owner = OwnerOf(c.get(), topic, 0);
  BrokerProcess* victim = BrokerAt(owner);
  ASSERT_NE(victim, nullptr);
  const long rss_before = RssKiB(victim->pid());

  std::mt19937 rng(7);
  std::set<int> unacked;
  std::atomic<int> acks_done{0}, acks_failed{0};
  int acks = 0;
  for (int got = 0; got < n;) {
    auto m = consumer->Receive(10000);
    ASSERT_TRUE(m.ok()) << "received " << got << " of " << n;
    ++got;
    const int i = IndexOf(m->payload());
    if (rng() % 2 == 0) {
      ++acks;
      consumer->AcknowledgeAsync(m->id(), [&](Status st) {
        if (!st.ok()) acks_failed++;
        acks_done++;
      });
    } else {
      unacked.insert(i);
    }
  }
  ASSERT_TRUE(WaitFor([&] { return acks_done.load() == acks; }, Scaled(120s)));
  ASSERT_EQ(acks_failed.load(), 0);
  const long rss_after = RssKiB(victim->pid());
  // 100,000 holes live in fixed-size bitmap blocks under the cursor cache
  // budget, spilling to RocksDB: the broker does not grow with them.
  EXPECT_LT(rss_after - rss_before, 64 * 1024) << "RSS grew from " << rss_before << " KiB to " << rss_after << " KiB";
  ASSERT_TRUE(consumer->Close().ok());
  victim->Kill9();

  auto c2 = NewClient(120000);
  auto again = c2->Subscribe(topic, "holes", cc);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  std::set<int> redelivered;
  for (;;) {
    auto m = again->Receive(5000);
    if (!m.ok()) break;
    const int i = IndexOf(m->payload());
    EXPECT_TRUE(unacked.count(i)) << "acked message " << i << " was redelivered";
    redelivered.insert(i);
  }
  EXPECT_EQ(redelivered.size(), unacked.size());
  EXPECT_EQ(redelivered, unacked);
}

TEST_F(BrokerFaultTest, KilledActiveFailoverConsumerIsReplacedByStandbyAfterItsLastAck) {
  auto c = NewClient();
  const std::string topic = "acme/fo/kill";
  ASSERT_TRUE(c->CreateTopic(topic, 1).ok());
  ProducerConfig pc;
  pc.batching_enabled = false;
  {
    auto p = c->CreateProducer(topic, pc);
    ASSERT_TRUE(p.ok());
    for (int i = 0; i < 3000; ++i) p->SendAsync(Message::Create("k-" + std::to_string(i)), [](Result<MessageId>) {});
    ASSERT_TRUE(p->Flush().ok());
  }
  // The active consumer: a child process (it subscribes first, so partition 0 is its).
  TempDir dir;
  ProcessOptions o;
  o.argv = {BROKER_TEST_CONSUMER, ServiceUrl(), topic, "fo-sub", "child"};
  o.stdout_path = dir.path() + "/child.out";
  o.stderr_path = dir.path() + "/child.err";
  WriteFile(o.stdout_path, "");
  Process child(o);
  ASSERT_TRUE(child.Start());
  ASSERT_TRUE(child.WaitForOutput("subscribed", Scaled(30s)).has_value()) << child.Stderr();
  // The standby, here.
  std::atomic<int> active_changes{0};
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kFailover;
  cc.consumer_name = "standby";
  cc.active_consumer_listener = [&](int32_t, bool active) {
    if (active) active_changes++;
  };
  auto standby = c->Subscribe(topic, "fo-sub", cc);
  ASSERT_TRUE(standby.ok());
  ASSERT_TRUE(child.WaitForOutput("acked k-200", Scaled(30s)).has_value()) << child.Stderr();
  EXPECT_FALSE(standby->Receive(200).ok()) << "the standby received while the child was active";
  child.Kill9AndWait();
  const auto killed_at = std::chrono::steady_clock::now();
  // The last ack the child saw persisted.
  int last_acked = -1;
  for (const std::string& line : SplitLines(ReadFile(o.stdout_path))) {
    if (line.rfind("acked k-", 0) == 0) last_acked = std::max(last_acked, std::stoi(line.substr(8)));
  }
  ASSERT_GE(last_acked, 200);
  auto first = standby->Receive(Scaled(10s).count());
  ASSERT_TRUE(first.ok()) << "the standby got nothing after the active consumer died";
  const auto took = std::chrono::steady_clock::now() - killed_at;
  EXPECT_LT(took, Scaled(5s)) << "the standby took over after "
                              << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  // It starts right after the last persisted ack (the child acks one at a
  // time, so at most one more ack may have been persisted unseen).
  const int start = IndexOf(first->payload());
  EXPECT_GE(start, last_acked + 1);
  EXPECT_LE(start, last_acked + 2);
  EXPECT_GE(active_changes.load(), 1);
  int prev = start;
  ASSERT_TRUE(standby->Acknowledge(*first).ok());
  for (int i = start + 1; i < 3000; ++i) {
    auto m = standby->Receive(Scaled(10s).count());
    ASSERT_TRUE(m.ok()) << "after " << prev;
    EXPECT_EQ(IndexOf(m->payload()), prev + 1);
    prev = IndexOf(m->payload());
    ASSERT_TRUE(standby->Acknowledge(*m).ok());
  }
}

}  // namespace
}  // namespace dlog::test
