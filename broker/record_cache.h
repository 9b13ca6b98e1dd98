// RecordCache: the partition's most recent records, shared by every tailing
// subscription (DESIGN "Flow control": one read cache). The producer path
// appends each record once it is durable; a subscription whose read position
// is inside the cache dispatches from it without reading the logstore.
//
// Records are copied into 1 MiB chunks (a record larger than that gets a
// chunk of its own), so appending allocates once per chunk, not per record,
// and a dispatched Slice keeps only its chunk alive. The cache holds at most
// `max_bytes` of record bytes: the oldest records go first. It is contiguous
// in seq: a gap (a record not appended) empties it.
//
// Threading: the broker loop only.
#pragma once

#include <cstdint>
#include <deque>
#include <string_view>

#include "common/buffer.h"
#include "logstore/log/dlsn.h"

namespace dlog::broker {

// A partition-log record as the dispatcher sees it.
struct RecordInfo {
  int64_t seq = 0;
  log::Dlsn dlsn;
  int64_t publish_ms = 0;  // the broker's append time (the record's txid)
  int32_t num_messages = 1;
  uint32_t key_hash = 0;  // KeyHash of the batch key (Key_Shared routing)
  Slice data;             // the message batch as stored
};

// The Key_Shared hash of a key: Murmur3 (32-bit, seed 0) modulo 65536.
uint32_t KeyHash(std::string_view key);
inline constexpr uint32_t kKeyHashRange = 65536;

class RecordCache {
 public:
  explicit RecordCache(size_t max_bytes, size_t chunk_bytes = 1u << 20)
      : max_bytes_(max_bytes), chunk_bytes_(chunk_bytes) {}

  // Appends a copy of `r` (r.data is copied; its Slice is not kept).
  void Append(const RecordInfo& r);
  // The cached record `seq`, or null.
  const RecordInfo* Find(int64_t seq) const;
  int64_t first_seq() const { return records_.empty() ? end_seq_ : records_.front().seq; }
  int64_t end_seq() const { return end_seq_; }  // one past the last cached record
  size_t bytes() const { return bytes_; }
  size_t size() const { return records_.size(); }
  void Clear();

 private:
  const size_t max_bytes_;
  const size_t chunk_bytes_;
  std::deque<RecordInfo> records_;
  int64_t end_seq_ = 0;
  size_t bytes_ = 0;
  ChunkRef chunk_;
  size_t chunk_used_ = 0;
};

}  // namespace dlog::broker
