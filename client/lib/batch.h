// Building message batches on the producer side and splitting received
// batches on the consumer side (protocol/message_batch.h is the format).
//
// Single-threaded (the client's loop thread). A BatchBuilder reuses its
// buffers between batches: adding a message allocates nothing in the steady
// state beyond growing the body.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker.pb.h"
#include "common/buffer.h"
#include "dlog/config.h"
#include "dlog/message.h"

namespace dlog::client {

proto::CompressionType ToProto(CompressionType c);

// Bytes a message adds to a batch body (framing + metadata + payload).
size_t EncodedMessageSize(const Message& m);

class BatchBuilder {
 public:
  BatchBuilder(int max_messages, uint32_t max_bytes, CompressionType compression);

  bool empty() const { return count_ == 0; }
  int count() const { return count_; }
  // Uncompressed body bytes so far.
  size_t bytes() const { return body_.size(); }
  // Whether `m` may join the batch; false: build this batch first. An empty
  // batch takes any message (a message larger than max_bytes goes alone).
  bool HasRoomFor(const Message& m) const;
  // Adds `m` (HasRoomFor must hold).
  void Add(const Message& m);
  // The batch reached max_messages or max_bytes.
  bool full() const;

  // Writes the whole batch (metadata + compressed body) to *out, with
  // sequence ids first_sequence_id.. first_sequence_id + count() - 1, and
  // clears the builder for the next batch.
  Status Build(const std::string& producer_name, int64_t first_sequence_id, int64_t publish_time_ms, std::string* out);

 private:
  const int max_messages_;
  const uint32_t max_bytes_;
  const proto::CompressionType compression_;
  int count_ = 0;
  std::string body_;
  std::string compressed_;
  proto::SingleMessageMetadata scratch_;
  proto::BatchMetadata meta_;
  // The key every message so far has (std::nullopt once one differs or has none).
  std::optional<std::string> common_key_;
  bool keys_differ_ = false;
};

// What a consumer knows about a received batch besides its bytes.
struct ReceivedBatchInfo {
  std::shared_ptr<const std::string> topic;
  proto::MessageIdData id;  // the record's id (batch_index -1)
  int32_t redelivery_count = 0;
  const google::protobuf::RepeatedField<uint64_t>* acked_batch_bits = nullptr;  // may be null
};

inline constexpr uint32_t kMaxUncompressedBatchBytes = 128u << 20;

// Splits `payload` (a whole batch) into messages appended to *out, skipping
// the indexes acked per info.acked_batch_bits. *num_messages is the batch's
// size (permits it used). Payloads are views into `payload` (uncompressed)
// or into one copy of the decompressed body. kProtocolError if it is
// malformed.
Status DecodeReceivedBatch(const Slice& payload, const ReceivedBatchInfo& info, std::vector<Message>* out,
                           int32_t* num_messages);

proto::MessageIdData ToProto(const MessageId& id);
MessageId FromProto(const proto::MessageIdData& d);

}  // namespace dlog::client
