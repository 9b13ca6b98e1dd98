// The disk read path: open journal files for reading (JournalFileCache), read
// and verify one record (ReadEntryRecord), and a small pool of reader threads
// with a bounded queue (ReaderPool) so reads that miss the tail cache never
// run on a caller's (event loop) thread.
//
// Threading: all classes thread-safe. ReaderPool runs its executor on its
// own threads.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/buffer.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "logstore/node/env.h"
#include "logstore/node/index.h"
#include "logstore/node/store.h"

namespace dlog::node {

// Open journal files for reading, and the instance id that salts their
// header CRCs. GC removes a file in two steps around its unlink:
// BeginRemove(id) (drops the cached handle; from now on the file is never
// cached again) and EndRemove(id) after the unlink. A Get that opened the file
// before the unlink and finishes after it sees the removal (the id is being
// removed, or the removal generation moved) and hands its handle to that one
// read without caching it, so a removed file's disk space is freed as soon as
// that read is done, not at restart.
class JournalFileCache {
 public:
  JournalFileCache(Env* env, std::string dir, std::string journal_salt = {})
      : env_(env), dir_(std::move(dir)), journal_salt_(std::move(journal_salt)) {}
  // Opens (once) journal file `id` for reading. kNotFound while `id` is being removed.
  Result<std::shared_ptr<File>> Get(uint64_t id);
  void BeginRemove(uint64_t id);
  void EndRemove(uint64_t id);
  // Same as BeginRemove + EndRemove (for a file removed by others).
  void Evict(uint64_t id);
  void Clear();
  bool CachedForTest(uint64_t id);
  // Test hook: runs in Get between opening a file and caching it.
  void SetAfterOpenHookForTest(std::function<void(uint64_t)> hook) { after_open_for_test_ = std::move(hook); }
  // The header-CRC seed of file `id` (JournalSeed).
  uint32_t Seed(uint64_t id) const;

 private:
  Env* const env_;
  const std::string dir_;
  const std::string journal_salt_;
  std::function<void(uint64_t)> after_open_for_test_;
  Mutex mu_;
  std::map<uint64_t, std::shared_ptr<File>> files_ DLOG_GUARDED_BY(mu_);
  std::set<uint64_t> removing_ DLOG_GUARDED_BY(mu_);  // only ids between BeginRemove and EndRemove
  uint64_t removals_ DLOG_GUARDED_BY(mu_) = 0;        // EndRemove calls so far
};

// Reads the record at `loc` and checks it: magic, version, header CRC, type
// ENTRY, segment, entry, length and payload CRC. On success `payload` is a
// slice of a new chunk and `payload_crc` the writer's CRC. A mismatch is
// CommonErrc::kCorruption with the reason; I/O errors are kIoError.
Status ReadEntryRecord(JournalFileCache* files, const EntryLocation& loc, uint64_t segment, int64_t entry,
                       Slice* payload, uint32_t* payload_crc);

struct ReadTask {
  uint64_t segment = 0;
  int64_t entry = 0;
  uint64_t durable_seq = 0;  // journal batch seq that made the entry durable, at the latest
  Store::ReadCallback done;
};

class ReaderPool {
 public:
  using Executor = std::function<void(ReadTask&)>;
  ReaderPool(int threads, uint64_t max_queue, Executor exec);
  ~ReaderPool();  // Stop(false)

  // False (task untouched) if the queue holds max_queue tasks (unless
  // `ignore_bound`) or the pool is stopped.
  bool Submit(ReadTask& task, bool ignore_bound);
  // With `drain` runs what is queued; otherwise calls `fail` for each queued
  // task. Idempotent; blocks until the threads exit.
  void Stop(bool drain, const std::function<void(ReadTask&)>& fail);

 private:
  void Loop();

  const uint64_t max_queue_;
  const Executor exec_;
  Mutex mu_;
  CondVar cv_;
  std::deque<ReadTask> queue_ DLOG_GUARDED_BY(mu_);
  bool stop_ DLOG_GUARDED_BY(mu_) = false;
  bool drain_ DLOG_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace dlog::node
