#include "logstore/segment/recovery.h"

#include <algorithm>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "common/check.h"
#include "common/logging.h"
#include "logstore/segment/ensemble.h"
#include "logstore/segment/errors.h"
#include "logstore/segment/segment_meta.h"
#include "logstore/segment/timer.h"
#include "net/errors.h"
#include "protocol/node_errors.h"

namespace dlog::segment {

namespace {

constexpr int64_t kReadAhead = 64;  // entries read in parallel
constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

class Recovery : public std::enable_shared_from_this<Recovery> {
 public:
  Recovery(SegmentClient* client, SegmentId id, SegmentRecovery::Callback cb)
      : client_(client), id_(id), cb_(std::move(cb)) {}

  void Start() {
    Reset();
    auto self = shared_from_this();
    LoadSegment(client_->store(), client_->layout(), id_,
                [self](Result<VersionedMeta> m) { self->OnMeta(std::move(m)); });
  }

 private:
  struct EntryState {
    bool found = false;
    Slice payload;
    std::set<int> no_such;  // positions that answered NO_SUCH_ENTRY
    bool decided = false;
    // rewrite
    bool rewriting = false;
    bool rewritten = false;
    std::set<int> acked;
    std::set<int> answered;
  };

  std::string Name() const { return "recovery of segment " + std::to_string(id_.value()); }

  void Reset() {
    ++epoch_;
    fenced_.clear();
    entries_.clear();
    max_lac_ = -1;
    reading_ = false;
    lowest_missing_ = kNone;
    closing_ = false;
  }

  void Fail(const Status& st) {
    if (finished_) return;
    finished_ = true;
    cb_(st);
  }

  void Done(const proto::SegmentMetadata& meta) {
    if (finished_) return;
    finished_ = true;
    client_->probe().recoveries_total.fetch_add(1, std::memory_order_relaxed);
    cb_(meta);
  }

  // Runs `fn` after the retry backoff, unless the procedure restarted meanwhile.
  void Later(std::function<void()> fn) {
    auto self = shared_from_this();
    AfterMs(client_->loop(), static_cast<uint64_t>(client_->options().retry_backoff_ms),
            [self, epoch = epoch_, fn = std::move(fn)] {
              if (self->finished_ || epoch != self->epoch_) return;
              fn();
            });
  }

  void Restart() {
    auto self = shared_from_this();
    ++epoch_;
    AfterMs(client_->loop(), static_cast<uint64_t>(client_->options().retry_backoff_ms), [self] {
      if (!self->finished_) self->Start();
    });
  }

  bool ClientClosed(const Status& st) {
    if (st.Is(net::NetErrc::kClosed)) {
      Fail(Status::Error(SegmentErrc::kClosed, Name() + ": client closed"));
      return true;
    }
    return false;
  }

  // ---- 1. metadata ----

  void OnMeta(Result<VersionedMeta> m) {
    if (finished_) return;
    if (!m.ok()) {
      if (m.status().Is(metadata::MetaErrc::kConnectionLoss) || m.status().Is(metadata::MetaErrc::kSessionExpired)) {
        return Restart();
      }
      return Fail(m.status());
    }
    if (Status st = ValidateMetadata(m->meta); !st.ok()) return Fail(st);
    meta_ = std::move(m->meta);
    version_ = m->version;
    if (meta_.state() == proto::SEGMENT_CLOSED) return Done(meta_);
    if (meta_.state() == proto::SEGMENT_IN_RECOVERY) return StartFence();
    proto::SegmentMetadata next = meta_;
    next.set_state(proto::SEGMENT_IN_RECOVERY);
    auto self = shared_from_this();
    CasSegment(client_->store(), client_->layout(), next, version_, [self, next](Result<int32_t> r) {
      if (self->finished_) return;
      if (!r.ok()) {
        DLOG_INFO << self->Name() << ": marking IN_RECOVERY: " << r.status().ToString() << "; starting over";
        return self->Restart();
      }
      self->meta_ = next;
      self->version_ = *r;
      self->StartFence();
    });
  }

  // ---- 2. fence ----

  const proto::Fragment& LastFragment() const { return meta_.fragments(meta_.fragments_size() - 1); }
  int E() const { return static_cast<int>(meta_.ensemble_size()); }
  int Qw() const { return static_cast<int>(meta_.write_quorum()); }
  int Qa() const { return static_cast<int>(meta_.ack_quorum()); }
  size_t Threshold() const { return static_cast<size_t>(Qw() - Qa() + 1); }

  void StartFence() {
    for (int p = 0; p < E(); ++p) SendFence(p);
  }

  void SendFence(int p) {
    if (finished_ || reading_) return;
    const std::string& node = LastFragment().ensemble(p);
    node::NodeClient* c = client_->Node(node);
    if (c == nullptr) return Fail(Status::Error(SegmentErrc::kClosed, Name() + ": no client for " + node));
    auto self = shared_from_this();
    const int64_t probe_entry = std::max<int64_t>(LastFragment().first_entry_id(), 0);
    c->ReadEntry(id_, EntryId(probe_entry), /*fence=*/true, 0,
                 [self, p, epoch = epoch_](const Status& st, node::EntryReply&& r) {
                   if (self->finished_ || epoch != self->epoch_) return;
                   self->OnFence(p, st, r);
                 });
  }

  void OnFence(int p, const Status& st, const node::EntryReply& r) {
    if (st.ok() || st.Is(NodeErrc::kNoSuchEntry)) {
      fenced_.insert(p);
      // The LAC is taken from the answers that made the quorum only: the start is fixed once reading began.
      if (!reading_) max_lac_ = std::max(max_lac_, r.lac.value());
      if (!reading_ && FenceQuorum()) StartReading();
      return;
    }
    if (ClientClosed(st)) return;
    if (reading_) return;  // enough are fenced; the reads fence the rest
    DLOG_INFO << Name() << ": fence at " << LastFragment().ensemble(p) << ": " << st.ToString() << "; retrying";
    Later([this, p] { SendFence(p); });
  }

  bool FenceQuorum() const {
    for (int start = 0; start < E(); ++start) {
      size_t n = 0;
      for (int q : WriteSetPositions(start, E(), Qw())) n += fenced_.count(q);
      if (n < Threshold()) return false;
    }
    return true;
  }

  // ---- 3. read forward ----

  void StartReading() {
    reading_ = true;
    start_ = std::max(max_lac_, LastFragment().first_entry_id() - 1) + 1;
    next_read_ = start_;
    DLOG_INFO << Name() << ": fenced; reading from entry " << start_ << " (LAC " << max_lac_ << ")";
    Pump();
  }

  int64_t FirstUndecided() const {
    for (auto& [e, s] : entries_) {
      if (!s.decided) return e;
    }
    return next_read_;
  }

  void Pump() {
    if (finished_ || closing_) return;
    while (next_read_ < lowest_missing_ && next_read_ < FirstUndecided() + kReadAhead) {
      const int64_t e = next_read_++;
      entries_[e];
      for (int p : WriteSetPositions(e, E(), Qw())) SendRead(e, p);
    }
    // Rewrite found entries in order.
    for (auto& [e, s] : entries_) {
      if (e >= lowest_missing_ || !s.found) break;
      if (!s.rewriting) {
        s.rewriting = true;
        for (int p : WriteSetPositions(e, E(), Qw())) SendRewrite(e, p);
      }
    }
    MaybeClose();
  }

  void SendRead(int64_t e, int p) {
    const std::string& node = LastFragment().ensemble(p);
    node::NodeClient* c = client_->Node(node);
    if (c == nullptr) return Fail(Status::Error(SegmentErrc::kClosed, Name() + ": no client for " + node));
    auto self = shared_from_this();
    // Every recovery read fences (apache/bookkeeper#2614).
    c->ReadEntry(id_, EntryId(e), /*fence=*/true, 0,
                 [self, e, p, epoch = epoch_](const Status& st, node::EntryReply&& r) {
                   if (self->finished_ || epoch != self->epoch_) return;
                   self->OnRead(e, p, st, std::move(r));
                 });
  }

  void OnRead(int64_t e, int p, const Status& st, node::EntryReply&& r) {
    auto it = entries_.find(e);
    if (it == entries_.end() || it->second.decided) return;
    EntryState& s = it->second;
    if (st.ok() && r.has_entry) {
      s.found = true;
      s.decided = true;
      s.payload = std::move(r.payload);
    } else if (st.Is(NodeErrc::kNoSuchEntry)) {
      s.no_such.insert(p);
      if (s.no_such.size() >= Threshold()) {
        s.decided = true;
        lowest_missing_ = std::min(lowest_missing_, e);
      }
    } else {
      if (ClientClosed(st)) return;
      DLOG_INFO << Name() << ": read of entry " << e << " at " << LastFragment().ensemble(p) << ": "
                << (st.ok() ? std::string("no entry") : st.ToString()) << "; retrying";
      // Not an answer about the entry: ask that replica again.
      Later([this, e, p] {
        auto i2 = entries_.find(e);
        if (i2 != entries_.end() && !i2->second.decided) SendRead(e, p);
      });
      return;
    }
    Pump();
  }

  void SendRewrite(int64_t e, int p) {
    const std::string& node = LastFragment().ensemble(p);
    node::NodeClient* c = client_->Node(node);
    if (c == nullptr) return Fail(Status::Error(SegmentErrc::kClosed, Name() + ": no client for " + node));
    auto self = shared_from_this();
    c->AddEntry(id_, EntryId(e), EntryId(std::min(max_lac_, e - 1)), entries_[e].payload, /*recovery=*/true,
                [self, e, p, epoch = epoch_](const Status& st) {
                  if (self->finished_ || epoch != self->epoch_) return;
                  self->OnRewrite(e, p, st);
                });
  }

  void OnRewrite(int64_t e, int p, const Status& st) {
    auto it = entries_.find(e);
    if (it == entries_.end() || it->second.rewritten) return;
    EntryState& s = it->second;
    s.answered.insert(p);
    if (st.ok()) {
      s.acked.insert(p);
    } else if (ClientClosed(st)) {
      return;
    }
    if (s.answered.size() < static_cast<size_t>(Qw())) return;
    if (s.acked.size() >= static_cast<size_t>(Qa())) {
      s.rewritten = true;
      client_->probe().recovered_entries_total.fetch_add(1, std::memory_order_relaxed);
      return MaybeClose();
    }
    DLOG_INFO << Name() << ": rewrite of entry " << e << " got " << s.acked.size() << " acks (last: " << st.ToString()
              << "); retrying";
    // Fewer than Qa copies: try the failed replicas again.
    for (int q : WriteSetPositions(e, E(), Qw())) {
      if (!s.acked.count(q)) {
        s.answered.erase(q);
        Later([this, e, q] { SendRewrite(e, q); });
      }
    }
  }

  // ---- 4. close ----

  void MaybeClose() {
    if (closing_ || lowest_missing_ == kNone) return;
    for (int64_t e = start_; e < lowest_missing_; ++e) {
      auto it = entries_.find(e);
      if (it == entries_.end() || !it->second.found || !it->second.rewritten) return;
    }
    closing_ = true;
    proto::SegmentMetadata next = meta_;
    next.set_state(proto::SEGMENT_CLOSED);
    next.set_last_entry_id(lowest_missing_ - 1);
    DLOG_INFO << Name() << ": closing at entry " << next.last_entry_id();
    auto self = shared_from_this();
    CasSegment(client_->store(), client_->layout(), next, version_, [self, next](Result<int32_t> r) {
      if (self->finished_) return;
      if (r.ok()) return self->Done(next);
      DLOG_INFO << self->Name() << ": close CAS: " << r.status().ToString() << "; re-reading";
      LoadSegment(self->client_->store(), self->client_->layout(), self->id_, [self, next](Result<VersionedMeta> m) {
        if (self->finished_) return;
        if (m.ok() && m->meta.state() == proto::SEGMENT_CLOSED) return self->Done(m->meta);
        self->Restart();  // not closed by anyone: do it all again
      });
    });
  }

  SegmentClient* const client_;
  const SegmentId id_;
  SegmentRecovery::Callback cb_;
  bool finished_ = false;
  uint64_t epoch_ = 0;  // bumped by every (re)start: answers of an older attempt are dropped
  proto::SegmentMetadata meta_;
  int32_t version_ = 0;
  std::set<int> fenced_;
  int64_t max_lac_ = -1;
  bool reading_ = false;
  int64_t start_ = 0;
  int64_t next_read_ = 0;
  int64_t lowest_missing_ = kNone;
  bool closing_ = false;
  std::map<int64_t, EntryState> entries_;
};

}  // namespace

void SegmentRecovery::Recover(SegmentClient* client, SegmentId id, Callback cb) {
  client->loop()->Dispatch(
      [client, id, cb = std::move(cb)]() mutable { std::make_shared<Recovery>(client, id, std::move(cb))->Start(); });
}

Result<proto::SegmentMetadata> SegmentRecovery::RecoverSync(SegmentClient* client, SegmentId id) {
  DLOG_CHECK(!client->loop()->InLoopThread()) << "RecoverSync on the loop";
  std::promise<Result<proto::SegmentMetadata>> p;
  Recover(client, id, [&p](Result<proto::SegmentMetadata> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

}  // namespace dlog::segment
