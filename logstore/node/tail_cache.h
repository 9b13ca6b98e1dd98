// TailCache: recently added entries in a bounded amount of memory, so
// tailing readers never touch the disk.
//
// Layout: one ring arena of `capacity` bytes holding items (a 32-byte item
// header + payload, 8-byte aligned) in insertion order, and a fixed
// open-addressing hash table (linear probing, backward-shift deletion) from
// (segment, entry) to the item's ring position. Inserting evicts the oldest
// items from the ring's tail until the new one fits; the table is sized at
// construction and caps the item count, so there is no allocation per entry
// and memory is capacity + table, fixed.
//
// Entries larger than a quarter of the capacity are not cached.
//
// Thread-safety: all methods are thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/buffer.h"
#include "common/thread_annotations.h"

namespace dlog::node {

class TailCache {
 public:
  explicit TailCache(uint64_t capacity_bytes);
  ~TailCache();

  // Copies the payload in (replacing an older copy of the same entry).
  void Insert(uint64_t segment, int64_t entry, uint32_t payload_crc, const Slice& payload);
  // On a hit, copies the payload into a new chunk.
  bool Lookup(uint64_t segment, int64_t entry, Slice* payload, uint32_t* payload_crc);
  // Drops every entry of `segment` (after a delete).
  void EraseSegment(uint64_t segment);

  uint64_t capacity() const { return cap_; }
  uint64_t used_bytes() const;  // ring bytes between tail and head
  uint64_t entries() const;
  uint64_t memory_bytes() const { return cap_ + table_slots_ * sizeof(uint64_t); }

 private:
  struct ItemHeader;
  size_t Hash(uint64_t segment, int64_t entry) const;
  // Slot holding the item for (segment, entry), or -1.
  int64_t FindSlot(uint64_t segment, int64_t entry) const DLOG_REQUIRES(mu_);
  void RemoveSlot(size_t slot) DLOG_REQUIRES(mu_);
  void EvictOne() DLOG_REQUIRES(mu_);
  ItemHeader* ItemAt(uint64_t logical) const DLOG_REQUIRES(mu_);

  const uint64_t cap_;
  const size_t table_slots_;  // power of two
  const size_t max_items_;    // half the slots
  std::unique_ptr<uint8_t[]> ring_;
  mutable Mutex mu_;
  // Guarded by mu_ (the analysis cannot see through unique_ptr): logical position + 1; 0 = empty.
  std::unique_ptr<uint64_t[]> table_;
  uint64_t head_ DLOG_GUARDED_BY(mu_) = 0;  // logical write position
  uint64_t tail_ DLOG_GUARDED_BY(mu_) = 0;  // logical position of the oldest item
  size_t items_ DLOG_GUARDED_BY(mu_) = 0;   // items in the table
};

}  // namespace dlog::node
