#include "logstore/segment/segment_reader.h"

#include <algorithm>
#include <atomic>
#include <future>

#include "common/check.h"
#include "common/thread_annotations.h"
#include "logstore/segment/ensemble.h"
#include "logstore/segment/errors.h"
#include "logstore/segment/segment_meta.h"
#include "logstore/segment/timer.h"
#include "protocol/node_errors.h"

namespace dlog::segment {

namespace {

struct ReadState {
  int64_t entry;
  std::vector<std::string> replicas;
  size_t next = 0;
  int outstanding = 0;
  bool done = false;
  Status last_error;
  SegmentReader::ReadCallback cb;
  std::unique_ptr<Timer> speculative;  // stopped once done (breaks the st <-> timer cycle)
};

struct LacState {
  size_t remaining;
  bool done = false;
  SegmentReader::LacCallback cb;
};

}  // namespace

// Loop thread only, except the snapshot accessors.
class SegmentReader::Impl : public std::enable_shared_from_this<SegmentReader::Impl> {
 public:
  Impl(SegmentClient* client, SegmentId id, ReaderOptions options) : client_(client), id_(id), opts_(options) {}

  SegmentClient* client() const { return client_; }
  EntryId last_readable() const { return EntryId(limit_pub_.load(std::memory_order_acquire)); }
  bool closed() const { return closed_pub_.load(std::memory_order_acquire); }
  proto::SegmentMetadata metadata() {
    MutexLock l(&mu_);
    return meta_pub_;
  }

  void Read(int64_t e, ReadCallback cb) {
    if (e < 0) return cb(Status::Error(SegmentErrc::kInvalidArgument, "negative entry id"));
    if (loaded_ && e <= Limit()) return DoRead(e, std::move(cb));
    std::weak_ptr<Impl> w = weak_from_this();
    Refresh([w, e, cb = std::move(cb)](Result<EntryId> r) mutable {
      auto self = w.lock();
      if (!self) return;
      if (!r.ok()) return cb(r.status());
      if (e > self->Limit()) return cb(self->NotReadable(e));
      self->DoRead(e, std::move(cb));
    });
  }

  void Refresh(LacCallback cb) {
    std::weak_ptr<Impl> w = weak_from_this();
    LoadSegment(client_->store(), client_->layout(), id_, [w, cb = std::move(cb)](Result<VersionedMeta> m) mutable {
      auto self = w.lock();
      if (!self) return;
      if (!m.ok()) return cb(m.status());
      if (Status st = ValidateMetadata(m->meta); !st.ok()) return cb(st);
      self->meta_ = std::move(m->meta);
      self->loaded_ = true;
      self->Publish();
      if (self->meta_.state() == proto::SEGMENT_CLOSED) return cb(EntryId(self->Limit()));
      self->ReadLacs(std::move(cb));
    });
  }

  void WaitForEntry(int64_t e, uint32_t timeout_ms, ReadCallback cb) {
    if (loaded_ && e <= Limit()) return DoRead(e, std::move(cb));
    if (!loaded_ || e < 0) return Read(e, std::move(cb));
    auto nodes = Rotated(e);
    node::NodeClient* c = client_->Node(nodes[0]);
    if (c == nullptr) return cb(Status::Error(SegmentErrc::kUnavailable, "no client for " + nodes[0]));
    std::weak_ptr<Impl> w = weak_from_this();
    c->ReadEntry(id_, EntryId(e), /*fence=*/false, timeout_ms,
                 [w, e, node = nodes[0], cb = std::move(cb)](const Status& st, node::EntryReply&& r) mutable {
                   auto self = w.lock();
                   if (!self) return;
                   self->Learn(r.lac.value());
                   if (st.ok() && r.has_entry && r.lac.value() >= e) {
                     self->client_->probe().reads_total.fetch_add(1, std::memory_order_relaxed);
                     return cb(ReadResult{EntryId(e), std::move(r.payload), node});
                   }
                   // Timed out, or the replica failed: look again (metadata, every LAC), then read if readable.
                   self->Read(e, std::move(cb));
                 });
  }

 private:
  int64_t Limit() const { return meta_.state() == proto::SEGMENT_CLOSED ? meta_.last_entry_id() : lac_; }

  Status NotReadable(int64_t e) const {
    return Status::Error(SegmentErrc::kNotReadable, "segment " + std::to_string(id_.value()) + " entry " +
                                                        std::to_string(e) + " is beyond the last readable entry " +
                                                        std::to_string(Limit()) + " (" +
                                                        SegmentStateName(meta_.state()) + ")");
  }

  void Learn(int64_t lac) {
    if (lac > lac_) {
      lac_ = lac;
      Publish();
    }
  }

  std::vector<std::string> Rotated(int64_t e) const {
    std::vector<std::string> nodes = WriteSetNodes(meta_, EntryId(e));
    const size_t k = static_cast<size_t>(opts_.first_replica) % nodes.size();
    std::rotate(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(k), nodes.end());
    return nodes;
  }

  void ReadLacs(LacCallback cb) {
    const auto& last = meta_.fragments(meta_.fragments_size() - 1);
    auto st = std::make_shared<LacState>(LacState{static_cast<size_t>(last.ensemble_size()), false, std::move(cb)});
    std::weak_ptr<Impl> w = weak_from_this();
    auto finish = [w, st] {
      if (st->done) return;
      st->done = true;
      if (auto self = w.lock()) st->cb(EntryId(self->Limit()));
    };
    for (const auto& node : last.ensemble()) {
      node::NodeClient* c = client_->Node(node);
      if (c == nullptr) {
        if (--st->remaining == 0) finish();
        continue;
      }
      c->ReadLac(id_, [w, st, finish, this_client = client_](const Status& s, node::LacReply r) {
        auto self = w.lock();
        if (!self || st->done) return;
        if (s.ok()) self->Learn(r.lac.value());
        if (--st->remaining == 0) return finish();
        if (s.ok()) {
          // One answer is enough to go on with; give the others a moment.
          AfterMs(this_client->loop(), static_cast<uint64_t>(this_client->options().speculative_read_ms), finish);
        }
      });
    }
  }

  void DoRead(int64_t e, ReadCallback cb) {
    auto st = std::make_shared<ReadState>();
    st->entry = e;
    st->replicas = Rotated(e);
    st->cb = std::move(cb);
    SendNext(st);
  }

  void SendNext(const std::shared_ptr<ReadState>& st) {
    if (st->done) return;
    if (st->next >= st->replicas.size()) {
      if (st->outstanding == 0) {
        st->done = true;
        if (st->speculative) st->speculative->Stop();
        st->cb(Status::Error(SegmentErrc::kUnavailable,
                             "segment " + std::to_string(id_.value()) + " entry " + std::to_string(st->entry) +
                                 ": no replica could serve it; last error: " + st->last_error.ToString()));
      }
      return;
    }
    const size_t idx = st->next++;
    const std::string node = st->replicas[idx];
    node::NodeClient* c = client_->Node(node);
    if (c == nullptr) {
      st->last_error = Status::Error(SegmentErrc::kUnavailable, "no client for " + node);
      return SendNext(st);
    }
    ++st->outstanding;
    std::weak_ptr<Impl> w = weak_from_this();
    c->ReadEntry(id_, EntryId(st->entry), /*fence=*/false, 0, [w, st, node](const Status& s, node::EntryReply&& r) {
      if (auto self = w.lock()) self->OnRead(st, node, s, std::move(r));
    });
    if (st->next >= st->replicas.size()) return;  // nobody left to ask speculatively
    if (!st->speculative) st->speculative = std::make_unique<Timer>(client_->loop());
    std::weak_ptr<ReadState> wst = st;
    st->speculative->Start(static_cast<uint64_t>(client_->options().speculative_read_ms), [w, wst, idx] {
      auto self = w.lock();
      auto s = wst.lock();
      if (!self || !s || s->done || s->next != idx + 1 || s->next >= s->replicas.size()) return;
      self->client_->probe().speculative_reads_total.fetch_add(1, std::memory_order_relaxed);
      self->SendNext(s);
    });
  }

  void OnRead(const std::shared_ptr<ReadState>& st, const std::string& node, const Status& s, node::EntryReply&& r) {
    --st->outstanding;
    if (st->done) return;
    if (s.ok() && r.has_entry) {
      st->done = true;
      if (st->speculative) st->speculative->Stop();
      Learn(r.lac.value());
      client_->probe().reads_total.fetch_add(1, std::memory_order_relaxed);
      st->cb(ReadResult{EntryId(st->entry), std::move(r.payload), node});
      return;
    }
    // An error, or NO_SUCH_ENTRY for an entry <= LAC: some other replica has it.
    st->last_error = s.ok() ? Status::Error(SegmentErrc::kUnavailable, node + " sent no entry") : s.WithContext(node);
    client_->probe().read_retries_total.fetch_add(1, std::memory_order_relaxed);
    SendNext(st);
  }

  void Publish() {
    limit_pub_.store(loaded_ ? Limit() : -1, std::memory_order_release);
    closed_pub_.store(meta_.state() == proto::SEGMENT_CLOSED, std::memory_order_release);
    MutexLock l(&mu_);
    meta_pub_ = meta_;
  }

  SegmentClient* const client_;
  const SegmentId id_;
  const ReaderOptions opts_;
  proto::SegmentMetadata meta_;
  bool loaded_ = false;
  int64_t lac_ = -1;

  std::atomic<int64_t> limit_pub_{-1};
  std::atomic<bool> closed_pub_{false};
  Mutex mu_;
  proto::SegmentMetadata meta_pub_ DLOG_GUARDED_BY(mu_);
};

SegmentReader::SegmentReader(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

SegmentReader::~SegmentReader() {
  net::EventLoop* loop = impl_->client()->loop();
  std::shared_ptr<Impl> impl = std::move(impl_);
  loop->RunSync([&impl] { impl.reset(); });
}

void SegmentReader::Open(SegmentClient* client, SegmentId id, ReaderOptions options, OpenCallback cb) {
  client->loop()->Dispatch([client, id, options, cb = std::move(cb)] {
    auto impl = std::make_shared<Impl>(client, id, options);
    impl->Refresh([impl, cb](Result<EntryId> r) {
      if (!r.ok()) return cb(r.status());
      cb(std::unique_ptr<SegmentReader>(new SegmentReader(impl)));
    });
  });
}

Result<std::unique_ptr<SegmentReader>> SegmentReader::OpenSync(SegmentClient* client, SegmentId id,
                                                               ReaderOptions options) {
  DLOG_CHECK(!client->loop()->InLoopThread()) << "OpenSync on the loop";
  std::promise<Result<std::unique_ptr<SegmentReader>>> p;
  Open(client, id, options, [&p](Result<std::unique_ptr<SegmentReader>> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

void SegmentReader::Read(EntryId entry, ReadCallback cb) {
  impl_->client()->loop()->Dispatch(
      [impl = impl_, entry, cb = std::move(cb)]() mutable { impl->Read(entry.value(), std::move(cb)); });
}

Result<ReadResult> SegmentReader::ReadSync(EntryId entry) {
  DLOG_CHECK(!impl_->client()->loop()->InLoopThread()) << "ReadSync on the loop";
  std::promise<Result<ReadResult>> p;
  Read(entry, [&p](Result<ReadResult> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

void SegmentReader::Refresh(LacCallback cb) {
  impl_->client()->loop()->Dispatch([impl = impl_, cb = std::move(cb)]() mutable { impl->Refresh(std::move(cb)); });
}

Result<EntryId> SegmentReader::RefreshSync() {
  DLOG_CHECK(!impl_->client()->loop()->InLoopThread()) << "RefreshSync on the loop";
  std::promise<Result<EntryId>> p;
  Refresh([&p](Result<EntryId> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

void SegmentReader::WaitForEntry(EntryId entry, uint32_t timeout_ms, ReadCallback cb) {
  impl_->client()->loop()->Dispatch([impl = impl_, entry, timeout_ms, cb = std::move(cb)]() mutable {
    impl->WaitForEntry(entry.value(), timeout_ms, std::move(cb));
  });
}

Result<ReadResult> SegmentReader::WaitForEntrySync(EntryId entry, uint32_t timeout_ms) {
  DLOG_CHECK(!impl_->client()->loop()->InLoopThread()) << "WaitForEntrySync on the loop";
  std::promise<Result<ReadResult>> p;
  WaitForEntry(entry, timeout_ms, [&p](Result<ReadResult> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

EntryId SegmentReader::last_readable() const { return impl_->last_readable(); }
bool SegmentReader::closed() const { return impl_->closed(); }
proto::SegmentMetadata SegmentReader::metadata() const { return impl_->metadata(); }

}  // namespace dlog::segment
