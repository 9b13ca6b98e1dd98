#include "metadata/records.h"

#include "common/crc32c.h"

namespace dlog::metadata {

const char* RecordTypeName(proto::MetadataRecordType type) {
  switch (type) {
    case proto::NODE_REGISTRATION:
      return "NodeRegistration";
    case proto::SEGMENT_METADATA:
      return "SegmentMetadata";
    case proto::LOG_METADATA:
      return "LogMetadata";
    case proto::OWNER_RECORD:
      return "OwnerRecord";
    case proto::ID_COUNTER:
      return "IdCounter";
    case proto::NODE_COOKIE:
      return "NodeCookie";
    case proto::NAMESPACE_METADATA:
      return "NamespaceMetadata";
    case proto::TOPIC_METADATA:
      return "TopicMetadata";
    default:
      return "unknown record type";
  }
}

std::string EncodeRecord(proto::MetadataRecordType type, const google::protobuf::MessageLite& msg) {
  proto::MetadataRecord rec;
  rec.set_magic(kRecordMagic);
  rec.set_format_version(kRecordFormatVersion);
  rec.set_type(type);
  std::string payload = msg.SerializeAsString();
  rec.set_payload_crc32c(crc32c::Value(payload.data(), payload.size()));
  rec.set_payload(std::move(payload));
  return rec.SerializeAsString();
}

Result<std::string> DecodeRecord(std::string_view path, std::string_view bytes, proto::MetadataRecordType expected) {
  auto corrupt = [&](const std::string& why) {
    return Status::Error(MetaErrc::kCorruptRecord, "metadata record at " + std::string(path) + ": " + why);
  };
  if (bytes.empty()) return corrupt("empty value");
  proto::MetadataRecord rec;
  if (!rec.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return corrupt("envelope does not parse");
  if (rec.magic() != kRecordMagic) return corrupt("bad magic");
  if (rec.format_version() != kRecordFormatVersion) {
    return Status::Error(MetaErrc::kUnknownVersion, "metadata record at " + std::string(path) +
                                                        ": unknown format version " +
                                                        std::to_string(rec.format_version()) + " (this binary reads " +
                                                        std::to_string(kRecordFormatVersion) + ")");
  }
  if (crc32c::Value(rec.payload().data(), rec.payload().size()) != rec.payload_crc32c()) {
    return corrupt("payload CRC32C mismatch");
  }
  if (rec.type() != expected) {
    return corrupt(std::string("holds ") + RecordTypeName(rec.type()) + " (type " + std::to_string(rec.type()) +
                   "), expected " + RecordTypeName(expected));
  }
  return std::move(*rec.mutable_payload());
}

}  // namespace dlog::metadata
