#include "logstore/node/indexer.h"

#include <chrono>

#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "protocol/node_errors.h"

namespace dlog::node {

Indexer::Indexer(IndexerOptions options, Index* index, std::unique_ptr<IndexBuilder> builder, IndexerHost* host)
    : opt_(std::move(options)), index_(index), builder_(std::move(builder)), host_(host) {
  MutexLock l(&mu_);
  durable_pos_ = builder_->position();  // Open flushed after replay
}

Indexer::~Indexer() { Stop(false); }

void Indexer::Start() {
  {
    MutexLock l(&mu_);
    running_ = true;
  }
  last_flush_ms_ = MonoMillis();
  thread_ = std::thread([this] {
    SetThreadName("dlog-indexer");
    Loop();
  });
}

void Indexer::Submit(JournalBatch* batch) {
  {
    MutexLock l(&mu_);
    queue_.push_back(batch);
  }
  cv_.Signal();
}

void Indexer::MarkDamaged(uint64_t segment) {
  {
    MutexLock l(&mu_);
    damage_.push_back(segment);
  }
  cv_.Signal();
}

Status Indexer::FlushNow() {
  MutexLock l(&mu_);
  if (!running_ || stop_) return Status::Error(NodeErrc::kUnhealthy, "index thread is not running");
  const uint64_t target = flushes_ + 1;
  flush_requested_ = true;
  cv_.Signal();
  while (flushes_ < target && running_) done_cv_.Wait(&mu_);
  if (flushes_ < target) return Status::Error(NodeErrc::kUnhealthy, "index thread stopped");
  return last_flush_status_;
}

void Indexer::Stop(bool drain) {
  {
    MutexLock l(&mu_);
    if (!stop_) {
      stop_ = true;
      drain_ = drain;
    }
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
  std::vector<JournalBatch*> left;
  {
    MutexLock l(&mu_);
    running_ = false;
    left.swap(queue_);
  }
  done_cv_.SignalAll();
  for (JournalBatch* b : left) host_->OnBatchDropped(b, Status::Error(NodeErrc::kUnhealthy, "store stopped"));
}

uint64_t Indexer::indexed_seq() const {
  MutexLock l(&mu_);
  return indexed_seq_;
}

bool Indexer::WaitIndexed(uint64_t seq, int64_t timeout_ms) const {
  const int64_t deadline = MonoMillis() + timeout_ms;
  MutexLock l(&mu_);
  while (indexed_seq_ < seq && running_ && failed_.ok()) {
    const int64_t left = deadline - MonoMillis();
    if (left <= 0) break;
    done_cv_.WaitFor(&mu_, std::chrono::milliseconds(left));
  }
  return indexed_seq_ >= seq;
}

JournalPos Indexer::durable_position() const {
  MutexLock l(&mu_);
  return durable_pos_;
}

uint64_t Indexer::flushes() const {
  MutexLock l(&mu_);
  return flushes_;
}

uint64_t Indexer::files_removed() const {
  MutexLock l(&mu_);
  return files_removed_;
}

void Indexer::SetFailed(const Status& st) {
  {
    MutexLock l(&mu_);
    if (!failed_.ok()) return;
    failed_ = st;
  }
  DLOG_ERROR << "index: write failed, the node is unhealthy: " << st.ToString();
  done_cv_.SignalAll();
  host_->OnIndexFailed(st);
}

void Indexer::Loop() {
  while (true) {
    bool flush = false, stopping = false;
    Status failed;
    {
      MutexLock l(&mu_);
      while (queue_.empty() && damage_.empty() && !flush_requested_ && !stop_) {
        if (opt_.flush_interval_ms > 0) {
          const int64_t left = last_flush_ms_ + opt_.flush_interval_ms - MonoMillis();
          if (left <= 0) break;
          cv_.WaitFor(&mu_, std::chrono::milliseconds(left));
        } else {
          cv_.Wait(&mu_);
        }
      }
      if (stop_ && !drain_) return;
      stopping = stop_;
      work_.swap(queue_);
      damage_work_.swap(damage_);
      flush = flush_requested_ || stopping;
      flush_requested_ = false;
      failed = failed_;
    }
    for (JournalBatch* b : work_) {
      if (!failed.ok()) {
        host_->OnBatchDropped(b, Status::Error(NodeErrc::kUnhealthy, "index failed: " + failed.ToString()));
        continue;
      }
      IndexBatch(b);
      MutexLock l(&mu_);
      failed = failed_;
    }
    work_.clear();
    if (!damage_work_.empty() && failed.ok()) {
      for (uint64_t seg : damage_work_) builder_->MarkDamaged(seg);
      Status st = builder_->Commit(builder_->position());
      if (!st.ok()) SetFailed(st);
    }
    damage_work_.clear();
    if (builder_->TakeDeletedFlag()) flush = true;
    if (opt_.flush_interval_ms > 0 && MonoMillis() - last_flush_ms_ >= opt_.flush_interval_ms) flush = true;
    if (flush) {
      Status st;
      {
        MutexLock l(&mu_);
        failed = failed_;
      }
      if (failed.ok()) st = FlushAndCollect();
      last_flush_ms_ = MonoMillis();
      {
        MutexLock l(&mu_);
        ++flushes_;
        last_flush_status_ = failed.ok() ? st : failed;
      }
      done_cv_.SignalAll();
    }
    if (stopping) return;
  }
}

void Indexer::IndexBatch(JournalBatch* b) {
  for (const JournalRecord& r : b->records) builder_->Apply(r.header, r.payload.data(), r.pos, r.length);
  Status st = builder_->Commit(b->end);
  if (!st.ok()) {
    SetFailed(st);
    host_->OnBatchDropped(b, Status::Error(NodeErrc::kUnhealthy, "index write failed: " + st.ToString()));
    return;
  }
  {
    MutexLock l(&mu_);
    indexed_seq_ = b->seq;
  }
  done_cv_.SignalAll();
  host_->OnIndexed(b);
}

Status Indexer::FlushAndCollect() {
  Status st = index_->Flush();
  if (!st.ok()) {
    SetFailed(st);
    return st;
  }
  const JournalPos pos = builder_->position();
  {
    MutexLock l(&mu_);
    durable_pos_ = pos;
  }
  // GC: files wholly before the durable position with no live segment.
  auto names = opt_.env->ListDir(opt_.journal_dir);
  if (!names.ok()) {
    DLOG_WARN << "index: GC cannot list " << opt_.journal_dir << ": " << names.status().ToString();
    return Status::OK();
  }
  std::vector<uint64_t> files;
  for (const auto& n : *names) {
    uint64_t id;
    if (ParseJournalFileName(n, &id)) files.push_back(id);
  }
  std::vector<uint64_t> garbage = builder_->CollectGarbageFiles(files, pos.file);
  if (garbage.empty()) return Status::OK();
  // Forget the files in the index first: a file the index still lists is only
  // ever a leak, a listed file that is gone is not.
  st = builder_->Commit(pos);
  if (!st.ok()) {
    SetFailed(st);
    return st;
  }
  uint64_t removed = 0;
  for (uint64_t f : garbage) {
    host_->OnJournalFileRemoving(f);
    Status rs = opt_.env->RemoveFile(JoinPath(opt_.journal_dir, JournalFileName(f)));
    host_->OnJournalFileRemoved(f);
    if (rs.ok()) {
      ++removed;
    } else if (!rs.Is(CommonErrc::kNotFound)) {
      DLOG_WARN << "index: GC could not remove journal file " << f << ": " << rs.ToString();
    }
  }
  if (removed > 0) {
    Status ds = opt_.env->SyncDir(opt_.journal_dir);
    if (!ds.ok()) DLOG_WARN << "index: GC directory sync failed: " << ds.ToString();
    DLOG_INFO << "index: GC removed " << removed << " journal file(s) before file " << pos.file;
  }
  MutexLock l(&mu_);
  files_removed_ += removed;
  return Status::OK();
}

}  // namespace dlog::node
