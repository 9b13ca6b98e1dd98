#include "client/lib/consumer_impl.h"

#include <algorithm>
#include <limits>
#include <random>

#include "client/lib/batch.h"
#include "client/lib/client_impl.h"
#include "client/lib/errors.h"
#include "common/clock.h"
#include "common/logging.h"

namespace dlog::client {
namespace {

proto::SubscriptionType ToProto(SubscriptionType t) {
  switch (t) {
    case SubscriptionType::kShared:
      return proto::SUB_SHARED;
    case SubscriptionType::kFailover:
      return proto::SUB_FAILOVER;
    case SubscriptionType::kKeyShared:
      return proto::SUB_KEY_SHARED;
    case SubscriptionType::kExclusive:
      break;
  }
  return proto::SUB_EXCLUSIVE;
}

Status Closed(const std::string& topic) {
  return Err(ClientErrc::kAlreadyClosed, "consumer of " + topic + " is closed");
}

}  // namespace

// ---------------------------------------------------------------- PartitionConsumer

PartitionConsumer::PartitionConsumer(ConsumerImpl* parent, int32_t idx, int32_t partition, int permits)
    : parent_(parent), client_(parent->client()), idx_(idx), partition_(partition), permits_(permits) {}

PartitionConsumer::~PartitionConsumer() {
  if (conn_) conn_->RemoveConsumer(consumer_id_);
}

void PartitionConsumer::Connect() {
  if (state_ == State::kClosed || state_ == State::kFailed) return;
  state_ = State::kConnecting;
  const uint64_t e = ++epoch_;
  ConnectAttempt(client_, parent_->weak_from_this(), idx_, e, parent_->topic(), partition_,
                 [e](PartitionConsumer* self, Result<std::shared_ptr<BrokerConnection>> c) {
                   if (!c.ok()) {
                     self->Disconnected(c.status());
                     return;
                   }
                   self->Subscribe(std::move(c).value(), e);
                 });
}

void PartitionConsumer::Subscribe(std::shared_ptr<BrokerConnection> conn, uint64_t e) {
  conn_ = std::move(conn);
  consumer_id_ = conn_->NewConsumerId();
  conn_->AddConsumer(consumer_id_, this);
  const uint64_t rid = conn_->NewRequestId();
  proto::BaseCommand cmd;
  auto* s = cmd.mutable_subscribe();
  s->set_request_id(rid);
  s->set_consumer_id(consumer_id_);
  s->set_partition(partition_);
  parent_->FillSubscribe(idx_, s);
  std::weak_ptr<ConsumerImpl> weak = parent_->weak_from_this();
  const int32_t idx = idx_;
  conn_->SendRequest(rid, cmd, client_->config().operation_timeout_ms, [weak, idx, e](Result<proto::BaseCommand> r) {
    std::shared_ptr<ConsumerImpl> p;
    PartitionConsumer* self = CurrentAttempt(weak, idx, e, &p);
    if (self == nullptr) return;
    if (!r.ok()) {
      const Status st = r.status();
      // After creation a busy subscription is usually our own previous session, not yet gone.
      const bool retry = IsRetryable(st) || (self->created_ && st.Is(ClientErrc::kConsumerBusy));
      if (retry) {
        self->Disconnected(st);
      } else {
        self->Fatal(st);
      }
      return;
    }
    self->state_ = State::kReady;
    self->attempt_ = 0;
    p->OnReadyChanged(+1);
    p->OnSubscribed(idx, e);
    self->SendFlow(static_cast<uint32_t>(self->permits_), e);
    if (!self->created_) {
      self->created_ = true;
      p->OnPartitionCreated(idx, Status::OK());
    }
  });
}

void PartitionConsumer::Detach() {
  ++epoch_;
  if (state_ == State::kReady) parent_->OnReadyChanged(-1);
  if (conn_) {
    conn_->RemoveConsumer(consumer_id_);
    conn_.reset();
  }
}

void PartitionConsumer::Disconnected(const Status& why) {
  if (state_ == State::kClosed || state_ == State::kFailed) return;
  Detach();
  state_ = State::kConnecting;
  const int64_t delay = client_->Backoff(++attempt_);
  if (!created_ && MonoMillis() + delay >= parent_->create_deadline()) {
    Fatal(why.Is(ClientErrc::kConnectError)
              ? why
              : Err(ClientErrc::kTimeout, "subscription on " + parent_->topic() + " partition " +
                                              std::to_string(partition_) +
                                              " not made within the timeout: " + why.message()));
    return;
  }
  DLOG_DEBUG << "consumer " << parent_->topic() << "-" << partition_ << " reconnects in " << delay
             << " ms: " << why.ToString();
  ReconnectLater(client_, parent_->weak_from_this(), idx_, epoch_, delay);
}

void PartitionConsumer::Fatal(const Status& st) {
  if (state_ == State::kClosed || state_ == State::kFailed) return;
  Detach();
  state_ = State::kFailed;
  if (!created_) {
    parent_->OnPartitionCreated(idx_, st);
    return;
  }
  DLOG_WARN << "consumer " << parent_->topic() << "-" << partition_ << " stopped: " << st.ToString();
}

bool PartitionConsumer::SendCommand(proto::BaseCommand* cmd) {
  if (state_ != State::kReady || !conn_) return false;
  conn_->SendCommand(*cmd);
  return true;
}

void PartitionConsumer::SendFlow(uint32_t n, uint64_t e) {
  if (n == 0 || e != epoch_ || state_ != State::kReady) return;
  proto::BaseCommand cmd;
  cmd.mutable_flow()->set_consumer_id(consumer_id_);
  cmd.mutable_flow()->set_message_permits(n);
  conn_->SendCommand(cmd);
}

void PartitionConsumer::Request(const std::function<void(proto::BaseCommand*, uint64_t, uint64_t)>& fill,
                                std::function<void(Result<proto::BaseCommand>)> cb) {
  if (state_ != State::kReady || !conn_) {
    cb(Err(ClientErrc::kNotConnected,
           "consumer of " + parent_->topic() + " partition " + std::to_string(partition_) + " is reconnecting"));
    return;
  }
  const uint64_t rid = conn_->NewRequestId();
  proto::BaseCommand cmd;
  fill(&cmd, rid, consumer_id_);
  conn_->SendRequest(rid, cmd, client_->config().operation_timeout_ms, std::move(cb));
}

void PartitionConsumer::CloseOnBroker(std::function<void()> done) {
  if (state_ != State::kReady || !conn_) {
    MarkClosed();
    done();
    return;
  }
  auto conn = conn_;
  const uint64_t rid = conn->NewRequestId();
  proto::BaseCommand cmd;
  cmd.mutable_close_consumer()->set_request_id(rid);
  cmd.mutable_close_consumer()->set_consumer_id(consumer_id_);
  MarkClosed();
  conn->SendRequest(rid, cmd, client_->config().operation_timeout_ms,
                    [done = std::move(done)](Result<proto::BaseCommand>) { done(); });
}

void PartitionConsumer::MarkClosed() {
  if (state_ == State::kClosed) return;
  Detach();
  state_ = State::kClosed;
}

void PartitionConsumer::OnCommand(BrokerConnection* conn, const proto::BaseCommand& cmd, const Slice& payload) {
  if (conn != conn_.get() || state_ != State::kReady) return;
  if (cmd.has_message()) {
    const auto& m = cmd.message();
    ReceivedBatchInfo info;
    info.topic = parent_->topic_ptr();
    info.id = m.message_id();
    info.id.set_partition(partition_);
    info.redelivery_count = m.redelivery_count();
    info.acked_batch_bits = &m.acked_batch_bits();
    scratch_.clear();
    int32_t n = 0;
    Status st = DecodeReceivedBatch(payload, info, &scratch_, &n);
    if (!st.ok()) {
      DLOG_ERROR << "dropping a message batch from " << parent_->topic() << " partition " << partition_ << ": "
                 << st.ToString();
      scratch_.clear();
      n = std::max(n, 1);
    }
    parent_->OnMessages(idx_, epoch_, &scratch_, n - static_cast<int32_t>(scratch_.size()));
    return;
  }
  if (cmd.has_close_consumer()) {
    Disconnected(Err(ClientErrc::kNotConnected, "the broker closed the consumer"));
    return;
  }
  if (cmd.has_active_consumer_change()) parent_->OnActiveChange(partition_, cmd.active_consumer_change().is_active());
}

void PartitionConsumer::OnConnectionClosed(BrokerConnection* conn, const Status& why) {
  if (conn != conn_.get()) return;
  conn_.reset();
  Disconnected(why);
}

// ---------------------------------------------------------------- ConsumerImpl

ConsumerImpl::ConsumerImpl(std::shared_ptr<ClientImpl> client, std::string topic, std::string subscription,
                           ConsumerConfig config, bool durable, ReaderConfig reader)
    : client_(std::move(client)),
      topic_(std::move(topic)),
      topic_ptr_(std::make_shared<const std::string>(topic_)),
      subscription_(std::move(subscription)),
      config_(std::move(config)),
      durable_(durable),
      reader_(std::move(reader)) {
  if (!durable_ && reader_.start_message_id.is_position()) only_partition_ = reader_.start_message_id.partition();
}

ConsumerImpl::~ConsumerImpl() = default;

bool ConsumerImpl::connected() const {
  const int n = part_count_.load();
  return n > 0 && ready_partitions_.load() == n;
}

int32_t ConsumerImpl::IndexOf(int32_t partition) const {
  const int n = part_count_.load();
  if (only_partition_ >= 0) return partition == only_partition_ && n == 1 ? 0 : -1;
  return partition >= 0 && partition < n ? partition : -1;
}

void ConsumerImpl::Start(std::function<void(Status)> done) {
  created_cb_ = std::move(done);
  create_deadline_ = client_->Deadline();
  std::weak_ptr<ConsumerImpl> weak = weak_from_this();
  client_->GetPartitions(topic_, create_deadline_, [weak](Result<int32_t> n) {
    auto self = weak.lock();
    if (!self) return;
    if (!n.ok()) {
      self->OnPartitionCreated(-1, n.status());
      return;
    }
    self->num_partitions_.store(*n);
    std::vector<int32_t> numbers;
    if (self->only_partition_ >= 0) {
      if (self->only_partition_ >= *n) {
        self->OnPartitionCreated(-1, Err(ClientErrc::kInvalidArgument,
                                         "start message id names partition " + std::to_string(self->only_partition_) +
                                             " but " + self->topic_ + " has " + std::to_string(*n)));
        return;
      }
      numbers.push_back(self->only_partition_);
    } else {
      for (int32_t i = 0; i < *n; ++i) numbers.push_back(i);
    }
    const int count = static_cast<int>(numbers.size());
    const int queue =
        std::max(1, self->durable_ ? self->config_.receiver_queue_size : self->reader_.receiver_queue_size);
    const int cap = std::max(1, self->config_.max_total_receiver_queue_size_across_partitions / count);
    const int permits = std::min(queue, cap);
    {
      MutexLock l(&self->mu_);
      self->epochs_.assign(static_cast<size_t>(count), 0);
      self->consumed_.assign(static_cast<size_t>(count), 0);
      self->thresholds_.assign(static_cast<size_t>(count), static_cast<uint32_t>(std::max(1, permits / 2)));
      self->last_dequeued_.assign(static_cast<size_t>(count), std::nullopt);
      self->reader_start_.assign(static_cast<size_t>(count), std::nullopt);
    }
    self->creating_ = count;
    for (int i = 0; i < count; ++i) {
      self->parts_.push_back(
          std::make_unique<PartitionConsumer>(self.get(), i, numbers[static_cast<size_t>(i)], permits));
    }
    self->part_count_.store(count);
    for (auto& p : self->parts_) p->Connect();
  });
}

void ConsumerImpl::FillSubscribe(int32_t idx, proto::Subscribe* s) {
  s->set_topic(topic_);
  s->set_subscription(subscription_);
  s->set_durable(durable_);
  if (durable_) {
    s->set_sub_type(ToProto(config_.subscription_type));
    s->set_consumer_name(config_.consumer_name);
    s->set_initial_position(config_.initial_position == InitialPosition::kEarliest ? proto::INITIAL_EARLIEST
                                                                                   : proto::INITIAL_LATEST);
    s->set_priority_level(config_.priority_level);
    s->set_ack_timeout_ms(config_.ack_timeout_ms);
    return;
  }
  s->set_sub_type(proto::SUB_EXCLUSIVE);
  s->set_consumer_name(reader_.reader_name);
  std::optional<MessageId> resume;
  std::optional<MessageId> seek_start;
  {
    MutexLock l(&mu_);
    resume = last_dequeued_[static_cast<size_t>(idx)];
    seek_start = reader_start_[static_cast<size_t>(idx)];
  }
  if (resume) {
    *s->mutable_start_message_id() = ToProto(*resume);
    s->set_start_message_id_inclusive(false);
    return;
  }
  const MessageId start = seek_start ? *seek_start : reader_.start_message_id;
  if (start.is_earliest()) {
    s->set_initial_position(proto::INITIAL_EARLIEST);
  } else if (start.is_latest()) {
    s->set_initial_position(proto::INITIAL_LATEST);
  } else {
    *s->mutable_start_message_id() = ToProto(start);
    s->set_start_message_id_inclusive(seek_start ? true : reader_.start_message_id_inclusive);
  }
}

void ConsumerImpl::OnPartitionCreated(int32_t idx, const Status& st) {
  if (!created_cb_) return;
  if (!st.ok() && create_error_.ok()) create_error_ = st;
  if (idx >= 0 && --creating_ > 0) return;
  auto cb = std::move(created_cb_);
  created_cb_ = nullptr;
  if (!create_error_.ok()) {
    int pending = static_cast<int>(parts_.size());
    for (auto& p : parts_) p->CloseOnBroker([] {});
    (void)pending;
    finished_ = true;
    {
      MutexLock l(&mu_);
      closed_ = true;
    }
    client_->RemoveConsumer(this);
    cb(create_error_);
    return;
  }
  Tick();
  cb(Status::OK());
}

void ConsumerImpl::OnSubscribed(int32_t idx, uint64_t epoch) {
  MutexLock l(&mu_);
  epochs_[static_cast<size_t>(idx)] = epoch;
  DropQueued(idx);
  consumed_[static_cast<size_t>(idx)] = 0;
}

uint32_t ConsumerImpl::DropQueued(int32_t idx) {
  const size_t before = queue_.size();
  queue_.erase(std::remove_if(queue_.begin(), queue_.end(), [idx](const Queued& q) { return q.idx == idx; }),
               queue_.end());
  return static_cast<uint32_t>(before - queue_.size());
}

void ConsumerImpl::Dequeued(const Queued& q, std::vector<Flow>* flows) {
  const auto i = static_cast<size_t>(q.idx);
  last_dequeued_[i] = q.msg.id();
  if (durable_ && config_.ack_timeout_ms > 0) unacked_[q.msg.id()] = MonoMillis() + config_.ack_timeout_ms;
  if (++consumed_[i] >= thresholds_[i]) {
    flows->push_back(Flow{q.idx, epochs_[i], consumed_[i]});
    consumed_[i] = 0;
  }
}

void ConsumerImpl::SendFlows(std::vector<Flow> flows) {
  if (flows.empty()) return;
  if (client_->InLoop()) {
    for (const Flow& f : flows) parts_[static_cast<size_t>(f.idx)]->SendFlow(f.n, f.epoch);
    return;
  }
  IgnoreError(client_->Post([self = shared_from_this(), flows = std::move(flows)] {
    for (const Flow& f : flows) self->parts_[static_cast<size_t>(f.idx)]->SendFlow(f.n, f.epoch);
  }));
}

void ConsumerImpl::OnMessages(int32_t idx, uint64_t epoch, std::vector<Message>* msgs, int32_t skipped) {
  std::vector<Flow> flows;
  std::vector<std::pair<Consumer::ReceiveCallback, Message>> deliveries;
  if (config_.message_listener && durable_) {
    Consumer handle(shared_from_this());
    for (Message& m : *msgs) {
      config_.message_listener(handle, m);
      MutexLock l(&mu_);
      if (closed_ || epochs_[static_cast<size_t>(idx)] != epoch) break;
      Dequeued(Queued{std::move(m), idx}, &flows);
    }
  } else {
    MutexLock l(&mu_);
    if (closed_ || epochs_[static_cast<size_t>(idx)] != epoch) return;
    for (Message& m : *msgs) {
      if (!receivers_.empty()) {
        Queued q{std::move(m), idx};
        Dequeued(q, &flows);
        deliveries.emplace_back(std::move(receivers_.front()), std::move(q.msg));
        receivers_.pop_front();
      } else {
        queue_.push_back(Queued{std::move(m), idx});
      }
    }
    if (!queue_.empty()) cv_.SignalAll();
  }
  if (skipped > 0) {
    MutexLock l(&mu_);
    auto& c = consumed_[static_cast<size_t>(idx)];
    c += static_cast<uint32_t>(skipped);
    if (c >= thresholds_[static_cast<size_t>(idx)]) {
      flows.push_back(Flow{idx, epoch, c});
      c = 0;
    }
  }
  msgs->clear();
  for (auto& [cb, m] : deliveries) cb(std::move(m));
  SendFlows(std::move(flows));
}

void ConsumerImpl::OnActiveChange(int32_t partition, bool active) {
  if (config_.active_consumer_listener) config_.active_consumer_listener(partition, active);
}

Result<Message> ConsumerImpl::Receive(int64_t timeout_ms) {
  if (config_.message_listener && durable_) {
    return Err(ClientErrc::kIllegalState, "Receive on a consumer with a message listener");
  }
  DLOG_RETURN_IF_ERROR(client_->CheckBlockingAllowed("Receive"));
  std::vector<Flow> flows;
  std::optional<Message> out;
  {
    MutexLock l(&mu_);
    const int64_t deadline = timeout_ms < 0 ? std::numeric_limits<int64_t>::max() : MonoMillis() + timeout_ms;
    while (queue_.empty() && !closed_) {
      const int64_t now = MonoMillis();
      if (now >= deadline) break;
      if (timeout_ms < 0) {
        cv_.Wait(&mu_);
      } else {
        cv_.WaitFor(&mu_, std::chrono::milliseconds(deadline - now));
      }
    }
    if (!queue_.empty()) {
      Queued q = std::move(queue_.front());
      queue_.pop_front();
      Dequeued(q, &flows);
      out.emplace(std::move(q.msg));
    } else if (closed_) {
      return Closed(topic_);
    }
  }
  SendFlows(std::move(flows));
  if (!out) {
    return Err(ClientErrc::kTimeout, "no message from " + topic_ + " within " + std::to_string(timeout_ms) + " ms");
  }
  return std::move(*out);
}

void ConsumerImpl::ReceiveAsync(Consumer::ReceiveCallback cb) {
  std::vector<Flow> flows;
  std::optional<Message> out;
  Status fail;
  {
    MutexLock l(&mu_);
    if (config_.message_listener && durable_) {
      fail = Err(ClientErrc::kIllegalState, "ReceiveAsync on a consumer with a message listener");
    } else if (!queue_.empty()) {
      Queued q = std::move(queue_.front());
      queue_.pop_front();
      Dequeued(q, &flows);
      out.emplace(std::move(q.msg));
    } else if (closed_) {
      fail = Closed(topic_);
    } else {
      receivers_.push_back(std::move(cb));
      return;
    }
  }
  SendFlows(std::move(flows));
  if (out) {
    cb(std::move(*out));
  } else {
    cb(fail);
  }
}

void ConsumerImpl::AckAsync(const MessageId& id, bool cumulative, std::function<void(Status)> cb) {
  Status fail;
  bool post = false;
  {
    MutexLock l(&mu_);
    if (closed_) {
      fail = Closed(topic_);
    } else if (!durable_) {
      fail = Err(ClientErrc::kNotAllowed, "a reader does not acknowledge");
    } else if (!id.is_position() || IndexOf(id.partition()) < 0) {
      fail = Err(ClientErrc::kInvalidArgument, "message id " + id.ToString() + " is not a message of " + topic_);
    } else if (cumulative && (config_.subscription_type == SubscriptionType::kShared ||
                              config_.subscription_type == SubscriptionType::kKeyShared)) {
      fail = Err(ClientErrc::kNotAllowed, "cumulative ack on a Shared or Key_Shared subscription");
    } else {
      if (!unacked_.empty()) {
        if (cumulative) {
          for (auto it = unacked_.begin(); it != unacked_.end();) {
            if (it->first.partition() == id.partition() && it->first <= id) {
              it = unacked_.erase(it);
            } else {
              ++it;
            }
          }
        } else {
          unacked_.erase(id);
        }
      }
      ack_inbox_.push_back(AckRequest{id, cumulative, std::move(cb)});
      if (!acks_posted_) post = acks_posted_ = true;
    }
  }
  if (!fail.ok()) {
    cb(fail);
    return;
  }
  if (post && !client_->Post([self = shared_from_this()] { self->DrainAcks(); })) {
    std::vector<AckRequest> reqs;
    {
      MutexLock l(&mu_);
      reqs.swap(ack_inbox_);
    }
    for (auto& r : reqs) r.cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
  }
}

void ConsumerImpl::DrainAcks() {
  {
    MutexLock l(&mu_);
    acks_draining_.swap(ack_inbox_);
    acks_posted_ = false;
  }
  if (acks_draining_.empty()) return;
  const bool receipts = config_.ack_receipt_enabled;
  // Individual acks: one Ack per partition. Cumulative: one Ack each.
  for (size_t idx = 0; idx < parts_.size(); ++idx) {
    PartitionConsumer* p = parts_[idx].get();
    std::vector<std::function<void(Status)>> cbs;
    proto::BaseCommand cmd;
    auto* ack = cmd.mutable_ack();
    for (AckRequest& r : acks_draining_) {
      if (!r.cb || IndexOf(r.id.partition()) != static_cast<int32_t>(idx)) continue;
      if (r.cumulative) {
        proto::BaseCommand c;
        auto* a = c.mutable_ack();
        a->set_ack_type(proto::ACK_CUMULATIVE);
        *a->add_message_ids() = ToProto(r.id);
        auto cb = std::move(r.cb);
        r.cb = nullptr;
        if (receipts) {
          p->Request(
              [&c](proto::BaseCommand* out, uint64_t rid, uint64_t cid) {
                *out = c;
                out->mutable_ack()->set_consumer_id(cid);
                out->mutable_ack()->set_request_id(rid);
              },
              [cb = std::move(cb)](Result<proto::BaseCommand> res) { cb(res.status()); });
        } else {
          c.mutable_ack()->set_consumer_id(p->consumer_id());
          cb(p->SendCommand(&c) ? Status::OK()
                                : Err(ClientErrc::kNotConnected, "not connected: the message will be redelivered"));
        }
        continue;
      }
      *ack->add_message_ids() = ToProto(r.id);
      cbs.push_back(std::move(r.cb));
      r.cb = nullptr;
    }
    if (cbs.empty()) continue;
    ack->set_ack_type(proto::ACK_INDIVIDUAL);
    if (receipts) {
      p->Request(
          [&cmd](proto::BaseCommand* out, uint64_t rid, uint64_t cid) {
            *out = cmd;
            out->mutable_ack()->set_consumer_id(cid);
            out->mutable_ack()->set_request_id(rid);
          },
          [cbs = std::move(cbs)](Result<proto::BaseCommand> res) {
            for (auto& cb : cbs) cb(res.status());
          });
    } else {
      ack->set_consumer_id(p->consumer_id());
      const Status st = p->SendCommand(&cmd)
                            ? Status::OK()
                            : Err(ClientErrc::kNotConnected, "not connected: the message will be redelivered");
      for (auto& cb : cbs) cb(st);
    }
  }
  for (AckRequest& r : acks_draining_) {
    if (r.cb) r.cb(Err(ClientErrc::kInvalidArgument, "message id " + r.id.ToString() + " is not of this consumer"));
  }
  acks_draining_.clear();
}

void ConsumerImpl::Nack(const MessageId& id) {
  MutexLock l(&mu_);
  if (closed_ || IndexOf(id.partition()) < 0) return;
  unacked_.erase(id);
  nacks_.emplace_back(id, MonoMillis() + config_.negative_ack_redelivery_delay_ms);
}

void ConsumerImpl::Redeliver(const std::vector<MessageId>& ids) {
  for (size_t idx = 0; idx < parts_.size(); ++idx) {
    proto::BaseCommand cmd;
    auto* r = cmd.mutable_redeliver();
    for (const MessageId& id : ids) {
      if (IndexOf(id.partition()) == static_cast<int32_t>(idx)) *r->add_message_ids() = ToProto(id);
    }
    if (r->message_ids_size() == 0) continue;
    r->set_consumer_id(parts_[idx]->consumer_id());
    IgnoreError(parts_[idx]->SendCommand(&cmd));
  }
}

void ConsumerImpl::Tick() {
  if (finished_) return;
  const int64_t now = MonoMillis();
  std::vector<MessageId> due;
  {
    MutexLock l(&mu_);
    for (size_t i = 0; i < nacks_.size();) {
      if (nacks_[i].second <= now) {
        due.push_back(nacks_[i].first);
        nacks_[i] = nacks_.back();
        nacks_.pop_back();
      } else {
        ++i;
      }
    }
    for (auto it = unacked_.begin(); it != unacked_.end();) {
      if (it->second <= now) {
        due.push_back(it->first);
        it = unacked_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (!due.empty()) Redeliver(due);
  int64_t period = 100;
  if (config_.negative_ack_redelivery_delay_ms > 0) {
    period = std::min<int64_t>(period, std::max<int64_t>(config_.negative_ack_redelivery_delay_ms / 4, 10));
  }
  std::weak_ptr<ConsumerImpl> weak = weak_from_this();
  tick_timer_ = client_->timers().Schedule(period, [weak] {
    if (auto self = weak.lock()) self->Tick();
  });
}

void ConsumerImpl::RedeliverAll() {
  IgnoreError(client_->Post([self = shared_from_this()] {
    std::vector<Flow> flows;
    {
      MutexLock l(&self->mu_);
      self->unacked_.clear();
      self->nacks_.clear();
      for (size_t i = 0; i < self->parts_.size(); ++i) {
        const uint32_t dropped = self->DropQueued(static_cast<int32_t>(i));
        flows.push_back(Flow{static_cast<int32_t>(i), self->epochs_[i], dropped});
      }
    }
    for (auto& p : self->parts_) {
      proto::BaseCommand cmd;
      cmd.mutable_redeliver()->set_consumer_id(p->consumer_id());
      IgnoreError(p->SendCommand(&cmd));
    }
    self->SendFlows(std::move(flows));
  }));
}

void ConsumerImpl::SeekAsync(std::optional<MessageId> id, int64_t publish_time_ms, std::function<void(Status)> cb) {
  auto task = [self = shared_from_this(), id, publish_time_ms, cb]() mutable {
    if (self->finished_ || self->closing_) {
      cb(Closed(self->topic_));
      return;
    }
    std::vector<int32_t> targets;
    if (id && id->is_position()) {
      const int32_t idx = self->IndexOf(id->partition());
      if (idx < 0) {
        cb(Err(ClientErrc::kInvalidArgument, "message id " + id->ToString() + " is not of " + self->topic_));
        return;
      }
      targets.push_back(idx);
    } else {
      for (size_t i = 0; i < self->parts_.size(); ++i) targets.push_back(static_cast<int32_t>(i));
    }
    struct State {
      int left;
      Status first;
      std::function<void(Status)> cb;
    };
    auto st = std::make_shared<State>(State{static_cast<int>(targets.size()), Status::OK(), std::move(cb)});
    for (int32_t idx : targets) {
      PartitionConsumer* p = self->part(idx);
      // Earliest and Latest travel as publish times 0 and max: "the first
      // message published at or after" them is the first message / none.
      const bool by_id = id && id->is_position();
      const int64_t ts = !id ? publish_time_ms : (id->is_latest() ? std::numeric_limits<int64_t>::max() : 0);
      const MessageId target = by_id ? *id : MessageId();
      p->Request(
          [&](proto::BaseCommand* cmd, uint64_t rid, uint64_t cid) {
            auto* s = cmd->mutable_seek();
            s->set_request_id(rid);
            s->set_consumer_id(cid);
            if (by_id) {
              *s->mutable_message_id() = ToProto(target);
            } else {
              s->set_publish_time_ms(ts);
            }
          },
          [self, st, idx, by_id, target, epoch = p->epoch()](Result<proto::BaseCommand> r) {
            if (r.ok()) {
              std::vector<Flow> flows;
              {
                MutexLock l(&self->mu_);
                const auto i = static_cast<size_t>(idx);
                const uint32_t dropped = self->DropQueued(idx);
                flows.push_back(Flow{idx, epoch, dropped});
                self->last_dequeued_[i].reset();
                self->reader_start_[i] = by_id ? std::optional<MessageId>(target) : std::nullopt;
                for (auto it = self->unacked_.begin(); it != self->unacked_.end();) {
                  it = self->IndexOf(it->first.partition()) == idx ? self->unacked_.erase(it) : std::next(it);
                }
              }
              self->SendFlows(std::move(flows));
            } else if (st->first.ok()) {
              st->first = r.status();
            }
            if (--st->left == 0) st->cb(st->first);
          });
    }
    if (targets.empty()) st->cb(Status::OK());
  };
  if (!client_->Post(task)) cb(Closed(topic_));
}

void ConsumerImpl::GetLastIdsAsync(std::function<void(Result<std::vector<MessageId>>)> cb) {
  auto task = [self = shared_from_this(), cb]() mutable {
    struct State {
      int left;
      Status first;
      std::vector<MessageId> ids;
      std::function<void(Result<std::vector<MessageId>>)> cb;
    };
    const size_t n = self->parts_.size();
    auto st =
        std::make_shared<State>(State{static_cast<int>(n), Status::OK(), std::vector<MessageId>(n), std::move(cb)});
    if (n == 0) {
      st->cb(Closed(self->topic_));
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      self->parts_[i]->Request(
          [](proto::BaseCommand* cmd, uint64_t rid, uint64_t cid) {
            cmd->mutable_get_last_message_id()->set_request_id(rid);
            cmd->mutable_get_last_message_id()->set_consumer_id(cid);
          },
          [st, i, partition = self->parts_[i]->partition()](Result<proto::BaseCommand> r) {
            if (!r.ok()) {
              if (st->first.ok()) st->first = r.status();
            } else if (r->get_last_message_id_response().has_last_message_id()) {
              proto::MessageIdData d = r->get_last_message_id_response().last_message_id();
              d.set_partition(partition);
              st->ids[i] = FromProto(d);
            }
            if (--st->left > 0) return;
            if (st->first.ok()) {
              st->cb(std::move(st->ids));
            } else {
              st->cb(st->first);
            }
          });
    }
  };
  if (!client_->Post(task)) cb(Closed(topic_));
}

void ConsumerImpl::HasMessageAvailableAsync(std::function<void(Result<bool>)> cb) {
  bool queued;
  {
    MutexLock l(&mu_);
    queued = !queue_.empty();
  }
  if (queued) {
    cb(true);
    return;
  }
  GetLastIdsAsync([self = shared_from_this(), cb](Result<std::vector<MessageId>> r) {
    if (!r.ok()) {
      cb(r.status());
      return;
    }
    bool available = false;
    {
      MutexLock l(&self->mu_);
      available = self->HasAfter(*r);
    }
    cb(available);
  });
}

bool ConsumerImpl::HasAfter(const std::vector<MessageId>& last_ids) {
  bool available = !queue_.empty();
  for (size_t i = 0; i < last_ids.size() && !available; ++i) {
    const MessageId& last = last_ids[i];
    if (!last.is_position()) continue;  // empty partition
    const auto& got = last_dequeued_[i];
    if (got) {
      available = last.record_seq() > got->record_seq();
      continue;
    }
    const MessageId start = reader_start_[i] ? *reader_start_[i] : reader_.start_message_id;
    if (start.is_earliest()) {
      available = true;
    } else if (start.is_latest()) {
      available = false;
    } else {
      available = reader_.start_message_id_inclusive ? last.record_seq() >= start.record_seq()
                                                     : last.record_seq() > start.record_seq();
    }
  }
  return available;
}

void ConsumerImpl::UnsubscribeAsync(std::function<void(Status)> cb) {
  auto task = [self = shared_from_this(), cb]() mutable {
    if (self->finished_ || self->closing_) {
      cb(Closed(self->topic_));
      return;
    }
    struct State {
      int left;
      Status first;
      std::function<void(Status)> cb;
    };
    const size_t n = self->parts_.size();
    auto st = std::make_shared<State>(State{static_cast<int>(n), Status::OK(), std::move(cb)});
    for (size_t i = 0; i < n; ++i) {
      self->parts_[i]->Request(
          [](proto::BaseCommand* cmd, uint64_t rid, uint64_t cid) {
            cmd->mutable_unsubscribe()->set_request_id(rid);
            cmd->mutable_unsubscribe()->set_consumer_id(cid);
          },
          [self, st](Result<proto::BaseCommand> r) {
            if (!r.ok() && st->first.ok()) st->first = r.status();
            if (--st->left > 0) return;
            if (st->first.ok()) {
              self->close_cbs_.push_back(std::move(st->cb));
              self->closing_ = true;
              self->FinishClose(Closed(self->topic_), true);
            } else {
              st->cb(st->first);
            }
          });
    }
  };
  if (!client_->Post(task)) cb(Closed(topic_));
}

void ConsumerImpl::CloseAsync(std::function<void(Status)> cb) {
  auto task = [self = shared_from_this(), cb]() mutable {
    if (self->finished_ && !self->closing_) {
      cb(Status::OK());
      return;
    }
    self->close_cbs_.push_back(std::move(cb));
    if (self->closing_) return;
    self->closing_ = true;
    self->FinishClose(Closed(self->topic_), false);
  };
  if (!client_->Post(task)) cb(Status::OK());
}

void ConsumerImpl::FinishClose(const Status& why, bool unsubscribed) {
  finished_ = true;
  if (tick_timer_ != 0) client_->timers().Cancel(tick_timer_);
  if (created_cb_) {
    auto cb = std::move(created_cb_);
    created_cb_ = nullptr;
    cb(Err(ClientErrc::kAlreadyClosed, "closed while the consumer was being created"));
  }
  std::deque<Consumer::ReceiveCallback> receivers;
  {
    MutexLock l(&mu_);
    closed_ = true;
    queue_.clear();
    receivers.swap(receivers_);
    unacked_.clear();
    nacks_.clear();
    cv_.SignalAll();
  }
  for (auto& r : receivers) r(why);
  DrainAcks();  // fails nothing sent after closed_: the inbox is empty or flushed to the broker
  auto left = std::make_shared<int>(static_cast<int>(parts_.size()) + 1);
  std::weak_ptr<ConsumerImpl> weak = weak_from_this();
  auto one_done = [weak, left] {
    if (--*left > 0) return;
    auto self = weak.lock();
    if (!self) return;
    self->client_->RemoveConsumer(self.get());
    auto cbs = std::move(self->close_cbs_);
    self->close_cbs_.clear();
    for (auto& c : cbs) c(Status::OK());
  };
  for (auto& p : parts_) {
    if (unsubscribed) {
      p->MarkClosed();
      one_done();
    } else {
      p->CloseOnBroker(one_done);
    }
  }
  one_done();
}

}  // namespace dlog::client
