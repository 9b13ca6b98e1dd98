// Message batches: the unit a producer sends, the broker stores as one
// partition-log record, and a consumer receives (docs/formats/message-batch.md).
//
//   u32 metadata_length (big-endian) | BatchMetadata | body
//   body (after decompressing with BatchMetadata.compression) =
//     num_messages × ( u32 length | SingleMessageMetadata | payload_size bytes )
//
// The broker reads only the BatchMetadata (dedup, Key_Shared routing,
// publish time); it never decompresses. Pure functions, no I/O (fuzzable).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "broker.pb.h"
#include "common/status.h"

namespace dlog::protocol {

inline constexpr uint32_t kMaxBatchMetadataBytes = 64u << 10;
inline constexpr int32_t kMaxBatchMessages = 100000;

// Splits a batch into its metadata and (possibly compressed) body and checks
// the metadata: num_messages 1..kMaxBatchMessages, sequence ids >= 0 with
// highest - first == num_messages - 1, a known compression, a body no larger
// than the record. kInvalidArgument (CommonErrc) otherwise.
Status ParseBatchMetadata(std::string_view batch, proto::BatchMetadata* meta, std::string_view* body);

// Appends the batch's framing: u32 length + serialized metadata; the caller
// appends the body.
void AppendBatchMetadata(const proto::BatchMetadata& meta, std::string* out);

// One message of a decoded body; views into the body.
struct BatchMessageView {
  proto::SingleMessageMetadata meta;
  std::string_view payload;
};

// Decodes an uncompressed body into exactly `num_messages` messages.
// kInvalidArgument if it is malformed.
Status DecodeBatchBody(std::string_view body, int32_t num_messages, std::vector<BatchMessageView>* out);

// Appends one message to an uncompressed body.
void AppendBatchMessage(const proto::SingleMessageMetadata& meta, std::string_view payload, std::string* body);

// Compresses `in` with `type` into *out (replacing it). NONE copies.
Status Compress(proto::CompressionType type, std::string_view in, std::string* out);
// Decompresses into *out, which must come out exactly `uncompressed_size`
// bytes (bounded by the caller's limit before calling).
Status Decompress(proto::CompressionType type, std::string_view in, uint32_t uncompressed_size, std::string* out);

}  // namespace dlog::protocol
