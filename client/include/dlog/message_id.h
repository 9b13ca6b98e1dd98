// MessageId: where a message is stored — its partition, the position of the
// log record (the batch) that holds it, and its index in that batch.
//
// A value type, cheap to copy. Ordered within a partition by log position,
// then batch index; across partitions by partition first (an arbitrary but
// total order). Serialisable to a string (for people and the CLI:
// "PARTITION:SEGMENT:ENTRY:SLOT:RECORD_SEQ:BATCH_INDEX:BATCH_SIZE") and to
// bytes (a fixed 42-byte form for storing ids), both round-tripping exactly.
//
// Two sentinels: Earliest() (before every message; also the default value)
// and Latest() (after every message), accepted by Seek and by readers.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "dlog/error.h"

namespace dlog::client {

class MessageId {
 public:
  // Earliest().
  MessageId() = default;
  MessageId(int32_t partition, int64_t segment_seq, int64_t entry, int32_t slot, int64_t record_seq,
            int32_t batch_index, int32_t batch_size)
      : partition_(partition),
        segment_seq_(segment_seq),
        entry_(entry),
        slot_(slot),
        record_seq_(record_seq),
        batch_index_(batch_index),
        batch_size_(batch_size) {}

  static MessageId Earliest() { return MessageId(); }
  static MessageId Latest();

  bool is_earliest() const { return *this == Earliest(); }
  bool is_latest() const { return *this == Latest(); }
  // A message id of a stored message (not a sentinel, not unknown).
  bool is_position() const { return partition_ >= 0 && record_seq_ >= 0 && !is_latest(); }

  int32_t partition() const { return partition_; }
  int64_t segment_seq() const { return segment_seq_; }
  int64_t entry() const { return entry_; }
  int32_t slot() const { return slot_; }
  // The record's sequence number in the partition log (n-th record ever written).
  int64_t record_seq() const { return record_seq_; }
  // Index of the message in its batch (-1: the whole record), and the batch's size.
  int32_t batch_index() const { return batch_index_; }
  int32_t batch_size() const { return batch_size_; }

  std::string ToString() const;
  static Result<MessageId> FromString(std::string_view text);
  std::string ToBytes() const;
  static Result<MessageId> FromBytes(std::string_view bytes);

  bool operator==(const MessageId& o) const = default;
  std::strong_ordering operator<=>(const MessageId& o) const;

 private:
  int32_t partition_ = -1;
  int64_t segment_seq_ = -1;
  int64_t entry_ = -1;
  int32_t slot_ = -1;
  int64_t record_seq_ = -1;
  int32_t batch_index_ = -1;
  int32_t batch_size_ = 0;
};

}  // namespace dlog::client
