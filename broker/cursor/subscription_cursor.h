// SubscriptionCursor: one subscription's cursor on one partition (DESIGN
// "Broker" / "Cursors"): mark_delete (every record with seq < mark_delete is
// fully acked) plus the records acked beyond it, with per-index bitmaps for
// partly acked message batches.
//
// The acked set is kept as fixed-size blocks (ack_block.h) in the CursorDb's
// shared block cache, spilling to RocksDB; only a small summary per non-empty
// block (ack_block.h BlockSummary) stays in memory, so backlog statistics
// and the automatic advance of mark_delete never load a block.
//
// Threading: every method runs on the partition's loop (the one given to
// PartitionCursors::Open); every callback runs there too.
//
// Lifetime: owned by its PartitionCursors. A pointer from Find() or
// CreateSubscription() stays valid until DeleteSubscription's callback for
// it has run, or the PartitionCursors is destroyed.
#pragma once

#include <rocksdb/write_batch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "broker/cursor/ack_block.h"
#include "broker/cursor/cursor_db.h"
#include "common/status.h"

namespace dlog::broker {

class PartitionCursors;

// Acks to apply to a cursor, from the API or from the cursor log. Applying is
// idempotent: mark_delete = max(mark_delete, this one) (if set), then ranges
// and partials are added, then mark_delete advances over acked records.
struct AckSet {
  bool has_mark_delete = false;
  int64_t mark_delete = 0;
  std::vector<std::pair<int64_t, int64_t>> ranges;  // inclusive, whole records
  struct Partial {
    int64_t seq = 0;
    int32_t batch_size = 0;
    std::vector<uint64_t> words;
  };
  std::vector<Partial> partials;
  bool empty() const { return !has_mark_delete && ranges.empty() && partials.empty(); }
};

class SubscriptionCursor : private BlockCache::Owner {
 public:
  struct AckItem {
    int64_t seq = 0;
    int32_t batch_index = -1;  // -1: the whole record
    int32_t batch_size = 1;    // messages in the record's batch (for batch_index >= 0)
  };
  // kUnknown: the record's block holds acks but is not resident (an ack
  // created or reloaded it after the Prefetch): prefetch again.
  enum class State { kUnacked, kAcked, kPartial, kUnknown };

  ~SubscriptionCursor() override;
  SubscriptionCursor(const SubscriptionCursor&) = delete;
  SubscriptionCursor& operator=(const SubscriptionCursor&) = delete;

  const std::string& name() const { return name_; }
  int32_t type() const { return type_; }
  int64_t mark_delete() const { return mark_delete_; }

  // Applies the acks to the working state at once if the blocks they touch
  // are resident (else as soon as they are loaded, in call order; dispatch
  // sees them from then on), writes them to the cursor log, and calls back
  // OK once that record is acknowledged (the acks are persisted). Errors:
  // LogErrc::kBusy (too many acks waiting; nothing applied), kClosed,
  // kFenced / kLockLost (another owner; state no longer persisted),
  // CommonErrc::kInvalidArgument (a bad seq or batch size; nothing applied),
  // kIoError (the local store failed; the partition is unhealthy).
  void Ack(std::span<const AckItem> items, std::function<void(Status)> cb);
  // Every record < upto.seq, and of record upto.seq the indexes
  // 0..upto.batch_index (the whole record if -1). Same errors as Ack.
  void AckCumulative(AckItem upto, std::function<void(Status)> cb);
  // Seek: mark_delete becomes `mark_delete` (may move backward), nothing
  // acked beyond it. Same errors as Ack.
  void Reset(int64_t mark_delete, std::function<void(Status)> cb);

  // Makes the blocks covering [from, to] resident (loading them from
  // RocksDB on the worker) and pins them until Unpin(from, to) with the same
  // bounds; `done` runs on the loop (never inline).
  void Prefetch(int64_t from, int64_t to, std::function<void()> done);
  void Unpin(int64_t from, int64_t to);
  // Meant for seqs < mark_delete() or in a prefetched range; a block that
  // became non-resident since (an ack created or reloaded it) answers
  // kUnknown rather than guessing. For kPartial, *acked_bits (if not null)
  // gets the acked batch indexes.
  State Check(int64_t seq, std::vector<uint64_t>* acked_bits = nullptr) const;

  // Fully acked records with seq >= mark_delete (for the backlog).
  int64_t acked_records_beyond() const { return acked_beyond_; }
  // Unacked gaps between mark_delete and the highest acked record.
  int64_t ack_holes() const { return holes_; }
  // Blocks holding acks beyond mark_delete (resident or not).
  int64_t block_count() const { return static_cast<int64_t>(blocks_.size()); }

 private:
  friend class PartitionCursors;
  friend class CursorRecovery;
  friend class CursorSnapshotter;

  struct Entry {
    BlockSummary summary;
    std::unique_ptr<AckBlock> block;  // null: not resident
    int64_t charge = 0;               // bytes charged to the cache for it
    bool loading = false;             // a read or an allocation is on its way
    bool dirty = false;               // differs from RocksDB
    uint64_t load_id = 0;
    int op_pins = 0;
    bool in_lru = false;
    BlockCache::Handle lru;
    std::vector<std::function<void()>> waiters;  // posted once resident
  };
  using Blocks = std::map<int64_t, Entry>;

  SubscriptionCursor(PartitionCursors* owner, std::string name, int32_t type, uint64_t id, int64_t mark_delete);

  // Pins block `index` (creating it if absent and `create`); returns true if
  // it is resident now; otherwise `ready` runs later (posted) with the pin
  // held. Returns false without pinning if the block is absent and !create
  // (ready is not called).
  bool Pin(int64_t index, bool create, std::function<void()> ready, bool* absent = nullptr);
  void UnpinOp(int64_t index);
  void StartLoad(int64_t index);
  void OnLoaded(int64_t index, uint64_t load_id, int64_t charge, Status st, std::string value);
  void MaybeToLru(int64_t index, Entry& e);
  void Evict(int64_t index) override;

  // Applies `set` (async; `done` runs when applied; the op is serial).
  void Apply(std::shared_ptr<AckSet> set, std::function<void()> done);
  void ApplyBlocks(std::shared_ptr<AckSet> set, std::shared_ptr<std::vector<int64_t>> todo, size_t i,
                   std::function<void()> done);
  void ApplyToBlock(const AckSet& set, int64_t index, AckBlock* b);
  void JumpTo(int64_t mark_delete, std::function<void()> done);
  void Advance();
  void ResetTo(int64_t mark_delete);
  void DropBelow(int64_t index);
  void Erase(Blocks::iterator it);
  void SetSummary(Blocks::iterator it, BlockSummary s);
  // Queues a write of the block (or its deletion if empty) into batch_.
  void WriteBlock(int64_t index, const AckBlock* b);
  // Submits batch_ (if not empty); `held` bytes of charge are released
  // when it is written.
  void FlushBatch(int64_t held = 0);
  // Close: every dirty resident block into batch_ (then FlushBatch).
  void WriteDirty();
  // Fast-path open: the summaries of the blocks stored in RocksDB.
  void Install(std::map<int64_t, BlockSummary> summaries);
  // Drops everything, resident or stored (subscription deleted or replaced).
  void DropAll();

  PartitionCursors* owner_;
  CursorDb* db_;
  BlockCache* cache_;
  net::EventLoop* loop_;
  std::string partition_;
  const std::string name_;
  int32_t type_;
  const uint64_t id_;  // block-key id in the CursorDb
  int64_t mark_delete_;
  Blocks blocks_;
  std::map<int64_t, int> range_pins_;  // block index -> Prefetch ranges covering it
  int64_t acked_beyond_ = 0;
  int64_t holes_ = 0;
  uint64_t next_load_id_ = 0;
  std::unique_ptr<rocksdb::WriteBatch> batch_;
  bool deleted_ = false;  // DeleteSubscription was called
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dlog::broker
