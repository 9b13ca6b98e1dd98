// The journal's on-disk record format (spec: docs/formats/journal.md).
//
// A journal file is a sequence of records, each 8-byte aligned, followed by
// zeros (the preallocated region). A record is a 48-byte little-endian header
// and a payload zero-padded to a multiple of 8:
//
//   off size field
//     0   4  magic            kRecordMagic
//     4   2  version          kRecordVersion (1)
//     6   2  type             RecordType
//     8   8  segment id
//    16   8  entry id         (i64; -1 for FENCE and DELETE)
//    24   8  lac              (i64; the writer's LAC carried by an ENTRY)
//    32   4  payload length
//    36   4  payload CRC32C   (ENTRY: the writer's CRC, verified on arrival)
//    40   4  flags            bit 0: recovery add
//    44   4  header CRC32C    crc32c::Extend(seed, bytes 0..43)
//
// The header CRC is salted with a per-file seed (JournalSeed: CRC32C over the
// node's random instance id and the file id), which clients cannot know: a
// record-shaped run of bytes inside an entry payload, or a record copied from
// another file or node, never validates, so the forward scan replay does after
// a bad record cannot be made to apply it.
//
// Pure functions, no I/O; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dlog::node {

inline constexpr uint32_t kRecordMagic = 0x4C4A4C44;  // "DLJL" as little-endian bytes
inline constexpr uint16_t kRecordVersion = 1;
inline constexpr size_t kRecordHeaderSize = 48;
inline constexpr size_t kRecordAlign = 8;
inline constexpr uint32_t kRecordFlagRecovery = 1u << 0;
// Upper bound of a payload the decoder accepts (a frame is at most a few MiB).
inline constexpr uint32_t kMaxRecordPayload = 256u << 20;

enum class RecordType : uint16_t {
  kEntry = 1,
  kFence = 2,
  kDelete = 3,
};

struct RecordHeader {
  RecordType type = RecordType::kEntry;
  uint16_t version = kRecordVersion;
  uint64_t segment = 0;
  int64_t entry = -1;
  int64_t lac = -1;
  uint32_t payload_len = 0;
  uint32_t payload_crc = 0;
  uint32_t flags = 0;
};

inline constexpr uint64_t AlignRecord(uint64_t n) { return (n + kRecordAlign - 1) & ~uint64_t{kRecordAlign - 1}; }
// Bytes a record with `payload_len` bytes of payload takes in a file.
inline constexpr uint64_t RecordFootprint(uint64_t payload_len) { return AlignRecord(kRecordHeaderSize + payload_len); }

// The header-CRC seed of journal file `file_id` of the node whose cookie has
// `journal_salt` (cookie.h): CRC32C over the salt's bytes followed by the
// file id as a little-endian u64. The salt is random per data dir and never
// leaves the node, so a client cannot seal a record a replay would accept.
uint32_t JournalSeed(const std::string& journal_salt, uint64_t file_id);

// Writes the 48-byte header (header CRC, salted with `seed`, included) to `out`.
void EncodeHeader(const RecordHeader& h, uint32_t seed, uint8_t* out);

enum class RecordError {
  kOk = 0,
  kZero,       // 48 zero bytes: the normal end of data in a file
  kTruncated,  // fewer than 48 bytes left in the file
  kBadMagic,
  kBadHeaderCrc,
  kUnknownVersion,  // magic and header CRC check but the version is not one we know
  kBadType,
  kPastEnd,  // payload length runs past the end of the file
  kBadPayloadCrc,
};
const char* RecordErrorName(RecordError e);

// Checks and decodes a header from `avail` bytes at `p` (avail may be more
// than 48; `left_in_file` is the number of file bytes from the header's start
// to the end of the file, used for the kPastEnd check). `seed` is the file's
// JournalSeed; a header sealed with another seed is kBadHeaderCrc. `out` is
// set on kOk and on kPastEnd (the header checks, only its length does not fit).
RecordError DecodeHeader(const uint8_t* p, size_t avail, uint64_t left_in_file, uint32_t seed, RecordHeader* out);
// Checks a payload against the header's payload CRC.
RecordError CheckPayload(const RecordHeader& h, const uint8_t* payload);
// Header + payload check of a whole record in memory (`n` bytes from the
// record start to the end of the file or buffer).
RecordError DecodeRecord(const uint8_t* p, size_t n, uint32_t seed, RecordHeader* out);

// DELETE payload: a list of little-endian u64 segment ids.
std::string EncodeDeletePayload(const std::vector<uint64_t>& segments);
bool DecodeDeletePayload(const uint8_t* p, size_t n, std::vector<uint64_t>* out);

// Journal file names: 16-digit zero-padded decimal id + ".jnl".
std::string JournalFileName(uint64_t id);
// Parses a journal file name; false for any other name.
bool ParseJournalFileName(const std::string& name, uint64_t* id);

}  // namespace dlog::node
