#include "logstore/node/journal.h"

#include <algorithm>
#include <chrono>

#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "protocol/node_errors.h"

namespace dlog::node {

namespace {
constexpr uint64_t kSlackRecords = 1024;  // room kept for records that ignore the bound (fences, deletes)
const uint8_t kPadding[kRecordAlign] = {};
}  // namespace

// Keeps the next journal file ready: created exclusively, zero-filled with
// real writes, fdatasync'ed, and its directory entry fsync'ed.
class Preallocator {
 public:
  Preallocator(const JournalOptions& opt) : opt_(opt), next_id_(opt.first_file_id) {}
  ~Preallocator() { Stop(); }

  // Creates one file in the calling thread.
  Result<std::unique_ptr<File>> CreateNow(uint64_t* id) {
    uint64_t my_id;
    {
      MutexLock l(&mu_);
      my_id = next_id_++;
    }
    *id = my_id;
    return Create(my_id);
  }

  void Start() {
    thread_ = std::thread([this] {
      SetThreadName("dlog-prealloc");
      Loop();
    });
  }

  void Stop() {
    {
      MutexLock l(&mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    if (thread_.joinable()) thread_.join();
  }

  // Blocks until the next file is ready (or preparing it failed).
  Result<std::unique_ptr<File>> TakeNext(uint64_t* id) {
    MutexLock l(&mu_);
    while (ready_ == nullptr && error_.ok() && !stop_) cv_.Wait(&mu_);
    if (ready_ == nullptr) {
      if (!error_.ok()) return error_;
      return Status::Error(NodeErrc::kUnhealthy, "journal is stopping");
    }
    *id = ready_id_;
    std::unique_ptr<File> f = std::move(ready_);
    cv_.SignalAll();
    return f;
  }

 private:
  void Loop() {
    while (true) {
      uint64_t id;
      {
        MutexLock l(&mu_);
        while (!stop_ && (ready_ != nullptr || !error_.ok())) cv_.Wait(&mu_);
        if (stop_) return;
        id = next_id_++;
      }
      auto f = Create(id);
      MutexLock l(&mu_);
      if (!f.ok()) {
        if (!stop_) DLOG_ERROR << "journal: preparing file " << id << " failed: " << f.status().ToString();
        error_ = f.status();
      } else {
        ready_ = std::move(f).value();
        ready_id_ = id;
      }
      cv_.SignalAll();
    }
  }

  bool Stopping() {
    MutexLock l(&mu_);
    return stop_;
  }

  Result<std::unique_ptr<File>> Create(uint64_t id) {
    const std::string path = JoinPath(opt_.dir, JournalFileName(id));
    DLOG_ASSIGN_OR_RETURN(std::unique_ptr<File> f, opt_.env->OpenFile(path, OpenMode::kCreateExcl));
    constexpr uint64_t kChunk = 1 << 20;
    for (uint64_t off = 0; off < opt_.file_bytes; off += kChunk) {
      if (Stopping()) {
        f.reset();
        IgnoreError(opt_.env->RemoveFile(path));
        return Status::Error(NodeErrc::kUnhealthy, "journal is stopping");
      }
      DLOG_RETURN_IF_ERROR(f->WriteZeros(off, std::min(kChunk, opt_.file_bytes - off)));
    }
    DLOG_RETURN_IF_ERROR(f->DataSync());
    DLOG_RETURN_IF_ERROR(opt_.env->SyncDir(opt_.dir));
    DLOG_DEBUG << "journal: file " << path << " ready";
    return f;
  }

  const JournalOptions& opt_;
  Mutex mu_;
  CondVar cv_;
  uint64_t next_id_ DLOG_GUARDED_BY(mu_);
  std::unique_ptr<File> ready_ DLOG_GUARDED_BY(mu_);
  uint64_t ready_id_ DLOG_GUARDED_BY(mu_) = 0;
  Status error_ DLOG_GUARDED_BY(mu_);
  bool stop_ DLOG_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

Journal::Journal(JournalOptions options, JournalSink* sink) : opt_(std::move(options)), sink_(sink) {
  prealloc_ = std::make_unique<Preallocator>(opt_);
  const int n = std::max(1, opt_.batches_in_flight);
  MutexLock l(&mu_);
  for (int i = 0; i < n; ++i) {
    batches_.push_back(std::make_unique<JournalBatch>());
    free_.push_back(batches_.back().get());
  }
  ring_.resize(64);
}

Journal::~Journal() { Stop(false); }

Status Journal::Start() {
  uint64_t id = 0;
  auto f = prealloc_->CreateNow(&id);
  if (!f.ok()) return f.status().WithContext("creating the first journal file");
  file_ = std::move(f).value();
  file_id_ = id;
  seed_ = JournalSeed(opt_.journal_salt, id);
  offset_ = 0;
  {
    MutexLock l(&mu_);
    current_file_id_ = id;
    started_ = true;
  }
  DLOG_INFO << "journal: writing " << file_->path();
  prealloc_->Start();
  writer_ = std::thread([this] {
    SetThreadName("dlog-journal");
    WriterLoop();
  });
  return Status::OK();
}

Status Journal::Enqueue(JournalRecord& record, bool ignore_bound) {
  const uint64_t footprint = RecordFootprint(record.payload.size());
  if (footprint > opt_.file_bytes) {
    return Status::Error(NodeErrc::kBadRequest, "record of " + std::to_string(footprint) +
                                                    " bytes does not fit in a journal file of " +
                                                    std::to_string(opt_.file_bytes));
  }
  MutexLock l(&mu_);
  if (failed_) return Status::Error(NodeErrc::kUnhealthy, "journal stopped: " + error_.ToString());
  if (stop_ || !started_) return Status::Error(NodeErrc::kUnhealthy, "journal is not running");
  const bool over = count_ + 1 > opt_.queue_max_records || queued_bytes_ + footprint > opt_.queue_max_bytes;
  if (over && (!ignore_bound || count_ + 1 > opt_.queue_max_records + kSlackRecords)) {
    return Status::Error(NodeErrc::kTooManyRequests, "journal queue full (" + std::to_string(count_) + " records, " +
                                                         std::to_string(queued_bytes_) + " bytes)");
  }
  if (count_ == ring_.size()) {  // grow (amortised; bounded by the record bound)
    std::vector<JournalRecord> bigger(ring_.size() * 2);
    for (size_t i = 0; i < count_; ++i) bigger[i] = std::move(ring_[(head_ + i) % ring_.size()]);
    ring_.swap(bigger);
    head_ = 0;
  }
  ring_[(head_ + count_) % ring_.size()] = std::move(record);
  ++count_;
  queued_bytes_ += footprint;
  if (opt_.probe) opt_.probe->journal_queue_bytes.store(static_cast<int64_t>(queued_bytes_), std::memory_order_relaxed);
  if (count_ == 1 || queued_bytes_ >= opt_.max_batch_bytes) cv_.Signal();
  return Status::OK();
}

void Journal::Recycle(JournalBatch* batch) {
  batch->records.clear();
  batch->bytes = 0;
  batch->seq = 0;
  {
    MutexLock l(&mu_);
    free_.push_back(batch);
  }
  free_cv_.Signal();
}

void Journal::Stop(bool drain) {
  {
    MutexLock l(&mu_);
    if (!stop_) {
      stop_ = true;
      drain_ = drain;
    }
  }
  cv_.SignalAll();
  free_cv_.SignalAll();
  if (writer_.joinable()) writer_.join();
  prealloc_->Stop();
  FailQueued(Status::Error(NodeErrc::kUnhealthy, "journal stopped"));
  file_.reset();
}

uint64_t Journal::current_file() const {
  MutexLock l(&mu_);
  return current_file_id_;
}

Status Journal::error() const {
  MutexLock l(&mu_);
  return error_;
}

void Journal::WriterLoop() {
  while (true) {
    JournalBatch* b = nullptr;
    {
      MutexLock l(&mu_);
      while (count_ == 0 && !stop_) cv_.Wait(&mu_);
      if (count_ == 0 || (stop_ && !drain_)) break;
      if (opt_.max_wait_us > 0 && queued_bytes_ < opt_.max_batch_bytes && !stop_) {
        const int64_t deadline = MonoMicros() + opt_.max_wait_us;
        while (queued_bytes_ < opt_.max_batch_bytes && !stop_) {
          const int64_t left = deadline - MonoMicros();
          if (left <= 0) break;
          cv_.WaitFor(&mu_, std::chrono::microseconds(left));
        }
      }
      while (free_.empty() && !(stop_ && !drain_)) free_cv_.Wait(&mu_);
      if (stop_ && !drain_) break;
      b = free_.back();
      free_.pop_back();
      uint64_t taken = 0;
      while (count_ > 0) {
        JournalRecord& r = ring_[head_];
        const uint64_t fp = RecordFootprint(r.payload.size());
        if (!b->records.empty() && taken + fp > opt_.max_batch_bytes) break;
        b->records.push_back(std::move(r));
        head_ = (head_ + 1) % ring_.size();
        --count_;
        taken += fp;
      }
      queued_bytes_ -= taken;
      if (opt_.probe)
        opt_.probe->journal_queue_bytes.store(static_cast<int64_t>(queued_bytes_), std::memory_order_relaxed);
    }
    Status st = WriteBatch(b);
    if (!st.ok()) {
      Fail(st, b);
      return;
    }
    b->seq = ++seq_;
    sink_->OnDurable(b);
  }
}

namespace {
// Payloads at least this big are written from their own buffer, not copied.
constexpr size_t kCopyThreshold = 64 * 1024;
}  // namespace

void Journal::Stage(const void* p, size_t n) {
  const size_t off = staging_.size();
  staging_.Append(p, n);
  if (!pieces_.empty() && pieces_.back().ptr == nullptr && pieces_.back().off + pieces_.back().len == off) {
    pieces_.back().len += n;
  } else {
    pieces_.push_back({nullptr, off, n});
  }
}

Status Journal::WriteAndSync(File* f, uint64_t offset, bool* synced) {
  *synced = false;
  iov_.clear();
  for (const Piece& p : pieces_) {
    iov_.push_back({const_cast<uint8_t*>(p.ptr != nullptr ? p.ptr : staging_.data() + p.off), p.len});
  }
  pieces_.clear();
  staging_.Clear();
  if (iov_.empty()) return Status::OK();
  DLOG_RETURN_IF_ERROR(f->PWritev(offset, iov_.data(), static_cast<int>(iov_.size())));
  const int64_t t0 = MonoMicros();
  Status st = f->DataSync();
  if (opt_.probe) opt_.probe->fsync_latency_us.Record(static_cast<uint64_t>(MonoMicros() - t0));
  if (!st.ok()) {
    if (opt_.probe) opt_.probe->journal_fsync_errors_total.fetch_add(1, std::memory_order_relaxed);
    return st;
  }
  *synced = true;
  return Status::OK();
}

Status Journal::WriteBatch(JournalBatch* b) {
  const size_t n = b->records.size();
  pieces_.clear();
  staging_.Clear();
  uint64_t part_start = offset_;
  uint64_t bytes = 0;
  bool synced = false;
  for (size_t i = 0; i < n; ++i) {
    JournalRecord& r = b->records[i];
    const uint64_t len = kRecordHeaderSize + r.payload.size();
    const uint64_t fp = AlignRecord(len);
    if (offset_ + fp > opt_.file_bytes) {
      // Finish this file (durably) before the first byte goes to the next.
      DLOG_RETURN_IF_ERROR(WriteAndSync(file_.get(), part_start, &synced));
      uint64_t id = 0;
      auto next = prealloc_->TakeNext(&id);
      if (!next.ok()) return next.status().WithContext("journal needs a new file");
      file_ = std::move(next).value();
      file_id_ = id;
      seed_ = JournalSeed(opt_.journal_salt, id);
      offset_ = 0;
      part_start = 0;
      {
        MutexLock l(&mu_);
        current_file_id_ = id;
      }
      DLOG_INFO << "journal: rolled to " << file_->path();
    }
    r.header.version = kRecordVersion;
    r.header.payload_len = static_cast<uint32_t>(r.payload.size());
    uint8_t h[kRecordHeaderSize];
    EncodeHeader(r.header, seed_, h);
    r.pos = JournalPos{file_id_, offset_};
    r.length = static_cast<uint32_t>(len);
    Stage(h, kRecordHeaderSize);
    if (r.payload.size() >= kCopyThreshold) {
      pieces_.push_back({r.payload.data(), 0, r.payload.size()});
    } else if (!r.payload.empty()) {
      Stage(r.payload.data(), r.payload.size());
    }
    if (fp > len) Stage(kPadding, static_cast<size_t>(fp - len));
    offset_ += fp;
    bytes += fp;
  }
  DLOG_RETURN_IF_ERROR(WriteAndSync(file_.get(), part_start, &synced));
  b->end = JournalPos{file_id_, offset_};
  b->bytes = bytes;
  if (opt_.probe) {
    opt_.probe->journal_batches_total.fetch_add(1, std::memory_order_relaxed);
    opt_.probe->journal_bytes_total.fetch_add(bytes, std::memory_order_relaxed);
    opt_.probe->journal_batch_entries.Record(n);
    opt_.probe->journal_batch_bytes.Record(bytes);
  }
  return Status::OK();
}

void Journal::Fail(const Status& st, JournalBatch* b) {
  DLOG_ERROR << "journal: write/sync failed, the journal stops and the node is unhealthy: " << st.ToString();
  {
    MutexLock l(&mu_);
    failed_ = true;
    error_ = st;
  }
  if (opt_.probe) opt_.probe->healthy.store(0);
  sink_->OnJournalFailed(st);
  const Status err = Status::Error(NodeErrc::kUnhealthy, "journal failed: " + st.ToString());
  for (auto& r : b->records) {
    if (r.done) {
      auto done = std::move(r.done);
      r.done = nullptr;
      done(err);
    }
  }
  Recycle(b);
  FailQueued(err);
}

void Journal::FailQueued(const Status& st) {
  while (true) {
    JournalRecord r;
    {
      MutexLock l(&mu_);
      if (count_ == 0) {
        queued_bytes_ = 0;
        if (opt_.probe) opt_.probe->journal_queue_bytes.store(0, std::memory_order_relaxed);
        return;
      }
      r = std::move(ring_[head_]);
      head_ = (head_ + 1) % ring_.size();
      --count_;
      queued_bytes_ -= RecordFootprint(r.payload.size());
    }
    if (r.done) r.done(st);
  }
}

}  // namespace dlog::node
