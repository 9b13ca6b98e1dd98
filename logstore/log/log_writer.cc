#include "logstore/log/log_writer.h"

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <future>

#include "common/check.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_annotations.h"
#include "logstore/log/entry.h"
#include "logstore/log/log_meta.h"
#include "logstore/segment/errors.h"
#include "logstore/segment/recovery.h"
#include "logstore/segment/segment_reader.h"
#include "logstore/segment/segment_writer.h"
#include "logstore/segment/timer.h"
#include "metadata/records.h"

namespace dlog::log {

using metadata::CreateMode;
using metadata::MetaErrc;
using metadata::Op;
using segment::SegmentErrc;

namespace {

// An entry cut from the intake buffer, not yet sent.
struct ReadyEntry {
  Slice payload;
  int64_t first_seq = 0;
  uint32_t count = 0;
  int64_t max_txid = 0;
  size_t record_bytes = 0;  // sum of record payload sizes (pending-bytes accounting)
};

// An entry sent to the current segment, not yet acknowledged.
struct InflightEntry {
  int64_t first_seq = 0;
  uint32_t count = 0;
  size_t record_bytes = 0;
};

struct FlushWaiter {
  int64_t target_seq;  // done once acked_seq_ >= target_seq
  LogWriter::DoneCallback cb;
};

std::string DefaultOwnerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::to_string(getpid()) + "@" + host;
}

Status MapSegmentError(const Status& st, const LogPaths& p) {
  if (st.Is(SegmentErrc::kFenced)) {
    return Status::Error(LogErrc::kFenced, p.Describe() +
                                               ": this writer was fenced (another writer recovered its "
                                               "segment); outcome unknown: " +
                                               st.message());
  }
  return Status::Error(LogErrc::kOutcomeUnknown, p.Describe() + ": " + st.ToString());
}

}  // namespace

// Threading: the intake (Write) runs on any thread under mu_; everything
// else runs on the segment client's loop.
class LogWriter::Impl : public std::enable_shared_from_this<LogWriter::Impl> {
 public:
  Impl(NsRef ns, LogPaths paths, WriterOptions options)
      : ns_(std::move(ns)),
        client_(ns_->client),
        store_(client_->store()),
        paths_(std::move(paths)),
        options_(std::move(options)),
        lock_timer_(client_->loop()),
        lease_timer_(client_->loop()),
        sweep_timer_(client_->loop()),
        retry_timer_(client_->loop()),
        flush_timer_(client_->loop()) {
    if (options_.owner_id.empty()) options_.owner_id = DefaultOwnerId();
    options_.max_entries_in_flight =
        std::clamp<size_t>(options_.max_entries_in_flight, 1, client_->options().writer_window);
    options_.max_entry_bytes = std::max<size_t>(kEntryHeaderSize + kRecordHeaderSize + 1, options_.max_entry_bytes);
    lease_ns_ = store_->SessionTimeout().count() * 1'000'000 * 2 / 3;
  }

  ~Impl() {
    if (session_sub_ != 0) store_->UnsubscribeSession(session_sub_);
  }

  const LogPaths& paths() const { return paths_; }
  net::EventLoop* loop() const { return client_->loop(); }

  // ---------------- opening (loop) ----------------

  void Open(std::function<void(Status)> cb) {
    open_cb_ = std::move(cb);
    session_id_ = store_->SessionId();
    std::weak_ptr<Impl> w = weak_from_this();
    session_sub_ = store_->SubscribeSession([w](const metadata::SessionEvent& ev) {
      auto self = w.lock();
      if (!self) return;
      if ((ev.state == metadata::SessionState::kExpired && ev.session_id == self->session_id_) ||
          ev.state == metadata::SessionState::kClosed) {
        self->Fail(Status::Error(LogErrc::kLockLost, self->paths_.Describe() +
                                                         ": the metadata session expired, so the lock is lost; "
                                                         "outcome unknown for writes in flight"));
      }
    });
    proto::OwnerRecord owner;
    owner.set_owner_id(options_.owner_id);
    owner.set_address(options_.address);
    owner.set_session_id(session_id_);
    owner.set_session_guid(store_->SessionGuid());
    owner.set_acquired_at_ms(WallMillis());
    lock_deadline_ns_ = MonoNanos() + options_.lock_timeout_ms * 1'000'000;
    lock_data_ = metadata::Encode(owner);
    lock_prefix_ = store_->SessionGuid() + "-";
    store_->Create(
        paths_.lock_dir + "/" + lock_prefix_, lock_data_, CreateMode::kEphemeralSequential, [w](Result<std::string> r) {
          auto self = w.lock();
          if (!self) return;
          if (!r.ok()) {
            // An ambiguous create may have left our node behind: remove it.
            if (r.status().Is(MetaErrc::kConnectionLoss)) self->RemoveOrphanLockNodes();
            return self->FailOpen(MapLogError(r.status(), self->paths_));
          }
          self->lock_path_ = *r;
          // The session that holds the node is the one whose expiry ends ownership.
          self->store_->Exists(self->lock_path_, [w](Result<std::optional<metadata::Stat>> e) {
            auto s = w.lock();
            if (!s || s->state_ != State::kOpening) return;
            if (!e.ok()) return s->FailOpen(e.status());
            if (!e->has_value()) {
              return s->FailOpen(
                  Status::Error(LogErrc::kLockLost, s->paths_.Describe() + ": lock node vanished (session expired)"));
            }
            s->session_id_ = (*e)->ephemeral_owner;
            s->CheckLock();
          });
        });
  }

  // Deletes lock nodes of this session holding exactly our data.
  void RemoveOrphanLockNodes() {
    metadata::MetadataStore* store = store_;
    const std::string dir = paths_.lock_dir, prefix = lock_prefix_, data = lock_data_;
    store->GetChildren(dir, [store, dir, prefix, data](Result<std::vector<std::string>> r) {
      if (!r.ok()) return;
      for (const std::string& c : *r) {
        if (c.rfind(prefix, 0) != 0) continue;
        const std::string path = dir + "/" + c;
        store->Get(path, [store, path, data](Result<metadata::NodeData> d) {
          if (d.ok() && d->data == data) store->Delete(path, metadata::kAnyVersion, [](Status) {});
        });
      }
    });
  }

  void FailOpen(Status st) {
    state_ = State::kFailed;
    {
      MutexLock l(&mu_);
      intake_status_ = st;
    }
    lock_timer_.Stop();
    ReleaseLock();
    if (open_cb_) {
      auto cb = std::move(open_cb_);
      open_cb_ = nullptr;
      cb(st);
    }
  }

  void CheckLock() {
    if (state_ != State::kOpening) return;
    std::weak_ptr<Impl> w = weak_from_this();
    store_->GetChildren(paths_.lock_dir, [w](Result<std::vector<std::string>> r) {
      auto self = w.lock();
      if (!self || self->state_ != State::kOpening) return;
      if (!r.ok()) return self->FailOpen(MapLogError(r.status(), self->paths_));
      std::vector<std::string> names = *r;
      std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
        return metadata::SequenceOf(a) < metadata::SequenceOf(b);
      });
      const std::string mine = metadata::BaseName(self->lock_path_);
      auto it = std::find(names.begin(), names.end(), mine);
      if (it == names.end()) {
        return self->FailOpen(Status::Error(LogErrc::kLockLost, self->paths_.Describe() + ": lock node vanished"));
      }
      if (it == names.begin()) return self->OnLocked();
      const std::string holder = self->paths_.lock_dir + "/" + names.front();
      const std::string pred = self->paths_.lock_dir + "/" + *(it - 1);
      if (MonoNanos() >= self->lock_deadline_ns_) return self->FailLocked(holder);
      // Wait for the one before us to go (or the deadline).
      self->lock_timer_.Start(
          static_cast<uint64_t>(std::max<int64_t>(1, (self->lock_deadline_ns_ - MonoNanos()) / 1'000'000)), [w] {
            if (auto s = w.lock()) s->CheckLock();
          });
      self->store_->Exists(
          pred,
          [w](Result<std::optional<metadata::Stat>> e) {
            auto s = w.lock();
            if (s && e.ok() && !e->has_value()) s->CheckLock();
          },
          [w](const metadata::WatchEvent&) {
            if (auto s = w.lock()) s->CheckLock();
          });
    });
  }

  void FailLocked(const std::string& holder) {
    std::weak_ptr<Impl> w = weak_from_this();
    store_->Get(holder, [w, holder](Result<metadata::NodeData> d) {
      auto self = w.lock();
      if (!self) return;
      std::string who = "another writer";
      if (d.ok()) {
        Result<proto::OwnerRecord> o = metadata::Decode<proto::OwnerRecord>(holder, d->data);
        if (o.ok()) {
          who = "writer '" + o->owner_id() + "'";
          if (!o->address().empty()) who += " at " + o->address();
        }
      }
      self->FailOpen(Status::Error(LogErrc::kLocked, self->paths_.Describe() + " is locked by " + who));
    });
  }

  void OnLocked() {
    lock_timer_.Stop();
    std::weak_ptr<Impl> w = weak_from_this();
    LoadLog(store_, paths_, [w](Result<VersionedLog> lg) {
      auto self = w.lock();
      if (!self || self->state_ != State::kOpening) return;
      if (!lg.ok()) return self->FailOpen(lg.status());
      if (lg->meta.end_of_stream()) {
        return self->FailOpen(Status::Error(LogErrc::kEndOfStream, self->paths_.Describe() + " has ended"));
      }
      self->log_ = lg->meta;
      self->log_version_ = lg->version;
      std::vector<proto::LogSegmentRef> refs;
      for (const auto& r : lg->meta.segments()) {
        if (r.truncated_at_ms() == 0) refs.push_back(r);
      }
      LoadSegments(self->client_, refs, false, [w](Result<std::vector<segment::VersionedMeta>> segs) {
        auto s = w.lock();
        if (!s || s->state_ != State::kOpening) return;
        if (!segs.ok()) return s->FailOpen(segs.status());
        s->to_recover_ = std::move(*segs);
        s->RecoverNext(0);
      });
    });
  }

  // Recovers (fences and closes) every segment that is not CLOSED, and fills
  // in counters that are not known yet, one after the other.
  void RecoverNext(size_t i) {
    if (state_ != State::kOpening) return;
    if (i == to_recover_.size()) return OnRecovered();
    const proto::SegmentMetadata& m = to_recover_[i].meta;
    if (m.state() == proto::SEGMENT_CLOSED && m.record_count() != kCountersUnknown) return RecoverNext(i + 1);
    std::weak_ptr<Impl> w = weak_from_this();
    DLOG_INFO << paths_.Describe() << ": recovering segment " << m.segment_id() << " (seq " << m.segment_seq() << ", "
              << segment::SegmentStateName(m.state()) << ")";
    segment::SegmentRecovery::Recover(client_, SegmentId(m.segment_id()),
                                      [w, i](Result<proto::SegmentMetadata> closed) {
                                        auto self = w.lock();
                                        if (!self || self->state_ != State::kOpening) return;
                                        if (!closed.ok()) return self->FailOpen(closed.status());
                                        self->FillCounters(i, *closed);
                                      });
  }

  void FillCounters(size_t i, proto::SegmentMetadata closed) {
    std::weak_ptr<Impl> w = weak_from_this();
    if (closed.record_count() != kCountersUnknown) {
      to_recover_[i].meta = closed;
      return RecoverNext(i + 1);
    }
    if (closed.last_entry_id() < 0) {
      closed.set_record_count(0);  // max_txid stays the floor it was created with
      return StoreCounters(i, closed);
    }
    segment::SegmentReader::Open(
        client_, SegmentId(closed.segment_id()), {}, [w, i, closed](Result<std::unique_ptr<segment::SegmentReader>> r) {
          auto self = w.lock();
          if (!self || self->state_ != State::kOpening) return;
          if (!r.ok()) return self->FailOpen(r.status().WithContext("reading a recovered segment's last entry"));
          // The writer owns the reader; the callback must not (it may outlive the client).
          self->counters_reader_ = std::move(*r);
          self->counters_reader_->Read(EntryId(closed.last_entry_id()), [w, i, closed](Result<segment::ReadResult> e) {
            auto self = w.lock();
            if (!self || self->state_ != State::kOpening) return;
            self->old_readers_.push_back(std::move(self->counters_reader_));  // not destroyed in its own callback
            if (!e.ok()) return self->FailOpen(e.status().WithContext("reading a recovered segment's last entry"));
            Result<EntryHeader> h = DecodeEntryHeader(e->payload);
            if (!h.ok())
              return self->FailOpen(h.status().WithContext("segment " + std::to_string(closed.segment_id())));
            proto::SegmentMetadata next = closed;
            next.set_record_count(h->first_record_seq + h->record_count - closed.first_record_seq());
            next.set_max_txid(h->max_txid);
            self->StoreCounters(i, next);
          });
        });
  }

  void StoreCounters(size_t i, proto::SegmentMetadata next) {
    std::weak_ptr<Impl> w = weak_from_this();
    segment::LoadSegment(store_, client_->layout(), SegmentId(next.segment_id()),
                         [w, i, next](Result<segment::VersionedMeta> cur) {
                           auto self = w.lock();
                           if (!self || self->state_ != State::kOpening) return;
                           if (!cur.ok()) return self->FailOpen(cur.status());
                           if (cur->meta.record_count() != kCountersUnknown) {
                             self->to_recover_[i].meta = cur->meta;
                             return self->RecoverNext(i + 1);
                           }
                           segment::CasSegment(self->store_, self->client_->layout(), next, cur->version,
                                               [w, i, next](Result<int32_t> r) {
                                                 auto s = w.lock();
                                                 if (!s || s->state_ != State::kOpening) return;
                                                 if (!r.ok() && !r.status().Is(MetaErrc::kBadVersion)) {
                                                   return s->FailOpen(r.status());
                                                 }
                                                 if (!r.ok()) return s->StoreCounters(i, next);  // re-read
                                                 s->to_recover_[i].meta = next;
                                                 s->RecoverNext(i + 1);
                                               });
                         });
  }

  void OnRecovered() {
    int64_t next_seq = 0;
    int64_t floor = 0;
    if (!to_recover_.empty()) {
      const proto::SegmentMetadata& last = to_recover_.back().meta;
      next_seq = last.first_record_seq() + last.record_count();
      floor = last.max_txid();
    } else if (!log_.segments().empty()) {
      // Truncation never marks the last listed segment, so this can't happen;
      // starting from 0 would repeat sequence numbers and lower the txid floor.
      return FailOpen(Status::Error(LogErrc::kCorrupt, paths_.Describe() +
                                                           ": every listed segment is truncated; the log's "
                                                           "counters are unknown"));
    }
    to_recover_.clear();
    floor_txid_ = floor;
    seg_max_txid_ = floor;
    std::weak_ptr<Impl> w = weak_from_this();
    loop()->Post([w] {
      if (auto self = w.lock()) self->old_readers_.clear();
    });
    {
      MutexLock l(&mu_);
      next_seq_ = next_seq;
      acked_seq_ = next_seq;
      last_txid_ = floor;
      builder_.Reset(next_seq);
      intake_status_ = Status::OK();
    }
    last_txid_pub_.store(floor);
    next_seq_pub_.store(next_seq);
    state_ = State::kReady;
    DLOG_INFO << paths_.Describe() << ": writer '" << options_.owner_id << "' owns the log (next seq " << next_seq
              << ", txid floor " << floor << ")";
    if (options_.sweep_interval_ms > 0) ScheduleSweep();
    auto cb = std::move(open_cb_);
    open_cb_ = nullptr;
    cb(Status::OK());
  }

  // ---------------- intake (any thread) ----------------

  void Write(Slice record, std::optional<int64_t> txid, WriteCallback cb) {
    Status err;
    bool post_pump = false;
    {
      MutexLock l(&mu_);
      if (!intake_status_.ok()) {
        err = intake_status_;
      } else if (record.size() > kMaxRecordSize) {
        err = Status::Error(LogErrc::kInvalidArgument, "record of " + std::to_string(record.size()) +
                                                           " bytes is larger than the maximum " +
                                                           std::to_string(kMaxRecordSize));
      } else if (txid && *txid < last_txid_) {
        err = Status::Error(LogErrc::kTxidOutOfOrder, paths_.Describe() + ": txid " + std::to_string(*txid) +
                                                          " is lower than the previous " + std::to_string(last_txid_));
      } else if (txid && *txid < 0) {
        err = Status::Error(LogErrc::kInvalidArgument, "txid " + std::to_string(*txid) + " is negative");
      } else if (pending_bytes_ + record.size() > options_.max_pending_bytes && pending_bytes_ > 0) {
        err = Status::Error(LogErrc::kBusy, paths_.Describe() + ": " + std::to_string(pending_bytes_) +
                                                " bytes pending; write again after some complete");
      } else {
        const int64_t t = txid ? *txid : last_txid_;
        last_txid_ = t;
        ++next_seq_;
        pending_bytes_ += record.size();
        builder_bytes_ += record.size();
        builder_.Add(t, record.data(), record.size());
        callbacks_.push_back(std::move(cb));
        if (builder_.size() >= options_.max_entry_bytes) CutLocked();
        if (!pump_posted_) {
          pump_posted_ = true;
          post_pump = true;
        }
        last_txid_pub_.store(t, std::memory_order_relaxed);
        next_seq_pub_.store(next_seq_, std::memory_order_relaxed);
      }
    }
    std::weak_ptr<Impl> w = weak_from_this();
    if (!err.ok()) {
      loop()->Post([cb = std::move(cb), err] { cb(err); });
      return;
    }
    if (post_pump) {
      loop()->Post([w] {
        if (auto self = w.lock()) self->Pump();
      });
    }
  }

  // Moves the builder's records into a ready entry.
  void CutLocked() DLOG_REQUIRES(mu_) {
    if (builder_.empty()) return;
    ReadyEntry e;
    e.first_seq = builder_.first_record_seq();
    e.count = builder_.count();
    e.max_txid = builder_.max_txid();
    e.record_bytes = builder_bytes_;
    e.payload = builder_.Take();
    builder_bytes_ = 0;
    ready_.push_back(std::move(e));
  }

  // ---------------- sending (loop) ----------------

  void Pump() {
    if (in_pump_) {
      repump_ = true;
      return;
    }
    in_pump_ = true;
    do {
      repump_ = false;
      PumpOnce();
    } while (repump_);
    in_pump_ = false;
  }

  void PumpOnce() {
    {
      MutexLock l(&mu_);
      pump_posted_ = false;
    }
    if (state_ != State::kReady && state_ != State::kClosing) return;
    if (rolling_) return;
    // Lease: no entry leaves without recent contact with the metadata store.
    const int64_t since = MonoNanos() - store_->LastContactNanos();
    if (since > lease_ns_) {
      if (!lease_timer_.active()) {
        std::weak_ptr<Impl> w = weak_from_this();
        lease_timer_.Start(10, [w] {
          if (auto self = w.lock()) self->Pump();
        });
      }
      return;
    }
    while (inflight_.size() < options_.max_entries_in_flight) {
      ReadyEntry e;
      {
        MutexLock l(&mu_);
        if (ready_.empty()) {
          if (builder_.empty()) break;
          // A partial entry waits for more records while others are in flight.
          if (options_.flush_delay_us > 0 && !inflight_.empty() && flush_waiters_.empty() && state_ == State::kReady) {
            if (!flush_timer_.active()) {
              std::weak_ptr<Impl> w = weak_from_this();
              flush_timer_.Start(static_cast<uint64_t>(std::max<int64_t>(1, options_.flush_delay_us / 1000)), [w] {
                if (auto self = w.lock()) self->ForceCut();
              });
            }
            break;
          }
          CutLocked();
        }
        if (!cur_) {
          // No segment yet: the records wait while the first one is made.
          StartRollLocked();
          return;
        }
        e = std::move(ready_.front());
        ready_.pop_front();
      }
      Send(std::move(e));
      if (state_ != State::kReady && state_ != State::kClosing) return;
      if (RollDue() && (state_ == State::kReady || HasUnsent())) {
        MutexLock l(&mu_);
        StartRollLocked();
        return;
      }
    }
    CheckFlushWaiters();
  }

  bool HasUnsent() {
    MutexLock l(&mu_);
    return !ready_.empty() || !builder_.empty();
  }

  void ForceCut() {
    {
      MutexLock l(&mu_);
      CutLocked();
    }
    Pump();
  }

  void Send(ReadyEntry e) {
    inflight_.push_back(InflightEntry{e.first_seq, e.count, e.record_bytes});
    seg_bytes_ += static_cast<int64_t>(e.payload.size());
    ++seg_entries_;
    seg_records_ += e.count;
    seg_max_txid_ = std::max(seg_max_txid_, e.max_txid);
    ++entries_sent_;
    records_sent_ += e.count;
    std::weak_ptr<Impl> w = weak_from_this();
    const int64_t seq = cur_seq_;
    cur_->Add(std::move(e.payload), [w, seq](Result<EntryId> r) {
      if (auto self = w.lock()) self->OnAdded(seq, std::move(r));
    });
  }

  bool RollDue() const {
    const NamespaceSettings& s = ns_->settings;
    if (s.roll_bytes > 0 && seg_bytes_ >= s.roll_bytes) return true;
    if (s.roll_entries > 0 && seg_entries_ >= s.roll_entries) return true;
    if (s.roll_ms > 0 && MonoMillis() - seg_started_ms_ >= s.roll_ms) return true;
    return false;
  }

  void OnAdded(int64_t seg_seq, Result<EntryId> r) {
    if (state_ == State::kFailed || inflight_.empty()) return;
    if (!r.ok()) return Fail(MapSegmentError(r.status(), paths_));
    const InflightEntry e = inflight_.front();
    inflight_.pop_front();
    std::vector<WriteCallback> cbs;
    cbs.reserve(e.count);
    {
      MutexLock l(&mu_);
      for (uint32_t i = 0; i < e.count && !callbacks_.empty(); ++i) {
        cbs.push_back(std::move(callbacks_.front()));
        callbacks_.pop_front();
      }
      acked_seq_ = e.first_seq + e.count;
      pending_bytes_ -= e.record_bytes;
    }
    for (uint32_t i = 0; i < cbs.size(); ++i) {
      cbs[i](WriteResult{Dlsn{seg_seq, r->value(), static_cast<int32_t>(i)}, e.first_seq + i});
    }
    Pump();
  }

  // ---------------- rolling (loop) ----------------

  void StartRollLocked() DLOG_REQUIRES(mu_) {
    if (rolling_) return;
    rolling_ = true;
    // The first record of the next segment: the oldest record not yet sent.
    next_segment_first_seq_ = !ready_.empty() ? ready_.front().first_seq : builder_.first_record_seq();
    std::weak_ptr<Impl> w = weak_from_this();
    loop()->Post([w] {
      if (auto self = w.lock())
        self->Seal([w](Result<std::optional<segment::SealedSegment>> s) {
          auto self2 = w.lock();
          if (!self2) return;
          if (!s.ok()) return self2->Fail(s.status());
          self2->PrepareNext(std::move(*s));
        });
    });
  }

  // Seals the current segment (if any), filling in its counters.
  void Seal(std::function<void(Result<std::optional<segment::SealedSegment>>)> cb) {
    if (!cur_) return cb(std::optional<segment::SealedSegment>());
    std::weak_ptr<Impl> w = weak_from_this();
    cur_->Seal([w, cb](Result<segment::SealedSegment> s) {
      auto self = w.lock();
      if (!self) return;
      if (!s.ok()) return cb(MapSegmentError(s.status(), self->paths_));
      s->closed.set_record_count(self->seg_records_);
      s->closed.set_max_txid(self->seg_max_txid_);
      cb(std::optional<segment::SealedSegment>(std::move(*s)));
    });
  }

  void PrepareNext(std::optional<segment::SealedSegment> sealed) {
    if (state_ != State::kReady && state_ != State::kClosing) return;
    segment::WriterConfig cfg{ns_->settings.ensemble_size, ns_->settings.write_quorum, ns_->settings.ack_quorum};
    std::weak_ptr<Impl> w = weak_from_this();
    segment::SegmentWriter::Prepare(client_, cfg, [w, sealed](Result<proto::SegmentMetadata> m) {
      auto self = w.lock();
      if (!self || (self->state_ != State::kReady && self->state_ != State::kClosing)) return;
      if (!m.ok()) {
        // No nodes right now (or a metadata hiccup): try again; writes wait, bounded.
        DLOG_WARN << self->paths_.Describe() << ": cannot place a new segment: " << m.status().ToString();
        self->retry_timer_.Start(static_cast<uint64_t>(self->client_->options().retry_backoff_ms * 10), [w, sealed] {
          if (auto s = w.lock()) s->PrepareNext(sealed);
        });
        return;
      }
      proto::SegmentMetadata meta = *m;
      meta.set_log_name(self->paths_.name);
      meta.set_log_incarnation(self->log_.incarnation());
      meta.set_first_record_seq(self->next_segment_first_seq_);
      meta.set_record_count(kCountersUnknown);
      meta.set_max_txid(sealed ? std::max(self->seg_max_txid_, self->floor_txid_) : self->floor_txid_);
      self->CommitRoll(sealed, meta, 0);
    });
  }

  std::vector<Op> LockCheck() const { return {Op::Check(lock_path_, metadata::kAnyVersion)}; }

  void CommitRoll(std::optional<segment::SealedSegment> sealed, proto::SegmentMetadata next, int attempt) {
    next.set_segment_seq(log_.next_segment_seq());
    proto::LogMetadata log = log_;
    proto::LogSegmentRef* ref = log.add_segments();
    ref->set_segment_seq(next.segment_seq());
    ref->set_segment_id(next.segment_id());
    log.set_next_segment_seq(next.segment_seq() + 1);
    std::vector<Op> ops = LockCheck();
    if (sealed) {
      ops.push_back(Op::Set(client_->layout().Segment(SegmentId(sealed->closed.segment_id())),
                            metadata::Encode(sealed->closed), sealed->version));
    }
    ops.push_back(Op::Create(client_->layout().Segment(SegmentId(next.segment_id())), metadata::Encode(next)));
    ops.push_back(Op::Set(paths_.path, metadata::Encode(log), log_version_));
    std::weak_ptr<Impl> w = weak_from_this();
    store_->Multi(std::move(ops), [w, sealed, next, log, attempt](Result<std::vector<metadata::OpResult>> r) {
      auto self = w.lock();
      if (!self || self->state_ == State::kFailed) return;
      if (r.ok()) return self->OnRolled(sealed, next, log, r->back().stat.version);
      if (!Retryable(r.status()) || attempt >= kMaxAttempts) {
        return self->Fail(
            Status::Error(LogErrc::kOutcomeUnknown,
                          self->paths_.Describe() + ": rolling to a new segment failed: " + r.status().ToString()));
      }
      std::optional<proto::SegmentMetadata> ours;
      if (sealed) ours = sealed->closed;
      self->ResolveConflict(r.status(), ours, next.segment_id(), [w, sealed, next, attempt](Result<Resolution> res) {
        auto s = w.lock();
        if (!s || s->state_ == State::kFailed) return;
        if (!res.ok()) return s->Fail(res.status());
        if (res->listed) return s->OnRolled(sealed, next, s->log_, s->log_version_);  // the first attempt went through
        s->AfterBackoff(attempt, [w, sealed, next, attempt] {
          if (auto s2 = w.lock()) s2->CommitRoll(sealed, next, attempt + 1);
        });
      });
    });
  }

  static constexpr int kMaxAttempts = 40;
  static bool Retryable(const Status& st) {
    return st.Is(MetaErrc::kBadVersion) || st.Is(MetaErrc::kNodeExists) || st.Is(MetaErrc::kNoNode) ||
           st.Is(MetaErrc::kConnectionLoss);
  }

  // What a re-read after a failed Multi found.
  struct Resolution {
    bool listed = false;          // the new segment is in the log: the roll was applied
    bool closed_as_ours = false;  // the sealed segment is CLOSED with exactly our value
  };

  // After a failed Multi: re-reads the lock, the log (log_/log_version_ take
  // the fresh value) and the sealed segment if any. Errors: the lock is gone
  // (kLockLost), the log was deleted (kLogNotFound), the segment was closed by
  // someone else (kFenced). Otherwise the caller retries on the fresh log.
  void ResolveConflict(const Status& why, std::optional<proto::SegmentMetadata> ours, uint64_t new_segment,
                       std::function<void(Result<Resolution>)> cb, int attempt = 0) {
    std::weak_ptr<Impl> w = weak_from_this();
    auto again = [w, why, ours, new_segment, cb, attempt](const Status& st) {
      auto self = w.lock();
      if (!self) return;
      if (st.Is(MetaErrc::kClosed) || attempt >= kMaxAttempts) {
        return cb(Status::Error(LogErrc::kOutcomeUnknown, self->paths_.Describe() + ": " + why.ToString() +
                                                              "; re-reading failed: " + st.ToString()));
      }
      self->AfterBackoff(attempt, [w, why, ours, new_segment, cb, attempt] {
        if (auto s = w.lock()) s->ResolveConflict(why, ours, new_segment, cb, attempt + 1);
      });
    };
    store_->Exists(lock_path_, [w, why, ours, new_segment, cb, again](Result<std::optional<metadata::Stat>> lock) {
      auto self = w.lock();
      if (!self) return;
      if (!lock.ok()) return again(lock.status());
      if (!lock->has_value()) {
        return cb(Status::Error(LogErrc::kLockLost,
                                self->paths_.Describe() + ": the writer's lock node is gone (" + why.ToString() + ")"));
      }
      LoadLog(self->store_, self->paths_, [w, ours, new_segment, cb, again](Result<VersionedLog> lg) {
        auto self = w.lock();
        if (!self) return;
        if (!lg.ok()) {
          if (lg.status().Is(LogErrc::kLogNotFound)) return cb(lg.status());
          return again(lg.status());
        }
        if (lg->meta.incarnation() != self->log_.incarnation()) {
          return cb(Status::Error(LogErrc::kLogNotFound, self->paths_.Describe() + " was deleted and re-created"));
        }
        self->log_ = lg->meta;
        self->log_version_ = lg->version;
        Resolution res;
        for (const auto& r : lg->meta.segments()) {
          if (new_segment != 0 && r.segment_id() == new_segment) res.listed = true;
        }
        if (res.listed || !ours) return cb(res);
        segment::LoadSegment(
            self->store_, self->client_->layout(), SegmentId(ours->segment_id()),
            [w, ours, cb, again, res](Result<segment::VersionedMeta> sm) mutable {
              auto self = w.lock();
              if (!self) return;
              if (!sm.ok()) return again(sm.status());
              if (sm->meta.SerializeAsString() == ours->SerializeAsString()) {
                res.closed_as_ours = true;
                return cb(res);
              }
              if (sm->meta.state() != proto::SEGMENT_OPEN) {
                return cb(Status::Error(LogErrc::kFenced, self->paths_.Describe() + ": segment " +
                                                              std::to_string(sm->meta.segment_id()) + " is " +
                                                              segment::SegmentStateName(sm->meta.state()) +
                                                              ": another writer took over"));
              }
              cb(res);
            });
      });
    });
  }

  void AfterBackoff(int attempt, std::function<void()> fn) {
    const int64_t base = client_->options().retry_backoff_ms;
    const int64_t ms = std::min<int64_t>(base << std::min(attempt, 5), 1000);
    segment::AfterMs(loop(), static_cast<uint64_t>(std::max<int64_t>(1, ms)), std::move(fn));
  }

  void OnRolled(std::optional<segment::SealedSegment> sealed, const proto::SegmentMetadata& next,
                const proto::LogMetadata& log, int32_t log_version) {
    log_ = log;
    log_version_ = log_version;
    if (sealed) {
      floor_txid_ = std::max(floor_txid_, seg_max_txid_);
      ++segments_rolled_;
      DLOG_INFO << paths_.Describe() << ": rolled segment seq " << cur_seq_ << " (" << seg_records_ << " records, "
                << seg_entries_ << " entries) -> seq " << next.segment_seq();
    }
    old_writers_.push_back(std::move(cur_));  // destroyed off this callback (below)
    cur_ = segment::SegmentWriter::Open(client_, next, 0);
    cur_seq_ = next.segment_seq();
    seg_bytes_ = 0;
    seg_entries_ = 0;
    seg_records_ = 0;
    seg_max_txid_ = floor_txid_;
    seg_started_ms_ = MonoMillis();
    rolling_ = false;
    std::weak_ptr<Impl> w = weak_from_this();
    loop()->Post([w] {
      if (auto self = w.lock()) self->old_writers_.clear();
    });
    Pump();
    if (state_ == State::kClosing) ContinueClose();
  }

  // ---------------- flush / close (loop) ----------------

  void Flush(DoneCallback cb) {
    if (state_ == State::kFailed) return cb(failure_);
    {
      MutexLock l(&mu_);
      flush_waiters_.push_back(FlushWaiter{next_seq_, std::move(cb)});
      CutLocked();
    }
    Pump();
    CheckFlushWaiters();
  }

  void CheckFlushWaiters() {
    std::vector<DoneCallback> done;
    {
      MutexLock l(&mu_);
      while (!flush_waiters_.empty() && flush_waiters_.front().target_seq <= acked_seq_) {
        done.push_back(std::move(flush_waiters_.front().cb));
        flush_waiters_.pop_front();
      }
    }
    for (auto& cb : done) cb(Status::OK());
    if (state_ == State::kClosing) ContinueClose();
  }

  void Close(bool end_of_stream, DoneCallback cb) {
    if (state_ == State::kFailed) return cb(failure_);
    if (state_ != State::kReady) {
      return cb(Status::Error(LogErrc::kClosed, paths_.Describe() + ": the writer is already closing"));
    }
    state_ = State::kClosing;
    end_of_stream_ = end_of_stream;
    close_cb_ = std::move(cb);
    {
      MutexLock l(&mu_);
      intake_status_ = end_of_stream ? Status::Error(LogErrc::kEndOfStream, paths_.Describe() + " has ended")
                                     : Status::Error(LogErrc::kClosed, paths_.Describe() + ": the writer is closed");
      CutLocked();
    }
    Pump();  // sends what is buffered, then (drained, no segment rolling) ContinueClose
    ContinueClose();
  }

  void ContinueClose() {
    if (state_ != State::kClosing || close_started_) return;
    if (rolling_) return;  // OnRolled comes back here
    bool drained;
    {
      MutexLock l(&mu_);
      drained = ready_.empty() && builder_.empty();
    }
    if (!drained || !inflight_.empty())
      return;  // Pump / OnAdded come back here  // OnAdded -> Pump -> CheckFlushWaiters -> here
    close_started_ = true;
    std::weak_ptr<Impl> w = weak_from_this();
    Seal([w](Result<std::optional<segment::SealedSegment>> s) {
      auto self = w.lock();
      if (!self) return;
      if (!s.ok()) return self->Fail(s.status());
      self->CommitClose(std::move(*s));
    });
  }

  void CommitClose(std::optional<segment::SealedSegment> sealed, int attempt = 0) {
    std::vector<Op> ops = LockCheck();
    if (sealed && !sealed_stored_) {
      ops.push_back(Op::Set(client_->layout().Segment(SegmentId(sealed->closed.segment_id())),
                            metadata::Encode(sealed->closed), sealed->version));
    }
    if (end_of_stream_ && !log_.end_of_stream()) {
      proto::LogMetadata log = log_;
      log.set_end_of_stream(true);
      ops.push_back(Op::Set(paths_.path, metadata::Encode(log), log_version_));
    }
    if (ops.size() == 1) return FinishClose();
    std::weak_ptr<Impl> w = weak_from_this();
    store_->Multi(std::move(ops), [w, sealed, attempt](Result<std::vector<metadata::OpResult>> r) {
      auto self = w.lock();
      if (!self || self->state_ == State::kFailed) return;
      if (r.ok()) return self->FinishClose();
      if (!Retryable(r.status()) || attempt >= kMaxAttempts) {
        return self->Fail(Status::Error(LogErrc::kOutcomeUnknown,
                                        self->paths_.Describe() + ": closing failed: " + r.status().ToString()));
      }
      std::optional<proto::SegmentMetadata> ours;
      if (sealed && !self->sealed_stored_) ours = sealed->closed;
      self->ResolveConflict(r.status(), ours, 0, [w, sealed, attempt](Result<Resolution> res) {
        auto s = w.lock();
        if (!s || s->state_ == State::kFailed) return;
        if (!res.ok()) return s->Fail(res.status());
        if (res->closed_as_ours) s->sealed_stored_ = true;  // an earlier attempt went through
        s->AfterBackoff(attempt, [w, sealed, attempt] {
          if (auto s2 = w.lock()) s2->CommitClose(sealed, attempt + 1);
        });
      });
    });
  }

  void FinishClose() {
    state_ = State::kClosed;
    sweep_timer_.Stop();
    old_writers_.push_back(std::move(cur_));
    ReleaseLock();
    DLOG_INFO << paths_.Describe() << ": writer closed" << (end_of_stream_ ? " (end of stream)" : "");
    auto cb = std::move(close_cb_);
    close_cb_ = nullptr;
    std::weak_ptr<Impl> w = weak_from_this();
    loop()->Post([w] {
      if (auto self = w.lock()) self->old_writers_.clear();
    });
    if (cb) cb(Status::OK());
  }

  void ReleaseLock() {
    if (lock_path_.empty()) return;
    store_->Delete(lock_path_, metadata::kAnyVersion, [](Status) {});
    lock_path_.clear();
  }

  // ---------------- failure (loop) ----------------

  void Fail(Status st) {
    if (state_ == State::kFailed || state_ == State::kClosed) return;
    if (state_ == State::kOpening) return FailOpen(st);
    DLOG_WARN << paths_.Describe() << ": writer stops: " << st.ToString();
    state_ = State::kFailed;
    failure_ = st;
    std::deque<WriteCallback> cbs;
    std::deque<FlushWaiter> waiters;
    {
      MutexLock l(&mu_);
      intake_status_ = st;
      cbs.swap(callbacks_);
      waiters.swap(flush_waiters_);
      ready_.clear();
      builder_.Reset(next_seq_);
      builder_bytes_ = 0;
      pending_bytes_ = 0;
    }
    inflight_.clear();
    lease_timer_.Stop();
    sweep_timer_.Stop();
    flush_timer_.Stop();
    retry_timer_.Stop();
    old_writers_.push_back(std::move(cur_));
    std::weak_ptr<Impl> w = weak_from_this();
    loop()->Post([w] {
      if (auto self = w.lock()) self->old_writers_.clear();
    });
    if (!st.Is(LogErrc::kLockLost)) ReleaseLock();
    for (auto& cb : cbs) cb(st);
    for (auto& f : waiters) f.cb(st);
    if (close_cb_) {
      auto cb = std::move(close_cb_);
      close_cb_ = nullptr;
      cb(st);
    }
  }

  // The owner dropped the writer: pending writes' outcome is unknown.
  void Abandon() {
    if (state_ == State::kOpening) {
      FailOpen(Status::Error(LogErrc::kClosed, paths_.Describe() + ": the writer was closed while opening"));
    } else if (state_ != State::kClosed && state_ != State::kFailed) {
      Fail(Status::Error(LogErrc::kOutcomeUnknown, paths_.Describe() + ": the writer was destroyed"));
    }
    ReleaseLock();
    lock_timer_.Stop();
    old_writers_.clear();
    old_readers_.clear();
    counters_reader_.reset();
    cur_.reset();
  }

  void ScheduleSweep() {
    std::weak_ptr<Impl> w = weak_from_this();
    sweep_timer_.Start(static_cast<uint64_t>(options_.sweep_interval_ms), [w] {
      auto self = w.lock();
      if (!self || (self->state_ != State::kReady && self->state_ != State::kClosing)) return;
      SweepLog(self->ns_, self->paths_, [w](Status st) {
        auto s = w.lock();
        if (!s) return;
        if (!st.ok()) DLOG_WARN << s->paths_.Describe() << ": sweep failed: " << st.ToString();
        if (s->state_ == State::kReady) s->ScheduleSweep();
      });
    });
  }

  // ---------------- snapshots ----------------

  int64_t last_txid() const { return last_txid_pub_.load(); }
  int64_t next_seq() const { return next_seq_pub_.load(); }
  WriterStats stats() const { return WriterStats{records_sent_.load(), entries_sent_.load(), segments_rolled_.load()}; }
  Status health() const {
    MutexLock l(&mu_);
    return intake_status_;
  }

 private:
  enum class State { kOpening, kReady, kClosing, kClosed, kFailed };

  const NsRef ns_;
  segment::SegmentClient* const client_;
  metadata::MetadataStore* const store_;
  const LogPaths paths_;
  WriterOptions options_;
  int64_t lease_ns_ = 0;

  // Loop thread.
  State state_ = State::kOpening;
  Status failure_;
  std::function<void(Status)> open_cb_;
  DoneCallback close_cb_;
  bool end_of_stream_ = false;
  bool close_started_ = false;
  bool sealed_stored_ = false;  // the closing segment's CLOSED value is in metadata
  int64_t session_id_ = 0;
  uint64_t session_sub_ = 0;
  std::string lock_path_;
  std::string lock_data_;
  std::string lock_prefix_;
  int64_t lock_deadline_ns_ = 0;
  proto::LogMetadata log_;
  int32_t log_version_ = 0;
  std::vector<segment::VersionedMeta> to_recover_;
  std::unique_ptr<segment::SegmentWriter> cur_;
  std::vector<std::unique_ptr<segment::SegmentWriter>> old_writers_;
  std::unique_ptr<segment::SegmentReader> counters_reader_;
  std::vector<std::unique_ptr<segment::SegmentReader>> old_readers_;
  int64_t cur_seq_ = 0;
  int64_t seg_bytes_ = 0;
  int64_t seg_entries_ = 0;
  int64_t seg_records_ = 0;
  int64_t seg_max_txid_ = 0;
  int64_t seg_started_ms_ = 0;
  int64_t floor_txid_ = 0;
  int64_t next_segment_first_seq_ = 0;
  bool rolling_ = false;
  bool in_pump_ = false;
  bool repump_ = false;
  std::deque<InflightEntry> inflight_;
  segment::Timer lock_timer_;
  segment::Timer lease_timer_;
  segment::Timer sweep_timer_;
  segment::Timer retry_timer_;
  segment::Timer flush_timer_;

  // Intake, any thread.
  mutable Mutex mu_;
  Status intake_status_ DLOG_GUARDED_BY(mu_) = Status::Error(LogErrc::kClosed, "the writer is opening");
  EntryBuilder builder_ DLOG_GUARDED_BY(mu_);
  size_t builder_bytes_ DLOG_GUARDED_BY(mu_) = 0;
  std::deque<ReadyEntry> ready_ DLOG_GUARDED_BY(mu_);
  std::deque<WriteCallback> callbacks_ DLOG_GUARDED_BY(mu_);  // one per unacknowledged record, in seq order
  std::deque<FlushWaiter> flush_waiters_ DLOG_GUARDED_BY(mu_);
  int64_t next_seq_ DLOG_GUARDED_BY(mu_) = 0;
  int64_t acked_seq_ DLOG_GUARDED_BY(mu_) = 0;
  int64_t last_txid_ DLOG_GUARDED_BY(mu_) = 0;
  size_t pending_bytes_ DLOG_GUARDED_BY(mu_) = 0;
  bool pump_posted_ DLOG_GUARDED_BY(mu_) = false;

  std::atomic<int64_t> last_txid_pub_{0};
  std::atomic<int64_t> next_seq_pub_{0};
  std::atomic<int64_t> records_sent_{0};
  std::atomic<int64_t> entries_sent_{0};
  std::atomic<int64_t> segments_rolled_{0};
};

// ---------------- opening ----------------

void OpenLogWriter(NsRef ns, std::string log, WriterOptions options,
                   std::function<void(Result<std::unique_ptr<LogWriter>>)> cb) {
  segment::SegmentClient* client = ns->client;
  if (Status st = ValidateLogName(log); !st.ok()) {
    client->loop()->Post([cb, st] { cb(st); });
    return;
  }
  LogPaths paths = LogPaths::Of(client->layout(), ns->ns, log);
  // Made on the loop: its timers are loop-thread objects.
  client->loop()->Dispatch([ns = std::move(ns), paths = std::move(paths), options = std::move(options), cb]() mutable {
    auto impl = std::make_shared<LogWriter::Impl>(std::move(ns), std::move(paths), std::move(options));
    impl->Open([impl, cb](Status st) {
      if (!st.ok()) return cb(st);
      cb(std::make_unique<LogWriter>(impl));
    });
  });
}

// ---------------- public handle ----------------

LogWriter::LogWriter(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

LogWriter::~LogWriter() {
  net::EventLoop* loop = impl_->loop();
  std::shared_ptr<Impl> impl = std::move(impl_);
  loop->RunSync([&impl] {
    impl->Abandon();
    impl.reset();
  });
}

const std::string& LogWriter::log_name() const { return impl_->paths().name; }

void LogWriter::Write(Slice record, WriteCallback cb) { impl_->Write(std::move(record), std::nullopt, std::move(cb)); }

void LogWriter::Write(Slice record, int64_t txid, WriteCallback cb) {
  impl_->Write(std::move(record), txid, std::move(cb));
}

Result<WriteResult> LogWriter::WriteSync(Slice record, std::optional<int64_t> txid) {
  DLOG_CHECK(!impl_->loop()->InLoopThread()) << "WriteSync on the loop";
  std::promise<Result<WriteResult>> p;
  impl_->Write(std::move(record), txid, [&p](Result<WriteResult> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

void LogWriter::Flush(DoneCallback cb) {
  impl_->loop()->Dispatch([impl = impl_, cb = std::move(cb)]() mutable { impl->Flush(std::move(cb)); });
}

Status LogWriter::FlushSync() {
  DLOG_CHECK(!impl_->loop()->InLoopThread()) << "FlushSync on the loop";
  std::promise<Status> p;
  Flush([&p](Status st) { p.set_value(std::move(st)); });
  return p.get_future().get();
}

void LogWriter::MarkEndOfStream(DoneCallback cb) {
  impl_->loop()->Dispatch([impl = impl_, cb = std::move(cb)]() mutable { impl->Close(true, std::move(cb)); });
}

Status LogWriter::MarkEndOfStreamSync() {
  DLOG_CHECK(!impl_->loop()->InLoopThread()) << "MarkEndOfStreamSync on the loop";
  std::promise<Status> p;
  MarkEndOfStream([&p](Status st) { p.set_value(std::move(st)); });
  return p.get_future().get();
}

void LogWriter::Close(DoneCallback cb) {
  impl_->loop()->Dispatch([impl = impl_, cb = std::move(cb)]() mutable { impl->Close(false, std::move(cb)); });
}

Status LogWriter::CloseSync() {
  DLOG_CHECK(!impl_->loop()->InLoopThread()) << "CloseSync on the loop";
  std::promise<Status> p;
  Close([&p](Status st) { p.set_value(std::move(st)); });
  return p.get_future().get();
}

int64_t LogWriter::last_txid() const { return impl_->last_txid(); }
int64_t LogWriter::next_seq() const { return impl_->next_seq(); }
WriterStats LogWriter::stats() const { return impl_->stats(); }
Status LogWriter::health() const { return impl_->health(); }

}  // namespace dlog::log
