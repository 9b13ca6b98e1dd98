#include "dlog/message_id.h"

#include <charconv>
#include <limits>
#include <tuple>
#include <vector>

#include "client/lib/errors.h"
#include "common/buffer.h"

namespace dlog::client {
namespace {

constexpr uint8_t kBytesVersion = 1;
constexpr size_t kBytesSize = 1 + 4 + 8 + 8 + 4 + 8 + 4 + 4 + 1;  // + trailing check byte

template <typename T>
bool ParseInt(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

uint8_t XorCheck(const uint8_t* p, size_t n) {
  uint8_t x = 0xa5;
  for (size_t i = 0; i < n; ++i) x = static_cast<uint8_t>((x << 1 | x >> 7) ^ p[i]);
  return x;
}

}  // namespace

MessageId MessageId::Latest() {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int32_t kMax32 = std::numeric_limits<int32_t>::max();
  return MessageId(kMax32, kMax, kMax, kMax32, kMax, kMax32, 0);
}

std::strong_ordering MessageId::operator<=>(const MessageId& o) const {
  return std::tie(partition_, segment_seq_, entry_, slot_, record_seq_, batch_index_, batch_size_) <=>
         std::tie(o.partition_, o.segment_seq_, o.entry_, o.slot_, o.record_seq_, o.batch_index_, o.batch_size_);
}

std::string MessageId::ToString() const {
  if (is_earliest()) return "earliest";
  if (is_latest()) return "latest";
  return std::to_string(partition_) + ":" + std::to_string(segment_seq_) + ":" + std::to_string(entry_) + ":" +
         std::to_string(slot_) + ":" + std::to_string(record_seq_) + ":" + std::to_string(batch_index_) + ":" +
         std::to_string(batch_size_);
}

Result<MessageId> MessageId::FromString(std::string_view text) {
  if (text == "earliest") return Earliest();
  if (text == "latest") return Latest();
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    const size_t colon = text.find(':', start);
    parts.push_back(text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  auto bad = [&] {
    return Err(ClientErrc::kInvalidArgument,
               "bad message id '" + std::string(text) +
                   "': expected earliest, latest or PARTITION:SEGMENT:ENTRY:SLOT:RECORD_SEQ:BATCH_INDEX:BATCH_SIZE");
  };
  if (parts.size() != 7) return bad();
  MessageId id;
  if (!ParseInt(parts[0], &id.partition_) || !ParseInt(parts[1], &id.segment_seq_) || !ParseInt(parts[2], &id.entry_) ||
      !ParseInt(parts[3], &id.slot_) || !ParseInt(parts[4], &id.record_seq_) || !ParseInt(parts[5], &id.batch_index_) ||
      !ParseInt(parts[6], &id.batch_size_)) {
    return bad();
  }
  if (id.partition_ < 0 || id.batch_index_ < -1 || id.batch_size_ < 0 ||
      (id.batch_index_ >= 0 && id.batch_index_ >= id.batch_size_)) {
    return bad();
  }
  return id;
}

std::string MessageId::ToBytes() const {
  std::string out(kBytesSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  p[0] = kBytesVersion;
  PutBe32(p + 1, static_cast<uint32_t>(partition_));
  PutBe64(p + 5, static_cast<uint64_t>(segment_seq_));
  PutBe64(p + 13, static_cast<uint64_t>(entry_));
  PutBe32(p + 21, static_cast<uint32_t>(slot_));
  PutBe64(p + 25, static_cast<uint64_t>(record_seq_));
  PutBe32(p + 33, static_cast<uint32_t>(batch_index_));
  PutBe32(p + 37, static_cast<uint32_t>(batch_size_));
  p[41] = XorCheck(p, 41);
  return out;
}

Result<MessageId> MessageId::FromBytes(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() != kBytesSize) {
    return Err(ClientErrc::kInvalidArgument, "serialized message id is " + std::to_string(bytes.size()) +
                                                 " bytes, expected " + std::to_string(kBytesSize));
  }
  if (p[0] != kBytesVersion) {
    return Err(ClientErrc::kInvalidArgument, "serialized message id has unknown version " + std::to_string(p[0]));
  }
  if (p[41] != XorCheck(p, 41)) return Err(ClientErrc::kInvalidArgument, "serialized message id is damaged");
  MessageId id;
  id.partition_ = static_cast<int32_t>(GetBe32(p + 1));
  id.segment_seq_ = static_cast<int64_t>(GetBe64(p + 5));
  id.entry_ = static_cast<int64_t>(GetBe64(p + 13));
  id.slot_ = static_cast<int32_t>(GetBe32(p + 21));
  id.record_seq_ = static_cast<int64_t>(GetBe64(p + 25));
  id.batch_index_ = static_cast<int32_t>(GetBe32(p + 33));
  id.batch_size_ = static_cast<int32_t>(GetBe32(p + 37));
  return id;
}

}  // namespace dlog::client
