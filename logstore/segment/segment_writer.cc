#include "logstore/segment/segment_writer.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <deque>
#include <future>
#include <random>
#include <set>

#include "common/check.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_annotations.h"
#include "logstore/segment/ensemble.h"
#include "logstore/segment/errors.h"
#include "logstore/segment/placement.h"
#include "logstore/segment/segment_meta.h"
#include "logstore/segment/timer.h"
#include "metadata/id_allocator.h"
#include "net/errors.h"
#include "protocol/node_errors.h"

namespace dlog::segment {

namespace {

struct PendingAdd {
  int64_t entry;
  Slice payload;
  SegmentWriter::AddCallback cb;
  int64_t start_ns;
  uint32_t acked = 0;  // bit per ensemble slot that acknowledged (current ensemble)
};

struct Retry {
  int64_t entry;
  int slot;
  uint64_t gen;
};

}  // namespace

// Everything below runs on the client's loop thread, except the snapshot
// accessors (mu_ / atomics).
class SegmentWriter::Impl : public std::enable_shared_from_this<SegmentWriter::Impl> {
 public:
  enum class State { kOpen, kClosing, kSealed, kClosed, kFenced, kAborted };

  Impl(SegmentClient* client, proto::SegmentMetadata meta, int32_t version)
      : client_(client),
        id_(meta.segment_id()),
        e_(static_cast<int>(meta.ensemble_size())),
        qw_(static_cast<int>(meta.write_quorum())),
        qa_(static_cast<int>(meta.ack_quorum())),
        meta_(std::move(meta)),
        version_(version),
        slot_gen_(e_, 1),
        lac_timer_(client->loop()),
        retry_timer_(client->loop()) {
    const auto& last = meta_.fragments(meta_.fragments_size() - 1);
    ensemble_.assign(last.ensemble().begin(), last.ensemble().end());
    for (int64_t s = 0; s < e_; ++s) {
      uint32_t m = 0;
      for (int p : WriteSetPositions(s, e_, qw_)) m |= 1u << p;
      ws_mask_.push_back(m);
    }
    Publish();
  }

  ~Impl() {
    if (counted_under_replicated_) client_->probe().under_replicated_segments.fetch_sub(1);
  }

  SegmentClient* client() const { return client_; }
  SegmentId id() const { return id_; }
  EntryId lac() const { return EntryId(lac_pub_.load(std::memory_order_acquire)); }
  bool fenced() const { return fenced_pub_.load(std::memory_order_acquire); }
  proto::SegmentMetadata metadata() {
    MutexLock l(&mu_);
    return meta_pub_;
  }

  // ---- adds ----

  void Add(Slice payload, AddCallback cb) {
    if (state_ == State::kFenced) return cb(Status::Error(SegmentErrc::kFenced, Name() + " is fenced"));
    if (state_ != State::kOpen) return cb(Status::Error(SegmentErrc::kClosed, Name() + " is closing or closed"));
    if (payload.size() > kMaxPayload) {
      return cb(Status::Error(SegmentErrc::kInvalidArgument,
                              "payload of " + std::to_string(payload.size()) + " bytes is larger than the maximum"));
    }
    if (pending_.size() >= client_->options().writer_window) {
      return cb(Status::Error(SegmentErrc::kWindowFull,
                              Name() + ": " + std::to_string(pending_.size()) + " adds pending (window full)"));
    }
    const int64_t e = next_entry_++;
    pending_.push_back(PendingAdd{e, std::move(payload), std::move(cb), MonoNanos(), 0});
    SendEntry(e);
  }

  void Close(CloseCallback cb) {
    if (state_ == State::kFenced) return cb(Status::Error(SegmentErrc::kFenced, Name() + " is fenced"));
    if (state_ != State::kOpen) return cb(Status::Error(SegmentErrc::kClosed, Name() + " is already closing"));
    state_ = State::kClosing;
    close_cb_ = std::move(cb);
    MaybeFinishClose();
  }

  void Seal(SealCallback cb) {
    if (state_ == State::kFenced) return cb(Status::Error(SegmentErrc::kFenced, Name() + " is fenced"));
    if (state_ != State::kOpen) return cb(Status::Error(SegmentErrc::kClosed, Name() + " is already closing"));
    state_ = State::kClosing;
    seal_cb_ = std::move(cb);
    MaybeFinishClose();
  }

  // The owner let go: fail what is pending as unknown, stop for good.
  void Abort() {
    if (state_ == State::kOpen || state_ == State::kClosing) {
      state_ = State::kAborted;
      FailAll(Status::Error(SegmentErrc::kOutcomeUnknown, Name() + " was abandoned with the add pending"));
    }
    lac_timer_.Stop();
    retry_timer_.Stop();
  }

 private:
  std::string Name() const { return "segment " + std::to_string(id_.value()); }
  bool Active() const { return state_ == State::kOpen || state_ == State::kClosing; }

  PendingAdd* Find(int64_t e) {
    const int64_t idx = e - (lac_ + 1);
    if (idx < 0 || idx >= static_cast<int64_t>(pending_.size())) return nullptr;
    return &pending_[static_cast<size_t>(idx)];
  }

  void SendEntry(int64_t e) {
    for (int slot : WriteSetPositions(e, e_, qw_)) {
      if (failed_.count(slot) || dead_.count(slot)) continue;  // resent after the ensemble change
      Send(e, slot);
    }
  }

  void Send(int64_t e, int slot) {
    PendingAdd* p = Find(e);
    if (p == nullptr || (p->acked & (1u << slot))) return;
    const uint64_t gen = slot_gen_[slot];
    node::NodeClient* c = client_->Node(ensemble_[slot]);
    if (c == nullptr) {
      OnNodeError(slot, gen, Status::Error(SegmentErrc::kUnavailable, "no client for node " + ensemble_[slot]));
      return;
    }
    lac_carried_ = std::max(lac_carried_, lac_);
    std::weak_ptr<Impl> w = weak_from_this();
    c->AddEntry(id_, EntryId(e), EntryId(lac_), p->payload, /*recovery=*/false, [w, e, slot, gen](const Status& st) {
      if (auto self = w.lock()) self->OnAddReply(e, slot, gen, st);
    });
  }

  void OnAddReply(int64_t e, int slot, uint64_t gen, const Status& st) {
    if (!Active() || gen != slot_gen_[slot]) return;  // stale: a replaced node's answer
    PendingAdd* p = Find(e);
    if (p == nullptr) return;  // already complete
    if (st.ok()) {
      p->acked |= 1u << slot;
      backoff_ms_ = 0;
      TryComplete();
      return;
    }
    if (st.Is(NodeErrc::kFenced)) {
      Fence("node " + ensemble_[slot] + " answered FENCED for entry " + std::to_string(e));
      return;
    }
    if (st.Is(NodeErrc::kTooManyRequests) || st.Is(net::NetErrc::kWindowFull)) {
      ScheduleRetry(Retry{e, slot, gen});
      return;
    }
    if (st.Is(net::NetErrc::kClosed)) return;  // the client is shutting down
    OnNodeError(slot, gen, st);
  }

  void ScheduleRetry(Retry r) {
    retries_.push_back(r);
    if (retry_timer_.active()) return;
    const int64_t base = client_->options().too_many_backoff_ms;
    backoff_ms_ = backoff_ms_ == 0 ? base : std::min(backoff_ms_ * 2, base * 64);
    std::weak_ptr<Impl> w = weak_from_this();
    retry_timer_.Start(static_cast<uint64_t>(backoff_ms_), [w] {
      if (auto self = w.lock()) self->RunRetries();
    });
  }

  void RunRetries() {
    std::vector<Retry> rs;
    rs.swap(retries_);
    for (const Retry& r : rs) {
      if (!Active() || r.gen != slot_gen_[r.slot] || Find(r.entry) == nullptr) continue;
      client_->probe().add_retries_total.fetch_add(1, std::memory_order_relaxed);
      Send(r.entry, r.slot);
    }
  }

  void TryComplete() {
    if (changing_) return;  // nothing completes until the new fragment is in metadata
    std::vector<std::pair<AddCallback, int64_t>> done;
    while (!pending_.empty()) {
      PendingAdd& p = pending_.front();
      if (std::popcount(p.acked & ws_mask_[static_cast<size_t>(p.entry % e_)]) < qa_) break;
      lac_ = p.entry;
      bytes_ += p.payload.size();
      client_->probe().add_latency_us.Record(static_cast<uint64_t>((MonoNanos() - p.start_ns) / 1000));
      client_->probe().adds_total.fetch_add(1, std::memory_order_relaxed);
      client_->probe().add_bytes_total.fetch_add(p.payload.size(), std::memory_order_relaxed);
      done.emplace_back(std::move(p.cb), p.entry);
      pending_.pop_front();
    }
    if (done.empty()) return;
    lac_pub_.store(lac_, std::memory_order_release);
    if (lac_ > lac_carried_ && !lac_timer_.active()) {
      std::weak_ptr<Impl> w = weak_from_this();
      lac_timer_.Start(static_cast<uint64_t>(client_->options().lac_flush_ms), [w] {
        if (auto self = w.lock()) self->FlushLac();
      });
    }
    for (auto& [cb, e] : done) cb(EntryId(e));
    MaybeFinishClose();
  }

  // No add carried the LAC for a while: push it explicitly to the ensemble.
  void FlushLac() {
    if (!(Active() || state_ == State::kSealed) || lac_ <= lac_carried_) return;
    lac_carried_ = lac_;
    client_->probe().lac_writes_total.fetch_add(1, std::memory_order_relaxed);
    for (int slot = 0; slot < e_; ++slot) {
      if (failed_.count(slot) || dead_.count(slot)) continue;
      if (node::NodeClient* c = client_->Node(ensemble_[slot])) {
        c->WriteLac(id_, EntryId(lac_), [](const Status&, node::LacReply) {});
      }
    }
  }

  void FailAll(const Status& st) {
    std::deque<PendingAdd> pending;
    pending.swap(pending_);
    retries_.clear();
    if (st.Is(SegmentErrc::kFenced)) {
      client_->probe().adds_fenced_total.fetch_add(pending.size(), std::memory_order_relaxed);
    }
    for (auto& p : pending) p.cb(st);
    if (close_cb_) {
      auto cb = std::move(close_cb_);
      close_cb_ = nullptr;
      cb(st);
    }
    if (seal_cb_) {
      auto cb = std::move(seal_cb_);
      seal_cb_ = nullptr;
      cb(st);
    }
  }

  void Fence(const std::string& why) {
    if (!Active()) return;
    DLOG_WARN << Name() << ": writer fenced: " << why;
    state_ = State::kFenced;
    fenced_pub_.store(true, std::memory_order_release);
    lac_timer_.Stop();
    retry_timer_.Stop();
    FailAll(Status::Error(SegmentErrc::kFenced, Name() + ": writer fenced (" + why + "); outcome unknown"));
  }

  // ---- ensemble change ----

  void OnNodeError(int slot, uint64_t gen, const Status& st) {
    if (!Active() || gen != slot_gen_[slot] || failed_.count(slot) || dead_.count(slot)) return;
    DLOG_WARN << Name() << ": node " << ensemble_[slot] << " (slot " << slot << ") failed: " << st.ToString();
    failed_.insert(slot);
    ++slot_gen_[slot];  // from now on its answers are ignored
    for (auto& p : pending_) p.acked &= ~(1u << slot);
    MaybeStartChange();
  }

  void MaybeStartChange() {
    if (changing_ || failed_.empty() || !Active()) return;
    changing_ = true;
    std::weak_ptr<Impl> w = weak_from_this();
    ListLiveNodes(client_->store(), client_->layout(), [w](Result<std::vector<std::string>> r) {
      if (auto self = w.lock()) self->OnLiveNodes(std::move(r));
    });
  }

  void RetryChangeLater(int64_t ms) {
    changing_ = false;  // let entries with a live quorum complete meanwhile
    TryComplete();
    std::weak_ptr<Impl> w = weak_from_this();
    AfterMs(client_->loop(), static_cast<uint64_t>(ms), [w] {
      if (auto self = w.lock()) self->MaybeStartChange();
    });
  }

  void OnLiveNodes(Result<std::vector<std::string>> r) {
    if (!Active()) return;
    if (!r.ok()) {
      DLOG_WARN << Name() << ": ensemble change: listing nodes: " << r.status().ToString();
      return RetryChangeLater(client_->options().retry_backoff_ms);
    }
    std::set<std::string> in_use(ensemble_.begin(), ensemble_.end());
    std::vector<std::string> spare;
    for (auto& id : *r) {
      if (!in_use.count(id)) spare.push_back(id);
    }
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    std::shuffle(spare.begin(), spare.end(), rng);
    std::map<int, std::string> repl;
    std::vector<int> no_spare;
    for (int slot : failed_) {
      if (!spare.empty()) {
        repl[slot] = spare.back();
        spare.pop_back();
      } else {
        no_spare.push_back(slot);
      }
    }
    if (!no_spare.empty()) {
      // Keep going without them if every write set keeps Qa live nodes.
      std::set<int> down(dead_);
      down.insert(no_spare.begin(), no_spare.end());
      bool ok = true;
      for (uint32_t m : ws_mask_) {
        int live = 0;
        for (int s = 0; s < e_; ++s) live += ((m >> s) & 1u) && !down.count(s);
        ok = ok && live >= qa_;
      }
      if (!ok) {
        DLOG_WARN << Name() << ": no spare node and a write set would have fewer than Qa live nodes; retrying";
        return RetryChangeLater(client_->options().no_spare_retry_ms);
      }
      for (int slot : no_spare) {
        DLOG_WARN << Name() << ": no spare node for slot " << slot << " (" << ensemble_[slot]
                  << "): going on under-replicated";
        failed_.erase(slot);
        dead_.insert(slot);
      }
      if (!counted_under_replicated_) {
        counted_under_replicated_ = true;
        client_->probe().under_replicated_segments.fetch_add(1);
      }
    }
    if (repl.empty()) {
      changing_ = false;
      TryComplete();
      MaybeFinishClose();
      return;
    }
    proto::SegmentMetadata next = meta_;
    const int64_t first = lac_ + 1;  // F: the first incomplete entry (frozen while changing_)
    proto::Fragment* frag = next.mutable_fragments(next.fragments_size() - 1);
    if (frag->first_entry_id() != first) {
      frag = next.add_fragments();
      frag->set_first_entry_id(first);
      for (auto& n : ensemble_) frag->add_ensemble(n);
    }
    for (auto& [slot, node] : repl) frag->set_ensemble(slot, node);
    CasChange(std::move(next), std::move(repl));
  }

  void CasChange(proto::SegmentMetadata next, std::map<int, std::string> repl) {
    std::weak_ptr<Impl> w = weak_from_this();
    CasSegment(client_->store(), client_->layout(), next, version_, [w, next, repl](Result<int32_t> r) {
      if (auto self = w.lock()) self->OnChangeCas(next, repl, std::move(r));
    });
  }

  void OnChangeCas(const proto::SegmentMetadata& next, const std::map<int, std::string>& repl, Result<int32_t> r) {
    if (!Active()) return;
    if (r.ok()) return ApplyChange(next, repl, *r);
    DLOG_WARN << Name() << ": ensemble change CAS: " << r.status().ToString() << "; re-reading metadata";
    std::weak_ptr<Impl> w = weak_from_this();
    LoadSegment(client_->store(), client_->layout(), id_, [w, next, repl](Result<VersionedMeta> m) {
      if (auto self = w.lock()) self->OnChangeReload(next, repl, std::move(m));
    });
  }

  void OnChangeReload(const proto::SegmentMetadata& next, const std::map<int, std::string>& repl,
                      Result<VersionedMeta> m) {
    if (!Active()) return;
    if (!m.ok()) {
      std::weak_ptr<Impl> w = weak_from_this();
      AfterMs(client_->loop(), static_cast<uint64_t>(client_->options().retry_backoff_ms), [w, next, repl] {
        if (auto self = w.lock()) self->OnChangeCas(next, repl, Status::Error(SegmentErrc::kUnavailable, "retry"));
      });
      return;
    }
    if (m->meta.state() != proto::SEGMENT_OPEN) {
      Fence(std::string("segment is ") + SegmentStateName(m->meta.state()) + " in metadata");
      return;
    }
    if (m->meta.SerializeAsString() == next.SerializeAsString()) {
      return ApplyChange(next, repl, m->version);  // our CAS did land (retried after a connection loss)
    }
    // Someone else changed an OPEN segment (should not happen): adopt it and redo the change.
    meta_ = m->meta;
    version_ = m->version;
    changing_ = false;
    MaybeStartChange();
  }

  void ApplyChange(const proto::SegmentMetadata& next, const std::map<int, std::string>& repl, int32_t version) {
    meta_ = next;
    version_ = version;
    const auto& last = meta_.fragments(meta_.fragments_size() - 1);
    ensemble_.assign(last.ensemble().begin(), last.ensemble().end());
    for (auto& [slot, node] : repl) {
      failed_.erase(slot);
      ++slot_gen_[slot];
    }
    changing_ = false;
    client_->probe().ensemble_changes_total.fetch_add(1, std::memory_order_relaxed);
    Publish();
    DLOG_INFO << Name() << ": ensemble change: fragment from entry " << last.first_entry_id() << " ok";
    // Resend the incomplete entries to the new nodes.
    const int64_t end = next_entry_;
    for (int64_t e = lac_ + 1; e < end; ++e) {
      for (int slot : WriteSetPositions(e, e_, qw_)) {
        if (repl.count(slot)) Send(e, slot);
      }
    }
    TryComplete();
    MaybeStartChange();
    MaybeFinishClose();
  }

  // ---- close ----

  void MaybeFinishClose() {
    if (state_ != State::kClosing || !pending_.empty() || changing_ || close_cas_inflight_) return;
    proto::SegmentMetadata next = meta_;
    next.set_state(proto::SEGMENT_CLOSED);
    next.set_last_entry_id(lac_);
    next.set_length(bytes_);
    if (seal_cb_) {
      // Sealed: the caller stores `next`. The LAC timer keeps running so
      // tailing readers learn the last entry meanwhile.
      state_ = State::kSealed;
      auto cb = std::move(seal_cb_);
      seal_cb_ = nullptr;
      cb(SealedSegment{std::move(next), version_});
      return;
    }
    close_cas_inflight_ = true;
    CasClose(std::move(next));
  }

  void CasClose(proto::SegmentMetadata next) {
    std::weak_ptr<Impl> w = weak_from_this();
    CasSegment(client_->store(), client_->layout(), next, version_, [w, next](Result<int32_t> r) {
      if (auto self = w.lock()) self->OnCloseCas(next, std::move(r));
    });
  }

  void OnCloseCas(const proto::SegmentMetadata& next, Result<int32_t> r) {
    if (state_ != State::kClosing) return;
    if (r.ok()) return FinishClose(next, *r);
    std::weak_ptr<Impl> w = weak_from_this();
    LoadSegment(client_->store(), client_->layout(), id_, [w, next](Result<VersionedMeta> m) {
      auto self = w.lock();
      if (!self || self->state_ != State::kClosing) return;
      if (!m.ok()) {
        AfterMs(self->client_->loop(), static_cast<uint64_t>(self->client_->options().retry_backoff_ms), [w, next] {
          if (auto s2 = w.lock()) s2->CasClose(next);
        });
        return;
      }
      if (m->meta.SerializeAsString() == next.SerializeAsString()) return self->FinishClose(next, m->version);
      if (m->meta.state() != proto::SEGMENT_OPEN) {
        self->Fence(std::string("segment is ") + SegmentStateName(m->meta.state()) + " in metadata at close");
        return;
      }
      self->version_ = m->version;
      self->CasClose(next);
    });
  }

  void FinishClose(const proto::SegmentMetadata& next, int32_t version) {
    meta_ = next;
    version_ = version;
    state_ = State::kClosed;
    lac_timer_.Stop();
    Publish();
    if (counted_under_replicated_) {
      counted_under_replicated_ = false;
      client_->probe().under_replicated_segments.fetch_sub(1);
    }
    auto cb = std::move(close_cb_);
    close_cb_ = nullptr;
    if (cb) cb(EntryId(lac_));
  }

  void Publish() {
    MutexLock l(&mu_);
    meta_pub_ = meta_;
  }

  SegmentClient* const client_;
  const SegmentId id_;
  const int e_, qw_, qa_;
  proto::SegmentMetadata meta_;
  int32_t version_;
  std::vector<std::string> ensemble_;  // the last fragment's
  std::vector<uint32_t> ws_mask_;      // write-set slot mask by entry mod E
  std::vector<uint64_t> slot_gen_;     // bumped when a slot's node fails or is replaced
  std::set<int> failed_;               // slots waiting for a replacement
  std::set<int> dead_;                 // slots without a replacement (under-replicated)
  bool changing_ = false;
  bool counted_under_replicated_ = false;
  std::deque<PendingAdd> pending_;  // entries lac_+1 .. next_entry_-1
  int64_t next_entry_ = 0;
  int64_t lac_ = -1;
  int64_t lac_carried_ = -1;  // highest LAC sent with an add or WriteLac
  uint64_t bytes_ = 0;
  State state_ = State::kOpen;
  CloseCallback close_cb_;
  SealCallback seal_cb_;
  bool close_cas_inflight_ = false;
  std::vector<Retry> retries_;
  int64_t backoff_ms_ = 0;
  Timer lac_timer_;
  Timer retry_timer_;

  std::atomic<int64_t> lac_pub_{-1};
  std::atomic<bool> fenced_pub_{false};
  Mutex mu_;
  proto::SegmentMetadata meta_pub_ DLOG_GUARDED_BY(mu_);
};

// ---- public handle ----

SegmentWriter::SegmentWriter(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

SegmentWriter::~SegmentWriter() {
  net::EventLoop* loop = impl_->client()->loop();
  std::shared_ptr<Impl> impl = std::move(impl_);
  // Abort and drop our reference on the loop, so the Impl (and its timers) die there.
  loop->RunSync([&impl] {
    impl->Abort();
    impl.reset();
  });
}

void SegmentWriter::Create(SegmentClient* client, WriterConfig config, CreateCallback cb) {
  Prepare(client, config, [client, cb](Result<proto::SegmentMetadata> meta) {
    if (!meta.ok()) return cb(meta.status());
    CreateSegment(client->store(), client->layout(), *meta, [client, meta = *meta, cb](Status st) {
      if (!st.ok()) return cb(st);
      cb(Open(client, meta, 0));
    });
  });
}

std::unique_ptr<SegmentWriter> SegmentWriter::Open(SegmentClient* client, proto::SegmentMetadata meta,
                                                   int32_t version) {
  DLOG_CHECK(client->loop()->InLoopThread()) << "SegmentWriter::Open off the loop";
  return std::unique_ptr<SegmentWriter>(new SegmentWriter(std::make_shared<Impl>(client, std::move(meta), version)));
}

void SegmentWriter::Prepare(SegmentClient* client, WriterConfig config, PrepareCallback cb) {
  if (!(config.ensemble_size >= config.write_quorum && config.write_quorum >= config.ack_quorum &&
        config.ack_quorum >= 1 && config.ensemble_size <= 32)) {
    Status st = Status::Error(SegmentErrc::kInvalidArgument,
                              "need 32 >= E >= Qw >= Qa >= 1; got E=" + std::to_string(config.ensemble_size) + " Qw=" +
                                  std::to_string(config.write_quorum) + " Qa=" + std::to_string(config.ack_quorum));
    client->loop()->Post([cb, st] { cb(st); });
    return;
  }
  metadata::MetadataStore* store = client->store();
  metadata::AllocateId(store, client->layout().SegmentIdCounter(), [client, config, cb](Result<uint64_t> id) {
    if (!id.ok()) return cb(id.status());
    PickNodes(client->store(), client->layout(), static_cast<size_t>(config.ensemble_size), {},
              [client, config, cb, sid = *id](Result<std::vector<std::string>> nodes) {
                if (!nodes.ok()) return cb(nodes.status());
                proto::SegmentMetadata meta;
                meta.set_segment_id(sid);
                meta.set_state(proto::SEGMENT_OPEN);
                meta.set_ensemble_size(static_cast<uint32_t>(config.ensemble_size));
                meta.set_write_quorum(static_cast<uint32_t>(config.write_quorum));
                meta.set_ack_quorum(static_cast<uint32_t>(config.ack_quorum));
                meta.set_last_entry_id(-1);
                meta.set_ctime_ms(WallMillis());
                proto::Fragment* f = meta.add_fragments();
                f->set_first_entry_id(0);
                for (auto& n : *nodes) f->add_ensemble(n);
                EnsureSegmentBucket(client->store(), client->layout(), SegmentId(sid), [meta, cb](Status st) {
                  if (!st.ok()) return cb(st);
                  cb(meta);
                });
              });
  });
}

Result<std::unique_ptr<SegmentWriter>> SegmentWriter::CreateSync(SegmentClient* client, WriterConfig config) {
  DLOG_CHECK(!client->loop()->InLoopThread()) << "CreateSync on the loop";
  std::promise<Result<std::unique_ptr<SegmentWriter>>> p;
  Create(client, config, [&p](Result<std::unique_ptr<SegmentWriter>> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

SegmentId SegmentWriter::id() const { return impl_->id(); }

void SegmentWriter::Add(Slice payload, AddCallback cb) {
  impl_->client()->loop()->Dispatch([impl = impl_, payload = std::move(payload), cb = std::move(cb)]() mutable {
    impl->Add(std::move(payload), std::move(cb));
  });
}

Result<EntryId> SegmentWriter::AddSync(Slice payload) {
  DLOG_CHECK(!impl_->client()->loop()->InLoopThread()) << "AddSync on the loop";
  std::promise<Result<EntryId>> p;
  Add(std::move(payload), [&p](Result<EntryId> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

void SegmentWriter::Close(CloseCallback cb) {
  impl_->client()->loop()->Dispatch([impl = impl_, cb = std::move(cb)]() mutable { impl->Close(std::move(cb)); });
}

void SegmentWriter::Seal(SealCallback cb) {
  impl_->client()->loop()->Dispatch([impl = impl_, cb = std::move(cb)]() mutable { impl->Seal(std::move(cb)); });
}

Result<EntryId> SegmentWriter::CloseSync() {
  DLOG_CHECK(!impl_->client()->loop()->InLoopThread()) << "CloseSync on the loop";
  std::promise<Result<EntryId>> p;
  Close([&p](Result<EntryId> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

EntryId SegmentWriter::lac() const { return impl_->lac(); }
proto::SegmentMetadata SegmentWriter::metadata() const { return impl_->metadata(); }
bool SegmentWriter::fenced() const { return impl_->fenced(); }

}  // namespace dlog::segment
