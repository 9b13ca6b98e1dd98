// Broker internals shared by broker.cc (connections, commands, lookup,
// admin), partition.cc (ownership, produce, dedup) and subscription.cc
// (dispatch, acks). Not a public header. Everything here lives on the
// broker's loop.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker.pb.h"
#include "broker/broker.h"
#include "broker/record_cache.h"
#include "broker/topic_name.h"
#include "logstore/log/log_reader.h"
#include "logstore/log/log_writer.h"
#include "logstore/segment/timer.h"

namespace dlog::broker {

class Partition;
class Subscription;
struct ConnState;

// Codes on the wire from library statuses.
proto::ServerError ToServerError(const Status& st);

proto::MessageIdData MakeMessageId(int32_t partition, const log::Dlsn& dlsn, int64_t seq, int32_t batch_size,
                                   int32_t batch_index = -1);

struct ProducerH {
  uint64_t id = 0;
  net::ConnectionPtr conn;
  std::string name;
  std::shared_ptr<Partition> part;
  bool closed = false;
};

struct ConsumerH {
  uint64_t id = 0;
  net::ConnectionPtr conn;
  std::string name;
  std::shared_ptr<Partition> part;
  Subscription* sub = nullptr;  // valid while !closed
  int32_t priority = 0;
  uint64_t order = 0;  // arrival order within the subscription
  int64_t permits = 0;
  int64_t window = 0;   // the most permits it ever had at once (its receiver queue)
  int64_t unacked = 0;  // messages sent and not acked / redelivered
  bool active = false;  // Exclusive / Failover: this one receives
  bool closed = false;
};

struct ConnState {
  net::ConnectionPtr conn;
  bool connected = false;
  std::unordered_map<uint64_t, std::shared_ptr<ProducerH>> producers;
  std::unordered_map<uint64_t, std::shared_ptr<ConsumerH>> consumers;
};

// What a partition and its subscriptions need from the broker.
class BrokerCtx {
 public:
  virtual ~BrokerCtx() = default;
  net::EventLoop* loop = nullptr;
  log::LogClient* logs = nullptr;
  CursorDb* cursor_db = nullptr;
  BrokerOptions opts;
  BrokerProbe* probe = nullptr;
  int64_t closing = 0;  // partitions whose writers are closing (Stop waits for them)

  // Sends `cmd` (with `payload`) on `conn` if it is open.
  virtual void Send(const net::ConnectionPtr& conn, const proto::BaseCommand& cmd, std::string_view payload = {}) = 0;
  // A scratch command (cleared) for building one reply at a time.
  virtual proto::BaseCommand& Out() = 0;
  // The broker still may serve: metadata contact within the lease, session alive.
  virtual bool LeaseOk() const = 0;
  // Drops a partition from the broker's table (after it unloaded).
  virtual void Forget(Partition* p) = 0;
  // Forgets a producer / consumer on its connection (the partition closed it).
  virtual void DetachProducer(const ProducerH& p) = 0;
  virtual void DetachConsumer(const ConsumerH& c) = 0;
};

// One subscription of one partition: its consumers, cursor and dispatcher.
class Subscription {
 public:
  Subscription(Partition* part, std::string name, proto::SubscriptionType type, SubscriptionCursor* cursor,
               int64_t start_seq);
  ~Subscription();

  const std::string& name() const { return name_; }
  proto::SubscriptionType type() const { return type_; }
  bool durable() const { return cursor_ != nullptr; }
  SubscriptionCursor* cursor() const { return cursor_; }
  size_t consumer_count() const { return consumers_.size(); }
  const std::vector<std::shared_ptr<ConsumerH>>& consumers() const { return consumers_; }
  int64_t mark_delete() const;
  // The mark-delete position whose acks are all persisted (truncation uses it).
  int64_t persisted_mark_delete() const { return persisted_md_; }

  // OK, or CONSUMER_BUSY text (Exclusive taken, type mismatch).
  Status CanAdd(proto::SubscriptionType type) const;
  // The subscription takes `type` when it has no consumers.
  void AddConsumer(std::shared_ptr<ConsumerH> c, proto::SubscriptionType type);
  // Its unacked messages go back for redelivery.
  void RemoveConsumer(ConsumerH* c);
  void OnFlow(ConsumerH* c, uint32_t permits);
  // Validates and applies; `done` gets the outcome once persisted.
  void OnAck(ConsumerH* c, const proto::Ack& ack, std::function<void(proto::ServerError, std::string)> done);
  void OnRedeliver(ConsumerH* c, const proto::RedeliverUnacknowledged& r);
  // Moves the cursor to `seq` (every record before it acked, none after);
  // consumers are closed (they reconnect and start there).
  void Seek(int64_t seq, std::function<void(Status)> done);
  // New durable records up to the partition's end: dispatch.
  void Pump();
  // The partition is closing: consumers are told, nothing more is sent.
  void CloseAll();
  proto::SubscriptionStats Stats() const;
  int64_t redeliveries() const { return redeliveries_; }

 private:
  struct Pending {
    ConsumerH* consumer = nullptr;
    RecordInfo rec;
    int32_t redelivery_count = 0;
    int32_t unacked = 0;               // messages of the batch not acked yet
    std::vector<uint64_t> acked_bits;  // batch indexes acked (partial batches)
  };
  struct Replay {
    RecordInfo rec;
    int32_t redelivery_count = 0;
  };

  struct Work {
    int64_t seq = 0;
    bool from_replay = false;
    RecordInfo rec;  // fresh records only
  };

  void PumpRound();
  void DispatchWork();
  void DisconnectConsumers();
  bool NextFresh(RecordInfo* out);
  void StartRead();
  ConsumerH* Choose(const RecordInfo& r, int32_t need);
  bool CanTake(const ConsumerH* c) const;                // not closed, a permit, under the unacked bound
  bool CanTake(const ConsumerH* c, int32_t need) const;  // and permits for `need` messages
  void SendTo(ConsumerH* c, const RecordInfo& r, int32_t redelivery_count, const std::vector<uint64_t>& acked_bits,
              int32_t acked_count);
  void ToReplay(int64_t seq, Pending&& p, bool count_redelivery);
  void RedeliverAllOf(ConsumerH* c);  // every pending record of c goes back for redelivery
  void DropPending(std::map<int64_t, Pending>::iterator it);
  void UpdateActive();
  void RebuildRing();
  ConsumerH* KeyOwner(uint32_t hash) const;
  void CheckRetry();

  Partition* const part_;
  const std::string name_;
  proto::SubscriptionType type_;
  SubscriptionCursor* const cursor_;  // null: non-durable (Reader)
  int64_t nd_mark_ = 0;               // non-durable: the start
  int64_t persisted_md_ = 0;

  std::vector<std::shared_ptr<ConsumerH>> consumers_;
  uint64_t next_order_ = 0;
  size_t rr_ = 0;                                      // Shared round robin
  std::vector<std::pair<uint32_t, ConsumerH*>> ring_;  // Key_Shared: hash points, sorted

  int64_t read_pos_ = 0;  // next record to read fresh
  std::map<int64_t, Pending> pending_;
  std::map<int64_t, Replay> replay_;
  std::unordered_map<uint32_t, std::pair<ConsumerH*, int64_t>> hash_outstanding_;  // Key_Shared draining

  std::deque<RecordInfo> readahead_;
  std::unique_ptr<log::LogReader> reader_;
  int64_t reader_next_ = -1;  // seq the reader delivers next (-1: unknown)
  bool read_in_flight_ = false;
  bool opening_reader_ = false;
  uint64_t reader_gen_ = 0;

  bool in_pump_ = false;
  bool pump_again_ = false;
  bool prefetching_ = false;
  int seeking_ = 0;  // resets in flight
  int64_t prefetch_lo_ = 0;
  int64_t prefetch_hi_ = 0;
  uint64_t gen_ = 0;  // bumped by Seek: work prepared before it is dropped
  std::vector<Work> work_;
  std::vector<SubscriptionCursor::AckItem> ack_items_;
  bool closed_ = false;
  segment::Timer retry_timer_;
  int64_t redeliveries_ = 0;
  int64_t msg_out_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// An owned (or loading) partition.
class Partition : public std::enable_shared_from_this<Partition> {
 public:
  enum class State { kLoading, kReady, kClosed };

  // Holds `ctx` alive: callbacks of a closing partition may outlive Broker::Stop.
  Partition(std::shared_ptr<BrokerCtx> ctx, TopicName topic, int32_t index);
  ~Partition();

  // Takes ownership: opens the writer (the lock), the cursor log, rebuilds
  // dedup state. `done` runs on the loop when ready or failed.
  void Load(std::shared_ptr<log::Namespace> ns, int64_t lock_timeout_ms);
  void WhenLoaded(std::function<void(Status)> cb);
  // Closes producers and consumers (telling clients), then the cursors and the writer.
  void Unload(const Status& why);
  // Broker stop, after Unload had its time: drops subscriptions, cursors and
  // the writer (abandoning what did not close) on the loop thread.
  void Shutdown();

  State state() const { return state_; }
  bool Serving() const { return state_ == State::kReady && ctx_->LeaseOk(); }
  const TopicName& topic() const { return topic_; }
  int32_t index() const { return index_; }
  const std::string& name() const { return name_; }
  BrokerCtx* ctx() const { return ctx_; }
  log::Namespace* ns() const { return ns_.get(); }
  const std::string& log_name() const { return log_name_; }
  RecordCache& cache() { return cache_; }
  int64_t durable_end() const { return durable_end_; }
  TopicCounters* counters() const { return counters_.get(); }

  // Producers.
  Status AddProducer(const std::shared_ptr<ProducerH>& p, int64_t* last_sequence_id);
  void RemoveProducer(ProducerH* p);
  void OnSend(ProducerH* p, const proto::Send& send, Slice payload);

  // Subscriptions.
  void Subscribe(const proto::Subscribe& s, std::shared_ptr<ConsumerH> c, std::function<void(Status)> done);
  void RemoveConsumer(ConsumerH* c);
  void Unsubscribe(ConsumerH* c, std::function<void(Status)> done);
  void DeleteSubscription(const std::string& name, std::function<void(Status)> done);
  void ResetCursor(const proto::ResetCursor& r, std::function<void(Status)> done);
  void SeekSubscription(const std::string& name, int64_t seq, std::function<void(Status)> done);
  std::vector<proto::SubscriptionStats> SubscriptionStatsList() const;
  proto::PartitionStats Stats() const;
  std::optional<proto::MessageIdData> LastMessageId() const;

  // Where a reader must start to reach record `seq` (the start of its segment).
  void SeqToDlsn(int64_t seq, std::function<void(Result<log::Dlsn>)> cb);
  // The first record published at or after `ms` (durable_end if none).
  void SeqAtTime(int64_t ms, std::function<void(Result<int64_t>)> cb);

  void Tick();                             // periodic: dedup snapshots, backlog gauges and truncation
  int64_t MinPersistedMarkDelete() const;  // over durable subscriptions; INT64_MAX if none

 private:
  struct DedupEntry {
    int64_t persisted = -1;  // highest sequence id stored
    proto::MessageIdData id;
    int64_t pushed = -1;         // highest sequence id sent to the log
    int64_t last_active_ms = 0;  // monotonic: the last send or connect
  };
  struct InFlight {
    std::string producer_name;
    int64_t first = 0;
    int64_t highest = 0;
    uint64_t producer_id = 0;
    net::ConnectionPtr conn;
    Slice data;
    int32_t num_messages = 1;
    uint32_t key_hash = 0;
    int64_t publish_ms = 0;
    int64_t received_ns = 0;
    std::vector<std::pair<net::ConnectionPtr, uint64_t>> waiters;  // retries of this batch
  };

  void Fail(const Status& st);
  void LoadCursors();
  void RebuildDedup();
  void ReadDedup(std::shared_ptr<log::LogReader> r, int64_t target);
  void FinishLoad(Status st);
  void OnWritten(uint64_t token, Result<log::WriteResult> r);
  void SendReceipt(const net::ConnectionPtr& conn, uint64_t producer_id, int64_t first, int64_t highest,
                   const proto::MessageIdData* id, bool duplicate);
  void SendError(const net::ConnectionPtr& conn, uint64_t producer_id, int64_t seq, proto::ServerError e,
                 const std::string& msg);
  void CloseProducer(ProducerH* p);
  void MaybeSnapshotDedup(bool force);
  void NotifySubscriptions();
  void CheckBacklog();
  void ExpireDedup();
  void WatchTopic();

  const std::shared_ptr<BrokerCtx> ctx_keep_;
  BrokerCtx* const ctx_;
  const TopicName topic_;
  const int32_t index_;
  const std::string name_;
  const std::string log_name_;
  State state_ = State::kLoading;
  std::vector<std::function<void(Status)>> load_waiters_;
  std::shared_ptr<log::Namespace> ns_;
  std::shared_ptr<log::LogWriter> writer_;
  std::unique_ptr<PartitionCursors> cursors_;
  std::shared_ptr<TopicCounters> counters_;

  std::unordered_map<std::string, DedupEntry> dedup_;
  std::unordered_map<std::string, ProducerH*> producers_;
  std::map<uint64_t, InFlight> inflight_;  // by token, in write order
  uint64_t next_token_ = 1;
  size_t inflight_bytes_ = 0;
  int64_t durable_end_ = 0;  // records durable (the next record's seq)
  log::Dlsn last_dlsn_;
  bool has_last_ = false;
  int64_t last_txid_ = 0;
  int64_t msg_in_ = 0;
  int64_t bytes_in_ = 0;

  int64_t snapshot_covered_ = -1;
  int64_t last_snapshot_ms_ = 0;
  bool snapshot_in_flight_ = false;
  int64_t last_backlog_ms_ = 0;
  bool truncate_in_flight_ = false;
  int resets_in_flight_ = 0;  // admin resets of cursors without a Subscription object

  RecordCache cache_;
  std::map<std::string, std::unique_ptr<Subscription>> subs_;
  uint64_t reader_seq_ = 0;

  friend class Subscription;
};

}  // namespace dlog::broker
