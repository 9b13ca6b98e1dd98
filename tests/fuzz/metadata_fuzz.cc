// libFuzzer target for metadata records: whatever a metadata store holds at a
// path is decoded by every reader of that path. Decode must answer every
// input with a record or an error naming the path — never crash.
//
// The first input byte is a mode: when odd, the bytes are wrapped in a valid
// envelope (magic, version, type from the byte, correct payload CRC), so the
// fuzzer reaches the payload parsers instead of stopping at the envelope checks.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/crc32c.h"
#include "metadata/records.h"

namespace {

template <typename T>
void Try(std::string_view bytes) {
  auto r = dlog::metadata::Decode<T>("/fuzz/path", bytes);
  if (!r.ok() && r.status().message().find("/fuzz/path") == std::string::npos) __builtin_trap();
  if (r.ok()) {
    // A decoded record re-encodes and decodes to the same message.
    auto again = dlog::metadata::Decode<T>("/fuzz/path", dlog::metadata::Encode(*r));
    if (!again.ok() || again->SerializeAsString() != r->SerializeAsString()) __builtin_trap();
  }
}

}  // namespace

// proto3 string fields reject invalid UTF-8 (Decode reports it); protobuf would
// also log each one.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dlog;
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) != 0) {
    proto::MetadataRecord env;
    env.set_magic(metadata::kRecordMagic);
    env.set_format_version(metadata::kRecordFormatVersion);
    env.set_type(static_cast<proto::MetadataRecordType>((data[0] >> 1) % 8));
    const std::string payload = bytes;
    env.set_payload(payload);
    env.set_payload_crc32c(crc32c::Value(payload.data(), payload.size()));
    bytes = env.SerializeAsString();
  }
  Try<proto::NodeRegistration>(bytes);
  Try<proto::NodeCookie>(bytes);
  Try<proto::SegmentMetadata>(bytes);
  Try<proto::LogMetadata>(bytes);
  Try<proto::OwnerRecord>(bytes);
  Try<proto::IdCounter>(bytes);
  return 0;
}
