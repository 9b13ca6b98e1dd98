// The client library against a scripted in-process fake broker (speaks
// broker.proto over net::TcpServer): registration, batching and routing,
// the pending bound, send timeouts, re-sending after a dropped connection,
// receiving and acking. The real broker's tests live in tests/broker/.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "client/lib/hash.h"
#include "common/thread_annotations.h"
#include "dlog/dlog.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"
#include "protocol/message_batch.h"

namespace dlog::client {
namespace {

class FakeBroker final : public net::FrameHandler {
 public:
  FakeBroker() : loop_("fake-broker") {
    loop_.Start();
    net::ServerOptions o;
    o.listen = HostPort{"127.0.0.1", 0};
    server_ = std::make_unique<net::TcpServer>(&loop_, o, this);
    EXPECT_TRUE(server_->Start().ok());
  }
  ~FakeBroker() override {
    server_->Stop();
    loop_.Stop();
  }

  std::string url() const { return "dlog://127.0.0.1:" + std::to_string(server_->port()); }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  struct SendSeen {
    uint64_t producer_id;
    int32_t partition;
    int64_t seq;
    int64_t highest;
    int32_t num;
    std::string producer_name;
    std::string batch;
  };

  // Knobs (set before use).
  std::atomic<int> partitions{1};
  std::atomic<bool> hold_receipts{false};
  std::atomic<bool> drop_connection_on_first_send{false};

  std::vector<SendSeen> sends() {
    MutexLock l(&mu_);
    return sends_;
  }
  std::vector<std::string> producer_names_registered() {
    MutexLock l(&mu_);
    return registered_;
  }
  uint32_t permits() {
    MutexLock l(&mu_);
    return permits_;
  }
  std::vector<proto::Ack> acks() {
    MutexLock l(&mu_);
    return acks_;
  }
  int connections() const { return connections_.load(); }

  // Sends the held receipts.
  void ReleaseReceipts() {
    loop_.RunSync([this] {
      hold_receipts = false;
      for (auto& [conn, cmd] : held_) conn->SendFrame(cmd, {});
      held_.clear();
    });
  }

  // Pushes a batch of `n` messages to the last subscribed consumer.
  void PushMessages(int n, int64_t record_seq) {
    loop_.RunSync([&] {
      proto::BatchMetadata meta;
      meta.set_producer_name("someone");
      meta.set_sequence_id(record_seq * 10);
      meta.set_highest_sequence_id(record_seq * 10 + n - 1);
      meta.set_num_messages(n);
      meta.set_publish_time_ms(42);
      std::string body;
      for (int i = 0; i < n; ++i) {
        proto::SingleMessageMetadata sm;
        std::string payload = "m" + std::to_string(record_seq) + "-" + std::to_string(i);
        sm.set_payload_size(static_cast<uint32_t>(payload.size()));
        protocol::AppendBatchMessage(sm, payload, &body);
      }
      meta.set_uncompressed_size(static_cast<uint32_t>(body.size()));
      std::string batch;
      protocol::AppendBatchMetadata(meta, &batch);
      batch += body;
      proto::BaseCommand cmd;
      auto* m = cmd.mutable_message();
      m->set_consumer_id(consumer_id_);
      m->mutable_message_id()->set_partition(0);
      m->mutable_message_id()->set_segment_seq(1);
      m->mutable_message_id()->set_entry(record_seq);
      m->mutable_message_id()->set_record_seq(record_seq);
      m->mutable_message_id()->set_batch_index(-1);
      m->mutable_message_id()->set_batch_size(n);
      consumer_conn_->SendFrame(cmd, batch);
    });
  }

  void OnOpen(const net::ConnectionPtr&) override { connections_.fetch_add(1); }
  void OnProtocolError(const net::ConnectionPtr&, const Status&) override {}

  void OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) override {
    proto::BaseCommand in;
    ASSERT_TRUE(in.ParseFromArray(header.data(), static_cast<int>(header.size())));
    proto::BaseCommand out;
    switch (in.command_case()) {
      case proto::BaseCommand::kConnect:
        out.mutable_connected()->set_protocol_version(1);
        out.mutable_connected()->set_max_message_size(1u << 20);
        break;
      case proto::BaseCommand::kPartitionedMetadata:
        if (in.partitioned_metadata().topic() == "t/n/missing") {
          Error(&out, in.partitioned_metadata().request_id(), proto::SERVER_TOPIC_NOT_FOUND, "no such topic");
        } else {
          out.mutable_partitioned_metadata_response()->set_request_id(in.partitioned_metadata().request_id());
          out.mutable_partitioned_metadata_response()->set_partitions(partitions.load());
        }
        break;
      case proto::BaseCommand::kLookup:
        out.mutable_lookup_response()->set_request_id(in.lookup().request_id());
        out.mutable_lookup_response()->set_broker_address(address());
        break;
      case proto::BaseCommand::kProducer: {
        MutexLock l(&mu_);
        std::string name = in.producer().producer_name();
        if (name.empty()) name = "fake-" + std::to_string(++names_);
        registered_.push_back(name);
        producer_partition_[in.producer().producer_id()] = in.producer().partition();
        out.mutable_producer_success()->set_request_id(in.producer().request_id());
        out.mutable_producer_success()->set_producer_name(name);
        out.mutable_producer_success()->set_last_sequence_id(-1);
        break;
      }
      case proto::BaseCommand::kSend: {
        const auto& s = in.send();
        proto::BatchMetadata meta;
        std::string_view body;
        EXPECT_TRUE(protocol::ParseBatchMetadata(payload.view(), &meta, &body).ok());
        EXPECT_EQ(meta.sequence_id(), s.sequence_id());
        EXPECT_EQ(meta.num_messages(), s.num_messages());
        int32_t partition;
        {
          MutexLock l(&mu_);
          partition = producer_partition_[s.producer_id()];
          sends_.push_back(SendSeen{s.producer_id(), partition, s.sequence_id(), s.highest_sequence_id(),
                                    s.num_messages(), meta.producer_name(), payload.ToString()});
        }
        if (drop_connection_on_first_send.exchange(false)) {
          conn->Close();
          return;
        }
        auto* r = out.mutable_send_receipt();
        r->set_producer_id(s.producer_id());
        r->set_sequence_id(s.sequence_id());
        r->set_highest_sequence_id(s.highest_sequence_id());
        r->mutable_message_id()->set_partition(partition);
        r->mutable_message_id()->set_segment_seq(1);
        r->mutable_message_id()->set_entry(next_record_);
        r->mutable_message_id()->set_record_seq(next_record_++);
        r->mutable_message_id()->set_batch_index(-1);
        if (hold_receipts) {
          held_.emplace_back(conn, out);
          return;
        }
        break;
      }
      case proto::BaseCommand::kSubscribe:
        consumer_conn_ = conn;
        consumer_id_ = in.subscribe().consumer_id();
        out.mutable_success()->set_request_id(in.subscribe().request_id());
        break;
      case proto::BaseCommand::kFlow: {
        MutexLock l(&mu_);
        permits_ += in.flow().message_permits();
        return;
      }
      case proto::BaseCommand::kAck: {
        MutexLock l(&mu_);
        acks_.push_back(in.ack());
        if (in.ack().request_id() == 0) return;
        out.mutable_ack_response()->set_consumer_id(in.ack().consumer_id());
        out.mutable_ack_response()->set_request_id(in.ack().request_id());
        break;
      }
      case proto::BaseCommand::kCloseProducer:
        out.mutable_success()->set_request_id(in.close_producer().request_id());
        break;
      case proto::BaseCommand::kCloseConsumer:
        out.mutable_success()->set_request_id(in.close_consumer().request_id());
        break;
      case proto::BaseCommand::kCreateTopic:
        out.mutable_success()->set_request_id(in.create_topic().request_id());
        break;
      default:
        return;
    }
    conn->SendFrame(out, {});
  }

 private:
  static void Error(proto::BaseCommand* out, uint64_t rid, proto::ServerError code, const std::string& text) {
    out->mutable_error()->set_request_id(rid);
    out->mutable_error()->set_error(code);
    out->mutable_error()->set_message(text);
  }

  net::EventLoop loop_;
  std::unique_ptr<net::TcpServer> server_;
  std::atomic<int> connections_{0};
  // Loop thread.
  int64_t next_record_ = 0;
  std::vector<std::pair<net::ConnectionPtr, proto::BaseCommand>> held_;
  net::ConnectionPtr consumer_conn_;
  uint64_t consumer_id_ = 0;
  Mutex mu_;
  int names_ DLOG_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, int32_t> producer_partition_ DLOG_GUARDED_BY(mu_);
  std::vector<SendSeen> sends_ DLOG_GUARDED_BY(mu_);
  std::vector<std::string> registered_ DLOG_GUARDED_BY(mu_);
  uint32_t permits_ DLOG_GUARDED_BY(mu_) = 0;
  std::vector<proto::Ack> acks_ DLOG_GUARDED_BY(mu_);
};

std::unique_ptr<Client> NewClient(const FakeBroker& b, int64_t op_timeout_ms = 5000) {
  ClientConfig c;
  c.service_url = b.url();
  c.operation_timeout_ms = op_timeout_ms;
  c.backoff_initial_ms = 20;
  c.backoff_max_ms = 100;
  auto r = Client::Create(c);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

TEST(FakeBrokerTest, ProducesBatchesRoundRobinAndByKey) {
  FakeBroker b;
  b.partitions = 3;
  auto client = NewClient(b);
  ProducerConfig pc;
  pc.batching_max_messages = 5;
  pc.batching_max_delay_ms = 50;
  auto p = client->CreateProducer("t/n/topic", pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->partitions(), 3);
  EXPECT_TRUE(p->is_connected());
  EXPECT_EQ(p->producer_name(), "fake-1");  // broker-assigned name of partition 0

  Mutex mu;
  std::vector<MessageId> ids;
  for (int i = 0; i < 30; ++i) {
    p->SendAsync(Message::Create("m" + std::to_string(i)), [&](Result<MessageId> r) {
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      MutexLock l(&mu);
      ids.push_back(*r);
    });
  }
  for (int i = 0; i < 6; ++i) {
    auto r = p->Send(Message::Create("keyed").SetKey("key-1"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->partition(), PartitionForKey("key-1", 3));
  }
  ASSERT_TRUE(p->Flush().ok());
  {
    MutexLock l(&mu);
    EXPECT_EQ(ids.size(), 30u);
  }
  std::set<int32_t> partitions;
  int messages = 0;
  for (const auto& s : b.sends()) {
    partitions.insert(s.partition);
    messages += s.num;
    EXPECT_LE(s.num, 5);
    EXPECT_EQ(s.highest - s.seq + 1, s.num);
  }
  EXPECT_EQ(messages, 36);
  EXPECT_EQ(partitions.size(), 3u);  // round robin per batch
  EXPECT_GE(p->last_sequence_id(), 0);
  ASSERT_TRUE(p->Close().ok());
  EXPECT_TRUE(p->Send(Message::Create("late")).status().Is(ClientErrc::kAlreadyClosed));
}

TEST(FakeBrokerTest, PendingBoundFailsWhenNotBlocking) {
  FakeBroker b;
  b.hold_receipts = true;
  auto client = NewClient(b);
  ProducerConfig pc;
  pc.batching_enabled = false;
  pc.max_pending_messages = 5;
  pc.block_if_queue_full = false;
  auto p = client->CreateProducer("t/n/topic", pc);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::atomic<int> ok{0};
  for (int i = 0; i < 5; ++i) {
    p->SendAsync(Message::Create("x"), [&](Result<MessageId> r) { ok += r.ok() ? 1 : 0; });
  }
  EXPECT_EQ(p->pending_messages(), 5);
  auto full = p->Send(Message::Create("one too many"));
  EXPECT_TRUE(full.status().Is(ClientErrc::kProducerQueueIsFull)) << full.status().ToString();
  b.ReleaseReceipts();
  ASSERT_TRUE(p->Flush().ok());
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(p->pending_messages(), 0);
}

TEST(FakeBrokerTest, BlockedSenderResumesWhenReceiptsArrive) {
  FakeBroker b;
  b.hold_receipts = true;
  auto client = NewClient(b);
  ProducerConfig pc;
  pc.batching_enabled = false;
  pc.max_pending_messages = 2;
  auto p = client->CreateProducer("t/n/topic", pc);
  ASSERT_TRUE(p.ok());
  p->SendAsync(Message::Create("a"), [](Result<MessageId>) {});
  p->SendAsync(Message::Create("b"), [](Result<MessageId>) {});
  std::atomic<bool> third_queued{false};
  std::thread t([&] {
    p->SendAsync(Message::Create("c"), [](Result<MessageId>) {});
    third_queued = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(third_queued.load());  // blocked on the bound
  b.ReleaseReceipts();
  t.join();
  EXPECT_TRUE(third_queued.load());
  ASSERT_TRUE(p->Flush().ok());
}

TEST(FakeBrokerTest, SendTimeout) {
  FakeBroker b;
  b.hold_receipts = true;
  auto client = NewClient(b);
  ProducerConfig pc;
  pc.send_timeout_ms = 300;
  auto p = client->CreateProducer("t/n/topic", pc);
  ASSERT_TRUE(p.ok());
  auto r = p->Send(Message::Create("x"));
  EXPECT_TRUE(r.status().Is(ClientErrc::kTimeout)) << r.status().ToString();
}

TEST(FakeBrokerTest, ResendsPendingWithTheSameSequenceIdsAfterAConnectionDrop) {
  FakeBroker b;
  b.drop_connection_on_first_send = true;
  auto client = NewClient(b);
  ProducerConfig pc;
  pc.producer_name = "mine";
  auto p = client->CreateProducer("t/n/topic", pc);
  ASSERT_TRUE(p.ok());
  auto r = p->Send(Message::Create("survives"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto sends = b.sends();
  ASSERT_EQ(sends.size(), 2u);
  EXPECT_EQ(sends[0].seq, sends[1].seq);
  EXPECT_EQ(sends[0].batch, sends[1].batch);
  EXPECT_EQ(sends[1].producer_name, "mine");
  EXPECT_EQ(b.producer_names_registered(), (std::vector<std::string>{"mine", "mine"}));
  EXPECT_GE(b.connections(), 2);
}

TEST(FakeBrokerTest, ReceivesAcksAndRefusesCumulativeOnShared) {
  FakeBroker b;
  auto client = NewClient(b);
  ConsumerConfig cc;
  cc.subscription_type = SubscriptionType::kShared;
  cc.receiver_queue_size = 10;
  cc.ack_receipt_enabled = true;
  auto c = client->Subscribe("t/n/topic", "sub", cc);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (int i = 0; i < 50 && b.permits() < 10; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(b.permits(), 10u);
  b.PushMessages(3, 7);
  for (int i = 0; i < 3; ++i) {
    auto m = c->Receive(2000);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->payload(), "m7-" + std::to_string(i));
    EXPECT_EQ(m->id(), MessageId(0, 1, 7, 0, 7, i, 3));
    EXPECT_EQ(m->producer_name(), "someone");
    EXPECT_EQ(m->sequence_id(), 70 + i);
    ASSERT_TRUE(c->Acknowledge(*m).ok());
    EXPECT_TRUE(c->AcknowledgeCumulative(m->id()).Is(ClientErrc::kNotAllowed));
  }
  EXPECT_EQ(b.acks().size(), 3u);
  EXPECT_TRUE(c->Receive(50).status().Is(ClientErrc::kTimeout));
  ASSERT_TRUE(c->Close().ok());
  EXPECT_TRUE(c->Receive(0).status().Is(ClientErrc::kAlreadyClosed));
}

TEST(FakeBrokerTest, ErrorsAndThreadRules) {
  FakeBroker b;
  auto client = NewClient(b);
  EXPECT_TRUE(client->CreateProducer("t/n/missing").status().Is(ClientErrc::kTopicNotFound));
  EXPECT_TRUE(client->CreateProducer("not-a-topic").status().Is(ClientErrc::kInvalidTopicName));
  // A blocking call from a callback is refused, not deadlocked.
  std::promise<Status> inner;
  client->CreateTopicAsync("t/n/new", 1, [&](Status st) {
    EXPECT_TRUE(st.ok());
    inner.set_value(client->CreateTopic("t/n/other", 1));
  });
  EXPECT_TRUE(inner.get_future().get().Is(ClientErrc::kIllegalState));
  ASSERT_TRUE(client->Close().ok());
  EXPECT_TRUE(client->CreateTopic("t/n/x", 1).Is(ClientErrc::kAlreadyClosed));
}

TEST(FakeBrokerTest, NothingListening) {
  uint16_t port;
  {
    FakeBroker b;  // learn a free port, then let it go
    port = static_cast<uint16_t>(std::stoi(b.address().substr(10)));
  }
  ClientConfig c;
  c.service_url = "dlog://127.0.0.1:" + std::to_string(port);
  c.operation_timeout_ms = 500;
  auto client = Client::Create(c);
  ASSERT_TRUE(client.ok());
  const auto start = std::chrono::steady_clock::now();
  auto p = (*client)->CreateProducer("t/n/topic");
  EXPECT_TRUE(p.status().Is(ClientErrc::kConnectError)) << p.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

}  // namespace
}  // namespace dlog::client
