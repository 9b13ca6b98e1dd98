// libFuzzer target for the journal record decoder: start-up replay reads
// whatever a crash or a bad disk left in a journal file.
//
// The first input byte is a mode: when odd, each record's payload and header
// CRCs are patched to be correct before decoding, so the fuzzer reaches the
// checks behind the checksums (version, type, lengths, DELETE payloads). Its
// other 7 bits pick the journal file id whose header-CRC seed (JournalSeed of
// a fixed instance id) the records are decoded with. A record that decodes
// with its file's seed must never decode with another seed (the salt that keeps
// record-shaped payload bytes and records of other files from validating).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "common/crc32c.h"
#include "logstore/node/journal_format.h"

namespace {

void PatchCrcs(std::string* buf, size_t at, uint32_t seed) {
  using namespace dlog;
  if (buf->size() < at + node::kRecordHeaderSize) return;
  auto* p = reinterpret_cast<uint8_t*>(buf->data() + at);
  const uint32_t len = GetLe<uint32_t>(p + 32);
  if (len <= buf->size() - at - node::kRecordHeaderSize) {
    PutLe<uint32_t>(p + 36, crc32c::Value(p + node::kRecordHeaderSize, len));
  }
  PutLe<uint32_t>(p + 44, crc32c::Extend(seed, p, 44));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dlog::node;
  if (size == 0) return 0;
  const bool fix = (data[0] & 1) != 0;
  const uint32_t seed = JournalSeed("0123456789abcdef0123456789abcdef", data[0] >> 1);
  std::string buf(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto* p = reinterpret_cast<const uint8_t*>(buf.data());
  // Walk the buffer as replay does: record by record, stopping at the first bad one.
  size_t at = 0;
  while (at + kRecordHeaderSize <= buf.size()) {
    if (fix) PatchCrcs(&buf, at, seed);
    RecordHeader h;
    RecordError e = DecodeRecord(p + at, buf.size() - at, seed, &h);
    if (e != RecordError::kOk) {
      if (RecordErrorName(e) == nullptr) __builtin_trap();
      break;
    }
    if (at + kRecordHeaderSize + h.payload_len > buf.size()) __builtin_trap();  // a record ran past the end
    RecordHeader other;
    if (DecodeRecord(p + at, buf.size() - at, seed ^ 1u, &other) != RecordError::kBadHeaderCrc) {
      __builtin_trap();  // a record valid under two seeds: the per-file salt does not separate files
    }
    if (h.type == RecordType::kDelete) {
      std::vector<uint64_t> ids;
      (void)DecodeDeletePayload(p + at + kRecordHeaderSize, h.payload_len, &ids);
    }
    at += static_cast<size_t>(RecordFootprint(h.payload_len));
  }
  return 0;
}
