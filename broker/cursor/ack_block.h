// AckBlock: the acked set of one subscription over 4096 consecutive records
// (block `index` covers seqs [index * 4096, index * 4096 + 4096)): a 512-byte
// bitmap of fully acked records plus, for partly acked records (message
// batches with some indexes acked), a bitmap of acked batch indexes.
// BlockSummary: what the cursor keeps in memory for every non-empty block,
// resident or not (counts, runs, leading run), so backlog statistics and the
// automatic advance of mark-delete never need the block itself.
//
// Pure; thread-compatible.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "common/status.h"

namespace dlog::proto {
class CursorBlock;
class PartialAck;
}  // namespace dlog::proto

namespace dlog::broker {

inline constexpr int64_t kBlockRecords = 4096;
inline constexpr int kBlockWords = kBlockRecords / 64;
// The largest batch whose indexes can be acked one by one: protocol's
// kMaxBatchMessages (a message batch holds at most that many messages).
inline constexpr int32_t kMaxBatchSize = 100000;

inline int64_t BlockOf(int64_t seq) { return seq / kBlockRecords; }
inline int64_t BlockStart(int64_t index) { return index * kBlockRecords; }

struct BlockSummary {
  int32_t count = 0;     // fully acked records
  int32_t runs = 0;      // maximal runs of fully acked records
  int32_t prefix = 0;    // length of the run starting at the block's first record
  bool last = false;     // the block's last record is fully acked
  int32_t partials = 0;  // partly acked records
  bool first() const { return prefix > 0; }
  bool empty() const { return count == 0 && partials == 0; }
  bool operator==(const BlockSummary&) const = default;
};

struct PartialBits {
  int32_t batch_size = 0;
  std::vector<uint64_t> words;  // bit i = batch index i acked
};

class AckBlock {
 public:
  explicit AckBlock(int64_t index) : index_(index) { bits_.fill(0); }

  int64_t index() const { return index_; }
  int64_t first_seq() const { return BlockStart(index_); }
  int64_t end_seq() const { return BlockStart(index_ + 1); }

  bool IsAcked(int64_t seq) const;
  const PartialBits* Partial(int64_t seq) const;

  // Marks [from, to] (clipped to the block) fully acked, dropping their
  // partial bitmaps. Returns how many records became acked.
  int64_t AckRange(int64_t from, int64_t to);
  // Adds batch indexes (bits of `words`, over a batch of `batch_size`) to
  // record `seq`; the record becomes fully acked once every index is.
  // Returns true if the record changed state. batch_size in [1, kMaxBatchSize].
  bool AckIndexes(int64_t seq, int32_t batch_size, std::span<const uint64_t> words);
  // Forgets everything below `seq` (records now under mark-delete).
  void ClearBelow(int64_t seq);
  // The first seq >= `from` in this block that is not fully acked, or end_seq().
  int64_t FirstUnackedFrom(int64_t from) const;

  BlockSummary Summarize() const;
  bool empty() const { return Summarize().empty(); }
  // Heap and object bytes, for the cache's budget.
  int64_t MemoryBytes() const;

  void ToProto(proto::CursorBlock* out) const;
  // Checks sizes and ranges (data from disk or from the cursor log).
  static Result<AckBlock> FromProto(const proto::CursorBlock& in);

  const std::map<int64_t, PartialBits>& partials() const { return partials_; }

 private:
  void SetBit(int64_t off) { bits_[off >> 6] |= uint64_t{1} << (off & 63); }
  bool Bit(int64_t off) const { return (bits_[off >> 6] >> (off & 63)) & 1; }

  int64_t index_;
  std::array<uint64_t, kBlockWords> bits_;
  std::map<int64_t, PartialBits> partials_;  // seq -> acked indexes; never a fully acked record
};

// Whole-record bitmap words for batch indexes [0, upto] (cumulative ack in a batch).
std::vector<uint64_t> IndexesUpTo(int32_t upto);

// Validates a PartialAck from the wire or the log and returns its words.
Status ValidatePartial(int64_t seq, int32_t batch_size, size_t words);

}  // namespace dlog::broker
