// Typed codec for metadata records. Every value dlog stores in metadata is a
// MetadataRecord envelope (protocol/proto/metadata.proto): magic, format
// version, record type, payload, CRC32C of the payload. Spec:
// docs/formats/metadata.md.
//
//   std::string bytes = Encode(segment_meta);
//   DLOG_ASSIGN_OR_RETURN(auto seg, Decode<proto::SegmentMetadata>(path, bytes));
//
// Decode never crashes on bad bytes: it returns kCorruptRecord (unparsable,
// bad magic, CRC mismatch, wrong record type) or kUnknownVersion (a format
// version this binary does not know), and the message names `path`.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "metadata.pb.h"
#include "metadata/metadata_store.h"

namespace dlog::metadata {

inline constexpr uint32_t kRecordMagic = 0x444C4D44;  // "DLMD"
inline constexpr uint32_t kRecordFormatVersion = proto::METADATA_FORMAT_V1;

template <typename T>
struct RecordTraits;
#define DLOG_METADATA_RECORD(T, TYPE)                               \
  template <>                                                       \
  struct RecordTraits<T> {                                          \
    static constexpr proto::MetadataRecordType kType = proto::TYPE; \
  }
DLOG_METADATA_RECORD(proto::NodeRegistration, NODE_REGISTRATION);
DLOG_METADATA_RECORD(proto::SegmentMetadata, SEGMENT_METADATA);
DLOG_METADATA_RECORD(proto::LogMetadata, LOG_METADATA);
DLOG_METADATA_RECORD(proto::OwnerRecord, OWNER_RECORD);
DLOG_METADATA_RECORD(proto::IdCounter, ID_COUNTER);
DLOG_METADATA_RECORD(proto::NodeCookie, NODE_COOKIE);
DLOG_METADATA_RECORD(proto::NamespaceMetadata, NAMESPACE_METADATA);
DLOG_METADATA_RECORD(proto::TopicMetadata, TOPIC_METADATA);
#undef DLOG_METADATA_RECORD

const char* RecordTypeName(proto::MetadataRecordType type);

// The untyped halves, for tools that print any record.
std::string EncodeRecord(proto::MetadataRecordType type, const google::protobuf::MessageLite& msg);
// Checks the envelope and that it holds `expected`; returns the payload bytes.
Result<std::string> DecodeRecord(std::string_view path, std::string_view bytes, proto::MetadataRecordType expected);

template <typename T>
std::string Encode(const T& msg) {
  return EncodeRecord(RecordTraits<T>::kType, msg);
}

template <typename T>
Result<T> Decode(std::string_view path, std::string_view bytes) {
  DLOG_ASSIGN_OR_RETURN(std::string payload, DecodeRecord(path, bytes, RecordTraits<T>::kType));
  T msg;
  if (!msg.ParseFromString(payload)) {
    return Status::Error(MetaErrc::kCorruptRecord, "metadata record at " + std::string(path) + ": " +
                                                       RecordTypeName(RecordTraits<T>::kType) +
                                                       " payload does not parse");
  }
  return msg;
}

}  // namespace dlog::metadata
