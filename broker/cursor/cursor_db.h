// CursorDb: the broker's local store of cursor working state (DESIGN "Broker"
// / "Cursors"): one RocksDB per broker process, shared by every partition the
// broker owns, plus the block cache all their subscriptions share, bounded by
// one memory budget.
//
// The RocksDB is NOT the truth (the cursor logs are): a partition's state in
// it is used on open only if its meta record says it was closed cleanly at
// exactly the cursor log's current tail; otherwise it is rebuilt from the log.
//
// Threading: RocksDB reads and writes run on one worker thread; Submit()
// queues a task there and posts its completion back to the caller's loop.
// The queue holds only tasks whose memory is charged to the cache budget
// (block reads and writes) or a bounded number of per-partition meta tasks,
// so its length is bounded by the budget (queue_length() is its gauge).
// The BlockCache is used on one loop only: every PartitionCursors of one
// CursorDb runs on the same loop (checked).
//
// Lifetime: the CursorDb must outlive every PartitionCursors opened on it.
// Its destructor finishes the queued tasks (their completions are posted and
// dropped if their owners are gone) and joins the worker.
#pragma once

#include <rocksdb/db.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "common/buffer.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "net/event_loop.h"

namespace dlog::broker {

struct CursorDbOptions {
  std::string path;                       // the RocksDB directory (created if missing)
  int64_t cache_budget_bytes = 64 << 20;  // resident cursor blocks of every partition
  bool sync_meta = true;                  // fsync meta records (clean markers)
};

// Gauges of the shared block cache (dlog_broker_cursor_cache_*).
struct CursorCacheStats {
  int64_t budget_bytes = 0;
  int64_t used_bytes = 0;       // resident blocks + blocks being written out
  int64_t peak_bytes = 0;       // highest used_bytes seen
  int64_t resident_blocks = 0;  // in the LRU (unpinned) or pinned
  int64_t evictions_total = 0;
  int64_t loads_total = 0;        // blocks read back from RocksDB
  int64_t overcommits_total = 0;  // grants past the budget: nothing was left to evict
  int64_t queue_length = 0;       // worker tasks queued or running
};

// The cache's eviction order over the blocks of every subscription. Loop
// thread only.
class BlockCache {
 public:
  // Something owning resident blocks (a subscription cursor).
  class Owner {
   public:
    // Drops resident block `index` (it was in the LRU): a dirty block is
    // written out first. Must call Release/ReleaseAfterWrite for its charge.
    virtual void Evict(int64_t index) = 0;

   protected:
    virtual ~Owner() = default;
  };
  struct Slot {
    Owner* owner;
    int64_t index;
  };
  using Handle = std::list<Slot>::iterator;

  explicit BlockCache(int64_t budget_bytes) : budget_(budget_bytes) {}

  // Grants `bytes` once they fit in the budget, evicting least recently
  // used blocks; waits for in-flight write-outs if that is not enough;
  // grants past the budget (counted as an overcommit) only if nothing is
  // evictable and nothing is being written. `granted` runs now or later on
  // the loop.
  void Acquire(net::EventLoop* loop, int64_t bytes, std::function<void()> granted);
  // Changes a charge by `delta` (a block grew or shrank) without waiting;
  // evicts to get back under the budget.
  void Adjust(int64_t delta);
  void Release(int64_t bytes);
  // A dirty block of `bytes` left the LRU and is being written: its charge
  // stays until WriteDone.
  void WriteStarted(int64_t bytes);
  void WriteDone(int64_t bytes);

  Handle Insert(Owner* owner, int64_t index);  // as most recently used
  void Remove(Handle h);
  Handle None() { return lru_.end(); }

  void CountLoad() { ++loads_; }
  void CountResident(int64_t d) { resident_ += d; }
  CursorCacheStats stats() const;

 private:
  bool EvictOne();
  void Charge(int64_t bytes);
  void GrantWaiters();

  MemoryBudget budget_;
  std::list<Slot> lru_;  // front: most recent
  struct Waiter {
    net::EventLoop* loop;
    int64_t bytes;
    std::function<void()> granted;
  };
  std::deque<Waiter> waiters_;
  int64_t writing_bytes_ = 0;
  // Read from other threads (stats) as relaxed atomics.
  std::atomic<int64_t> used_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> resident_{0};
  std::atomic<int64_t> evictions_{0};
  std::atomic<int64_t> loads_{0};
  std::atomic<int64_t> overcommits_{0};
};

class CursorDb {
 public:
  static Result<std::unique_ptr<CursorDb>> Open(CursorDbOptions options);
  ~CursorDb();
  CursorDb(const CursorDb&) = delete;
  CursorDb& operator=(const CursorDb&) = delete;

  const CursorDbOptions& options() const { return options_; }
  // Thread-safe.
  CursorCacheStats cache_stats() const;

  // Module internals (PartitionCursors, SubscriptionCursor).

  // Runs `work` on the worker, then `done` on `loop`. Any thread.
  void Submit(net::EventLoop* loop, std::function<void(rocksdb::DB*)> work, std::function<void()> done);
  // The shared cache; binds it to `loop` on first use (DLOG_CHECKs that
  // every caller uses the same loop).
  BlockCache* cache(net::EventLoop* loop);

  // Keys. A partition's keys start with PartitionPrefix(name); its meta
  // record is MetaKey; a subscription's blocks are BlockKey(name, id, index)
  // (big-endian, so ascending index order).
  static std::string PartitionPrefix(const std::string& partition);
  static std::string MetaKey(const std::string& partition);
  static std::string BlockKey(const std::string& partition, uint64_t sub_id, int64_t index);
  static std::string PartitionEnd(const std::string& partition);  // just past every key of it

 private:
  CursorDb(CursorDbOptions options, std::unique_ptr<rocksdb::DB> db);
  void WorkerMain();

  struct Task {
    net::EventLoop* loop;
    std::function<void(rocksdb::DB*)> work;
    std::function<void()> done;
  };

  CursorDbOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  BlockCache cache_;
  std::atomic<net::EventLoop*> cache_loop_{nullptr};
  Mutex mu_;
  CondVar cv_;
  std::deque<Task> queue_ DLOG_GUARDED_BY(mu_);
  bool stopping_ DLOG_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> queue_length_{0};
  std::thread worker_;
};

// A RocksDB status as ours: kCorruption for corrupt data, kIoError (a
// storage failure) otherwise.
Status FromRocks(const rocksdb::Status& s, const std::string& what);

}  // namespace dlog::broker
