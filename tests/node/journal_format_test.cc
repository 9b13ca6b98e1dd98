// Journal record codec: round trip and every malformed record.
#include "logstore/node/journal_format.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common/buffer.h"
#include "common/crc32c.h"

namespace dlog::node {
namespace {

// The header-CRC seed of file 7 of a node with this instance id.
const uint32_t kSeed = JournalSeed("0123456789abcdef0123456789abcdef", 7);

std::vector<uint8_t> MakeRecord(const RecordHeader& h0, const std::string& payload, uint32_t seed = kSeed) {
  RecordHeader h = h0;
  h.payload_len = static_cast<uint32_t>(payload.size());
  h.payload_crc = crc32c::Value(payload.data(), payload.size());
  std::vector<uint8_t> buf(RecordFootprint(payload.size()), 0);
  EncodeHeader(h, seed, buf.data());
  std::memcpy(buf.data() + kRecordHeaderSize, payload.data(), payload.size());
  return buf;
}

RecordHeader Entry(uint64_t seg, int64_t e) {
  RecordHeader h;
  h.type = RecordType::kEntry;
  h.segment = seg;
  h.entry = e;
  h.lac = e - 1;
  h.flags = kRecordFlagRecovery;
  return h;
}

void Reseal(std::vector<uint8_t>& b) { PutLe<uint32_t>(b.data() + 44, crc32c::Extend(kSeed, b.data(), 44)); }

TEST(JournalFormat, RoundTrip) {
  const std::string payload = "hello, journal";  // 14 bytes: padded to 8
  auto buf = MakeRecord(Entry(42, 7), payload);
  EXPECT_EQ(buf.size() % 8, 0u);
  EXPECT_EQ(buf.size(), 64u);
  RecordHeader h;
  ASSERT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kOk);
  EXPECT_EQ(h.type, RecordType::kEntry);
  EXPECT_EQ(h.segment, 42u);
  EXPECT_EQ(h.entry, 7);
  EXPECT_EQ(h.lac, 6);
  EXPECT_EQ(h.flags, kRecordFlagRecovery);
  EXPECT_EQ(h.payload_len, payload.size());
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf.data() + kRecordHeaderSize), h.payload_len), payload);
  // Padding is zero.
  for (size_t i = kRecordHeaderSize + payload.size(); i < buf.size(); ++i) EXPECT_EQ(buf[i], 0);
}

TEST(JournalFormat, EmptyPayloadAndOtherTypes) {
  RecordHeader f;
  f.type = RecordType::kFence;
  f.segment = 9;
  auto buf = MakeRecord(f, "");
  EXPECT_EQ(buf.size(), kRecordHeaderSize);
  RecordHeader h;
  ASSERT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kOk);
  EXPECT_EQ(h.type, RecordType::kFence);

  RecordHeader d;
  d.type = RecordType::kDelete;
  const std::string ids = EncodeDeletePayload({1, 2, 0xFFFFFFFFFFFFFFFFull});
  buf = MakeRecord(d, ids);
  ASSERT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kOk);
  std::vector<uint64_t> out;
  ASSERT_TRUE(DecodeDeletePayload(buf.data() + kRecordHeaderSize, h.payload_len, &out));
  EXPECT_EQ(out, (std::vector<uint64_t>{1, 2, 0xFFFFFFFFFFFFFFFFull}));
  EXPECT_FALSE(DecodeDeletePayload(buf.data() + kRecordHeaderSize, 7, &out));
}

TEST(JournalFormat, ZeroIsEndOfData) {
  std::vector<uint8_t> z(64, 0);
  RecordHeader h;
  EXPECT_EQ(DecodeRecord(z.data(), z.size(), kSeed, &h), RecordError::kZero);
  EXPECT_EQ(DecodeHeader(z.data(), 16, 16, kSeed, &h), RecordError::kZero);  // short zero tail
  z[3] = 1;
  EXPECT_EQ(DecodeHeader(z.data(), 16, 16, kSeed, &h), RecordError::kTruncated);
}

TEST(JournalFormat, BadMagic) {
  auto buf = MakeRecord(Entry(1, 1), "abc");
  buf[0] ^= 0x5A;
  RecordHeader h;
  EXPECT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kBadMagic);
}

TEST(JournalFormat, UnknownVersionIsRejectedLoudly) {
  auto buf = MakeRecord(Entry(1, 1), "abc");
  PutLe<uint16_t>(buf.data() + 4, 2);
  Reseal(buf);  // a well-formed record of a version we do not know
  RecordHeader h;
  EXPECT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kUnknownVersion);
  // Without a valid CRC it is just a damaged header.
  buf[4] = 3;
  EXPECT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kBadHeaderCrc);
}

TEST(JournalFormat, BadHeaderCrc) {
  auto buf = MakeRecord(Entry(1, 1), "abc");
  buf[10] ^= 1;  // segment id byte
  RecordHeader h;
  EXPECT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kBadHeaderCrc);
  buf = MakeRecord(Entry(1, 1), "abc");
  buf[45] ^= 1;  // the CRC itself
  EXPECT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kBadHeaderCrc);
}

TEST(JournalFormat, BadType) {
  auto buf = MakeRecord(Entry(1, 1), "abc");
  PutLe<uint16_t>(buf.data() + 6, 9);
  Reseal(buf);
  RecordHeader h;
  EXPECT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kBadType);
}

TEST(JournalFormat, BadPayloadCrc) {
  auto buf = MakeRecord(Entry(1, 1), "abcdefgh");
  buf[kRecordHeaderSize + 3] ^= 0x10;
  RecordHeader h;
  EXPECT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kBadPayloadCrc);
}

TEST(JournalFormat, LengthPastEndOfFile) {
  auto buf = MakeRecord(Entry(1, 1), std::string(100, 'x'));
  RecordHeader h;
  // The file ends before the payload does.
  EXPECT_EQ(DecodeRecord(buf.data(), kRecordHeaderSize + 50, kSeed, &h), RecordError::kPastEnd);
  // A header claiming a huge payload.
  PutLe<uint32_t>(buf.data() + 32, 0xFFFFFFF0u);
  Reseal(buf);
  EXPECT_EQ(DecodeRecord(buf.data(), buf.size(), kSeed, &h), RecordError::kPastEnd);
  // Fewer than 48 bytes left.
  EXPECT_EQ(DecodeRecord(buf.data(), 20, kSeed, &h), RecordError::kTruncated);
}

// The header CRC is salted with the file's seed (instance id, file id): a
// record sealed for another file, another node, or with no salt (as a client
// could build one inside a payload) never validates.
TEST(JournalFormat, HeaderCrcIsSaltedPerFileAndNode) {
  EXPECT_NE(JournalSeed("0123456789abcdef0123456789abcdef", 7), JournalSeed("0123456789abcdef0123456789abcdef", 8));
  EXPECT_NE(JournalSeed("0123456789abcdef0123456789abcdef", 7), JournalSeed("fedcba9876543210fedcba9876543210", 7));
  RecordHeader h;
  auto good = MakeRecord(Entry(3, 4), "payload");
  ASSERT_EQ(DecodeRecord(good.data(), good.size(), kSeed, &h), RecordError::kOk);
  EXPECT_EQ(DecodeRecord(good.data(), good.size(), JournalSeed("0123456789abcdef0123456789abcdef", 8), &h),
            RecordError::kBadHeaderCrc);
  EXPECT_EQ(DecodeRecord(good.data(), good.size(), JournalSeed("fedcba9876543210fedcba9876543210", 7), &h),
            RecordError::kBadHeaderCrc);
  RecordHeader d;
  d.type = RecordType::kDelete;
  auto forged = MakeRecord(d, EncodeDeletePayload({3}), /*seed=*/0);  // unsalted: what a client can compute
  EXPECT_EQ(DecodeRecord(forged.data(), forged.size(), kSeed, &h), RecordError::kBadHeaderCrc);
  EXPECT_EQ(DecodeRecord(forged.data(), forged.size(), 0, &h), RecordError::kOk);
}

TEST(JournalFormat, FileNames) {
  EXPECT_EQ(JournalFileName(1), "0000000000000001.jnl");
  uint64_t id = 0;
  EXPECT_TRUE(ParseJournalFileName("0000000000000123.jnl", &id));
  EXPECT_EQ(id, 123u);
  EXPECT_TRUE(ParseJournalFileName(JournalFileName(0xFFFFFFFFFFFFFFFFull), &id));
  EXPECT_EQ(id, 0xFFFFFFFFFFFFFFFFull);
  EXPECT_FALSE(ParseJournalFileName("COOKIE", &id));
  EXPECT_FALSE(ParseJournalFileName("123.jnl", &id));
  EXPECT_FALSE(ParseJournalFileName("000000000000000x.jnl", &id));
  EXPECT_FALSE(ParseJournalFileName("99999999999999999999.jnl", &id));  // overflows u64
}

}  // namespace
}  // namespace dlog::node
