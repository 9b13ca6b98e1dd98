#include "broker/cursor/cursor_db.h"

#include <rocksdb/options.h>

#include "common/check.h"
#include "common/logging.h"
#include "common/thread_name.h"

namespace dlog::broker {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsCorruption()) return Status::Error(CommonErrc::kCorruption, what + ": " + s.ToString());
  return Status::Error(CommonErrc::kIoError, what + ": " + s.ToString());
}

// ---------------------------------------------------------------- BlockCache

void BlockCache::Charge(int64_t bytes) {
  const int64_t u = used_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  if (u > peak_.load(std::memory_order_relaxed)) peak_.store(u, std::memory_order_relaxed);
}

bool BlockCache::EvictOne() {
  if (lru_.empty()) return false;
  Slot s = lru_.back();
  lru_.pop_back();
  ++evictions_;
  // The owner releases (or holds for its write) the block's charge.
  s.owner->Evict(s.index);
  return true;
}

void BlockCache::Acquire(net::EventLoop* loop, int64_t bytes, std::function<void()> granted) {
  if (!waiters_.empty()) {
    // Keep the order: earlier waiters first.
    waiters_.push_back(Waiter{loop, bytes, std::move(granted)});
    GrantWaiters();
    return;
  }
  while (used_.load(std::memory_order_relaxed) + bytes > budget_.limit() && EvictOne()) {
  }
  if (used_.load(std::memory_order_relaxed) + bytes <= budget_.limit() || writing_bytes_ == 0) {
    if (used_.load(std::memory_order_relaxed) + bytes > budget_.limit()) ++overcommits_;
    Charge(bytes);
    granted();
    return;
  }
  waiters_.push_back(Waiter{loop, bytes, std::move(granted)});
}

void BlockCache::GrantWaiters() {
  while (!waiters_.empty()) {
    Waiter& w = waiters_.front();
    while (used_.load(std::memory_order_relaxed) + w.bytes > budget_.limit() && EvictOne()) {
    }
    const bool fits = used_.load(std::memory_order_relaxed) + w.bytes <= budget_.limit();
    if (!fits && writing_bytes_ > 0) return;  // a write-out will release more
    if (!fits) ++overcommits_;
    Charge(w.bytes);
    auto granted = std::move(w.granted);
    net::EventLoop* loop = w.loop;
    waiters_.pop_front();
    // Not inline: the caller may be in the middle of changing a block.
    loop->Post(std::move(granted));
  }
}

void BlockCache::Adjust(int64_t delta) {
  if (delta == 0) return;
  if (delta < 0) return Release(-delta);
  Charge(delta);
  while (used_.load(std::memory_order_relaxed) > budget_.limit() && EvictOne()) {
  }
}

void BlockCache::Release(int64_t bytes) {
  used_.fetch_sub(bytes, std::memory_order_relaxed);
  GrantWaiters();
}

void BlockCache::WriteStarted(int64_t bytes) { writing_bytes_ += bytes; }

void BlockCache::WriteDone(int64_t bytes) {
  writing_bytes_ -= bytes;
  Release(bytes);
}

BlockCache::Handle BlockCache::Insert(Owner* owner, int64_t index) {
  lru_.push_front(Slot{owner, index});
  return lru_.begin();
}

void BlockCache::Remove(Handle h) { lru_.erase(h); }

CursorCacheStats BlockCache::stats() const {
  CursorCacheStats s;
  s.budget_bytes = budget_.limit();
  s.used_bytes = used_.load(std::memory_order_relaxed);
  s.peak_bytes = peak_.load(std::memory_order_relaxed);
  s.resident_blocks = resident_.load(std::memory_order_relaxed);
  s.evictions_total = evictions_.load(std::memory_order_relaxed);
  s.loads_total = loads_.load(std::memory_order_relaxed);
  s.overcommits_total = overcommits_.load(std::memory_order_relaxed);
  return s;
}

// ---------------------------------------------------------------- CursorDb

Result<std::unique_ptr<CursorDb>> CursorDb::Open(CursorDbOptions options) {
  if (options.path.empty()) return Status::Error(CommonErrc::kInvalidArgument, "cursor db: no path");
  if (options.cache_budget_bytes < 4096) {
    return Status::Error(CommonErrc::kInvalidArgument, "cursor db: cache budget below 4 KiB");
  }
  rocksdb::Options o;
  o.create_if_missing = true;
  o.max_background_jobs = 2;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, options.path, &raw);
  if (!s.ok()) return FromRocks(s, "open cursor db " + options.path);
  std::unique_ptr<rocksdb::DB> db(raw);
  return std::unique_ptr<CursorDb>(new CursorDb(std::move(options), std::move(db)));
}

CursorDb::CursorDb(CursorDbOptions options, std::unique_ptr<rocksdb::DB> db)
    : options_(std::move(options)), db_(std::move(db)), cache_(options_.cache_budget_bytes) {
  worker_ = std::thread([this] { WorkerMain(); });
}

CursorDb::~CursorDb() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  worker_.join();
  IgnoreError(FromRocks(db_->Close(), "close cursor db"));
}

void CursorDb::Submit(net::EventLoop* loop, std::function<void(rocksdb::DB*)> work, std::function<void()> done) {
  queue_length_.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock l(&mu_);
    queue_.push_back(Task{loop, std::move(work), std::move(done)});
  }
  cv_.Signal();
}

void CursorDb::WorkerMain() {
  SetThreadName("cursor-db");
  for (;;) {
    Task t;
    {
      MutexLock l(&mu_);
      while (queue_.empty() && !stopping_) cv_.Wait(&mu_);
      if (queue_.empty()) return;
      t = std::move(queue_.front());
      queue_.pop_front();
    }
    t.work(db_.get());
    queue_length_.fetch_sub(1, std::memory_order_relaxed);
    if (t.done) {
      std::function<void()> done = std::move(t.done);
      if (!t.loop->TryPost(done)) {
        DLOG_WARN << "cursor db: a completion was dropped: its loop has stopped";
      }
    }
  }
}

BlockCache* CursorDb::cache(net::EventLoop* loop) {
  net::EventLoop* expected = nullptr;
  if (!cache_loop_.compare_exchange_strong(expected, loop)) {
    DLOG_CHECK(expected == loop) << "every PartitionCursors of one CursorDb must use the same loop";
  }
  return &cache_;
}

CursorCacheStats CursorDb::cache_stats() const {
  CursorCacheStats s = cache_.stats();
  s.queue_length = queue_length_.load(std::memory_order_relaxed);
  return s;
}

namespace {
void PutBe64(std::string* s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
}  // namespace

std::string CursorDb::PartitionPrefix(const std::string& partition) {
  std::string k = "c";
  const uint32_t n = static_cast<uint32_t>(partition.size());
  for (int i = 3; i >= 0; --i) k.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  k += partition;
  return k;
}

std::string CursorDb::MetaKey(const std::string& partition) { return PartitionPrefix(partition) + "m"; }

std::string CursorDb::BlockKey(const std::string& partition, uint64_t sub_id, int64_t index) {
  std::string k = PartitionPrefix(partition) + "b";
  PutBe64(&k, sub_id);
  PutBe64(&k, static_cast<uint64_t>(index));
  return k;
}

std::string CursorDb::PartitionEnd(const std::string& partition) { return PartitionPrefix(partition) + "\xff"; }

}  // namespace dlog::broker
