// ProducerImpl: the producer of one topic — routing, the pending bound, and
// one PartitionProducer per partition (its batch, its window of pending
// batches, its registration with the partition's owner and reconnects).
//
// Threading: SendAsync/FlushAsync/CloseAsync and the accessors run on any
// thread; messages cross to the loop through a mutex-guarded inbox drained
// by one posted task per burst. Everything else runs on the loop thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/lib/batch.h"
#include "client/lib/connection.h"
#include "common/thread_annotations.h"
#include "dlog/config.h"
#include "dlog/producer.h"

namespace dlog::client {

class ClientImpl;
class ProducerImpl;

class PartitionProducer final : public BrokerConnection::Listener {
 public:
  PartitionProducer(ProducerImpl* parent, int32_t partition);
  ~PartitionProducer();

  void Connect();
  // Adds a message to the current batch (sending batches as they fill).
  // Returns true if a batch was closed by this message.
  bool Add(Message&& msg, Producer::SendCallback&& cb, int64_t accepted_ms);
  // Closes the current batch (if any) into a pending op and sends it.
  bool FlushBatch();
  // The current batch is empty or can take `m`.
  bool empty_batch_or_room(const Message& m) const { return builder_.HasRoomFor(m); }
  void CheckTimeouts(int64_t now_ms);
  void SendCloseAndFinish(std::function<void()> done);
  void FailAll(const Status& st);

  int32_t partition() const { return partition_; }
  int64_t assigned_seq() const { return next_seq_ - 1; }
  int64_t completed_seq() const { return completed_seq_; }
  int64_t acked_seq() const { return acked_seq_; }
  bool ready() const { return state_ == State::kReady; }
  uint64_t epoch() const { return epoch_; }
  size_t pending_ops() const { return pending_.size(); }
  const std::string& name() const { return name_; }

  // BrokerConnection::Listener:
  void OnCommand(BrokerConnection* conn, const proto::BaseCommand& cmd, const Slice& payload) override;
  void OnConnectionClosed(BrokerConnection* conn, const Status& why) override;

 private:
  enum class State { kInit, kConnecting, kReady, kClosed, kFailed };
  struct Op {
    int64_t first_seq = 0;
    int64_t last_seq = 0;
    std::string batch;
    std::vector<Producer::SendCallback> callbacks;
    int64_t created_ms = 0;
  };

  void Register(std::shared_ptr<BrokerConnection> conn, uint64_t epoch);
  void OnRegistered(const proto::ProducerSuccess& ps);
  void Disconnected(const Status& why);
  void ScheduleReconnect(const Status& why);
  void SendOp(const Op& op);
  void CompleteFront(const proto::SendReceipt* receipt, const Status& error);
  void Fatal(const Status& st);
  // Ends the current attempt: a new epoch, no longer ready, off its connection.
  void Detach();

  ProducerImpl* const parent_;
  ClientImpl* const client_;
  const int32_t partition_;
  State state_ = State::kInit;
  uint64_t epoch_ = 0;
  int attempt_ = 0;
  bool created_ = false;  // the first registration succeeded
  Status last_error_;
  std::string name_;
  std::shared_ptr<BrokerConnection> conn_;
  uint64_t producer_id_ = 0;
  uint32_t max_message_size_ = 5u << 20;
  int64_t next_seq_ = 0;
  int64_t completed_seq_ = -1;  // every op up to it ended
  int64_t acked_seq_ = -1;
  BatchBuilder builder_;
  std::vector<Producer::SendCallback> batch_callbacks_;
  int64_t batch_started_ms_ = 0;
  uint64_t batch_gen_ = 0;
  bool batch_timer_armed_ = false;
  std::deque<Op> pending_;
  Status fatal_;
};

class ProducerImpl : public std::enable_shared_from_this<ProducerImpl> {
 public:
  ProducerImpl(std::shared_ptr<ClientImpl> client, std::string topic, ProducerConfig config);
  ~ProducerImpl();

  // Loop thread: looks the partitions up and registers on each; `done` once
  // all are registered (or with the first error; then everything is closed).
  void Start(std::function<void(Status)> done);

  // Any thread.
  void SendAsync(Message msg, Producer::SendCallback cb);
  void FlushAsync(std::function<void(Status)> cb);
  void CloseAsync(std::function<void(Status)> cb);
  const std::string& topic() const { return topic_; }
  std::string name() const;
  int32_t partitions() const { return num_partitions_.load(); }
  int64_t last_sequence_id() const { return last_seq_.load(); }
  int pending_messages() const;
  bool connected() const { return ready_partitions_.load() == num_partitions_.load() && num_partitions_.load() > 0; }

  // Loop thread, from PartitionProducer.
  ClientImpl* client() const { return client_.get(); }
  const ProducerConfig& config() const { return config_; }
  PartitionProducer* part(int32_t idx) { return parts_[static_cast<size_t>(idx)].get(); }
  void OnPartitionCreated(int32_t idx, const Status& st);
  // Accounting of ended messages (before their callbacks run).
  void OnMessagesDone(int n);
  // Ops ended (after their callbacks ran): flush waiters and close may proceed.
  void OnOpsEnded();
  void OnAcked(int64_t seq);
  void OnReadyChanged(int delta) { ready_partitions_.fetch_add(delta); }
  void OnBatchClosedByTimer(int32_t idx);
  int64_t create_deadline() const { return create_deadline_; }

 private:
  struct Queued {
    Message msg;
    Producer::SendCallback cb;
    int64_t accepted_ms;
  };
  struct FlushWaiter {
    std::vector<int64_t> targets;
    std::function<void(Status)> cb;
  };

  void Drain();
  int32_t Route(const Message& m);
  void CheckFlushWaiters();
  void TickTimeouts();
  void MaybeFinishClose();
  void FinishClose();
  void FailQueued(const Status& st);

  std::shared_ptr<ClientImpl> client_;
  const std::string topic_;
  const ProducerConfig config_;
  std::atomic<int32_t> num_partitions_{0};
  std::atomic<int> ready_partitions_{0};
  std::atomic<int64_t> last_seq_{-1};

  mutable Mutex mu_;
  CondVar cv_;
  std::vector<Queued> inbox_ DLOG_GUARDED_BY(mu_);
  bool drain_posted_ DLOG_GUARDED_BY(mu_) = false;
  bool closed_ DLOG_GUARDED_BY(mu_) = false;  // no more sends
  int pending_ DLOG_GUARDED_BY(mu_) = 0;
  int blocked_ DLOG_GUARDED_BY(mu_) = 0;
  std::string name_ DLOG_GUARDED_BY(mu_);

  // Loop thread only.
  std::vector<Queued> draining_;
  std::vector<std::unique_ptr<PartitionProducer>> parts_;
  int32_t rr_ = 0;
  int64_t create_deadline_ = 0;
  int creating_ = 0;
  Status create_error_;
  std::function<void(Status)> created_cb_;
  std::vector<FlushWaiter> flush_waiters_;
  uint64_t tick_timer_ = 0;
  bool closing_ = false;
  bool finished_ = false;
  bool check_posted_ = false;
  int closes_in_flight_ = 0;
  int64_t close_deadline_ = 0;
  std::vector<std::function<void(Status)>> close_cbs_;
};

}  // namespace dlog::client
