#include "client/lib/producer_impl.h"

#include <algorithm>
#include <random>

#include "client/lib/client_impl.h"
#include "client/lib/errors.h"
#include "client/lib/hash.h"
#include "client/lib/message_access.h"
#include "common/clock.h"
#include "common/logging.h"

namespace dlog::client {
namespace {

// Errors after which a registered producer keeps trying (the broker may
// still hold the previous registration of this name for a moment).
bool RetryAfterCreation(const Status& st) { return IsRetryable(st) || st.Is(ClientErrc::kProducerBusy); }

// Frame bytes besides the batch: the Send header and the frame prefix.
constexpr uint32_t kSendOverheadBytes = 64;

}  // namespace

// ---------------------------------------------------------------- PartitionProducer

PartitionProducer::PartitionProducer(ProducerImpl* parent, int32_t partition)
    : parent_(parent),
      client_(parent->client()),
      partition_(partition),
      name_(parent->config().producer_name),
      builder_(parent->config().batching_enabled ? parent->config().batching_max_messages : 1,
               parent->config().batching_max_bytes, parent->config().compression) {}

PartitionProducer::~PartitionProducer() {
  if (conn_) conn_->RemoveProducer(producer_id_);
}

void PartitionProducer::Connect() {
  if (state_ == State::kClosed || state_ == State::kFailed) return;
  state_ = State::kConnecting;
  const uint64_t e = ++epoch_;
  ConnectAttempt(client_, parent_->weak_from_this(), partition_, e, parent_->topic(), partition_,
                 [e](PartitionProducer* self, Result<std::shared_ptr<BrokerConnection>> c) {
                   if (!c.ok()) {
                     self->Disconnected(c.status());
                     return;
                   }
                   self->Register(std::move(c).value(), e);
                 });
}

void PartitionProducer::Register(std::shared_ptr<BrokerConnection> conn, uint64_t e) {
  conn_ = std::move(conn);
  producer_id_ = conn_->NewProducerId();
  conn_->AddProducer(producer_id_, this);
  const uint64_t rid = conn_->NewRequestId();
  proto::BaseCommand cmd;
  auto* p = cmd.mutable_producer();
  p->set_request_id(rid);
  p->set_producer_id(producer_id_);
  p->set_topic(parent_->topic());
  p->set_partition(partition_);
  p->set_producer_name(name_);
  std::weak_ptr<ProducerImpl> weak = parent_->weak_from_this();
  const int32_t idx = partition_;
  conn_->SendRequest(rid, cmd, client_->config().operation_timeout_ms, [weak, idx, e](Result<proto::BaseCommand> r) {
    std::shared_ptr<ProducerImpl> pi;
    PartitionProducer* self = CurrentAttempt(weak, idx, e, &pi);
    if (self == nullptr) return;
    if (r.ok() && !r->has_producer_success()) {
      r = Err(ClientErrc::kProtocolError, "the broker answered Producer with something else");
    }
    if (!r.ok()) {
      const Status st = r.status();
      if ((!self->created_ && !IsRetryable(st)) || (self->created_ && !RetryAfterCreation(st))) {
        self->Fatal(st);
        return;
      }
      self->Disconnected(st);
      return;
    }
    self->OnRegistered(r->producer_success());
  });
}

void PartitionProducer::OnRegistered(const proto::ProducerSuccess& ps) {
  state_ = State::kReady;
  attempt_ = 0;
  parent_->OnReadyChanged(+1);
  if (name_.empty()) name_ = ps.producer_name();
  next_seq_ = std::max(next_seq_, ps.last_sequence_id() + 1);
  if (conn_->max_message_size() > kSendOverheadBytes) max_message_size_ = conn_->max_message_size();
  for (const Op& op : pending_) SendOp(op);
  if (!created_) {
    created_ = true;
    parent_->OnPartitionCreated(partition_, Status::OK());
  }
}

void PartitionProducer::Detach() {
  ++epoch_;
  if (state_ == State::kReady) parent_->OnReadyChanged(-1);
  if (conn_) {
    conn_->RemoveProducer(producer_id_);
    conn_.reset();
  }
}

void PartitionProducer::Disconnected(const Status& why) {
  if (state_ == State::kClosed || state_ == State::kFailed) return;
  Detach();
  state_ = State::kConnecting;
  last_error_ = why;
  ScheduleReconnect(why);
}

void PartitionProducer::ScheduleReconnect(const Status& why) {
  const int64_t delay = client_->Backoff(++attempt_);
  if (!created_ && MonoMillis() + delay >= parent_->create_deadline()) {
    Fatal(why.Is(ClientErrc::kConnectError)
              ? why
              : Err(ClientErrc::kTimeout, "producer for " + parent_->topic() + " partition " +
                                              std::to_string(partition_) +
                                              " not registered within the timeout: " + why.message()));
    return;
  }
  DLOG_DEBUG << "producer " << parent_->topic() << "-" << partition_ << " reconnects in " << delay
             << " ms: " << why.ToString();
  ReconnectLater(client_, parent_->weak_from_this(), partition_, epoch_, delay);
}

void PartitionProducer::Fatal(const Status& st) {
  if (state_ == State::kClosed || state_ == State::kFailed) return;
  Detach();
  state_ = State::kFailed;
  fatal_ = st;
  if (!created_) {
    parent_->OnPartitionCreated(partition_, st);
    return;
  }
  DLOG_WARN << "producer " << parent_->topic() << "-" << partition_ << " failed: " << st.ToString();
  FailAll(st);
}

bool PartitionProducer::Add(Message&& msg, Producer::SendCallback&& cb, int64_t accepted_ms) {
  if (state_ == State::kFailed || state_ == State::kClosed) {
    parent_->OnMessagesDone(1);
    cb(state_ == State::kFailed ? fatal_ : Err(ClientErrc::kAlreadyClosed, "producer closed"));
    return false;
  }
  bool closed_batch = false;
  if (!builder_.HasRoomFor(msg)) closed_batch = FlushBatch();
  if (builder_.empty()) batch_started_ms_ = accepted_ms;
  builder_.Add(msg);
  batch_callbacks_.push_back(std::move(cb));
  const ProducerConfig& cfg = parent_->config();
  if (!cfg.batching_enabled || builder_.full()) {
    FlushBatch();
    return true;
  }
  if (!batch_timer_armed_) {
    batch_timer_armed_ = true;
    std::weak_ptr<ProducerImpl> weak = parent_->weak_from_this();
    const int32_t idx = partition_;
    const uint64_t gen = batch_gen_;
    client_->timers().Schedule(cfg.batching_max_delay_ms, [weak, idx, gen] {
      auto p = weak.lock();
      if (!p) return;
      PartitionProducer* self = p->part(idx);
      if (self->batch_gen_ != gen) return;
      self->batch_timer_armed_ = false;
      if (self->FlushBatch()) p->OnBatchClosedByTimer(idx);
    });
  }
  return closed_batch;
}

bool PartitionProducer::FlushBatch() {
  if (builder_.empty()) return false;
  ++batch_gen_;
  batch_timer_armed_ = false;
  Op op;
  op.first_seq = next_seq_;
  op.last_seq = next_seq_ + builder_.count() - 1;
  next_seq_ = op.last_seq + 1;
  op.created_ms = batch_started_ms_;
  op.callbacks = std::move(batch_callbacks_);
  batch_callbacks_.clear();
  Status st = builder_.Build(name_, op.first_seq, WallMillis(), &op.batch);
  if (st.ok() && op.batch.size() > max_message_size_) {
    st = Err(ClientErrc::kMessageTooLarge, "a batch of " + std::to_string(op.callbacks.size()) + " message(s) is " +
                                               std::to_string(op.batch.size()) + " bytes; the broker accepts " +
                                               std::to_string(max_message_size_));
  }
  if (!st.ok()) {
    parent_->OnMessagesDone(static_cast<int>(op.callbacks.size()));
    for (auto& cb : op.callbacks) cb(st);
    parent_->OnOpsEnded();
    return true;
  }
  pending_.push_back(std::move(op));
  if (state_ == State::kReady) SendOp(pending_.back());
  return true;
}

void PartitionProducer::SendOp(const Op& op) {
  proto::BaseCommand cmd;
  auto* s = cmd.mutable_send();
  s->set_producer_id(producer_id_);
  s->set_sequence_id(op.first_seq);
  s->set_highest_sequence_id(op.last_seq);
  s->set_num_messages(static_cast<int32_t>(op.callbacks.size()));
  conn_->SendCommand(cmd, op.batch);
}

void PartitionProducer::CompleteFront(const proto::SendReceipt* receipt, const Status& error) {
  Op op = std::move(pending_.front());
  pending_.pop_front();
  completed_seq_ = op.last_seq;
  const int n = static_cast<int>(op.callbacks.size());
  parent_->OnMessagesDone(n);
  if (receipt != nullptr) {
    acked_seq_ = op.last_seq;
    parent_->OnAcked(op.last_seq);
    const bool known = receipt->has_message_id();
    const proto::MessageIdData& d = receipt->message_id();
    for (int i = 0; i < n; ++i) {
      MessageId id = known ? MessageId(partition_, d.segment_seq(), d.entry(), d.slot(), d.record_seq(), i, n)
                           : MessageId(partition_, -1, -1, -1, -1, i, n);  // a duplicate whose id is unknown
      op.callbacks[static_cast<size_t>(i)](id);
    }
  } else {
    for (auto& cb : op.callbacks) cb(error);
  }
  parent_->OnOpsEnded();
}

void PartitionProducer::OnCommand(BrokerConnection* conn, const proto::BaseCommand& cmd, const Slice&) {
  if (conn != conn_.get()) return;
  if (cmd.has_send_receipt()) {
    const auto& r = cmd.send_receipt();
    if (pending_.empty() || r.sequence_id() < pending_.front().first_seq) return;  // a late duplicate
    if (r.sequence_id() > pending_.front().first_seq) {
      // A receipt skipped a pending batch: resynchronise by registering again.
      Disconnected(Err(ClientErrc::kProtocolError, "receipt for sequence id " + std::to_string(r.sequence_id()) +
                                                       " while " + std::to_string(pending_.front().first_seq) +
                                                       " is pending"));
      return;
    }
    CompleteFront(&r, Status::OK());
    return;
  }
  if (cmd.has_send_error()) {
    const auto& e = cmd.send_error();
    const Status st = FromServerError(e.error(), e.message());
    if (e.error() == proto::SERVER_BAD_REQUEST || e.error() == proto::SERVER_MESSAGE_TOO_LARGE) {
      if (!pending_.empty() && pending_.front().first_seq == e.sequence_id()) CompleteFront(nullptr, st);
      return;
    }
    // The outcome is unknown: register again and re-send what is pending
    // (the broker drops what it already stored).
    if (conn_ && state_ == State::kReady) {
      proto::BaseCommand close;
      const uint64_t rid = conn_->NewRequestId();
      close.mutable_close_producer()->set_request_id(rid);
      close.mutable_close_producer()->set_producer_id(producer_id_);
      conn_->SendRequest(rid, close, client_->config().operation_timeout_ms, [](Result<proto::BaseCommand>) {});
    }
    Disconnected(st);
    return;
  }
  if (cmd.has_close_producer()) {
    Disconnected(Err(ClientErrc::kNotConnected, "the broker closed the producer"));
  }
}

void PartitionProducer::OnConnectionClosed(BrokerConnection* conn, const Status& why) {
  if (conn != conn_.get()) return;
  conn_.reset();  // already unregistered by the connection
  Disconnected(why);
}

void PartitionProducer::CheckTimeouts(int64_t now_ms) {
  const int64_t timeout = parent_->config().send_timeout_ms;
  if (timeout <= 0) return;
  while (!pending_.empty() && now_ms - pending_.front().created_ms >= timeout) {
    const Op& op = pending_.front();
    CompleteFront(nullptr, Err(ClientErrc::kTimeout,
                               "message(s) " + std::to_string(op.first_seq) + ".." + std::to_string(op.last_seq) +
                                   " to " + parent_->topic() + " partition " + std::to_string(partition_) +
                                   " not acknowledged within " + std::to_string(timeout) + " ms" +
                                   (last_error_.ok() ? std::string() : " (" + last_error_.message() + ")")));
  }
}

void PartitionProducer::FailAll(const Status& st) {
  if (!builder_.empty()) FlushBatch();
  while (!pending_.empty()) CompleteFront(nullptr, st);
}

void PartitionProducer::SendCloseAndFinish(std::function<void()> done) {
  if (state_ != State::kReady || !conn_) {
    ++epoch_;
    if (state_ != State::kFailed) state_ = State::kClosed;
    done();
    return;
  }
  auto conn = conn_;
  const uint64_t rid = conn->NewRequestId();
  proto::BaseCommand cmd;
  cmd.mutable_close_producer()->set_request_id(rid);
  cmd.mutable_close_producer()->set_producer_id(producer_id_);
  ++epoch_;
  parent_->OnReadyChanged(-1);
  state_ = State::kClosed;
  conn->SendRequest(rid, cmd, client_->config().operation_timeout_ms,
                    [done = std::move(done)](Result<proto::BaseCommand>) { done(); });
  conn->RemoveProducer(producer_id_);
  conn_.reset();
}

// ---------------------------------------------------------------- ProducerImpl

ProducerImpl::ProducerImpl(std::shared_ptr<ClientImpl> client, std::string topic, ProducerConfig config)
    : client_(std::move(client)), topic_(std::move(topic)), config_(std::move(config)) {
  MutexLock l(&mu_);
  name_ = config_.producer_name;
}

ProducerImpl::~ProducerImpl() = default;

std::string ProducerImpl::name() const {
  MutexLock l(&mu_);
  return name_;
}

int ProducerImpl::pending_messages() const {
  MutexLock l(&mu_);
  return pending_;
}

void ProducerImpl::Start(std::function<void(Status)> done) {
  created_cb_ = std::move(done);
  create_deadline_ = client_->Deadline();
  std::weak_ptr<ProducerImpl> weak = weak_from_this();
  client_->GetPartitions(topic_, create_deadline_, [weak](Result<int32_t> n) {
    auto self = weak.lock();
    if (!self) return;
    if (!n.ok()) {
      self->create_error_ = n.status();
      self->creating_ = 0;
      self->OnPartitionCreated(-1, n.status());
      return;
    }
    self->num_partitions_.store(*n);
    self->creating_ = *n;
    if (self->config_.routing_mode == RoutingMode::kSinglePartition) {
      self->rr_ = static_cast<int32_t>(std::random_device{}() % static_cast<uint32_t>(*n));
    }
    for (int32_t i = 0; i < *n; ++i) self->parts_.push_back(std::make_unique<PartitionProducer>(self.get(), i));
    for (int32_t i = 0; i < *n; ++i) self->parts_[static_cast<size_t>(i)]->Connect();
  });
}

void ProducerImpl::OnPartitionCreated(int32_t idx, const Status& st) {
  if (!created_cb_) return;
  if (!st.ok() && create_error_.ok()) create_error_ = st;
  if (idx >= 0 && --creating_ > 0) return;
  auto cb = std::move(created_cb_);
  created_cb_ = nullptr;
  if (!create_error_.ok()) {
    for (auto& p : parts_) p->SendCloseAndFinish([] {});
    finished_ = true;
    {
      MutexLock l(&mu_);
      closed_ = true;
    }
    client_->RemoveProducer(this);
    cb(create_error_);
    return;
  }
  {
    MutexLock l(&mu_);
    if (name_.empty() && !parts_.empty()) name_ = parts_[0]->name();
  }
  if (config_.send_timeout_ms > 0) TickTimeouts();
  cb(Status::OK());
}

void ProducerImpl::TickTimeouts() {
  if (finished_) return;
  const int64_t now = MonoMillis();
  for (auto& p : parts_) p->CheckTimeouts(now);
  const int64_t period = std::clamp<int64_t>(config_.send_timeout_ms / 10, 10, 100);
  std::weak_ptr<ProducerImpl> weak = weak_from_this();
  tick_timer_ = client_->timers().Schedule(period, [weak] {
    if (auto self = weak.lock()) self->TickTimeouts();
  });
}

void ProducerImpl::SendAsync(Message msg, Producer::SendCallback cb) {
  Status fail;
  bool post = false;
  {
    MutexLock l(&mu_);
    for (;;) {
      if (closed_) {
        fail = Err(ClientErrc::kAlreadyClosed, "producer for " + topic_ + " is closed");
        break;
      }
      if (pending_ < config_.max_pending_messages) break;
      if (!config_.block_if_queue_full || client_->InLoop()) {
        fail = Err(ClientErrc::kProducerQueueIsFull, "producer for " + topic_ + " has " + std::to_string(pending_) +
                                                         " messages pending (max_pending_messages)");
        break;
      }
      ++blocked_;
      cv_.Wait(&mu_);
      --blocked_;
    }
    if (fail.ok()) {
      ++pending_;
      inbox_.push_back(Queued{std::move(msg), std::move(cb), MonoMillis()});
      if (!drain_posted_) post = drain_posted_ = true;
    }
  }
  if (!fail.ok()) {
    cb(fail);
    return;
  }
  if (post && !client_->Post([self = shared_from_this()] { self->Drain(); })) {
    FailQueued(Err(ClientErrc::kAlreadyClosed, "client closed"));
  }
}

void ProducerImpl::FailQueued(const Status& st) {
  std::vector<Queued> q;
  {
    MutexLock l(&mu_);
    q.swap(inbox_);
    pending_ -= static_cast<int>(q.size());
    drain_posted_ = false;
    cv_.SignalAll();
  }
  for (auto& e : q) e.cb(st);
}

int32_t ProducerImpl::Route(const Message& m) {
  const auto n = static_cast<int32_t>(parts_.size());
  if (m.has_key()) return PartitionForKey(m.key(), n);
  return rr_ % n;
}

void ProducerImpl::Drain() {
  {
    MutexLock l(&mu_);
    draining_.swap(inbox_);
    drain_posted_ = false;
  }
  const auto n = static_cast<int32_t>(parts_.size());
  const bool rr = config_.routing_mode == RoutingMode::kRoundRobin;
  for (Queued& q : draining_) {
    if (finished_ || n == 0) {
      OnMessagesDone(1);
      q.cb(Err(ClientErrc::kAlreadyClosed, "producer for " + topic_ + " is closed"));
      continue;
    }
    const bool keyed = q.msg.has_key();
    int32_t p = Route(q.msg);
    if (!keyed && rr && !parts_[static_cast<size_t>(p)]->empty_batch_or_room(q.msg)) {
      parts_[static_cast<size_t>(p)]->FlushBatch();
      rr_ = (rr_ + 1) % n;
      p = rr_;
    }
    const bool closed = parts_[static_cast<size_t>(p)]->Add(std::move(q.msg), std::move(q.cb), q.accepted_ms);
    if (closed && !keyed && rr && p == rr_) rr_ = (rr_ + 1) % n;
  }
  draining_.clear();
}

void ProducerImpl::OnBatchClosedByTimer(int32_t idx) {
  const auto n = static_cast<int32_t>(parts_.size());
  if (config_.routing_mode == RoutingMode::kRoundRobin && idx == rr_ && n > 0) rr_ = (rr_ + 1) % n;
}

void ProducerImpl::OnMessagesDone(int n) {
  MutexLock l(&mu_);
  pending_ -= n;
  if (blocked_ > 0) cv_.SignalAll();
}

void ProducerImpl::OnAcked(int64_t seq) {
  int64_t cur = last_seq_.load();
  while (seq > cur && !last_seq_.compare_exchange_weak(cur, seq)) {
  }
}

void ProducerImpl::OnOpsEnded() {
  if (check_posted_ || (flush_waiters_.empty() && !closing_)) return;
  check_posted_ = true;
  client_->Post([self = shared_from_this()] {
    self->check_posted_ = false;
    self->CheckFlushWaiters();
    self->MaybeFinishClose();
  });
}

void ProducerImpl::CheckFlushWaiters() {
  for (size_t i = 0; i < flush_waiters_.size();) {
    FlushWaiter& w = flush_waiters_[i];
    bool done = true;
    for (size_t p = 0; p < parts_.size() && done; ++p) done = parts_[p]->completed_seq() >= w.targets[p];
    if (!done) {
      ++i;
      continue;
    }
    auto cb = std::move(w.cb);
    flush_waiters_.erase(flush_waiters_.begin() + static_cast<std::ptrdiff_t>(i));
    cb(Status::OK());
  }
}

void ProducerImpl::FlushAsync(std::function<void(Status)> cb) {
  auto task = [self = shared_from_this(), cb]() mutable {
    if (self->finished_) {
      cb(Err(ClientErrc::kAlreadyClosed, "producer for " + self->topic_ + " is closed"));
      return;
    }
    self->Drain();
    FlushWaiter w;
    for (auto& p : self->parts_) {
      p->FlushBatch();
      w.targets.push_back(p->assigned_seq());
    }
    w.cb = std::move(cb);
    self->flush_waiters_.push_back(std::move(w));
    self->CheckFlushWaiters();
  };
  if (!client_->Post(task)) cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
}

void ProducerImpl::CloseAsync(std::function<void(Status)> cb) {
  {
    MutexLock l(&mu_);
    closed_ = true;
    cv_.SignalAll();
  }
  auto task = [self = shared_from_this(), cb]() mutable {
    if (self->finished_ && !self->closing_) {
      cb(Status::OK());
      return;
    }
    self->close_cbs_.push_back(std::move(cb));
    if (self->closing_) return;
    self->closing_ = true;
    self->Drain();
    for (auto& p : self->parts_) p->FlushBatch();
    std::weak_ptr<ProducerImpl> weak = self;
    self->client_->timers().Schedule(self->client_->config().operation_timeout_ms, [weak] {
      if (auto s = weak.lock()) s->FinishClose();
    });
    self->MaybeFinishClose();
  };
  if (!client_->Post(task)) cb(Status::OK());
}

void ProducerImpl::MaybeFinishClose() {
  if (!closing_ || finished_) return;
  for (auto& p : parts_) {
    if (p->pending_ops() > 0) return;
  }
  FinishClose();
}

void ProducerImpl::FinishClose() {
  if (finished_) {
    if (closing_ && !close_cbs_.empty() && closes_in_flight_ == 0) {
      auto cbs = std::move(close_cbs_);
      close_cbs_.clear();
      for (auto& c : cbs) c(Status::OK());
    }
    return;
  }
  finished_ = true;
  if (tick_timer_ != 0) client_->timers().Cancel(tick_timer_);
  if (created_cb_) {
    auto cb = std::move(created_cb_);
    created_cb_ = nullptr;
    cb(Err(ClientErrc::kAlreadyClosed, "client closed while the producer was being created"));
  }
  const Status closed = Err(ClientErrc::kAlreadyClosed, "producer closed before the message was acknowledged");
  for (auto& p : parts_) p->FailAll(closed);
  FailQueued(closed);
  closes_in_flight_ = static_cast<int>(parts_.size()) + 1;
  std::weak_ptr<ProducerImpl> weak = weak_from_this();
  auto one_done = [weak] {
    auto self = weak.lock();
    if (!self || --self->closes_in_flight_ > 0) return;
    self->client_->RemoveProducer(self.get());
    auto cbs = std::move(self->close_cbs_);
    self->close_cbs_.clear();
    for (auto& c : cbs) c(Status::OK());
  };
  for (auto& p : parts_) p->SendCloseAndFinish(one_done);
  one_done();
}

}  // namespace dlog::client
