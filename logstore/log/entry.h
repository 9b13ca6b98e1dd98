// The log entry format: records batched into one segment entry.
//
//   entry  := header record*
//   header := u8 version (1) | u8 flags | u16 reserved (0) | u32 record_count
//             | i64 first_record_seq | i64 max_txid              (24 bytes, LE)
//   record := u32 payload_size | i64 txid | payload              (12 + size)
//
// flags: bit 0 END_OF_STREAM (an entry with no records that ends the log).
// The header lets recovery learn a segment's counters from its last entry
// alone. The whole entry is covered by the node's CRCs (frame, journal), so
// the format has none of its own; DecodeEntry still checks every bound and
// reports kCorrupt instead of reading past the end. Pure; thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/buffer.h"
#include "common/status.h"

namespace dlog::log {

inline constexpr size_t kEntryHeaderSize = 24;
inline constexpr size_t kRecordHeaderSize = 12;
inline constexpr uint8_t kEntryVersion = 1;
inline constexpr uint8_t kEntryFlagEndOfStream = 1;
// Largest record payload a writer accepts.
inline constexpr size_t kMaxRecordSize = 1u << 20;

struct EntryHeader {
  uint8_t flags = 0;
  uint32_t record_count = 0;
  int64_t first_record_seq = 0;
  int64_t max_txid = 0;
  bool end_of_stream() const { return (flags & kEntryFlagEndOfStream) != 0; }
};

struct EntryRecord {
  int64_t txid;
  Slice payload;  // shares the entry's chunk
};

// Builds one entry in a growing buffer. Reset, Add records, then Take.
class EntryBuilder {
 public:
  void Reset(int64_t first_record_seq);
  void Add(int64_t txid, const void* data, size_t size);
  size_t size() const { return buf_.size(); }
  uint32_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  int64_t first_record_seq() const { return first_seq_; }
  int64_t max_txid() const { return max_txid_; }
  // The finished entry (header filled in); the builder is empty afterwards.
  Slice Take(uint8_t flags = 0);

 private:
  ByteBuffer buf_;
  uint32_t count_ = 0;
  int64_t first_seq_ = 0;
  int64_t max_txid_ = 0;
};

// An END_OF_STREAM entry: no records; first_record_seq = the next seq.
Slice MakeEndOfStreamEntry(int64_t next_record_seq, int64_t max_txid);

Result<EntryHeader> DecodeEntryHeader(const Slice& entry);
// Header and records; kCorrupt (LogErrc) on any malformed byte.
Result<EntryHeader> DecodeEntry(const Slice& entry, std::vector<EntryRecord>* records);

}  // namespace dlog::log
