// The client library against a real `dlogd standalone` child process
// (embedded metadata, one logstore node, a broker): routing round robin and
// by key, the pending bound, send timeouts, re-sending after a dropped
// connection (and after kill -9 + restart) with the broker's deduplication,
// receiving and acking, negative acks and the ack timeout, readers,
// compressed batches, errors, and the callback-thread rule.
//
// One standalone serves the whole suite (topics are distinct per test).
// Receipts are held back by stopping it (SIGSTOP/SIGCONT); a dropped
// connection is a kill -9 and a restart on the same ports and data dir.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/lib/hash.h"
#include "common/thread_annotations.h"
#include "dlog/dlog.h"
#include "tests/support/test_util.h"

namespace dlog::client {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::FreePort;
using test::Process;
using test::ProcessOptions;
using test::Scaled;
using test::TempDir;

// The value of `r`, or `otherwise` if it is an error.
template <typename T>
T Or(const Result<T>& r, T otherwise) {
  return r.ok() ? *r : otherwise;
}

int64_t Ms(std::chrono::milliseconds ms) { return static_cast<int64_t>(ms.count()); }

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// One `dlogd standalone` child with fixed ports and data dir (kept across
// restarts), metrics on (the dedup tests read the broker's counter).
class Standalone {
 public:
  explicit Standalone(std::string dir)
      : dir_(std::move(dir)),
        port_(FreePort()),
        node_port_(FreePort()),
        broker_port_(FreePort()),
        metrics_port_(FreePort()) {}

  bool Start() {
    ProcessOptions o;
    o.argv = {test::DlogdPath(),  "standalone",
              "--data-dir",       dir_ + "/data",
              "--listen",         "127.0.0.1:" + std::to_string(port_),
              "--node-listen",    "127.0.0.1:" + std::to_string(node_port_),
              "--broker-listen",  "127.0.0.1:" + std::to_string(broker_port_),
              "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port_)};
    o.stdout_path = dir_ + "/standalone.out";
    o.stderr_path = dir_ + "/standalone.err." + std::to_string(++starts_);
    test::WriteFile(o.stdout_path, "");  // so the ready line found is the new process's
    proc_ = std::make_unique<Process>(o);
    if (!proc_->Start()) return false;
    return proc_->WaitForOutput("dlogd standalone ready", Scaled(20s)).has_value();
  }

  // SIGTERM and wait; the exit status as from waitpid (or -1).
  int Stop() {
    proc_->Signal(SIGCONT);
    proc_->Signal(SIGTERM);
    auto st = proc_->Wait(Scaled(20s));
    return st ? *st : -1;
  }

  void Kill9() { proc_->Kill9AndWait(); }

  // SIGSTOP, and wait until every thread of it is stopped (so nothing it
  // has not done yet happens before Resume).
  bool Pause() {
    proc_->Signal(SIGSTOP);
    return test::WaitFor([this] { return AllThreadsStopped(); }, 5s);
  }
  void Resume() { proc_->Signal(SIGCONT); }

  bool Running() { return proc_ && proc_->Running(); }
  std::string url() const { return "dlog://127.0.0.1:" + std::to_string(broker_port_); }
  std::string Stderr() const { return proc_ ? proc_->Stderr() : ""; }

  // The value of an unlabelled counter on the metrics endpoint (-1: not found).
  double Metric(const std::string& name) const {
    std::istringstream in(test::HttpGet(metrics_port_, "/metrics"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return -1;
  }

 private:
  bool AllThreadsStopped() const {
    const std::string dir = "/proc/" + std::to_string(proc_->pid()) + "/task";
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return false;
    bool all = true;
    int seen = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      ++seen;
      const std::string stat = test::ReadFile(dir + "/" + e->d_name + "/stat");
      const size_t paren = stat.rfind(')');
      if (paren == std::string::npos || paren + 2 >= stat.size() ||
          (stat[paren + 2] != 'T' && stat[paren + 2] != 't')) {
        all = false;
      }
    }
    closedir(d);
    return all && seen > 0;
  }

  std::string dir_;
  uint16_t port_, node_port_, broker_port_, metrics_port_;
  int starts_ = 0;
  std::unique_ptr<Process> proc_;
};

class ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new Standalone(dir_->path());
    if (!server_->Start()) {
      ADD_FAILURE() << "dlogd standalone did not start:\n" << server_->Stderr();
    }
  }

  static void TearDownTestSuite() {
    if (server_->Running()) {
      // SIGTERM shuts the standalone down cleanly, with its broker having owned partitions.
      const int st = server_->Stop();
      EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "dlogd standalone exit status " << st << " on SIGTERM\n"
                                                         << server_->Stderr();
    }
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Running()) << "the standalone is not running:\n" << server_->Stderr();
  }

  void TearDown() override {
    server_->Resume();  // in case a test failed while it was stopped
  }

  // A topic of its own for each test.
  static std::string Topic(const std::string& suffix = "") {
    return "public/client-test/" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
           suffix;
  }

  static ClientConfig Config() {
    ClientConfig c;
    c.service_url = server_->url();
    c.operation_timeout_ms = Ms(Scaled(10s));
    c.backoff_initial_ms = 20;
    c.backoff_max_ms = 200;
    return c;
  }

  static std::unique_ptr<Client> NewClient(ClientConfig c = Config()) {
    auto r = Client::Create(std::move(c));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  // Reads every message of `topic` from the start with a reader: exactly
  // `n` of them, then nothing more.
  static std::vector<Message> ReadAll(Client* client, const std::string& topic, size_t n) {
    ReaderConfig rc;
    rc.start_message_id = MessageId::Earliest();
    auto reader = client->CreateReader(topic, rc);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    std::vector<Message> out;
    if (!reader.ok()) return out;
    for (size_t i = 0; i < n; ++i) {
      auto m = reader->ReadNext(Ms(Scaled(5s)));
      EXPECT_TRUE(m.ok()) << "message " << i << " of " << n << ": " << m.status().ToString();
      if (!m.ok()) break;
      out.push_back(std::move(m).value());
    }
    auto more = reader->ReadNext(300);
    EXPECT_TRUE(more.status().Is(ClientErrc::kTimeout))
        << "more than " << n << " messages: " << (more.ok() ? std::string(more->payload()) : more.status().ToString());
    EXPECT_TRUE(reader->Close().ok());
    return out;
  }

  static std::vector<std::string> Payloads(const std::vector<Message>& ms) {
    std::vector<std::string> out;
    for (const Message& m : ms) out.emplace_back(m.payload());
    return out;
  }

  static std::vector<std::string> Numbered(const std::string& prefix, int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i <= to; ++i) out.push_back(prefix + std::to_string(i));
    return out;
  }

  static inline TempDir* dir_ = nullptr;
  static inline Standalone* server_ = nullptr;
};

// Collects SendAsync outcomes by message index. The callbacks share its
// state, so a callback that runs after a failed test returned is harmless.
class Outcomes {
 public:
  explicit Outcomes(size_t n) : state_(std::make_shared<State>(n)) {}
  Producer::SendCallback At(size_t i) {
    return [state = state_, i](Result<MessageId> r) {
      MutexLock l(&state->mu);
      state->results[i] = std::move(r);
      ++state->done;
    };
  }
  size_t done() {
    MutexLock l(&state_->mu);
    return state_->done;
  }
  Result<MessageId> Get(size_t i) {
    MutexLock l(&state_->mu);
    return state_->results[i];
  }

 private:
  struct State {
    explicit State(size_t n) : results(n, Status::Error(ClientErrc::kIllegalState, "no outcome yet")) {}
    Mutex mu;
    std::vector<Result<MessageId>> results DLOG_GUARDED_BY(mu);
    size_t done DLOG_GUARDED_BY(mu) = 0;
  };
  std::shared_ptr<State> state_;
};

TEST_F(ClientTest, RoutesRoundRobinPerBatchAndByKey) {
  auto client = NewClient();
  const std::string topic = Topic();
  ASSERT_TRUE(client->CreateTopic(topic, 3).ok());
  EXPECT_EQ(Or(client->GetPartitionCount(topic), -1), 3);

  ProducerConfig pc;
  pc.batching_max_messages = 5;
  pc.batching_max_delay_ms = Ms(Scaled(60s));  // batches close when full or on Flush only
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->partitions(), 3);
  EXPECT_TRUE(p->is_connected());
  EXPECT_FALSE(p->producer_name().empty());  // assigned by the broker

  // Unkeyed: five to a batch, each batch to the next partition.
  Outcomes unkeyed(30);
  for (int i = 0; i < 30; ++i) p->SendAsync(Message::Create("m" + std::to_string(i)), unkeyed.At(i));
  // Keyed: hash(key) % 3, whatever the round robin is at.
  const std::vector<std::string> keys = {"key-1", "key-2", "key-3", "key-4", "key-5", "key-6"};
  std::set<int32_t> key_partitions;
  for (const auto& k : keys) key_partitions.insert(PartitionForKey(k, 3));
  ASSERT_GE(key_partitions.size(), 2u);  // the keys do spread
  Outcomes keyed(keys.size());
  for (size_t i = 0; i < keys.size(); ++i)
    p->SendAsync(Message::Create("keyed-" + keys[i]).SetKey(keys[i]), keyed.At(i));
  ASSERT_TRUE(p->Flush().ok());
  ASSERT_EQ(unkeyed.done(), 30u);
  ASSERT_EQ(keyed.done(), keys.size());

  std::map<std::string, MessageId> sent;
  for (int i = 0; i < 30; ++i) {
    auto r = unkeyed.Get(i);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->partition(), (i / 5) % 3) << "message " << i;
    EXPECT_EQ(r->batch_index(), i % 5) << "message " << i;
    EXPECT_EQ(r->batch_size(), 5) << "message " << i;
    EXPECT_GE(r->record_seq(), 0);
    if (i % 5 != 0) EXPECT_EQ(r->record_seq(), unkeyed.Get(i - 1)->record_seq()) << "one record per batch";
    sent["m" + std::to_string(i)] = *r;
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    auto r = keyed.Get(i);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->partition(), PartitionForKey(keys[i], 3)) << keys[i];
    sent["keyed-" + keys[i]] = *r;
  }
  EXPECT_GE(p->last_sequence_id(), 9);  // ten unkeyed messages per partition at least
  EXPECT_EQ(p->pending_messages(), 0);

  // With batching off, every message goes to the next partition.
  ProducerConfig single;
  single.batching_enabled = false;
  auto q = client->CreateProducer(topic, single);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  for (int i = 0; i < 6; ++i) {
    auto r = q->Send(Message::Create("u" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->partition(), i % 3) << "message " << i;
    EXPECT_EQ(r->batch_size(), 1);
    sent["u" + std::to_string(i)] = *r;
  }

  // Stored where the receipts said, each once, with its key.
  const auto got = ReadAll(client.get(), topic, sent.size());
  std::set<std::string> seen;
  for (const Message& m : got) {
    const std::string payload(m.payload());
    EXPECT_TRUE(seen.insert(payload).second) << payload << " twice";
    auto it = sent.find(payload);
    ASSERT_NE(it, sent.end()) << payload;
    EXPECT_EQ(m.id(), it->second) << payload;
    EXPECT_EQ(m.partition(), it->second.partition());
    if (payload.rfind("keyed-", 0) == 0) {
      EXPECT_EQ(m.key(), payload.substr(6));
    } else {
      EXPECT_FALSE(m.has_key()) << payload;
    }
  }
  EXPECT_EQ(seen.size(), sent.size());

  ASSERT_TRUE(p->Close().ok());
  EXPECT_TRUE(p->Send(Message::Create("late")).status().Is(ClientErrc::kAlreadyClosed));
}

TEST_F(ClientTest, PendingBoundFailsWhenNotBlocking) {
  auto client = NewClient();
  const std::string topic = Topic();
  ProducerConfig pc;
  pc.batching_enabled = false;
  pc.max_pending_messages = 5;
  pc.block_if_queue_full = false;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();

  ASSERT_TRUE(server_->Pause());  // no receipts until Resume
  Outcomes out(5);
  for (int i = 0; i < 5; ++i) p->SendAsync(Message::Create("x" + std::to_string(i)), out.At(i));
  EXPECT_EQ(p->pending_messages(), 5);
  const auto start = Clock::now();
  auto full = p->Send(Message::Create("one too many"));
  EXPECT_TRUE(full.status().Is(ClientErrc::kProducerQueueIsFull)) << full.status().ToString();
  EXPECT_LT(MsSince(start), 1000) << "refused at once, not blocked";
  server_->Resume();

  ASSERT_TRUE(p->Flush().ok());
  ASSERT_EQ(out.done(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(out.Get(i).ok()) << out.Get(i).status().ToString();
  EXPECT_EQ(p->pending_messages(), 0);
  EXPECT_EQ(Payloads(ReadAll(client.get(), topic, 5)), Numbered("x", 0, 4));
}

TEST_F(ClientTest, BlockedSenderResumesWhenReceiptsArrive) {
  auto client = NewClient();
  const std::string topic = Topic();
  ProducerConfig pc;
  pc.batching_enabled = false;
  pc.max_pending_messages = 2;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();

  ASSERT_TRUE(server_->Pause());
  Outcomes out(3);
  p->SendAsync(Message::Create("a"), out.At(0));
  p->SendAsync(Message::Create("b"), out.At(1));
  std::atomic<bool> third_queued{false};
  std::thread t([&] {
    p->SendAsync(Message::Create("c"), out.At(2));
    third_queued = true;
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(third_queued.load()) << "not blocked on the bound";
  EXPECT_EQ(p->pending_messages(), 2);
  server_->Resume();
  t.join();
  EXPECT_TRUE(third_queued.load());
  ASSERT_TRUE(p->Flush().ok());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(out.Get(i).ok()) << out.Get(i).status().ToString();
  EXPECT_EQ(Payloads(ReadAll(client.get(), topic, 3)), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(ClientTest, SendTimesOutWhileTheBrokerIsStopped) {
  auto client = NewClient();
  const std::string topic = Topic();
  ProducerConfig pc;
  pc.send_timeout_ms = 300;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE(p->Send(Message::Create("before")).ok());

  ASSERT_TRUE(server_->Pause());
  const auto start = Clock::now();
  auto r = p->Send(Message::Create("unknown outcome"));
  const int64_t took = MsSince(start);
  EXPECT_TRUE(r.status().Is(ClientErrc::kTimeout)) << r.status().ToString();
  EXPECT_GE(took, 290);
  EXPECT_LT(took, Ms(Scaled(3s)));
  EXPECT_EQ(p->pending_messages(), 0);
  server_->Resume();

  // The producer carries on once the broker answers again.
  auto after = p->Send(Message::Create("after"));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  const auto got = Payloads(ReadAll(client.get(), topic, 3));  // the timed-out one did reach the broker
  EXPECT_EQ(got, (std::vector<std::string>{"before", "unknown outcome", "after"}));
}

// The client closes a connection whose broker went silent (keepalive) while
// batches were in flight; the stopped broker still has those batches in its
// socket and stores them once it runs again. The client re-registers and
// re-sends them with their sequence ids: the broker must drop every copy.
TEST_F(ClientTest, ResendsPendingAfterADroppedConnectionAndTheBrokerDropsTheCopies) {
  ClientConfig cfg = Config();
  cfg.keepalive_interval_ms = 200;  // silent for 400 ms: closed
  cfg.connection_timeout_ms = 500;
  auto client = NewClient(cfg);
  const std::string topic = Topic();
  ProducerConfig pc;
  pc.producer_name = "resender";
  pc.batching_enabled = false;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(p->Send(Message::Create("m" + std::to_string(i))).ok());
  const double dups_before = server_->Metric("dlog_broker_dedup_duplicates_total");
  ASSERT_GE(dups_before, 0);

  ASSERT_TRUE(server_->Pause());
  Outcomes out(5);
  for (int i = 0; i < 5; ++i) p->SendAsync(Message::Create("m" + std::to_string(5 + i)), out.At(i));
  ASSERT_TRUE(test::WaitFor([&] { return !p->is_connected(); }, 5s)) << "the client did not drop the connection";
  server_->Resume();

  ASSERT_TRUE(p->Flush().ok());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(out.Get(i).ok()) << out.Get(i).status().ToString();
  EXPECT_TRUE(p->is_connected());
  EXPECT_EQ(p->producer_name(), "resender");
  // Every re-sent batch was recognised as a copy...
  EXPECT_GE(server_->Metric("dlog_broker_dedup_duplicates_total") - dups_before, 5);
  // ...and each message is stored once, in order, under its sequence id.
  const auto got = ReadAll(client.get(), topic, 10);
  EXPECT_EQ(Payloads(got), Numbered("m", 0, 9));
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].sequence_id(), static_cast<int64_t>(i));
    EXPECT_EQ(got[i].producer_name(), "resender");
  }
}

// As above, but the broker is killed (-9) after it stored the in-flight
// batches and restarted on the same ports and data: the client re-sends to
// the new process, which knows the batches from the log and drops the copies.
TEST_F(ClientTest, ResendsPendingAcrossAKill9AndRestartWithoutStoringTwice) {
  ClientConfig cfg = Config();
  cfg.keepalive_interval_ms = 200;
  cfg.connection_timeout_ms = 1000;
  // Reconnects wait long enough for the kill and restart to happen first.
  cfg.backoff_initial_ms = cfg.backoff_max_ms = Ms(Scaled(3s));
  cfg.operation_timeout_ms = Ms(Scaled(20s));
  auto client = NewClient(cfg);
  auto admin = NewClient();
  const std::string topic = Topic();
  ProducerConfig pc;
  pc.producer_name = "survivor";
  pc.batching_enabled = false;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::vector<MessageId> first_ids;
  for (int i = 0; i < 5; ++i) {
    auto r = p->Send(Message::Create("m" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    first_ids.push_back(*r);
  }

  ASSERT_TRUE(server_->Pause());
  Outcomes out(5);
  for (int i = 0; i < 5; ++i) p->SendAsync(Message::Create("m" + std::to_string(5 + i)), out.At(i));
  ASSERT_TRUE(test::WaitFor([&] { return !p->is_connected(); }, 5s)) << "the client did not drop the connection";
  const auto dropped = Clock::now();
  server_->Resume();
  // The old process stores the five batches it had in its socket...
  ASSERT_TRUE(test::WaitFor(
      [&] {
        auto s = admin->GetTopicStats(topic);
        return s.ok() && s->partition_stats.size() == 1 && s->partition_stats[0].records == 10;
      },
      5s));
  // ...and dies before the producer came back.
  server_->Kill9();
  ASSERT_LT(MsSince(dropped), Ms(Scaled(2s))) << "too slow: the producer may have re-sent to the old process";
  ASSERT_TRUE(server_->Start()) << server_->Stderr();

  ASSERT_TRUE(p->Flush().ok());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(out.Get(i).ok()) << out.Get(i).status().ToString();
  EXPECT_EQ(p->pending_messages(), 0);
  EXPECT_GE(server_->Metric("dlog_broker_dedup_duplicates_total"), 5) << "the new process stored copies";
  // The data survived the kill, each message once, the first five where they were.
  const auto got = ReadAll(admin.get(), topic, 10);
  EXPECT_EQ(Payloads(got), Numbered("m", 0, 9));
  for (size_t i = 0; i < got.size() && i < first_ids.size(); ++i) EXPECT_EQ(got[i].id(), first_ids[i]);
  ASSERT_TRUE(p->Close().ok());

  // The producer's sequence survived too: the same name continues after it.
  auto again = admin->CreateProducer(topic, pc);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_TRUE(again->Send(Message::Create("m10")).ok());
  const auto all = ReadAll(admin.get(), topic, 11);
  ASSERT_EQ(all.size(), 11u);
  EXPECT_EQ(all.back().payload(), "m10");
  EXPECT_EQ(all.back().sequence_id(), 10);
}

TEST_F(ClientTest, ReceivesAcksAndRefusesCumulativeOnShared) {
  auto client = NewClient();
  const std::string topic = Topic();
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kShared;
  cc.receiver_queue_size = 10;
  cc.ack_receipt_enabled = true;
  cc.initial_position = InitialPosition::kEarliest;
  auto c = client->Subscribe(topic, "sub", cc);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->is_connected());

  ProducerConfig pc;
  pc.batching_max_messages = 3;
  pc.batching_max_delay_ms = Ms(Scaled(60s));
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  Outcomes out(3);
  for (int i = 0; i < 3; ++i) {
    p->SendAsync(Message::Create("r" + std::to_string(i)).SetProperty("i", std::to_string(i)), out.At(i));
  }
  ASSERT_TRUE(p->Flush().ok());

  for (int i = 0; i < 3; ++i) {
    auto m = c->Receive(Ms(Scaled(5s)));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->payload(), "r" + std::to_string(i));
    ASSERT_TRUE(out.Get(i).ok());
    EXPECT_EQ(m->id(), *out.Get(i));
    EXPECT_EQ(m->id().batch_index(), i);
    EXPECT_EQ(m->id().batch_size(), 3);
    EXPECT_EQ(m->producer_name(), p->producer_name());
    EXPECT_EQ(m->sequence_id(), i);
    EXPECT_EQ(m->topic(), topic);
    EXPECT_GT(m->publish_time_ms(), 0);
    EXPECT_EQ(m->redelivery_count(), 0);
    ASSERT_NE(m->property("i"), nullptr);
    EXPECT_EQ(*m->property("i"), std::to_string(i));
    ASSERT_TRUE(c->Acknowledge(*m).ok());
    EXPECT_TRUE(c->AcknowledgeCumulative(m->id()).Is(ClientErrc::kNotAllowed));
  }
  // One more, received and not acked (Flush: the batch would wait for its delay).
  Outcomes one(1);
  p->SendAsync(Message::Create("unacked"), one.At(0));
  ASSERT_TRUE(p->Flush().ok());
  ASSERT_TRUE(one.Get(0).ok()) << one.Get(0).status().ToString();
  auto u = c->Receive(Ms(Scaled(5s)));
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->payload(), "unacked");
  EXPECT_TRUE(c->Receive(100).status().Is(ClientErrc::kTimeout));
  ASSERT_TRUE(c->Close().ok());
  EXPECT_TRUE(c->Receive(0).status().Is(ClientErrc::kAlreadyClosed));

  // The acks were stored: subscribing again brings back the unacked message only.
  auto c2 = client->Subscribe(topic, "sub", cc);
  ASSERT_TRUE(c2.ok()) << c2.status().ToString();
  auto again = c2->Receive(Ms(Scaled(5s)));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->payload(), "unacked");
  EXPECT_EQ(again->id(), u->id());
  EXPECT_TRUE(c2->Receive(300).status().Is(ClientErrc::kTimeout));
  ASSERT_TRUE(c2->Acknowledge(*again).ok());
  auto subs = client->ListSubscriptions(topic);
  ASSERT_TRUE(subs.ok()) << subs.status().ToString();
  ASSERT_EQ(subs->size(), 1u);
  EXPECT_EQ((*subs)[0].name, "sub");
  EXPECT_EQ((*subs)[0].type, SubscriptionType::kShared);
  EXPECT_EQ((*subs)[0].backlog_messages, 0);
  ASSERT_TRUE(c2->Close().ok());
}

// The broker pushes no more than the permits the consumer granted
// (receiver_queue_size), and more once half of them were consumed.
TEST_F(ClientTest, PrefetchIsBoundedByTheReceiverQueue) {
  auto client = NewClient();
  const std::string topic = Topic();
  ProducerConfig pc;
  pc.batching_enabled = false;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  Outcomes out(30);
  for (int i = 0; i < 30; ++i) p->SendAsync(Message::Create("q" + std::to_string(i)), out.At(i));
  ASSERT_TRUE(p->Flush().ok());

  ConsumerConfig cc;
  cc.initial_position = InitialPosition::kEarliest;
  cc.receiver_queue_size = 10;
  auto c = client->Subscribe(topic, "sub", cc);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto msg_out = [&]() -> int64_t {
    auto subs = client->ListSubscriptions(topic);
    return subs.ok() && subs->size() == 1 ? (*subs)[0].msg_out : -1;
  };
  ASSERT_TRUE(test::WaitFor([&] { return msg_out() == 10; }, 5s)) << msg_out();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(msg_out(), 10) << "pushed beyond the permits";

  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) {
    auto m = c->Receive(Ms(Scaled(5s)));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    got.emplace_back(m->payload());
  }
  // Half consumed: five more permits.
  EXPECT_TRUE(test::WaitFor([&] { return msg_out() == 15; }, 5s)) << msg_out();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(msg_out(), 15);
  while (got.size() < 30) {
    auto m = c->Receive(Ms(Scaled(5s)));
    ASSERT_TRUE(m.ok()) << "after " << got.size() << ": " << m.status().ToString();
    got.emplace_back(m->payload());
  }
  EXPECT_EQ(got, Numbered("q", 0, 29));
  EXPECT_TRUE(c->Receive(100).status().Is(ClientErrc::kTimeout));
}

TEST_F(ClientTest, NegativeAckRedeliversWithACount) {
  auto client = NewClient();
  const std::string topic = Topic();
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kShared;
  cc.initial_position = InitialPosition::kEarliest;
  cc.negative_ack_redelivery_delay_ms = 300;
  auto c = client->Subscribe(topic, "sub", cc);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ProducerConfig pc;
  pc.batching_enabled = false;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto id = p->Send(Message::Create("nacked"));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(p->Send(Message::Create("acked")).ok());

  auto m = c->Receive(Ms(Scaled(5s)));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->payload(), "nacked");
  EXPECT_EQ(m->redelivery_count(), 0);
  auto other = c->Receive(Ms(Scaled(5s)));
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(other->payload(), "acked");
  ASSERT_TRUE(c->Acknowledge(*other).ok());

  for (int round = 1; round <= 2; ++round) {
    const auto start = Clock::now();
    c->NegativeAcknowledge(*m);
    m = c->Receive(Ms(Scaled(5s)));
    ASSERT_TRUE(m.ok()) << "round " << round << ": " << m.status().ToString();
    EXPECT_GE(MsSince(start), 250) << "redelivered before the nack delay";
    EXPECT_EQ(m->payload(), "nacked");
    EXPECT_EQ(m->id(), *id);
    EXPECT_EQ(m->redelivery_count(), round);
  }
  ASSERT_TRUE(c->Acknowledge(*m).ok());
  // Acked: not redelivered again (and the acked one never was).
  EXPECT_TRUE(c->Receive(800).status().Is(ClientErrc::kTimeout));
}

TEST_F(ClientTest, AckTimeoutRedeliversWhatWasNotAcked) {
  auto client = NewClient();
  const std::string topic = Topic();
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kShared;
  cc.initial_position = InitialPosition::kEarliest;
  cc.ack_timeout_ms = 1000;
  auto c = client->Subscribe(topic, "sub", cc);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ProducerConfig pc;
  pc.batching_enabled = false;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto forgotten_id = p->Send(Message::Create("forgotten"));
  ASSERT_TRUE(forgotten_id.ok());
  ASSERT_TRUE(p->Send(Message::Create("acked")).ok());

  auto forgotten = c->Receive(Ms(Scaled(5s)));
  ASSERT_TRUE(forgotten.ok()) << forgotten.status().ToString();
  EXPECT_EQ(forgotten->payload(), "forgotten");
  const auto received_at = Clock::now();
  auto acked = c->Receive(Ms(Scaled(5s)));
  ASSERT_TRUE(acked.ok()) << acked.status().ToString();
  EXPECT_EQ(acked->payload(), "acked");
  ASSERT_TRUE(c->Acknowledge(*acked).ok());

  auto again = c->Receive(Ms(Scaled(5s)));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_GE(MsSince(received_at), 900) << "redelivered before the ack timeout";
  EXPECT_EQ(again->payload(), "forgotten");
  EXPECT_EQ(again->id(), *forgotten_id);
  EXPECT_GE(again->redelivery_count(), 1);
  ASSERT_TRUE(c->Acknowledge(*again).ok());
  EXPECT_TRUE(c->Receive(1500).status().Is(ClientErrc::kTimeout)) << "an acked message came back";
}

TEST_F(ClientTest, ReaderHasMessageAvailable) {
  auto client = NewClient();
  const std::string topic = Topic();
  ASSERT_TRUE(client->CreateTopic(topic, 2).ok());
  ProducerConfig pc;
  pc.batching_enabled = false;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();

  // Nothing yet: an empty topic has nothing available.
  ReaderConfig from_start;
  from_start.start_message_id = MessageId::Earliest();
  auto empty = client->CreateReader(topic, from_start);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(Or(empty->HasMessageAvailable(), true), false);
  ASSERT_TRUE(empty->Close().ok());

  std::vector<MessageId> ids;
  for (int i = 0; i < 4; ++i) {
    auto r = p->Send(Message::Create("h" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ids.push_back(*r);
  }
  auto reader = client->CreateReader(topic, from_start);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ(reader->topic(), topic);
  std::set<std::string> read;
  for (int i = 0; i < 4; ++i) {
    auto has = reader->HasMessageAvailable();
    ASSERT_TRUE(has.ok()) << has.status().ToString();
    EXPECT_TRUE(*has) << "after " << i << " of 4";
    auto m = reader->ReadNext(Ms(Scaled(5s)));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    read.insert(std::string(m->payload()));
  }
  EXPECT_EQ(read, (std::set<std::string>{"h0", "h1", "h2", "h3"}));
  EXPECT_EQ(Or(reader->HasMessageAvailable(), true), false);
  EXPECT_TRUE(reader->ReadNext(200).status().Is(ClientErrc::kTimeout));

  // A new message makes it true again; reading it makes it false.
  ASSERT_TRUE(p->Send(Message::Create("h4")).ok());
  EXPECT_EQ(Or(reader->HasMessageAvailable(), false), true);
  auto m = reader->ReadNext(Ms(Scaled(5s)));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->payload(), "h4");
  EXPECT_EQ(Or(reader->HasMessageAvailable(), true), false);
  ASSERT_TRUE(reader->Close().ok());
  EXPECT_TRUE(reader->ReadNext(0).status().Is(ClientErrc::kAlreadyClosed));

  // From Latest: nothing available until something new is sent.
  ReaderConfig from_end;
  from_end.start_message_id = MessageId::Latest();
  auto tail = client->CreateReader(topic, from_end);
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  EXPECT_EQ(Or(tail->HasMessageAvailable(), true), false);
  ASSERT_TRUE(p->Send(Message::Create("h5")).ok());
  EXPECT_EQ(Or(tail->HasMessageAvailable(), false), true);
  auto t = tail->ReadNext(Ms(Scaled(5s)));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->payload(), "h5");

  // From a message id: that partition only, inclusive or not.
  for (bool inclusive : {true, false}) {
    ReaderConfig at;
    at.start_message_id = ids[0];
    at.start_message_id_inclusive = inclusive;
    auto r = client->CreateReader(topic, at);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> got;
    while (Or(r->HasMessageAvailable(), false)) {
      auto n = r->ReadNext(Ms(Scaled(5s)));
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      EXPECT_EQ(n->partition(), ids[0].partition());
      got.emplace_back(n->payload());
    }
    // h0 and h2 went to ids[0]'s partition (round robin), h4 too.
    const std::vector<std::string> want =
        inclusive ? std::vector<std::string>{"h0", "h2", "h4"} : std::vector<std::string>{"h2", "h4"};
    EXPECT_EQ(got, want) << "inclusive=" << inclusive;
  }
}

TEST_F(ClientTest, CompressedBatchesEndToEnd) {
  auto client = NewClient();
  struct Case {
    CompressionType type;
    const char* name;
  };
  for (const Case& k : {Case{CompressionType::kNone, "none"}, Case{CompressionType::kLz4, "lz4"},
                        Case{CompressionType::kZstd, "zstd"}}) {
    SCOPED_TRACE(k.name);
    const std::string topic = Topic(std::string("-") + k.name);
    ProducerConfig pc;
    pc.compression = k.type;
    pc.batching_max_messages = 50;
    pc.batching_max_delay_ms = Ms(Scaled(60s));
    auto p = client->CreateProducer(topic, pc);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    std::vector<std::string> payloads;
    size_t raw = 0;
    Outcomes out(50);
    for (int i = 0; i < 50; ++i) {
      std::string payload = "message " + std::to_string(i) + ": ";
      while (payload.size() < 1000) payload += "all work and no play makes a dull log; ";
      raw += payload.size();
      payloads.push_back(payload);
      p->SendAsync(Message::Create(payload).SetKey("k").SetProperty("n", std::to_string(i)), out.At(i));
    }
    ASSERT_TRUE(p->Flush().ok());
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(out.Get(i).ok()) << out.Get(i).status().ToString();
      EXPECT_EQ(out.Get(i)->batch_size(), 50);  // one batch
    }
    // What the broker stored is the compressed batch.
    auto stats = client->GetTopicStats(topic);
    ASSERT_TRUE(stats.ok()) << stats.status().ToString();
    ASSERT_EQ(stats->partition_stats.size(), 1u);
    EXPECT_EQ(stats->partition_stats[0].records, 1);
    EXPECT_EQ(stats->partition_stats[0].msg_in, 50);
    const auto bytes = static_cast<size_t>(stats->partition_stats[0].bytes_in);
    if (k.type == CompressionType::kNone) {
      EXPECT_GT(bytes, raw);
    } else {
      EXPECT_LT(bytes, raw / 5) << "stored " << bytes << " bytes of " << raw;
    }
    // And it comes back whole.
    const auto got = ReadAll(client.get(), topic, 50);
    ASSERT_EQ(got.size(), 50u);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].payload(), payloads[i]);
      EXPECT_EQ(got[i].key(), "k");
      ASSERT_NE(got[i].property("n"), nullptr);
      EXPECT_EQ(*got[i].property("n"), std::to_string(i));
    }
    ASSERT_TRUE(p->Close().ok());
  }
}

TEST_F(ClientTest, TopicErrorsFromTheBroker) {
  // `dlogd standalone` creates topics on first use (it has no flag to turn
  // that off), so a producer cannot meet a missing topic; the calls that do
  // not create one can.
  auto client = NewClient();
  const std::string missing = Topic("-missing");
  EXPECT_TRUE(client->GetTopicStats(missing).status().Is(ClientErrc::kTopicNotFound))
      << client->GetTopicStats(missing).status().ToString();
  EXPECT_TRUE(client->DeleteTopic(missing).Is(ClientErrc::kTopicNotFound)) << client->DeleteTopic(missing).ToString();
  // Refused by the client (not tenant/namespace/topic) and by the broker (a bad character).
  EXPECT_TRUE(client->CreateProducer("not-a-topic").status().Is(ClientErrc::kInvalidTopicName));
  auto bad = client->CreateProducer("public/client-test/bad name!");
  EXPECT_TRUE(bad.status().Is(ClientErrc::kInvalidTopicName)) << bad.status().ToString();
  auto bad_sub = client->Subscribe("public/client-test/bad name!", "sub");
  EXPECT_TRUE(bad_sub.status().Is(ClientErrc::kInvalidTopicName)) << bad_sub.status().ToString();
  // Made once, not twice.
  const std::string made = Topic("-made");
  ASSERT_TRUE(client->CreateTopic(made, 2).ok());
  EXPECT_TRUE(client->CreateTopic(made, 2).Is(ClientErrc::kTopicExists));
  auto listed = client->ListTopics("public/client-test");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_NE(std::find(listed->begin(), listed->end(), made), listed->end());
  EXPECT_EQ(std::find(listed->begin(), listed->end(), missing), listed->end());
  ASSERT_TRUE(client->DeleteTopic(made).ok());
  EXPECT_TRUE(client->GetTopicStats(made).status().Is(ClientErrc::kTopicNotFound));
}

TEST_F(ClientTest, BlockingCallsOnTheCallbackThreadAreRefused) {
  auto client = NewClient();
  const std::string topic = Topic();
  // An admin call from an admin callback.
  std::promise<Status> inner;
  client->CreateTopicAsync(topic, 1, [&](Status st) {
    EXPECT_TRUE(st.ok()) << st.ToString();
    inner.set_value(client->CreateTopic(topic + "-other", 1));
  });
  auto f = inner.get_future();
  ASSERT_EQ(f.wait_for(Scaled(10s)), std::future_status::ready) << "deadlocked";
  EXPECT_TRUE(f.get().Is(ClientErrc::kIllegalState));

  // Send, Flush and Close from a send callback; SendAsync there never blocks.
  ProducerConfig pc;
  pc.batching_enabled = false;
  pc.max_pending_messages = 1;
  auto p = client->CreateProducer(topic, pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  struct Seen {
    Status send, flush, close, close_client;
    Status async_full;
  };
  std::promise<Seen> seen;
  p->SendAsync(Message::Create("first"), [&](Result<MessageId> r) {
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    Seen s;
    s.send = p->Send(Message::Create("nested")).status();
    s.flush = p->Flush();
    s.close = p->Close();
    s.close_client = client->Close();
    // "first" no longer counts against the bound of 1 here: "second" fills
    // it, and "third" must fail at once rather than block this thread.
    p->SendAsync(Message::Create("second"), [](Result<MessageId>) {});
    p->SendAsync(Message::Create("third"), [&s](Result<MessageId> r3) { s.async_full = r3.status(); });
    seen.set_value(s);
  });
  auto sf = seen.get_future();
  ASSERT_EQ(sf.wait_for(Scaled(10s)), std::future_status::ready) << "deadlocked";
  const Seen s = sf.get();
  EXPECT_TRUE(s.send.Is(ClientErrc::kIllegalState)) << s.send.ToString();
  EXPECT_TRUE(s.flush.Is(ClientErrc::kIllegalState)) << s.flush.ToString();
  EXPECT_TRUE(s.close.Is(ClientErrc::kIllegalState)) << s.close.ToString();
  EXPECT_TRUE(s.close_client.Is(ClientErrc::kIllegalState)) << s.close_client.ToString();
  EXPECT_TRUE(s.async_full.Is(ClientErrc::kProducerQueueIsFull)) << s.async_full.ToString();
  ASSERT_TRUE(p->Flush().ok());

  // Receive from a message listener.
  std::promise<Status> from_listener;
  std::atomic<bool> once{false};
  ConsumerConfig cc;
  cc.initial_position = InitialPosition::kEarliest;
  cc.message_listener = [&](Consumer& consumer, const Message& m) {
    if (once.exchange(true)) return;
    EXPECT_TRUE(consumer.Acknowledge(m).Is(ClientErrc::kIllegalState));
    from_listener.set_value(consumer.Receive(0).status());
  };
  auto c = client->Subscribe(topic, "sub", cc);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto lf = from_listener.get_future();
  ASSERT_EQ(lf.wait_for(Scaled(10s)), std::future_status::ready) << "no message for the listener";
  EXPECT_TRUE(lf.get().Is(ClientErrc::kIllegalState));

  ASSERT_TRUE(client->Close().ok());
  EXPECT_TRUE(client->CreateTopic(topic + "-late", 1).Is(ClientErrc::kAlreadyClosed));
  EXPECT_TRUE(p->Send(Message::Create("late")).status().Is(ClientErrc::kAlreadyClosed));
}

TEST(ClientNoBrokerTest, ConnectErrorWhenNothingListens) {
  ClientConfig c;
  c.service_url = "dlog://127.0.0.1:" + std::to_string(FreePort());
  c.operation_timeout_ms = 500;
  c.backoff_initial_ms = 20;
  c.backoff_max_ms = 100;
  auto client = Client::Create(c);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  const auto start = Clock::now();
  auto p = (*client)->CreateProducer("public/client-test/nowhere");
  EXPECT_TRUE(p.status().Is(ClientErrc::kConnectError)) << p.status().ToString();
  auto s = (*client)->Subscribe("public/client-test/nowhere", "sub");
  EXPECT_TRUE(s.status().Is(ClientErrc::kConnectError)) << s.status().ToString();
  EXPECT_LT(MsSince(start), Ms(Scaled(5s)));
}

}  // namespace
}  // namespace dlog::client
