// Partition: ownership (the partition log's writer lock), produce with
// deduplication, and the subscriptions' home. See broker/README.md.
#include <algorithm>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/logging.h"
#include "logstore/log/entry.h"
#include "logstore/log/errors.h"
#include "logstore/log/namespace.h"
#include "metadata/layout.h"
#include "protocol/message_batch.h"

namespace dlog::broker {
namespace {

// Runs fn(self, value) on `loop` if the partition still exists. Library
// callbacks arrive on the library's loop; everything here lives on the broker's.
template <typename T, typename F>
auto OnLoop(net::EventLoop* loop, std::weak_ptr<Partition> w, F fn) {
  return [loop, w = std::move(w), fn = std::move(fn)](T value) mutable {
    auto box = std::make_shared<T>(std::move(value));
    loop->Post([w, fn, box]() mutable {
      if (auto self = w.lock()) fn(self.get(), std::move(*box));
    });
  };
}

}  // namespace

proto::ServerError ToServerError(const Status& st) {
  if (st.ok()) return proto::SERVER_OK;
  if (st.domain() == ErrorDomain::kLog) {
    switch (static_cast<log::LogErrc>(st.code())) {
      case log::LogErrc::kLogNotFound:
        return proto::SERVER_TOPIC_NOT_FOUND;
      case log::LogErrc::kLocked:
        return proto::SERVER_NOT_OWNER;
      case log::LogErrc::kInvalidArgument:
        return proto::SERVER_BAD_REQUEST;
      case log::LogErrc::kLockLost:
      case log::LogErrc::kFenced:
      case log::LogErrc::kOutcomeUnknown:
      case log::LogErrc::kClosed:
        return proto::SERVER_PERSISTENCE_ERROR;
      case log::LogErrc::kBusy:
        return proto::SERVER_TOO_MANY_REQUESTS;
      case log::LogErrc::kTimeout:
        return proto::SERVER_TIMEOUT;
      case log::LogErrc::kNamespaceNotFound:
        return proto::SERVER_NAMESPACE_NOT_FOUND;
      default:
        return proto::SERVER_UNKNOWN_ERROR;
    }
  }
  if (st.Is(CommonErrc::kInvalidArgument)) return proto::SERVER_BAD_REQUEST;
  if (st.Is(CommonErrc::kTimeout)) return proto::SERVER_TIMEOUT;
  if (st.Is(CommonErrc::kUnavailable)) return proto::SERVER_SERVICE_NOT_READY;
  return proto::SERVER_UNKNOWN_ERROR;
}

proto::MessageIdData MakeMessageId(int32_t partition, const log::Dlsn& dlsn, int64_t seq, int32_t batch_size,
                                   int32_t batch_index) {
  proto::MessageIdData id;
  id.set_partition(partition);
  id.set_segment_seq(dlsn.segment_seq);
  id.set_entry(dlsn.entry);
  id.set_slot(dlsn.slot);
  id.set_batch_index(batch_index);
  id.set_batch_size(batch_size);
  id.set_record_seq(seq);
  return id;
}

Partition::Partition(std::shared_ptr<BrokerCtx> ctx, TopicName topic, int32_t index)
    : ctx_keep_(std::move(ctx)),
      ctx_(ctx_keep_.get()),
      topic_(std::move(topic)),
      index_(index),
      name_(topic_.PartitionName(index)),
      log_name_(topic_.PartitionLog(index)),
      cache_(ctx_->opts.cache_bytes_per_partition) {}

Partition::~Partition() = default;

void Partition::WhenLoaded(std::function<void(Status)> cb) {
  switch (state_) {
    case State::kLoading:
      load_waiters_.push_back(std::move(cb));
      return;
    case State::kReady:
      cb(Status::OK());
      return;
    case State::kClosed:
      cb(Status::Error(CommonErrc::kUnavailable, "partition " + name_ + " is closed on this broker"));
      return;
  }
}

void Partition::Load(std::shared_ptr<log::Namespace> ns, int64_t lock_timeout_ms) {
  ns_ = std::move(ns);
  counters_ = ctx_->probe->Topic(topic_.Full());
  log::WriterOptions wo;
  wo.owner_id = ctx_->opts.broker_id;
  wo.address = ctx_->opts.advertise;
  wo.lock_timeout_ms = lock_timeout_ms;
  ns_->OpenWriter(log_name_, wo,
                  OnLoop<Result<std::unique_ptr<log::LogWriter>>>(
                      ctx_->loop, weak_from_this(), [](Partition* self, Result<std::unique_ptr<log::LogWriter>> r) {
                        if (self->state_ != State::kLoading) return;  // unloaded meanwhile: the writer goes
                        if (!r.ok()) return self->Fail(r.status().WithContext("taking partition " + self->name_));
                        self->writer_ = std::shared_ptr<log::LogWriter>(std::move(r).value());
                        self->durable_end_ = self->writer_->next_seq();
                        self->last_txid_ = self->writer_->last_txid();
                        self->LoadCursors();
                      }));
}

void Partition::LoadCursors() {
  std::weak_ptr<Partition> w = weak_from_this();
  PartitionCursors::Open(ctx_->cursor_db, ns_.get(), topic_.CursorLog(index_), ctx_->loop, ctx_->opts.cursors,
                         [w](Result<std::unique_ptr<PartitionCursors>> r) {
                           auto self = w.lock();
                           if (!self || self->state_ != State::kLoading) return;
                           if (!r.ok())
                             return self->Fail(r.status().WithContext("opening the cursors of " + self->name_));
                           self->cursors_ = std::move(r).value();
                           self->RebuildDedup();
                         });
}

// DESIGN "Dedup across failover": the last snapshot, then every record after
// it up to the recovered end (including records whose outcome the previous
// owner never learnt), before any produce is accepted.
void Partition::RebuildDedup() {
  log::StartPosition start = log::StartPosition::Earliest();
  if (const std::string* bytes = cursors_->dedup_snapshot()) {
    proto::DedupState snap;
    if (snap.ParseFromString(*bytes)) {
      snapshot_covered_ = snap.covered_seq();
      for (const auto& p : snap.producers()) {
        DedupEntry& e = dedup_[p.name()];
        e.persisted = e.pushed = p.highest_sequence_id();
        e.id = p.message_id();
      }
      if (snap.covered_seq() >= 0) {
        last_dlsn_ = log::Dlsn{snap.segment_seq(), snap.entry(), snap.slot()};
        has_last_ = true;
        start = log::StartPosition::At(last_dlsn_);
      }
    } else {
      DLOG_WARN << "partition " << name_ << ": dedup snapshot does not parse; rebuilding from the log";
    }
  }
  const int64_t target = durable_end_ - 1;  // the last record in the log
  if (target <= snapshot_covered_) return FinishLoad(Status::OK());
  std::weak_ptr<Partition> w = weak_from_this();
  auto open = [this, w, target](log::StartPosition pos) {
    ns_->OpenReader(log_name_, pos, {},
                    OnLoop<Result<std::unique_ptr<log::LogReader>>>(
                        ctx_->loop, w, [target](Partition* self, Result<std::unique_ptr<log::LogReader>> r) {
                          if (self->state_ != State::kLoading) return;
                          if (!r.ok()) return self->Fail(r.status().WithContext("dedup scan of " + self->name_));
                          self->ReadDedup(std::shared_ptr<log::LogReader>(std::move(r).value()), target);
                        }));
  };
  open(start);
}

void Partition::ReadDedup(std::shared_ptr<log::LogReader> reader, int64_t target) {
  reader->ReadNext(
      1000, OnLoop<Result<std::vector<log::LogRecord>>>(
                ctx_->loop, weak_from_this(), [reader, target](Partition* self, Result<std::vector<log::LogRecord>> r) {
                  if (self->state_ != State::kLoading) return;
                  if (!r.ok()) {
                    if (r.status().Is(log::LogErrc::kTruncated) && self->snapshot_covered_ >= 0) {
                      // The snapshot's position was truncated away: scan what is left.
                      DLOG_WARN << "partition " << self->name_
                                << ": dedup snapshot position truncated; scanning from the start";
                      self->snapshot_covered_ = -1;
                      self->ns_->OpenReader(self->log_name_, log::StartPosition::Earliest(), {},
                                            OnLoop<Result<std::unique_ptr<log::LogReader>>>(
                                                self->ctx_->loop, self->weak_from_this(),
                                                [target](Partition* s, Result<std::unique_ptr<log::LogReader>> rr) {
                                                  if (s->state_ != State::kLoading) return;
                                                  if (!rr.ok()) return s->Fail(rr.status());
                                                  s->ReadDedup(std::shared_ptr<log::LogReader>(std::move(rr).value()),
                                                               target);
                                                }));
                      return;
                    }
                    return self->Fail(r.status().WithContext("dedup scan of " + self->name_));
                  }
                  int64_t last = -1;
                  for (const log::LogRecord& rec : *r) {
                    last = rec.seq;
                    if (rec.seq <= self->snapshot_covered_) continue;
                    self->last_dlsn_ = rec.dlsn;
                    self->has_last_ = true;
                    proto::BatchMetadata meta;
                    std::string_view body;
                    if (!protocol::ParseBatchMetadata(rec.payload.view(), &meta, &body).ok()) continue;
                    DedupEntry& e = self->dedup_[meta.producer_name()];
                    if (meta.highest_sequence_id() > e.persisted) {
                      e.persisted = e.pushed = meta.highest_sequence_id();
                      e.id = MakeMessageId(self->index_, rec.dlsn, rec.seq, meta.num_messages());
                    }
                  }
                  if (last >= target) return self->FinishLoad(Status::OK());
                  self->ReadDedup(reader, target);
                }));
}

void Partition::FinishLoad(Status st) {
  if (!st.ok()) return Fail(st);
  state_ = State::kReady;
  last_snapshot_ms_ = MonoMillis();
  for (auto& [name, e] : dedup_) e.last_active_ms = last_snapshot_ms_;  // the inactivity clock starts now
  last_backlog_ms_ = MonoMillis();
  ctx_->probe->partitions_owned.fetch_add(1, std::memory_order_relaxed);
  DLOG_INFO << "broker: owns " << name_ << " (" << durable_end_ << " records, " << dedup_.size() << " producers known)";
  WatchTopic();
  auto waiters = std::move(load_waiters_);
  for (auto& cb : waiters) cb(Status::OK());
}

void Partition::WatchTopic() {
  std::weak_ptr<Partition> w = weak_from_this();
  net::EventLoop* loop = ctx_->loop;
  const std::string path = ctx_->logs->layout().Topic(topic_.Full());
  ctx_->logs->store()->Exists(
      path,
      [w, loop](Result<std::optional<metadata::Stat>> r) {
        if (r.ok() && !r->has_value()) {
          loop->Post([w] {
            if (auto self = w.lock()) self->Unload(Status::Error(log::LogErrc::kLogNotFound, "topic deleted"));
          });
        }
      },
      [w, loop](const metadata::WatchEvent& ev) {
        loop->Post([w, type = ev.type] {
          auto self = w.lock();
          if (!self || self->state_ == State::kClosed) return;
          if (type == metadata::WatchEventType::kDeleted) {
            self->Unload(Status::Error(log::LogErrc::kLogNotFound, "topic " + self->topic_.Full() + " was deleted"));
          } else if (type != metadata::WatchEventType::kClosed && type != metadata::WatchEventType::kSessionExpired) {
            self->WatchTopic();
          }
        });
      });
}

void Partition::Fail(const Status& st) {
  DLOG_WARN << "broker: partition " << name_ << ": " << st.ToString();
  Unload(st);
}

void Partition::Unload(const Status& why) {
  if (state_ == State::kClosed) return;
  const bool was_ready = state_ == State::kReady;
  state_ = State::kClosed;
  auto self = shared_from_this();
  if (was_ready) {
    ctx_->probe->partitions_owned.fetch_sub(1, std::memory_order_relaxed);
    DLOG_INFO << "broker: releases " << name_ << ": " << why.ToString();
  }
  auto waiters = std::move(load_waiters_);
  for (auto& cb : waiters) cb(why);
  for (auto& [n, sub] : subs_) sub->CloseAll();
  std::vector<ProducerH*> producers;
  for (auto& [n, p] : producers_) producers.push_back(p);
  for (ProducerH* p : producers) CloseProducer(p);
  ctx_->probe->RemovePartition(name_);
  ctx_->Forget(this);
  // Cursors first (their writer holds the cursor log's lock), then the
  // partition's writer. A fenced writer fails its close at once.
  ++ctx_->closing;
  auto close_writer = [self] {
    auto done = [self] {
      self->ctx_->loop->Post([self] {
        self->writer_.reset();
        --self->ctx_->closing;
      });
    };
    if (auto w = self->writer_) {
      w->Close([done](Status) { done(); });
    } else {
      done();
    }
  };
  if (cursors_) {
    cursors_->Close([self, close_writer](Status) { close_writer(); });
  } else {
    close_writer();
  }
}

void Partition::Shutdown() {
  if (state_ != State::kClosed) Unload(Status::Error(CommonErrc::kUnavailable, "the broker is stopping"));
  subs_.clear();
  cursors_.reset();
  writer_.reset();
  cache_.Clear();
}

void Partition::CloseProducer(ProducerH* p) {
  if (p->closed) return;
  RemoveProducer(p);  // the name is free again; p->closed is set
  proto::BaseCommand& out = ctx_->Out();
  out.mutable_close_producer()->set_producer_id(p->id);
  ctx_->Send(p->conn, out);
  ctx_->DetachProducer(*p);
}

Status Partition::AddProducer(const std::shared_ptr<ProducerH>& p, int64_t* last_sequence_id) {
  if (state_ != State::kReady) return Status::Error(CommonErrc::kUnavailable, "partition " + name_ + " is not ready");
  auto it = producers_.find(p->name);
  if (it != producers_.end()) {
    return Status::Error(CommonErrc::kAlreadyExists, "producer '" + p->name + "' is already connected to " + name_ +
                                                         " (from " + it->second->conn->peer() + ")");
  }
  producers_[p->name] = p.get();
  auto d = dedup_.find(p->name);
  *last_sequence_id = d == dedup_.end() ? -1 : d->second.pushed;
  if (d != dedup_.end()) d->second.last_active_ms = MonoMillis();
  ctx_->probe->producers.fetch_add(1, std::memory_order_relaxed);
  return Status::OK();
}

void Partition::RemoveProducer(ProducerH* p) {
  auto it = producers_.find(p->name);
  if (it != producers_.end() && it->second == p) {
    producers_.erase(it);
    ctx_->probe->producers.fetch_sub(1, std::memory_order_relaxed);
  }
  p->closed = true;
}

void Partition::SendReceipt(const net::ConnectionPtr& conn, uint64_t producer_id, int64_t first, int64_t highest,
                            const proto::MessageIdData* id, bool duplicate) {
  proto::BaseCommand& out = ctx_->Out();
  proto::SendReceipt* r = out.mutable_send_receipt();
  r->set_producer_id(producer_id);
  r->set_sequence_id(first);
  r->set_highest_sequence_id(highest);
  if (id != nullptr) *r->mutable_message_id() = *id;
  r->set_duplicate(duplicate);
  ctx_->Send(conn, out);
}

void Partition::SendError(const net::ConnectionPtr& conn, uint64_t producer_id, int64_t seq, proto::ServerError e,
                          const std::string& msg) {
  proto::BaseCommand& out = ctx_->Out();
  proto::SendError* s = out.mutable_send_error();
  s->set_producer_id(producer_id);
  s->set_sequence_id(seq);
  s->set_error(e);
  s->set_message(msg);
  ctx_->Send(conn, out);
}

void Partition::OnSend(ProducerH* p, const proto::Send& send, Slice payload) {
  const int64_t received_ns = MonoNanos();
  if (state_ != State::kReady) {
    SendError(p->conn, p->id, send.sequence_id(), proto::SERVER_NOT_OWNER,
              "partition " + name_ + " is not served here");
    return CloseProducer(p);
  }
  if (!ctx_->LeaseOk()) {
    SendError(p->conn, p->id, send.sequence_id(), proto::SERVER_LEASE_EXPIRED,
              "the broker lost contact with the metadata store; reconnect");
    return CloseProducer(p);
  }
  const size_t max_size = std::min<size_t>(ctx_->opts.max_message_size, log::kMaxRecordSize);
  if (payload.size() > max_size) {
    return SendError(p->conn, p->id, send.sequence_id(), proto::SERVER_MESSAGE_TOO_LARGE,
                     "batch of " + std::to_string(payload.size()) + " bytes exceeds " + std::to_string(max_size));
  }
  proto::BatchMetadata meta;
  std::string_view body;
  Status st = protocol::ParseBatchMetadata(payload.view(), &meta, &body);
  if (st.ok() &&
      (meta.producer_name() != p->name || meta.sequence_id() != send.sequence_id() ||
       meta.highest_sequence_id() != send.highest_sequence_id() || meta.num_messages() != send.num_messages())) {
    st = Status::Error(CommonErrc::kInvalidArgument, "the batch's metadata (producer '" + meta.producer_name() +
                                                         "', sequence ids " + std::to_string(meta.sequence_id()) +
                                                         ".." + std::to_string(meta.highest_sequence_id()) +
                                                         ") does not match the Send command");
  }
  if (!st.ok()) {
    ctx_->probe->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
    return SendError(p->conn, p->id, send.sequence_id(), proto::SERVER_BAD_REQUEST, st.message());
  }
  DedupEntry& e = dedup_[p->name];
  e.last_active_ms = MonoMillis();
  const int64_t first = meta.sequence_id();
  const int64_t highest = meta.highest_sequence_id();
  if (highest <= e.persisted) {
    ctx_->probe->dedup_duplicates_total.fetch_add(1, std::memory_order_relaxed);
    return SendReceipt(p->conn, p->id, first, highest, highest == e.persisted ? &e.id : nullptr, true);
  }
  if (highest <= e.pushed) {
    // A retry of a batch still being written: answer when it is.
    for (auto& [token, f] : inflight_) {
      if (f.producer_name == p->name && f.first == first && f.highest == highest) {
        ctx_->probe->dedup_duplicates_total.fetch_add(1, std::memory_order_relaxed);
        f.waiters.emplace_back(p->conn, p->id);
        return;
      }
    }
    return SendError(p->conn, p->id, first, proto::SERVER_BAD_REQUEST,
                     "sequence ids " + std::to_string(first) + ".." + std::to_string(highest) +
                         " overlap a batch in flight with other bounds");
  }
  if (first <= e.pushed) {
    return SendError(p->conn, p->id, first, proto::SERVER_BAD_REQUEST,
                     "sequence ids " + std::to_string(first) + ".." + std::to_string(highest) +
                         " overlap ids already stored (up to " + std::to_string(e.pushed) + ")");
  }
  if (inflight_bytes_ + payload.size() > ctx_->opts.max_pending_bytes_per_partition) {
    // Not written: the producer is closed so that it re-sends in order after
    // reconnecting (nothing later of it may be stored before this one).
    SendError(p->conn, p->id, first, proto::SERVER_TOO_MANY_REQUESTS, "partition " + name_ + " has too much in flight");
    return CloseProducer(p);
  }
  e.pushed = highest;
  const uint64_t token = next_token_++;
  InFlight& f = inflight_[token];
  f.producer_name = p->name;
  f.first = first;
  f.highest = highest;
  f.producer_id = p->id;
  f.conn = p->conn;
  f.num_messages = meta.num_messages();
  f.key_hash = meta.has_batch_key() ? KeyHash(meta.batch_key()) : 0;
  f.received_ns = received_ns;
  f.data = payload;
  inflight_bytes_ += payload.size();
  const int64_t txid = std::max(WallMillis(), last_txid_);
  last_txid_ = txid;
  f.publish_ms = txid;
  writer_->Write(payload, txid,
                 OnLoop<Result<log::WriteResult>>(
                     ctx_->loop, weak_from_this(),
                     [token](Partition* self, Result<log::WriteResult> r) { self->OnWritten(token, std::move(r)); }));
}

void Partition::OnWritten(uint64_t token, Result<log::WriteResult> r) {
  auto it = inflight_.find(token);
  if (it == inflight_.end()) return;
  InFlight f = std::move(it->second);
  inflight_.erase(it);
  inflight_bytes_ -= f.data.size();
  if (!r.ok()) {
    const std::string msg = "the write's outcome is unknown: " + r.status().ToString();
    SendError(f.conn, f.producer_id, f.first, proto::SERVER_PERSISTENCE_ERROR, msg);
    for (auto& [conn, id] : f.waiters) SendError(conn, id, f.first, proto::SERVER_PERSISTENCE_ERROR, msg);
    // The writer is fenced or lost its lock: this broker no longer owns the partition.
    Unload(r.status());
    return;
  }
  durable_end_ = r->seq + 1;
  last_dlsn_ = r->dlsn;
  has_last_ = true;
  DedupEntry& e = dedup_[f.producer_name];
  e.persisted = std::max(e.persisted, f.highest);
  e.id = MakeMessageId(index_, r->dlsn, r->seq, f.num_messages);
  SendReceipt(f.conn, f.producer_id, f.first, f.highest, &e.id, false);
  for (auto& [conn, id] : f.waiters) SendReceipt(conn, id, f.first, f.highest, &e.id, true);
  ctx_->probe->publish_latency_us.Record(static_cast<uint64_t>((MonoNanos() - f.received_ns) / 1000));
  counters_->msg_in.fetch_add(f.num_messages, std::memory_order_relaxed);
  counters_->bytes_in.fetch_add(static_cast<int64_t>(f.data.size()), std::memory_order_relaxed);
  msg_in_ += f.num_messages;
  bytes_in_ += static_cast<int64_t>(f.data.size());
  RecordInfo rec;
  rec.seq = r->seq;
  rec.dlsn = r->dlsn;
  rec.publish_ms = f.publish_ms;
  rec.num_messages = f.num_messages;
  rec.key_hash = f.key_hash;
  rec.data = std::move(f.data);
  cache_.Append(rec);
  MaybeSnapshotDedup(false);
  NotifySubscriptions();
}

void Partition::NotifySubscriptions() {
  for (auto& [n, sub] : subs_) sub->Pump();
}

void Partition::MaybeSnapshotDedup(bool force) {
  if (state_ != State::kReady || snapshot_in_flight_ || !cursors_ || !has_last_) return;
  const int64_t covered = durable_end_ - 1;
  if (covered <= snapshot_covered_) return;
  const int64_t now = MonoMillis();
  if (!force && covered - snapshot_covered_ < ctx_->opts.dedup_snapshot_records &&
      now - last_snapshot_ms_ < ctx_->opts.dedup_snapshot_ms) {
    return;
  }
  proto::DedupState snap;
  snap.set_covered_seq(covered);
  snap.set_segment_seq(last_dlsn_.segment_seq);
  snap.set_entry(last_dlsn_.entry);
  snap.set_slot(last_dlsn_.slot);
  for (const auto& [name, e] : dedup_) {
    if (e.persisted < 0) continue;
    proto::DedupProducer* p = snap.add_producers();
    p->set_name(name);
    p->set_highest_sequence_id(e.persisted);
    *p->mutable_message_id() = e.id;
  }
  snapshot_in_flight_ = true;
  last_snapshot_ms_ = now;
  std::weak_ptr<Partition> w = weak_from_this();
  cursors_->SaveDedupSnapshot(snap.SerializeAsString(), [w, covered](Status st) {
    auto self = w.lock();
    if (!self) return;
    self->snapshot_in_flight_ = false;
    if (st.ok()) {
      self->snapshot_covered_ = std::max(self->snapshot_covered_, covered);
    } else {
      DLOG_WARN << "partition " << self->name_ << ": dedup snapshot: " << st.ToString();
    }
  });
}

// ---- subscriptions ----

void Partition::Subscribe(const proto::Subscribe& s, std::shared_ptr<ConsumerH> c, std::function<void(Status)> done) {
  if (state_ != State::kReady) {
    return done(Status::Error(CommonErrc::kUnavailable, "partition " + name_ + " is not ready"));
  }
  const proto::SubscriptionType want_type = s.durable() ? s.sub_type() : proto::SUB_EXCLUSIVE;
  auto attach = [this, c, done, want_type](Subscription* sub) {
    if (c->closed) {
      // It went away while its subscription was being created.
      return done(Status::Error(CommonErrc::kUnavailable, "the consumer closed while subscribing"));
    }
    c->sub = sub;
    sub->AddConsumer(c, want_type);
    ctx_->probe->consumers.fetch_add(1, std::memory_order_relaxed);
    done(Status::OK());
  };
  if (!s.durable()) {
    int64_t start = s.initial_position() == proto::INITIAL_EARLIEST ? 0 : durable_end_;
    if (s.has_start_message_id()) {
      const auto& id = s.start_message_id();
      start = id.record_seq() + (s.start_message_id_inclusive() ? 0 : 1);
      start = std::clamp<int64_t>(start, 0, durable_end_);
    }
    std::string name = "reader-" + std::to_string(++reader_seq_) + "-" + c->name;
    auto sub = std::make_unique<Subscription>(this, name, proto::SUB_EXCLUSIVE, nullptr, start);
    Subscription* raw = sub.get();
    subs_[name] = std::move(sub);
    return attach(raw);
  }
  auto it = subs_.find(s.subscription());
  if (it != subs_.end()) {
    Status ok = it->second->CanAdd(s.sub_type());
    if (!ok.ok()) return done(ok);
    return attach(it->second.get());
  }
  if (SubscriptionCursor* cur = cursors_->Find(s.subscription())) {
    auto sub = std::make_unique<Subscription>(this, s.subscription(), s.sub_type(), cur, 0);
    Subscription* raw = sub.get();
    subs_[s.subscription()] = std::move(sub);
    return attach(raw);
  }
  const int64_t md = s.initial_position() == proto::INITIAL_EARLIEST ? 0 : durable_end_;
  std::weak_ptr<Partition> w = weak_from_this();
  const std::string name = s.subscription();
  const proto::SubscriptionType type = s.sub_type();
  cursors_->CreateSubscription(name, static_cast<int32_t>(type), md,
                               [w, name, type, attach, done](Result<SubscriptionCursor*> r) {
                                 auto self = w.lock();
                                 if (!self) return;
                                 if (!r.ok()) return done(r.status());
                                 if (self->state_ != State::kReady) {
                                   return done(Status::Error(CommonErrc::kUnavailable, "partition closed"));
                                 }
                                 auto it = self->subs_.find(name);
                                 if (it == self->subs_.end()) {
                                   auto sub = std::make_unique<Subscription>(self.get(), name, type, *r, 0);
                                   it = self->subs_.emplace(name, std::move(sub)).first;
                                 } else {
                                   Status ok = it->second->CanAdd(type);
                                   if (!ok.ok()) return done(ok);
                                 }
                                 attach(it->second.get());
                               });
}

void Partition::RemoveConsumer(ConsumerH* c) {
  if (c->closed) return;
  c->closed = true;
  ctx_->probe->consumers.fetch_sub(1, std::memory_order_relaxed);
  Subscription* sub = c->sub;
  c->sub = nullptr;
  if (sub == nullptr) return;
  sub->RemoveConsumer(c);
  if (!sub->durable() && sub->consumer_count() == 0) subs_.erase(sub->name());
}

void Partition::Unsubscribe(ConsumerH* c, std::function<void(Status)> done) {
  Subscription* sub = c->sub;
  if (sub == nullptr) return done(Status::Error(CommonErrc::kNotFound, "consumer is closed"));
  if (sub->consumer_count() > 1) {
    return done(Status::Error(CommonErrc::kAborted, "subscription '" + sub->name() + "' has other consumers"));
  }
  const std::string name = sub->name();
  RemoveConsumer(c);
  DeleteSubscription(name, std::move(done));
}

void Partition::DeleteSubscription(const std::string& name, std::function<void(Status)> done) {
  auto it = subs_.find(name);
  if (it != subs_.end()) {
    if (it->second->consumer_count() > 0) {
      return done(Status::Error(CommonErrc::kAborted, "subscription '" + name + "' has connected consumers"));
    }
    subs_.erase(it);
  }
  if (!cursors_ || cursors_->Find(name) == nullptr) {
    return done(Status::Error(CommonErrc::kNotFound, "no subscription '" + name + "' on " + name_));
  }
  cursors_->DeleteSubscription(name, std::move(done));
}

void Partition::ResetCursor(const proto::ResetCursor& r, std::function<void(Status)> done) {
  auto with_seq = [this, sub_name = r.subscription(), done](int64_t seq) {
    auto it = subs_.find(sub_name);
    if (it != subs_.end()) return it->second->Seek(seq, done);
    SubscriptionCursor* cur = cursors_ ? cursors_->Find(sub_name) : nullptr;
    if (cur == nullptr) return done(Status::Error(CommonErrc::kNotFound, "no subscription '" + sub_name + "'"));
    // Until the reset is persisted its position must not drive truncation.
    ++resets_in_flight_;
    std::weak_ptr<Partition> w = weak_from_this();
    cur->Reset(seq, [w, done](Status st) {
      if (auto self = w.lock()) --self->resets_in_flight_;
      done(st);
    });
  };
  switch (r.to_case()) {
    case proto::ResetCursor::kEarliest:
      return with_seq(0);
    case proto::ResetCursor::kLatest:
      return with_seq(durable_end_);
    case proto::ResetCursor::kMessageId:
      return with_seq(std::clamp<int64_t>(r.message_id().record_seq(), 0, durable_end_));
    case proto::ResetCursor::kPublishTimeMs: {
      std::weak_ptr<Partition> w = weak_from_this();
      return SeqAtTime(r.publish_time_ms(), [w, with_seq, done](Result<int64_t> seq) {
        if (!w.lock()) return;
        if (!seq.ok()) return done(seq.status());
        with_seq(*seq);
      });
    }
    default:
      return done(Status::Error(CommonErrc::kInvalidArgument, "reset cursor: no target position"));
  }
}

void Partition::SeekSubscription(const std::string& name, int64_t seq, std::function<void(Status)> done) {
  auto it = subs_.find(name);
  if (it == subs_.end()) return done(Status::Error(CommonErrc::kNotFound, "no subscription '" + name + "'"));
  const bool reader = !it->second->durable();
  it->second->Seek(seq, std::move(done));
  // A reader's consumer reconnects as a new reader; this one is done.
  if (reader) subs_.erase(name);
}

std::vector<proto::SubscriptionStats> Partition::SubscriptionStatsList() const {
  std::vector<proto::SubscriptionStats> out;
  for (const auto& [n, sub] : subs_) {
    if (sub->durable()) out.push_back(sub->Stats());
  }
  if (cursors_) {
    for (const std::string& n : cursors_->SubscriptionNames()) {
      if (subs_.count(n)) continue;
      SubscriptionCursor* cur = cursors_->Find(n);
      if (cur == nullptr) continue;
      proto::SubscriptionStats s;
      s.set_name(n);
      s.set_type(static_cast<proto::SubscriptionType>(cur->type()));
      s.set_mark_delete_seq(cur->mark_delete());
      s.set_backlog_messages(std::max<int64_t>(0, durable_end_ - cur->mark_delete() - cur->acked_records_beyond()));
      s.set_ack_holes(cur->ack_holes());
      out.push_back(std::move(s));
    }
  }
  return out;
}

proto::PartitionStats Partition::Stats() const {
  proto::PartitionStats s;
  s.set_partition(index_);
  s.set_owner(ctx_->opts.advertise);
  s.set_records(durable_end_);
  s.set_msg_in(msg_in_);
  s.set_bytes_in(bytes_in_);
  s.set_producers(static_cast<int32_t>(producers_.size()));
  for (auto& st : SubscriptionStatsList()) *s.add_subscriptions() = std::move(st);
  return s;
}

std::optional<proto::MessageIdData> Partition::LastMessageId() const {
  if (durable_end_ == 0) return std::nullopt;
  proto::MessageIdData id;
  id.set_partition(index_);
  id.set_record_seq(durable_end_ - 1);
  id.set_batch_index(-1);
  if (has_last_) {
    id.set_segment_seq(last_dlsn_.segment_seq);
    id.set_entry(last_dlsn_.entry);
    id.set_slot(last_dlsn_.slot);
  }
  return id;
}

void Partition::SeqToDlsn(int64_t seq, std::function<void(Result<log::Dlsn>)> cb) {
  ns_->GetLogInfo(log_name_, OnLoop<Result<log::LogInfo>>(
                                 ctx_->loop, weak_from_this(), [seq, cb](Partition*, Result<log::LogInfo> info) {
                                   if (!info.ok()) return cb(info.status());
                                   log::Dlsn d;
                                   bool found = false;
                                   for (const log::SegmentInfo& s : info->segments) {
                                     if (s.truncated_at_ms != 0) continue;
                                     const bool closed = s.meta.state() == proto::SEGMENT_CLOSED;
                                     if (!found) {
                                       d = log::Dlsn{s.seq, 0, 0};  // the first live segment
                                       found = true;
                                     }
                                     if (!closed) {
                                       d = log::Dlsn{s.seq, 0, 0};
                                       break;
                                     }
                                     if (seq < s.meta.first_record_seq() + s.meta.record_count()) {
                                       if (seq >= s.meta.first_record_seq()) d = log::Dlsn{s.seq, 0, 0};
                                       break;
                                     }
                                     d = log::Dlsn{s.seq + 1, 0, 0};
                                   }
                                   cb(d);
                                 }));
}

void Partition::SeqAtTime(int64_t ms, std::function<void(Result<int64_t>)> cb) {
  // Records carry the broker's append time as their txid (non-decreasing).
  // Past the last one: the end. Otherwise a record at or after `ms` exists
  // (or is being written), so the read below finds it.
  if (durable_end_ == 0 || ms > last_txid_) return cb(durable_end_);
  ns_->OpenReader(log_name_, log::StartPosition::FromTxid(ms), {},
                  OnLoop<Result<std::unique_ptr<log::LogReader>>>(
                      ctx_->loop, weak_from_this(), [cb](Partition* self, Result<std::unique_ptr<log::LogReader>> r) {
                        if (!r.ok()) return cb(r.status());
                        std::shared_ptr<log::LogReader> reader(std::move(r).value());
                        reader->ReadNext(1, OnLoop<Result<std::vector<log::LogRecord>>>(
                                                self->ctx_->loop, self->weak_from_this(),
                                                [cb, reader](Partition* p, Result<std::vector<log::LogRecord>> recs) {
                                                  if (!recs.ok() || recs->empty()) return cb(p->durable_end_);
                                                  cb(recs->front().seq);
                                                }));
                      }));
}

// ---- periodic ----

void Partition::ExpireDedup() {
  const int64_t now = MonoMillis();
  for (auto it = dedup_.begin(); it != dedup_.end();) {
    const DedupEntry& e = it->second;
    const bool idle = e.last_active_ms != 0 && now - e.last_active_ms > ctx_->opts.dedup_inactivity_ms;
    const bool in_flight = e.pushed > e.persisted;
    if (idle && !in_flight && producers_.count(it->first) == 0) {
      it = dedup_.erase(it);
    } else {
      ++it;
    }
  }
}

void Partition::Tick() {
  if (state_ != State::kReady) return;
  if (cursors_) {
    // The cursor log fenced or lost its lock: another broker owns this now.
    Status health = cursors_->health();
    if (!health.ok()) return Unload(health.WithContext("cursor log of " + name_));
  }
  MaybeSnapshotDedup(false);
  const int64_t now = MonoMillis();
  if (now - last_backlog_ms_ >= ctx_->opts.backlog_check_ms) {
    last_backlog_ms_ = now;
    CheckBacklog();
    ExpireDedup();
  }
  for (auto& [n, sub] : subs_) sub->Pump();
}

int64_t Partition::MinPersistedMarkDelete() const {
  int64_t min_md = INT64_MAX;
  if (!cursors_) return -1;
  for (const std::string& n : cursors_->SubscriptionNames()) {
    SubscriptionCursor* cur = cursors_->Find(n);
    if (cur == nullptr) continue;
    auto it = subs_.find(n);
    min_md = std::min(min_md, it != subs_.end() ? it->second->persisted_mark_delete() : cur->mark_delete());
  }
  return min_md;
}

// Backlog gauges, and truncation of the segments wholly behind every durable
// subscription's *persisted* mark-delete position (DESIGN "Retention"):
// a segment is truncated once every record in it is acked by every
// subscription (its ack persisted) and it ended more than acked_retention_ms
// ago (its successor's creation time). A partition without durable
// subscriptions keeps everything; so does acked_retention_ms < 0.
void Partition::CheckBacklog() {
  int64_t min_md = -1;
  bool any = false;
  for (const auto& s : SubscriptionStatsList()) {
    SubscriptionGauges g;
    g.backlog_messages = s.backlog_messages();
    g.backlog_age_seconds = static_cast<double>(s.backlog_age_ms()) / 1000.0;
    ctx_->probe->SetSubscription(name_, s.name(), g);
  }
  if (cursors_) {
    for (const std::string& n : cursors_->SubscriptionNames()) {
      SubscriptionCursor* cur = cursors_->Find(n);
      if (cur == nullptr) continue;
      auto it = subs_.find(n);
      const int64_t md = it != subs_.end() ? it->second->persisted_mark_delete() : cur->mark_delete();
      min_md = any ? std::min(min_md, md) : md;
      any = true;
    }
  }
  const int64_t retention = ctx_->opts.acked_retention_ms;
  // Dedup across failover scans the log from the last dedup snapshot: never
  // truncate past what it covers.
  min_md = std::min(min_md, snapshot_covered_ + 1);
  if (!any || min_md <= 0 || retention < 0 || truncate_in_flight_ || resets_in_flight_ > 0) return;
  truncate_in_flight_ = true;
  const int64_t now = WallMillis();
  ns_->GetLogInfo(
      log_name_,
      OnLoop<Result<log::LogInfo>>(
          ctx_->loop, weak_from_this(), [min_md, retention, now](Partition* self, Result<log::LogInfo> info) {
            std::optional<log::Dlsn> cut;
            if (info.ok()) {
              const auto& segs = info->segments;
              for (size_t i = 0; i + 1 < segs.size(); ++i) {
                const auto& m = segs[i].meta;
                if (m.state() != proto::SEGMENT_CLOSED || m.record_count() < 0) break;
                if (m.first_record_seq() + m.record_count() > min_md) break;                // not wholly acked
                if (retention > 0 && segs[i + 1].meta.ctime_ms() > now - retention) break;  // ended too recently
                cut = log::Dlsn{segs[i + 1].seq, 0, 0};
              }
            }
            if (!cut) {
              self->truncate_in_flight_ = false;
              return;
            }
            self->ns_->Truncate(self->log_name_, *cut,
                                OnLoop<Status>(self->ctx_->loop, self->weak_from_this(), [](Partition* p, Status st) {
                                  p->truncate_in_flight_ = false;
                                  if (!st.ok()) {
                                    DLOG_WARN << "partition " << p->name_ << ": truncate: " << st.ToString();
                                  }
                                }));
          }));
}

}  // namespace dlog::broker
