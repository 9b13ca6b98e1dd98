#include "logstore/node/reader.h"

#include <algorithm>

#include "common/crc32c.h"
#include "common/thread_name.h"
#include "logstore/node/journal_format.h"

namespace dlog::node {

Result<std::shared_ptr<File>> JournalFileCache::Get(uint64_t id) {
  uint64_t removals;
  {
    MutexLock l(&mu_);
    auto it = files_.find(id);
    if (it != files_.end()) return it->second;
    if (removing_.contains(id)) {
      return Status::Error(CommonErrc::kNotFound, "journal file " + std::to_string(id) + " is being removed by GC");
    }
    removals = removals_;
  }
  DLOG_ASSIGN_OR_RETURN(auto f, env_->OpenFile(JoinPath(dir_, JournalFileName(id)), OpenMode::kRead));
  std::shared_ptr<File> shared(std::move(f));
  if (after_open_for_test_) after_open_for_test_(id);
  MutexLock l(&mu_);
  // A removal began or ended while the file was being opened: this may be a
  // handle to an unlinked file. Serve this one read with it, never cache it.
  if (removing_.contains(id) || removals_ != removals) return shared;
  auto [it, inserted] = files_.emplace(id, shared);
  return it->second;
}

void JournalFileCache::BeginRemove(uint64_t id) {
  std::shared_ptr<File> f;  // closed outside the lock
  MutexLock l(&mu_);
  removing_.insert(id);
  auto it = files_.find(id);
  if (it != files_.end()) {
    f = std::move(it->second);
    files_.erase(it);
  }
}

void JournalFileCache::EndRemove(uint64_t id) {
  MutexLock l(&mu_);
  removing_.erase(id);
  ++removals_;
}

void JournalFileCache::Evict(uint64_t id) {
  BeginRemove(id);
  EndRemove(id);
}

void JournalFileCache::Clear() {
  std::map<uint64_t, std::shared_ptr<File>> old;
  MutexLock l(&mu_);
  old.swap(files_);
}

bool JournalFileCache::CachedForTest(uint64_t id) {
  MutexLock l(&mu_);
  return files_.contains(id);
}

uint32_t JournalFileCache::Seed(uint64_t id) const { return JournalSeed(journal_salt_, id); }

Status ReadEntryRecord(JournalFileCache* files, const EntryLocation& loc, uint64_t segment, int64_t entry,
                       Slice* payload, uint32_t* payload_crc) {
  auto where = [&] {
    return "journal file " + std::to_string(loc.file) + " offset " + std::to_string(loc.offset) + " (segment " +
           std::to_string(segment) + " entry " + std::to_string(entry) + ")";
  };
  if (loc.length < kRecordHeaderSize || loc.length - kRecordHeaderSize > kMaxRecordPayload) {
    return Status::Error(CommonErrc::kCorruption,
                         "index gives a bad record length " + std::to_string(loc.length) + " for " + where());
  }
  DLOG_ASSIGN_OR_RETURN(std::shared_ptr<File> f, files->Get(loc.file));
  ChunkRef chunk(Chunk::Allocate(loc.length));
  size_t got = 0;
  DLOG_RETURN_IF_ERROR(f->PRead(loc.offset, loc.length, chunk->data(), &got));
  if (got != loc.length) return Status::Error(CommonErrc::kCorruption, "short read of " + where());
  RecordHeader h;
  RecordError e = DecodeHeader(chunk->data(), loc.length, loc.length, files->Seed(loc.file), &h);
  if (e == RecordError::kOk && h.type != RecordType::kEntry) e = RecordError::kBadType;
  if (e != RecordError::kOk) {
    return Status::Error(CommonErrc::kCorruption, std::string(RecordErrorName(e)) + " at " + where());
  }
  if (h.segment != segment || h.entry != entry || kRecordHeaderSize + h.payload_len != loc.length) {
    return Status::Error(CommonErrc::kCorruption, "record header names segment " + std::to_string(h.segment) +
                                                      " entry " + std::to_string(h.entry) + " length " +
                                                      std::to_string(h.payload_len) + ", not " + where());
  }
  if (CheckPayload(h, chunk->data() + kRecordHeaderSize) != RecordError::kOk) {
    return Status::Error(CommonErrc::kCorruption, "bad payload CRC at " + where());
  }
  const uint8_t* d = chunk->data() + kRecordHeaderSize;
  *payload = Slice(std::move(chunk), d, h.payload_len);
  *payload_crc = h.payload_crc;
  return Status::OK();
}

ReaderPool::ReaderPool(int threads, uint64_t max_queue, Executor exec) : max_queue_(max_queue), exec_(std::move(exec)) {
  for (int i = 0; i < std::max(1, threads); ++i)
    threads_.emplace_back([this] {
      SetThreadName("dlog-reader");
      Loop();
    });
}

ReaderPool::~ReaderPool() {
  Stop(false, [](ReadTask& t) {
    ReadResult r;
    r.status = Status::Error(CommonErrc::kAborted, "reader pool destroyed");
    t.done(std::move(r));
  });
}

bool ReaderPool::Submit(ReadTask& task, bool ignore_bound) {
  {
    MutexLock l(&mu_);
    if (stop_) return false;
    if (!ignore_bound && queue_.size() >= max_queue_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.Signal();
  return true;
}

void ReaderPool::Stop(bool drain, const std::function<void(ReadTask&)>& fail) {
  {
    MutexLock l(&mu_);
    if (!stop_) {
      stop_ = true;
      drain_ = drain;
    }
  }
  cv_.SignalAll();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  std::deque<ReadTask> left;
  {
    MutexLock l(&mu_);
    left.swap(queue_);
  }
  for (auto& t : left) fail(t);
}

void ReaderPool::Loop() {
  while (true) {
    ReadTask t;
    {
      MutexLock l(&mu_);
      while (queue_.empty() && !stop_) cv_.Wait(&mu_);
      if (stop_ && (!drain_ || queue_.empty())) return;
      t = std::move(queue_.front());
      queue_.pop_front();
    }
    exec_(t);
  }
}

}  // namespace dlog::node
