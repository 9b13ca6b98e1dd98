#include "logstore/node/journal_format.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/buffer.h"
#include "common/crc32c.h"

namespace dlog::node {

uint32_t JournalSeed(const std::string& journal_salt, uint64_t file_id) {
  uint8_t id[8];
  PutLe<uint64_t>(id, file_id);
  return crc32c::Extend(crc32c::Value(journal_salt.data(), journal_salt.size()), id, sizeof(id));
}

void EncodeHeader(const RecordHeader& h, uint32_t seed, uint8_t* out) {
  PutLe<uint32_t>(out + 0, kRecordMagic);
  PutLe<uint16_t>(out + 4, h.version);
  PutLe<uint16_t>(out + 6, static_cast<uint16_t>(h.type));
  PutLe<uint64_t>(out + 8, h.segment);
  PutLe<int64_t>(out + 16, h.entry);
  PutLe<int64_t>(out + 24, h.lac);
  PutLe<uint32_t>(out + 32, h.payload_len);
  PutLe<uint32_t>(out + 36, h.payload_crc);
  PutLe<uint32_t>(out + 40, h.flags);
  PutLe<uint32_t>(out + 44, crc32c::Extend(seed, out, 44));
}

const char* RecordErrorName(RecordError e) {
  switch (e) {
    case RecordError::kOk:
      return "ok";
    case RecordError::kZero:
      return "zero header (end of data)";
    case RecordError::kTruncated:
      return "truncated header";
    case RecordError::kBadMagic:
      return "bad magic";
    case RecordError::kBadHeaderCrc:
      return "bad header CRC";
    case RecordError::kUnknownVersion:
      return "unknown record version";
    case RecordError::kBadType:
      return "bad record type";
    case RecordError::kPastEnd:
      return "payload length past end of file";
    case RecordError::kBadPayloadCrc:
      return "bad payload CRC";
  }
  return "?";
}

RecordError DecodeHeader(const uint8_t* p, size_t avail, uint64_t left_in_file, uint32_t seed, RecordHeader* out) {
  if (avail < kRecordHeaderSize || left_in_file < kRecordHeaderSize) {
    // A short tail that is all zeros is still the end of data.
    const size_t n = avail < left_in_file ? avail : static_cast<size_t>(left_in_file);
    for (size_t i = 0; i < n; ++i) {
      if (p[i] != 0) return RecordError::kTruncated;
    }
    return RecordError::kZero;
  }
  if (GetLe<uint32_t>(p) != kRecordMagic) {
    for (size_t i = 0; i < kRecordHeaderSize; ++i) {
      if (p[i] != 0) return RecordError::kBadMagic;
    }
    return RecordError::kZero;
  }
  if (GetLe<uint32_t>(p + 44) != crc32c::Extend(seed, p, 44)) return RecordError::kBadHeaderCrc;
  RecordHeader h;
  h.version = GetLe<uint16_t>(p + 4);
  if (h.version != kRecordVersion) return RecordError::kUnknownVersion;
  const uint16_t type = GetLe<uint16_t>(p + 6);
  if (type < 1 || type > 3) return RecordError::kBadType;
  h.type = static_cast<RecordType>(type);
  h.segment = GetLe<uint64_t>(p + 8);
  h.entry = GetLe<int64_t>(p + 16);
  h.lac = GetLe<int64_t>(p + 24);
  h.payload_len = GetLe<uint32_t>(p + 32);
  h.payload_crc = GetLe<uint32_t>(p + 36);
  h.flags = GetLe<uint32_t>(p + 40);
  if (h.payload_len > kMaxRecordPayload || kRecordHeaderSize + uint64_t{h.payload_len} > left_in_file) {
    *out = h;
    return RecordError::kPastEnd;
  }
  *out = h;
  return RecordError::kOk;
}

RecordError CheckPayload(const RecordHeader& h, const uint8_t* payload) {
  return crc32c::Value(payload, h.payload_len) == h.payload_crc ? RecordError::kOk : RecordError::kBadPayloadCrc;
}

RecordError DecodeRecord(const uint8_t* p, size_t n, uint32_t seed, RecordHeader* out) {
  RecordHeader h;
  RecordError e = DecodeHeader(p, n, n, seed, &h);
  if (e != RecordError::kOk) return e;
  e = CheckPayload(h, p + kRecordHeaderSize);
  if (e != RecordError::kOk) return e;
  *out = h;
  return RecordError::kOk;
}

std::string EncodeDeletePayload(const std::vector<uint64_t>& segments) {
  std::string out(segments.size() * 8, '\0');
  for (size_t i = 0; i < segments.size(); ++i)
    PutLe<uint64_t>(reinterpret_cast<uint8_t*>(out.data()) + i * 8, segments[i]);
  return out;
}

bool DecodeDeletePayload(const uint8_t* p, size_t n, std::vector<uint64_t>* out) {
  if (n % 8 != 0) return false;
  out->clear();
  for (size_t i = 0; i < n; i += 8) out->push_back(GetLe<uint64_t>(p + i));
  return true;
}

std::string JournalFileName(uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016" PRIu64 ".jnl", id);
  return buf;
}

bool ParseJournalFileName(const std::string& name, uint64_t* id) {
  if (name.size() < 5 || name.compare(name.size() - 4, 4, ".jnl") != 0) return false;
  const size_t digits = name.size() - 4;
  if (digits < 16 || digits > 20) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < digits; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    const uint64_t d = static_cast<uint64_t>(name[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *id = v;
  return true;
}

}  // namespace dlog::node
