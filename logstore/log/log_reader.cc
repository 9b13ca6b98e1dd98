#include "logstore/log/log_reader.h"

#include <deque>
#include <future>
#include <limits>
#include <map>
#include <optional>

#include "common/check.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_annotations.h"
#include "logstore/log/entry.h"
#include "logstore/log/log_meta.h"
#include "logstore/segment/errors.h"
#include "logstore/segment/segment_reader.h"
#include "logstore/segment/timer.h"
#include "metadata/records.h"

namespace dlog::log {

using metadata::MetaErrc;
using segment::SegmentErrc;

// Everything runs on the segment client's loop, except position().
class LogReader::Impl : public std::enable_shared_from_this<LogReader::Impl> {
 public:
  Impl(NsRef ns, LogPaths paths, ReaderOptions options)
      : ns_(std::move(ns)),
        client_(ns_->client),
        paths_(std::move(paths)),
        options_(options),
        request_timer_(client_->loop()) {
    options_.read_ahead_entries = std::max<size_t>(1, options_.read_ahead_entries);
  }

  net::EventLoop* loop() const { return client_->loop(); }

  // ---------------- start position (loop) ----------------

  void Start(StartPosition start, std::function<void(Status)> cb) {
    std::weak_ptr<Impl> w = weak_from_this();
    LoadLog(client_->store(), paths_, [w, start, cb](Result<VersionedLog> lg) {
      auto self = w.lock();
      if (!self) return;
      if (!lg.ok()) return cb(lg.status());
      self->incarnation_ = lg->meta.incarnation();
      const proto::LogMetadata& m = lg->meta;
      std::vector<proto::LogSegmentRef> live;
      for (const auto& r : m.segments()) {
        if (r.truncated_at_ms() == 0) live.push_back(r);
      }
      const int64_t first_live = live.empty() ? m.next_segment_seq() : live.front().segment_seq();
      switch (start.kind) {
        case StartPosition::Kind::kEarliest:
          self->SetStart(Dlsn{first_live, 0, 0});
          return cb(Status::OK());
        case StartPosition::Kind::kDlsn: {
          bool truncated = start.dlsn.segment_seq < m.truncated_before_seq();
          for (const auto& r : m.segments()) {
            if (r.segment_seq() == start.dlsn.segment_seq && r.truncated_at_ms() != 0) truncated = true;
          }
          if (truncated) return cb(self->TruncatedError(start.dlsn, first_live));
          self->SetStart(start.dlsn);
          // Seqs below the first listed one never existed (e.g. Dlsn::Initial()).
          self->fetch_seq_ = std::max(start.dlsn.segment_seq, first_live);
          return cb(Status::OK());
        }
        case StartPosition::Kind::kLatest:
        case StartPosition::Kind::kTxid:
          break;
      }
      LoadSegments(self->client_, live, true, [w, start, m, cb](Result<std::vector<segment::VersionedMeta>> segs) {
        auto self = w.lock();
        if (!self) return;
        if (!segs.ok()) return cb(segs.status());
        if (start.kind == StartPosition::Kind::kTxid) {
          self->skip_below_txid_ = start.txid;
          for (const auto& s : *segs) {
            const auto& sm = s.meta;
            const bool known = sm.state() == proto::SEGMENT_CLOSED && sm.record_count() != kCountersUnknown;
            if (!known || (sm.record_count() > 0 && sm.max_txid() >= start.txid)) {
              self->SetStart(Dlsn{sm.segment_seq(), 0, 0});
              return cb(Status::OK());
            }
          }
        }
        // Latest (or a txid beyond every record): just after the last record.
        if (segs->empty()) {
          self->SetStart(Dlsn{m.next_segment_seq(), 0, 0});
          return cb(Status::OK());
        }
        const auto& last = segs->back().meta;
        if (last.state() == proto::SEGMENT_CLOSED) {
          self->SetStart(Dlsn{last.segment_seq() + 1, 0, 0});
          return cb(Status::OK());
        }
        segment::SegmentReader::Open(self->client_, SegmentId(last.segment_id()), {},
                                     [w, last, cb](Result<std::unique_ptr<segment::SegmentReader>> r) {
                                       auto self = w.lock();
                                       if (!self) return;
                                       if (!r.ok()) return cb(r.status());
                                       std::shared_ptr<segment::SegmentReader> reader(std::move(*r));
                                       self->SetStart(Dlsn{last.segment_seq(), reader->last_readable().value() + 1, 0});
                                       self->AdoptSegment(last.segment_seq(), std::move(reader));
                                       cb(Status::OK());
                                     });
      });
    });
  }

  Status TruncatedError(Dlsn at, int64_t first_live) const {
    return Status::Error(LogErrc::kTruncated, paths_.Describe() + ": position " + at.ToString() +
                                                  " is truncated; the log now starts at " +
                                                  Dlsn{first_live, 0, 0}.ToString());
  }

  // ---------------- requests (loop) ----------------

  void ReadNext(size_t max_records, int64_t timeout_ms, ReadCallback cb) {
    if (req_cb_) {
      return cb(Status::Error(LogErrc::kInvalidArgument, paths_.Describe() + ": a ReadNext is already pending"));
    }
    req_cb_ = std::move(cb);
    req_max_ = std::max<size_t>(1, max_records);
    if (timeout_ms >= 0) {
      std::weak_ptr<Impl> w = weak_from_this();
      request_timer_.Start(static_cast<uint64_t>(timeout_ms), [w] {
        auto self = w.lock();
        if (!self || !self->req_cb_) return;
        auto cb = std::move(self->req_cb_);
        self->req_cb_ = nullptr;
        cb(Status::Error(LogErrc::kTimeout, self->paths_.Describe() + ": no record arrived in time"));
      });
    }
    Drive();
  }

  void Close() {
    closed_ = true;
    request_timer_.Stop();
    seg_.reset();
    if (req_cb_) {
      auto cb = std::move(req_cb_);
      req_cb_ = nullptr;
      cb(Status::Error(LogErrc::kClosed, paths_.Describe() + ": the reader was closed"));
    }
  }

  Dlsn position() const {
    MutexLock l(&mu_);
    return pos_pub_;
  }

 private:
  // The start position: records before it are skipped, and the first segment
  // to look for is its segment.
  void SetStart(Dlsn d) {
    start_ = d;
    fetch_seq_ = d.segment_seq;
    SetPosition(d);
  }

  void SetPosition(Dlsn d) {
    pos_ = d;
    MutexLock l(&mu_);
    pos_pub_ = d;
  }

  void Drive() {
    if (closed_ || driving_) {
      redrive_ = true;
      return;
    }
    driving_ = true;
    do {
      redrive_ = false;
      DriveOnce();
    } while (redrive_ && !closed_);
    driving_ = false;
  }

  void DriveOnce() {
    Decode();
    if (req_cb_ && (!buffered_.empty() || !error_.ok() || (ended_ && buffered_.empty()))) return Deliver();
    if (!error_.ok() || ended_) return;
    if (!seg_) return FindSegment();
    Fetch();
  }

  void Deliver() {
    auto cb = std::move(req_cb_);
    req_cb_ = nullptr;
    request_timer_.Stop();
    if (!buffered_.empty()) {
      std::vector<LogRecord> out;
      const size_t n = std::min(req_max_, buffered_.size());
      out.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        out.push_back(std::move(buffered_.front()));
        buffered_.pop_front();
        const Dlsn& d = out.back().dlsn;
        if (buffered_.empty() || buffered_.front().dlsn.entry != d.entry ||
            buffered_.front().dlsn.segment_seq != d.segment_seq) {
          --buffered_entries_;  // the last record of its entry went out
        }
      }
      const Dlsn& last = out.back().dlsn;
      SetPosition(buffered_.empty() ? Dlsn{last.segment_seq, last.entry, last.slot + 1} : buffered_.front().dlsn);
      cb(std::move(out));
      Drive();  // read ahead again
      return;
    }
    if (!error_.ok()) return cb(error_);
    cb(Status::Error(LogErrc::kEndOfStream, paths_.Describe() + " has ended; every record was read"));
  }

  // Moves fetched entries, in order, into decoded records.
  void Decode() {
    while (seg_) {
      auto it = fetched_.find(decode_next_);
      if (it == fetched_.end()) return;
      Slice payload = std::move(it->second);
      fetched_.erase(it);
      const int64_t entry = decode_next_++;
      Result<EntryHeader> h = DecodeEntry(payload, &scratch_);
      if (!h.ok()) {
        error_ = h.status().WithContext(paths_.Describe() + " segment seq " + std::to_string(seg_seq_) + " entry " +
                                        std::to_string(entry));
        return;
      }
      const size_t before = buffered_.size();
      for (size_t slot = 0; slot < scratch_.size(); ++slot) {
        const Dlsn d{seg_seq_, entry, static_cast<int32_t>(slot)};
        if (d < start_) continue;  // before the start position
        if (scratch_[slot].txid < skip_below_txid_) continue;
        skip_below_txid_ = std::numeric_limits<int64_t>::min();  // txids don't decrease: found it
        buffered_.push_back(LogRecord{d, h->first_record_seq + static_cast<int64_t>(slot), scratch_[slot].txid,
                                      std::move(scratch_[slot].payload)});
      }
      scratch_.clear();
      if (buffered_.size() > before) ++buffered_entries_;
    }
  }

  // Finds the segment holding pos_ (or the first one after it).
  void FindSegment() {
    if (finding_) return;
    finding_ = true;
    std::weak_ptr<Impl> w = weak_from_this();
    metadata::MetadataStore* store = client_->store();
    metadata::WatchCallback watch;
    if (!watch_armed_) {
      watch_armed_ = true;
      watch = [w](const metadata::WatchEvent&) {
        if (auto self = w.lock()) self->OnLogChanged();
      };
    }
    store->Get(
        paths_.path,
        [w](Result<metadata::NodeData> r) {
          auto self = w.lock();
          if (!self || self->closed_) return;
          self->finding_ = false;
          if (!r.ok()) return self->FailOrRetry(MapLogError(r.status(), self->paths_));
          Result<proto::LogMetadata> m = metadata::Decode<proto::LogMetadata>(self->paths_.path, r->data);
          if (!m.ok()) return self->Fail(m.status());
          self->OnLogMetadata(*m);
        },
        std::move(watch));
  }

  void OnLogMetadata(const proto::LogMetadata& m) {
    if (m.incarnation() != incarnation_) {
      return Fail(Status::Error(LogErrc::kLogNotFound, paths_.Describe() + " was deleted (and re-created)"));
    }
    int64_t first_live = m.next_segment_seq();
    for (const auto& r : m.segments()) {
      if (r.truncated_at_ms() == 0) {
        first_live = r.segment_seq();
        break;
      }
    }
    const Dlsn at{fetch_seq_, 0, 0};
    // Segment seqs are contiguous: a listed seq above the one wanted, or a
    // wanted seq below truncated_before_seq, means it was truncated.
    if (fetch_seq_ < m.truncated_before_seq()) return Fail(TruncatedError(std::max(pos_, at), first_live));
    for (const auto& r : m.segments()) {
      if (r.segment_seq() < fetch_seq_) continue;
      if (r.truncated_at_ms() != 0 || r.segment_seq() > fetch_seq_) {
        return Fail(TruncatedError(std::max(pos_, at), first_live));
      }
      waiting_for_segment_ = false;
      return OpenSegment(r);
    }
    if (m.end_of_stream()) {
      ended_ = true;
      return Drive();
    }
    // Nothing yet: the watch set by FindSegment (or this poll) brings us back.
    waiting_for_segment_ = true;
    std::weak_ptr<Impl> w = weak_from_this();
    segment::AfterMs(loop(), static_cast<uint64_t>(options_.metadata_poll_ms), [w] {
      auto self = w.lock();
      if (self && !self->seg_ && self->waiting_for_segment_) self->Drive();
    });
  }

  void OpenSegment(const proto::LogSegmentRef& ref) {
    finding_ = true;
    std::weak_ptr<Impl> w = weak_from_this();
    const int64_t seq = ref.segment_seq();
    segment::SegmentReader::Open(client_, SegmentId(ref.segment_id()), {},
                                 [w, seq](Result<std::unique_ptr<segment::SegmentReader>> r) {
                                   auto self = w.lock();
                                   if (!self || self->closed_) return;
                                   self->finding_ = false;
                                   if (!r.ok()) return self->FailOrRetry(r.status());
                                   self->AdoptSegment(seq, std::shared_ptr<segment::SegmentReader>(std::move(*r)));
                                   self->Drive();
                                 });
  }

  void AdoptSegment(int64_t seq, std::shared_ptr<segment::SegmentReader> reader) {
    seg_ = std::move(reader);
    seg_seq_ = seq;
    seg_closed_ = seg_->closed();
    seg_last_ = seg_->last_readable().value();
    const int64_t first = start_.segment_seq == seq ? start_.entry : 0;
    next_fetch_ = first;
    decode_next_ = first;
    fetched_.clear();
    inflight_ = 0;
    long_polling_ = false;
  }

  void Fetch() {
    // Done with this segment: every entry up to its last one decoded.
    if (seg_closed_ && decode_next_ > seg_last_ && inflight_ == 0) {
      fetch_seq_ = seg_seq_ + 1;
      if (buffered_.empty()) SetPositionIfBehind(Dlsn{fetch_seq_, 0, 0});
      seg_.reset();
      return FindSegment();
    }
    const size_t budget = options_.read_ahead_entries;
    while (next_fetch_ <= seg_last_ && inflight_ + fetched_.size() + buffered_entries_ < budget) {
      ReadEntry(next_fetch_++);
    }
    if (next_fetch_ > seg_last_ && !seg_closed_ && !long_polling_ && inflight_ == 0 &&
        fetched_.size() + buffered_entries_ < budget) {
      LongPoll();
    }
  }

  void SetPositionIfBehind(Dlsn d) {
    if (pos_ < d) SetPosition(d);
  }

  void ReadEntry(int64_t e) {
    ++inflight_;
    std::weak_ptr<Impl> w = weak_from_this();
    // Callbacks hold the segment reader weakly: it belongs to seg_ alone (a
    // callback that outlived the client must not destroy it).
    std::weak_ptr<segment::SegmentReader> ws = seg_;
    const int64_t seq = seg_seq_;
    seg_->Read(EntryId(e), [w, e, seq, ws](Result<segment::ReadResult> r) {
      auto self = w.lock();
      if (!self || self->closed_ || self->seg_ != ws.lock() || self->seg_seq_ != seq) return;
      --self->inflight_;
      if (!r.ok()) return self->OnReadError(e, r.status());
      self->fetched_[e] = std::move(r->payload);
      self->Drive();
    });
  }

  void LongPoll() {
    long_polling_ = true;
    std::weak_ptr<Impl> w = weak_from_this();
    std::weak_ptr<segment::SegmentReader> ws = seg_;
    const int64_t e = next_fetch_;
    const uint64_t gen = ++poll_gen_;
    WatchLogWhileTailing();
    seg_->WaitForEntry(EntryId(e), options_.long_poll_ms, [w, e, ws, gen](Result<segment::ReadResult> r) {
      auto self = w.lock();
      std::shared_ptr<segment::SegmentReader> seg = ws.lock();
      if (!self || self->closed_ || !seg || self->seg_ != seg) return;
      if (gen != self->poll_gen_) return;  // superseded by a refresh (the result is read again if needed)
      self->long_polling_ = false;
      if (r.ok()) {
        if (e == self->next_fetch_) ++self->next_fetch_;
        self->fetched_[e] = std::move(r->payload);
        self->seg_last_ = std::max(self->seg_last_, seg->last_readable().value());
        return self->Drive();
      }
      // Nothing new in time, or the segment was closed or recovered: look again.
      self->RefreshSegment();
    });
  }

  // While a long poll waits on a segment that is not CLOSED, a change of the
  // log's metadata (a roll closing it and listing the next one, an end of
  // stream) refreshes the segment at once instead of after the poll's timeout.
  void WatchLogWhileTailing() {
    if (watch_armed_) return;
    watch_armed_ = true;
    std::weak_ptr<Impl> w = weak_from_this();
    client_->store()->Exists(
        paths_.path, [](Result<std::optional<metadata::Stat>>) {},
        [w](const metadata::WatchEvent&) {
          if (auto self = w.lock()) self->OnLogChanged();
        });
  }

  // The one log watch fired (whoever armed it): refresh a tailed segment, or
  // look for the next segment.
  void OnLogChanged() {
    watch_armed_ = false;
    if (closed_) return;
    if (seg_ && !seg_closed_ && long_polling_) return RefreshSegment();
    Drive();
  }

  void RefreshSegment() {
    std::weak_ptr<Impl> w = weak_from_this();
    std::weak_ptr<segment::SegmentReader> ws = seg_;
    const uint64_t gen = ++poll_gen_;  // an outstanding long poll's (or refresh's) answer is ignored
    long_polling_ = true;              // no second long poll meanwhile
    seg_->Refresh([w, ws, gen](Result<EntryId> last) {
      auto self = w.lock();
      std::shared_ptr<segment::SegmentReader> seg = ws.lock();
      if (!self || self->closed_ || !seg || self->seg_ != seg) return;
      if (gen != self->poll_gen_) return;
      self->long_polling_ = false;
      if (!last.ok()) return self->FailOrRetry(last.status());
      self->seg_last_ = std::max(self->seg_last_, last->value());
      self->seg_closed_ = seg->closed();
      if (self->seg_closed_) self->seg_last_ = seg->metadata().last_entry_id();
      self->Drive();
    });
  }

  void OnReadError(int64_t e, const Status& st) {
    DLOG_WARN << paths_.Describe() << ": reading entry " << e << " of segment seq " << seg_seq_
              << " failed: " << st.ToString() << "; retrying";
    std::weak_ptr<Impl> w = weak_from_this();
    std::weak_ptr<segment::SegmentReader> ws = seg_;
    segment::AfterMs(loop(), static_cast<uint64_t>(client_->options().retry_backoff_ms * 5), [w, e, ws] {
      auto self = w.lock();
      if (!self || self->closed_ || !self->seg_ || self->seg_ != ws.lock()) return;
      // The segment may have been truncated and deleted meanwhile.
      self->CheckTruncatedThen([w, e] {
        auto s = w.lock();
        if (s && s->seg_) s->ReadEntry(e);
      });
    });
  }

  void CheckTruncatedThen(std::function<void()> then) {
    std::weak_ptr<Impl> w = weak_from_this();
    LoadLog(client_->store(), paths_, [w, then](Result<VersionedLog> lg) {
      auto self = w.lock();
      if (!self || self->closed_) return;
      if (!lg.ok()) return self->FailOrRetry(lg.status());
      if (lg->meta.incarnation() != self->incarnation_) {
        return self->Fail(
            Status::Error(LogErrc::kLogNotFound, self->paths_.Describe() + " was deleted (and re-created)"));
      }
      for (const auto& r : lg->meta.segments()) {
        if (r.segment_seq() == self->seg_seq_ && r.truncated_at_ms() == 0) return then();
      }
      if (self->seg_seq_ >= lg->meta.next_segment_seq()) return then();
      int64_t first_live = lg->meta.next_segment_seq();
      for (const auto& r : lg->meta.segments()) {
        if (r.truncated_at_ms() == 0) {
          first_live = r.segment_seq();
          break;
        }
      }
      self->Fail(self->TruncatedError(self->pos_, first_live));
    });
  }

  // Definite errors stop the reader; transient ones are retried.
  void FailOrRetry(const Status& st) {
    if (st.Is(LogErrc::kLogNotFound) || st.Is(MetaErrc::kCorruptRecord) || st.Is(MetaErrc::kUnknownVersion) ||
        st.Is(MetaErrc::kClosed)) {
      return Fail(st);
    }
    DLOG_WARN << paths_.Describe() << ": reader retrying after: " << st.ToString();
    std::weak_ptr<Impl> w = weak_from_this();
    if (st.Is(MetaErrc::kNoNode) && seg_) {
      // The segment's record is gone: the log was deleted, or the segment truncated.
      return CheckTruncatedThen([w] {
        auto self = w.lock();
        if (self && self->seg_) self->RefreshSegment();
      });
    }
    segment::AfterMs(loop(), static_cast<uint64_t>(client_->options().retry_backoff_ms * 10), [w] {
      auto self = w.lock();
      if (!self || self->closed_) return;
      if (self->seg_) {
        self->RefreshSegment();
      } else {
        self->Drive();
      }
    });
  }

  void Fail(Status st) {
    if (error_.ok()) error_ = std::move(st);
    Drive();
  }

  const NsRef ns_;
  segment::SegmentClient* const client_;
  const LogPaths paths_;
  ReaderOptions options_;

  uint64_t incarnation_ = 0;
  Dlsn start_;                   // records before it are skipped
  Dlsn pos_;                     // the next record to deliver (what position() reports)
  int64_t fetch_seq_ = 0;        // the segment to look for once the current one is done
  size_t buffered_entries_ = 0;  // entries with records in buffered_
  bool watch_armed_ = false;
  uint64_t poll_gen_ = 0;
  int64_t skip_below_txid_ = std::numeric_limits<int64_t>::min();
  bool closed_ = false;
  bool driving_ = false;
  bool redrive_ = false;
  bool finding_ = false;
  bool waiting_for_segment_ = false;
  bool ended_ = false;
  Status error_;

  std::shared_ptr<segment::SegmentReader> seg_;
  int64_t seg_seq_ = -1;
  bool seg_closed_ = false;
  int64_t seg_last_ = -1;
  int64_t next_fetch_ = 0;
  int64_t decode_next_ = 0;
  size_t inflight_ = 0;
  bool long_polling_ = false;
  std::map<int64_t, Slice> fetched_;
  std::vector<EntryRecord> scratch_;
  std::deque<LogRecord> buffered_;

  ReadCallback req_cb_;
  size_t req_max_ = 1;
  segment::Timer request_timer_;

  mutable Mutex mu_;
  Dlsn pos_pub_ DLOG_GUARDED_BY(mu_);
};

void OpenLogReader(NsRef ns, std::string log, StartPosition start, ReaderOptions options,
                   std::function<void(Result<std::unique_ptr<LogReader>>)> cb) {
  segment::SegmentClient* client = ns->client;
  if (Status st = ValidateLogName(log); !st.ok()) {
    client->loop()->Post([cb, st] { cb(st); });
    return;
  }
  LogPaths paths = LogPaths::Of(client->layout(), ns->ns, log);
  // Made on the loop: its timer is a loop-thread object.
  client->loop()->Dispatch([ns = std::move(ns), paths = std::move(paths), options, start, cb]() mutable {
    auto impl = std::make_shared<LogReader::Impl>(std::move(ns), std::move(paths), options);
    impl->Start(start, [impl, cb](Status st) {
      if (!st.ok()) {
        impl->Close();
        return cb(st);
      }
      cb(std::make_unique<LogReader>(impl));
    });
  });
}

LogReader::LogReader(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

LogReader::~LogReader() {
  net::EventLoop* loop = impl_->loop();
  std::shared_ptr<Impl> impl = std::move(impl_);
  loop->RunSync([&impl] {
    impl->Close();
    impl.reset();
  });
}

void LogReader::ReadNext(size_t max_records, ReadCallback cb) {
  impl_->loop()->Dispatch(
      [impl = impl_, max_records, cb = std::move(cb)]() mutable { impl->ReadNext(max_records, -1, std::move(cb)); });
}

Result<std::vector<LogRecord>> LogReader::ReadNextSync(size_t max_records, int64_t timeout_ms) {
  DLOG_CHECK(!impl_->loop()->InLoopThread()) << "ReadNextSync on the loop";
  std::promise<Result<std::vector<LogRecord>>> p;
  impl_->loop()->Dispatch([impl = impl_, max_records, timeout_ms, &p] {
    impl->ReadNext(max_records, std::max<int64_t>(0, timeout_ms),
                   [&p](Result<std::vector<LogRecord>> r) { p.set_value(std::move(r)); });
  });
  return p.get_future().get();
}

Dlsn LogReader::position() const { return impl_->position(); }

}  // namespace dlog::log
