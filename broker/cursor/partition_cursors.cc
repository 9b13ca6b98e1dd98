#include "broker/cursor/partition_cursors.h"

#include <algorithm>

#include "broker/cursor/cursor_recovery.h"
#include "broker/cursor/cursor_snapshot.h"
#include "common/check.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/logging.h"
#include "cursor.pb.h"
#include "logstore/log/errors.h"

namespace dlog::broker {

namespace {
constexpr size_t kMaxDedupBytes = 768u << 10;
constexpr size_t kMaxNameBytes = 1024;
constexpr uint32_t kCursorLogVersion = 1;
}  // namespace

PartitionCursors::PartitionCursors(CursorDb* db, log::Namespace* ns, std::string log_name, net::EventLoop* loop,
                                   PartitionCursorsOptions options)
    : db_(db),
      cache_(db->cache(loop)),
      ns_(ns),
      log_name_(std::move(log_name)),
      partition_key_(ns->name() + "/" + log_name_),
      loop_(loop),
      options_(std::move(options)) {
  last_snapshot_ms_ = MonoNanos() / 1'000'000;
}

PartitionCursors::~PartitionCursors() {
  *alive_ = false;
  snapshotter_.reset();
  subs_.clear();
  deleting_.clear();
  // The writer goes last: abandoning it releases the lock.
  writer_.reset();
}

void PartitionCursors::Open(CursorDb* db, log::Namespace* ns, std::string cursor_log, net::EventLoop* loop,
                            PartitionCursorsOptions options, OpenCallback cb) {
  std::unique_ptr<PartitionCursors> pc(new PartitionCursors(db, ns, std::move(cursor_log), loop, std::move(options)));
  CursorRecovery::Start(std::move(pc), std::move(cb));
}

std::vector<std::string> PartitionCursors::SubscriptionNames() const {
  std::vector<std::string> v;
  v.reserve(subs_.size());
  for (const auto& [name, s] : subs_) v.push_back(name);
  return v;
}

SubscriptionCursor* PartitionCursors::Find(const std::string& name) {
  auto it = subs_.find(name);
  return it == subs_.end() ? nullptr : it->second.get();
}

Status PartitionCursors::health() const {
  if (closed_) return Status::Error(log::LogErrc::kClosed, log_name_ + ": cursors closed");
  return WriteHealth();
}

Status PartitionCursors::WriteHealth() const {
  if (!failed_.ok()) return failed_;
  if (writer_) return writer_->health();
  return Status::OK();
}

Status PartitionCursors::Admit() const {
  DLOG_RETURN_IF_ERROR(health());
  if (ops_.size() >= options_.max_pending_ops) {
    return Status::Error(log::LogErrc::kBusy, log_name_ + ": too many cursor operations waiting");
  }
  if (snapshotting_ && queued_.size() >= options_.max_queued_deltas) {
    return Status::Error(log::LogErrc::kBusy, log_name_ + ": a snapshot is being written and " +
                                                  std::to_string(queued_.size()) + " records wait for it");
  }
  return Status::OK();
}

void PartitionCursors::Fail(Status st) {
  if (!failed_.ok()) return;
  DLOG_ERROR << log_name_ << ": cursors failed: " << st.ToString();
  failed_ = std::move(st);
}

SubscriptionCursor* PartitionCursors::NewSub(const std::string& name, int32_t type, int64_t mark_delete, uint64_t id) {
  if (id == 0) id = next_sub_id_++;
  auto sub = std::unique_ptr<SubscriptionCursor>(new SubscriptionCursor(this, name, type, id, mark_delete));
  SubscriptionCursor* p = sub.get();
  subs_[name] = std::move(sub);
  return p;
}

// ---------------------------------------------------------------- ops

void PartitionCursors::Enqueue(Op op) {
  ops_.push_back(std::move(op));
  RunOps();
}

void PartitionCursors::RunOps() {
  while (!op_running_ && !ops_.empty()) {
    Op op = std::move(ops_.front());
    ops_.pop_front();
    op_running_ = true;
    struct Turn {
      bool sync = true;
      bool finished = false;
    };
    auto turn = std::make_shared<Turn>();
    std::weak_ptr<bool> alive = alive_;
    op([this, alive, turn] {
      if (alive.expired()) return;
      if (turn->sync) {
        turn->finished = true;
        return;
      }
      op_running_ = false;
      RunOps();
    });
    turn->sync = false;
    if (!turn->finished) return;  // resumes from the op's callback
    op_running_ = false;
  }
  if (!op_running_ && ops_.empty()) deleting_.clear();
}

namespace {

std::string Encode(proto::CursorLogRecord& rec) {
  rec.set_version(kCursorLogVersion);
  return rec.SerializeAsString();
}

// Ack delta records of `set` for `name`, each about max_bytes at most.
std::vector<std::string> EncodeDeltas(const std::string& name, const AckSet& set, bool md_moved, int64_t md,
                                      size_t max_bytes) {
  std::vector<std::string> out;
  proto::CursorLogRecord rec;
  size_t bytes = 0;
  auto fresh = [&] {
    rec.Clear();
    rec.mutable_ack()->set_name(name);
    bytes = name.size() + 16;
  };
  fresh();
  if (md_moved) {
    rec.mutable_ack()->set_has_mark_delete(true);
    rec.mutable_ack()->set_mark_delete(md);
  }
  for (const auto& [a, b] : set.ranges) {
    if (bytes + 24 > max_bytes) {
      out.push_back(Encode(rec));
      fresh();
    }
    proto::AckRange* r = rec.mutable_ack()->add_ranges();
    r->set_first(a);
    r->set_last(b);
    bytes += 24;
  }
  for (const auto& p : set.partials) {
    const size_t need = 24 + p.words.size() * 9;
    if (bytes + need > max_bytes) {
      out.push_back(Encode(rec));
      fresh();
    }
    proto::PartialAck* pa = rec.mutable_ack()->add_partials();
    pa->set_seq(p.seq);
    pa->set_batch_size(p.batch_size);
    for (uint64_t w : p.words) pa->add_words(w);
    bytes += need;
  }
  out.push_back(Encode(rec));
  return out;
}

}  // namespace

void PartitionCursors::SubmitAcks(SubscriptionCursor* sub, std::shared_ptr<AckSet> set,
                                  std::function<void(Status)> cb) {
  if (Status st = Admit(); !st.ok()) return cb(st);
  std::weak_ptr<bool> alive = alive_;
  Enqueue([this, alive, sub, set, cb](std::function<void()> next) mutable {
    if (sub->deleted_) {
      cb(Status::Error(CommonErrc::kNotFound, "subscription " + sub->name() + " was deleted"));
      return next();
    }
    if (Status st = WriteHealth(); !st.ok()) {
      cb(st);
      return next();
    }
    const int64_t md_before = sub->mark_delete_;
    sub->Apply(set, [this, alive, sub, set, cb, md_before, next]() mutable {
      if (alive.expired()) return;
      const bool moved = sub->mark_delete_ != md_before;
      WriteRecords(EncodeDeltas(sub->name(), *set, moved, sub->mark_delete_, options_.max_delta_bytes), std::move(cb));
      next();
    });
  });
}

void PartitionCursors::SubmitReset(SubscriptionCursor* sub, int64_t mark_delete, std::function<void(Status)> cb) {
  if (Status st = Admit(); !st.ok()) return cb(st);
  Enqueue([this, sub, mark_delete, cb](std::function<void()> next) mutable {
    if (sub->deleted_) {
      cb(Status::Error(CommonErrc::kNotFound, "subscription " + sub->name() + " was deleted"));
      return next();
    }
    if (Status st = WriteHealth(); !st.ok()) {
      cb(st);
      return next();
    }
    sub->ResetTo(mark_delete);
    proto::CursorLogRecord rec;
    rec.mutable_reset()->set_name(sub->name());
    rec.mutable_reset()->set_mark_delete(mark_delete);
    WriteRecord(rec, std::move(cb));
    next();
  });
}

void PartitionCursors::CreateSubscription(std::string name, int32_t type, int64_t mark_delete,
                                          std::function<void(Result<SubscriptionCursor*>)> cb) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return cb(Status::Error(CommonErrc::kInvalidArgument, "subscription name must have 1..1024 bytes"));
  }
  if (mark_delete < 0) return cb(Status::Error(CommonErrc::kInvalidArgument, "negative mark-delete"));
  if (Status st = Admit(); !st.ok()) return cb(st);
  Enqueue([this, name, type, mark_delete, cb](std::function<void()> next) mutable {
    if (Status st = WriteHealth(); !st.ok()) {
      cb(st);
      return next();
    }
    if (subs_.count(name) > 0) {
      cb(Status::Error(CommonErrc::kAlreadyExists, "subscription " + name + " exists"));
      return next();
    }
    SubscriptionCursor* sub = NewSub(name, type, mark_delete);
    proto::CursorLogRecord rec;
    rec.mutable_created()->set_name(name);
    rec.mutable_created()->set_type(type);
    rec.mutable_created()->set_mark_delete(mark_delete);
    std::weak_ptr<bool> sub_alive = sub->alive_;
    WriteRecord(rec, [sub, sub_alive, cb](Status st) {
      if (!st.ok()) return cb(st);
      if (sub_alive.expired() || sub->deleted_) {
        return cb(Status::Error(CommonErrc::kNotFound, "subscription deleted meanwhile"));
      }
      cb(sub);
    });
    next();
  });
}

void PartitionCursors::DeleteSubscription(std::string name, std::function<void(Status)> cb) {
  if (Status st = Admit(); !st.ok()) return cb(st);
  auto it = subs_.find(name);
  if (it == subs_.end()) return cb(Status::Error(CommonErrc::kNotFound, "no subscription " + name));
  // Find() misses it from now on; later calls through old pointers get kNotFound.
  it->second->deleted_ = true;
  deleting_.push_back(std::move(it->second));
  subs_.erase(it);
  SubscriptionCursor* sub = deleting_.back().get();
  Enqueue([this, sub, name, cb](std::function<void()> next) mutable {
    sub->DropAll();
    sub->FlushBatch();
    proto::CursorLogRecord rec;
    rec.mutable_deleted()->set_name(name);
    WriteRecord(rec, std::move(cb));
    next();
  });
}

void PartitionCursors::SaveDedupSnapshot(std::string bytes, std::function<void(Status)> cb) {
  if (bytes.size() > kMaxDedupBytes) {
    return cb(Status::Error(CommonErrc::kInvalidArgument,
                            "dedup snapshot of " + std::to_string(bytes.size()) + " bytes (at most 768 KiB)"));
  }
  if (Status st = Admit(); !st.ok()) return cb(st);
  Enqueue([this, bytes = std::move(bytes), cb](std::function<void()> next) mutable {
    if (Status st = WriteHealth(); !st.ok()) {
      cb(st);
      return next();
    }
    proto::CursorLogRecord rec;
    rec.mutable_dedup()->set_data(bytes);
    // The state has it at once (a snapshot started now must carry it).
    dedup_ = std::move(bytes);
    has_dedup_ = true;
    WriteRecord(rec, std::move(cb));
    next();
  });
}

// ---------------------------------------------------------------- writing

void PartitionCursors::WriteRecord(const proto::CursorLogRecord& rec, std::function<void(Status)> cb, bool snapshot) {
  proto::CursorLogRecord copy = rec;
  std::string payload = Encode(copy);
  auto done = [this, cb = std::move(cb), snapshot](Result<log::WriteResult> r) {
    cb(r.ok() ? Status::OK() : r.status());
    if (!snapshot) MaybeSnapshot();
  };
  if (!snapshot) ++records_since_snapshot_;
  if (snapshotting_ && !snapshot) {
    queued_.emplace_back(std::move(payload), std::move(done));
    return;
  }
  Send(std::move(payload), std::move(done));
}

void PartitionCursors::WriteRecords(std::vector<std::string> payloads, std::function<void(Status)> cb) {
  struct Join {
    size_t left;
    Status first;
    std::function<void(Status)> cb;
  };
  auto join = std::make_shared<Join>(Join{payloads.size(), Status::OK(), std::move(cb)});
  for (auto& p : payloads) {
    proto::CursorLogRecord rec;
    DLOG_CHECK(rec.ParseFromString(p));
    WriteRecord(rec, [join](Status st) {
      if (!st.ok() && join->first.ok()) join->first = st;
      if (--join->left == 0) join->cb(join->first);
    });
  }
}

void PartitionCursors::Send(std::string payload, std::function<void(Result<log::WriteResult>)> cb) {
  if (!failed_.ok()) {
    loop_->Post([cb, st = failed_] { cb(st); });
    return;
  }
  ++writes_in_flight_;
  const uint32_t crc = crc32c::Value(payload.data(), payload.size());
  std::weak_ptr<bool> alive = alive_;
  net::EventLoop* loop = loop_;
  writer_->Write(Slice::CopyOf(payload), [this, alive, loop, crc, cb](Result<log::WriteResult> r) {
    loop->Post([this, alive, crc, cb, r] {
      if (alive.expired()) return;
      OnWritten(r, crc);
      cb(r);
    });
  });
}

void PartitionCursors::OnWritten(const Result<log::WriteResult>& r, uint32_t crc) {
  --writes_in_flight_;
  if (r.ok()) {
    ++stats_.records_written;
    if (r->seq > last_seq_) {
      last_seq_ = r->seq;
      last_dlsn_ = r->dlsn;
      last_crc_ = crc;
    }
  } else {
    Fail(r.status());
  }
}

// ---------------------------------------------------------------- snapshots

void PartitionCursors::MaybeSnapshot() {
  if (snapshotting_ || closed_ || !failed_.ok() || records_since_snapshot_ == 0) return;
  const int64_t now_ms = MonoNanos() / 1'000'000;
  const bool by_count = options_.snapshot_every_deltas > 0 && records_since_snapshot_ >= options_.snapshot_every_deltas;
  const bool by_time = options_.snapshot_interval_ms > 0 && now_ms - last_snapshot_ms_ >= options_.snapshot_interval_ms;
  if (!by_count && !by_time) return;
  snapshotting_ = true;
  records_since_snapshot_ = 0;
  snapshotter_ = std::make_unique<CursorSnapshotter>(this);
  snapshotter_->Start();
}

void PartitionCursors::SnapshotDone(Status st, bool committed) {
  if (!st.ok()) {
    Fail(st);
  } else if (committed) {
    ++stats_.snapshots;
  }
  // Not from inside the snapshotter's own call stack.
  loop_->Post([this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    snapshotter_.reset();
    snapshotting_ = false;
    last_snapshot_ms_ = MonoNanos() / 1'000'000;
    auto q = std::move(queued_);
    queued_.clear();
    for (auto& [payload, cb] : q) Send(std::move(payload), std::move(cb));
    if (after_snapshot_) {
      auto f = std::move(after_snapshot_);
      after_snapshot_ = nullptr;
      f();
    }
  });
}

// ---------------------------------------------------------------- close

std::string PartitionCursors::EncodeMeta(bool clean) const {
  proto::CursorDbMeta m;
  m.set_version(1);
  m.set_clean(clean);
  m.set_last_seq(last_seq_);
  m.set_last_dlsn_segment(last_dlsn_.segment_seq);
  m.set_last_dlsn_entry(last_dlsn_.entry);
  m.set_last_dlsn_slot(last_dlsn_.slot);
  m.set_last_crc(last_crc_);
  m.set_next_id(next_sub_id_);
  m.set_log_incarnation(log_incarnation_);
  for (const auto& [name, s] : subs_) {
    proto::CursorDbSubscription* ps = m.add_subscriptions();
    ps->set_name(name);
    ps->set_type(s->type());
    ps->set_mark_delete(s->mark_delete());
    ps->set_id(s->id_);
  }
  if (has_dedup_) {
    m.set_has_dedup(true);
    m.set_dedup(dedup_);
  }
  return m.SerializeAsString();
}

void PartitionCursors::Close(std::function<void(Status)> cb) {
  if (closed_) return cb(Status::Error(log::LogErrc::kClosed, log_name_ + ": already closed"));
  closed_ = true;
  std::weak_ptr<bool> alive = alive_;
  Enqueue([this, alive, cb](std::function<void()> next) mutable {
    auto flush = [this, alive, cb, next]() mutable {
      writer_->Flush([this, alive, cb, next](Status flushed) mutable {
        loop_->Post([this, alive, cb, next, flushed]() mutable {
          if (alive.expired()) return;
          // Every record's callback ran before the flush's (both posted in order).
          const bool clean = flushed.ok() && failed_.ok() && writes_in_flight_ == 0 && queued_.empty();
          for (auto& [name, s] : subs_) {
            s->WriteDirty();
            s->FlushBatch();
          }
          auto batch = std::make_shared<rocksdb::WriteBatch>();
          batch->Put(CursorDb::MetaKey(partition_key_), EncodeMeta(clean));
          auto st = std::make_shared<Status>();
          const bool sync = db_->options().sync_meta;
          db_->Submit(
              loop_,
              [batch, st, sync](rocksdb::DB* db) {
                rocksdb::WriteOptions wo;
                wo.sync = sync;
                *st = FromRocks(db->Write(wo, batch.get()), "write cursor meta");
              },
              [this, alive, cb, next, st, flushed]() mutable {
                if (alive.expired()) return;
                writer_->Close([this, alive, cb, next, st, flushed](Status closed) mutable {
                  loop_->Post([alive, cb, next, st, flushed, closed]() mutable {
                    if (alive.expired()) return;
                    Status out = !flushed.ok() ? flushed : (!st->ok() ? *st : closed);
                    next();
                    cb(out);
                  });
                });
              });
        });
      });
    };
    if (snapshotting_) {
      after_snapshot_ = std::move(flush);
    } else {
      flush();
    }
  });
}

}  // namespace dlog::broker
