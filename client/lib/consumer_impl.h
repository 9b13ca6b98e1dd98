// ConsumerImpl: a consumer (or reader: durable == false) of one topic —
// the receive queue shared by its partitions, permits, acks, negative acks
// and the ack-timeout tracker; and one PartitionConsumer per partition (its
// subscription with the partition's owner and its reconnects).
//
// Threading: the public entry points run on any thread; the queue, the
// trackers and the ack inbox are guarded by mu_. PartitionConsumers and
// everything they call run on the loop thread. User callbacks are never
// called with mu_ held.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/lib/connection.h"
#include "common/thread_annotations.h"
#include "dlog/config.h"
#include "dlog/consumer.h"

namespace dlog::client {

class ClientImpl;
class ConsumerImpl;

class PartitionConsumer final : public BrokerConnection::Listener {
 public:
  PartitionConsumer(ConsumerImpl* parent, int32_t idx, int32_t partition, int permits);
  ~PartitionConsumer();

  void Connect();
  bool ready() const { return state_ == State::kReady; }
  uint64_t epoch() const { return epoch_; }
  int32_t partition() const { return partition_; }
  int permits() const { return permits_; }
  // Sends `cmd` (built with this consumer's id) if subscribed; false otherwise.
  bool SendCommand(proto::BaseCommand* cmd);
  void SendFlow(uint32_t n, uint64_t epoch);
  // A request naming this consumer: fill(cmd, request_id, consumer_id).
  void Request(const std::function<void(proto::BaseCommand*, uint64_t, uint64_t)>& fill,
               std::function<void(Result<proto::BaseCommand>)> cb);
  void CloseOnBroker(std::function<void()> done);
  void MarkClosed();
  uint64_t consumer_id() const { return consumer_id_; }

  // BrokerConnection::Listener:
  void OnCommand(BrokerConnection* conn, const proto::BaseCommand& cmd, const Slice& payload) override;
  void OnConnectionClosed(BrokerConnection* conn, const Status& why) override;

 private:
  enum class State { kInit, kConnecting, kReady, kClosed, kFailed };
  void Subscribe(std::shared_ptr<BrokerConnection> conn, uint64_t epoch);
  void Disconnected(const Status& why);
  void Fatal(const Status& st);
  // Ends the current attempt: a new epoch, no longer ready, off its connection.
  void Detach();

  ConsumerImpl* const parent_;
  ClientImpl* const client_;
  const int32_t idx_;
  const int32_t partition_;
  const int permits_;
  State state_ = State::kInit;
  uint64_t epoch_ = 0;
  int attempt_ = 0;
  bool created_ = false;
  std::shared_ptr<BrokerConnection> conn_;
  uint64_t consumer_id_ = 0;
  std::vector<Message> scratch_;
};

class ConsumerImpl : public std::enable_shared_from_this<ConsumerImpl> {
 public:
  ConsumerImpl(std::shared_ptr<ClientImpl> client, std::string topic, std::string subscription, ConsumerConfig config,
               bool durable, ReaderConfig reader);
  ~ConsumerImpl();

  void Start(std::function<void(Status)> done);  // loop thread

  // Any thread.
  Result<Message> Receive(int64_t timeout_ms);
  void ReceiveAsync(Consumer::ReceiveCallback cb);
  void AckAsync(const MessageId& id, bool cumulative, std::function<void(Status)> cb);
  void Nack(const MessageId& id);
  void RedeliverAll();
  void SeekAsync(std::optional<MessageId> id, int64_t publish_time_ms, std::function<void(Status)> cb);
  void GetLastIdsAsync(std::function<void(Result<std::vector<MessageId>>)> cb);
  void HasMessageAvailableAsync(std::function<void(Result<bool>)> cb);
  void UnsubscribeAsync(std::function<void(Status)> cb);
  void CloseAsync(std::function<void(Status)> cb);
  const std::string& topic() const { return topic_; }
  const std::string& subscription() const { return subscription_; }
  int32_t partitions() const { return num_partitions_.load(); }
  bool connected() const;
  ClientImpl* client() const { return client_.get(); }

  // Loop thread, from PartitionConsumer.
  PartitionConsumer* part(int32_t idx) { return parts_[static_cast<size_t>(idx)].get(); }
  const ConsumerConfig& config() const { return config_; }
  bool durable() const { return durable_; }
  const std::shared_ptr<const std::string>& topic_ptr() const { return topic_ptr_; }
  void FillSubscribe(int32_t idx, proto::Subscribe* s);
  void OnPartitionCreated(int32_t idx, const Status& st);
  void OnSubscribed(int32_t idx, uint64_t epoch);
  void OnReadyChanged(int delta) { ready_partitions_.fetch_add(delta); }
  // Messages of one batch (moved from), plus permits used by skipped indexes.
  void OnMessages(int32_t idx, uint64_t epoch, std::vector<Message>* msgs, int32_t skipped);
  void OnActiveChange(int32_t partition, bool active);
  int64_t create_deadline() const { return create_deadline_; }

 private:
  struct Queued {
    Message msg;
    int32_t idx;
  };
  struct AckRequest {
    MessageId id;
    bool cumulative;
    std::function<void(Status)> cb;
  };
  struct Flow {
    int32_t idx;
    uint64_t epoch;
    uint32_t n;
  };

  // Index of the PartitionConsumer serving `partition`, or -1.
  int32_t IndexOf(int32_t partition) const;
  void Dequeued(const Queued& q, std::vector<Flow>* flows) DLOG_REQUIRES(mu_);
  void SendFlows(std::vector<Flow> flows);
  // Drops queued messages of `idx`; returns how many.
  uint32_t DropQueued(int32_t idx) DLOG_REQUIRES(mu_);
  void DrainAcks();
  void Tick();
  // Whether a partition's last id is past what was read (reader semantics).
  bool HasAfter(const std::vector<MessageId>& last_ids) DLOG_REQUIRES(mu_);
  void Redeliver(const std::vector<MessageId>& ids);
  void FinishClose(const Status& why, bool unsubscribed);

  std::shared_ptr<ClientImpl> client_;
  const std::string topic_;
  const std::shared_ptr<const std::string> topic_ptr_;
  const std::string subscription_;
  const ConsumerConfig config_;
  const bool durable_;
  const ReaderConfig reader_;
  std::atomic<int32_t> num_partitions_{0};
  std::atomic<int> ready_partitions_{0};
  std::atomic<int> part_count_{0};
  int32_t only_partition_ = -1;  // a reader started at a message id reads one partition

  mutable Mutex mu_;
  CondVar cv_;
  std::deque<Queued> queue_ DLOG_GUARDED_BY(mu_);
  std::deque<Consumer::ReceiveCallback> receivers_ DLOG_GUARDED_BY(mu_);
  bool closed_ DLOG_GUARDED_BY(mu_) = false;
  std::vector<uint64_t> epochs_ DLOG_GUARDED_BY(mu_);
  std::vector<uint32_t> consumed_ DLOG_GUARDED_BY(mu_);
  std::vector<uint32_t> thresholds_ DLOG_GUARDED_BY(mu_);
  std::vector<std::optional<MessageId>> last_dequeued_ DLOG_GUARDED_BY(mu_);
  std::vector<std::optional<MessageId>> reader_start_ DLOG_GUARDED_BY(mu_);
  std::map<MessageId, int64_t> unacked_ DLOG_GUARDED_BY(mu_);  // ack timeout: id -> deadline
  std::vector<std::pair<MessageId, int64_t>> nacks_ DLOG_GUARDED_BY(mu_);
  std::vector<AckRequest> ack_inbox_ DLOG_GUARDED_BY(mu_);
  bool acks_posted_ DLOG_GUARDED_BY(mu_) = false;

  // Loop thread only.
  std::vector<std::unique_ptr<PartitionConsumer>> parts_;
  std::vector<AckRequest> acks_draining_;
  int64_t create_deadline_ = 0;
  int creating_ = 0;
  Status create_error_;
  std::function<void(Status)> created_cb_;
  uint64_t tick_timer_ = 0;
  bool closing_ = false;
  bool finished_ = false;
  std::vector<std::function<void(Status)>> close_cbs_;
};

}  // namespace dlog::client
