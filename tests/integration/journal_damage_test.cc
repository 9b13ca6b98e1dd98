// Damage a real node's journal between runs (the process was killed with
// SIGKILL, so start-up replays the journal): a torn tail is cut off and every
// entry acknowledged before it is served; a flipped byte in the middle of the
// journal names the damaged segment, whose reads get IO_ERROR, while the rest
// is served.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "logstore/node/cookie.h"
#include "logstore/node/journal_format.h"
#include "protocol/node_errors.h"
#include "tests/support/node_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::test {
namespace {

namespace fs = std::filesystem;

struct RecordAt {
  std::string file;
  uint64_t offset;
  node::RecordHeader header;
};

// Every valid record of the journal, in journal order. Header CRCs are salted
// per file with the node's instance id (from the data dir's COOKIE).
std::vector<RecordAt> ScanJournal(const std::string& journal_dir) {
  const std::string data_dir = fs::path(journal_dir).parent_path().string();
  std::vector<std::pair<uint64_t, std::string>> files;
  for (auto& e : fs::directory_iterator(journal_dir)) {
    uint64_t id;
    if (node::ParseJournalFileName(e.path().filename().string(), &id)) files.emplace_back(id, e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<RecordAt> out;
  for (auto& [id, path] : files) {
    std::string data = ReadFile(path);
    const auto* p = reinterpret_cast<const uint8_t*>(data.data());
    auto seed = node::ReadJournalSeed(node::Env::Posix(), data_dir, id);
    EXPECT_TRUE(seed.ok()) << seed.status().ToString();
    if (!seed.ok()) return out;
    uint64_t at = 0;
    while (at + node::kRecordHeaderSize <= data.size()) {
      node::RecordHeader h;
      if (node::DecodeRecord(p + at, data.size() - at, *seed, &h) != node::RecordError::kOk) break;
      out.push_back({path, at, h});
      at += node::RecordFootprint(h.payload_len);
    }
  }
  return out;
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

class JournalDamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<LogstoreNode>(dir_.path(), FreePort(),
                                           std::vector<std::string>{"--journal-file-size", "4MiB"});
    ASSERT_TRUE(node_->Start(true)) << node_->Stderr();
  }

  void Write(SegmentId seg, int n) {
    NodeClientHarness h(node_->address());
    for (int64_t e = 0; e < n; ++e) {
      ASSERT_TRUE(
          h.client().AddEntrySync(seg, EntryId(e), EntryId(e - 1), Slice::CopyOf(PayloadFor(seg, EntryId(e)))).ok());
    }
  }

  TempDir dir_;
  std::unique_ptr<LogstoreNode> node_;
};

TEST_F(JournalDamageTest, TornTailIsCutOffAndEarlierEntriesServed) {
  const SegmentId seg(5);
  Write(seg, 50);
  node_->Kill9();
  auto records = ScanJournal(node_->data_dir() + "/journal");
  ASSERT_FALSE(records.empty());
  const RecordAt last = records.back();
  ASSERT_EQ(last.header.segment, seg.value());
  ASSERT_EQ(last.header.entry, 49);
  // Tear the last record: flip a byte of its payload (a write that did not finish).
  FlipByte(last.file, last.offset + node::kRecordHeaderSize + last.header.payload_len / 2);

  ASSERT_TRUE(node_->Start(false)) << node_->Stderr();
  EXPECT_NE(node_->Stderr().find("torn"), std::string::npos) << node_->Stderr();
  NodeClientHarness h(node_->address());
  for (int64_t e = 0; e < 49; ++e) {
    auto r = h.client().ReadEntrySync(seg, EntryId(e));
    ASSERT_TRUE(r.ok()) << e << ": " << r.status().ToString();
    EXPECT_EQ(r->payload.view(), PayloadFor(seg, EntryId(e)));
  }
  auto torn = h.client().ReadEntrySync(seg, EntryId(49));
  EXPECT_TRUE(torn.status().Is(NodeErrc::kNoSuchEntry)) << torn.status().ToString();
  auto info = h.client().NodeInfoSync();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->damaged_segments_size(), 0) << "a torn tail is not corruption";
  // The node keeps working after the cut, and the cut stays cut across another restart.
  ASSERT_TRUE(h.client().AddEntrySync(seg, EntryId(49), EntryId(48), Slice::CopyOf("rewritten")).ok());
}

TEST_F(JournalDamageTest, MidJournalCorruptionNamesTheSegmentAndServesTheRest) {
  const SegmentId a(1), b(2), c(3);
  Write(a, 40);
  Write(b, 40);
  Write(c, 40);
  node_->Kill9();
  auto records = ScanJournal(node_->data_dir() + "/journal");
  auto victim = std::find_if(records.begin(), records.end(),
                             [&](const RecordAt& r) { return r.header.segment == b.value() && r.header.entry == 20; });
  ASSERT_NE(victim, records.end());
  FlipByte(victim->file, victim->offset + node::kRecordHeaderSize);  // first payload byte

  ASSERT_TRUE(node_->Start(false)) << node_->Stderr();
  const std::string log = node_->Stderr();
  EXPECT_NE(log.find("damaged"), std::string::npos) << log;
  NodeClientHarness h(node_->address());
  auto info = h.client().NodeInfoSync();
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->damaged_segments_size(), 1);
  EXPECT_EQ(info->damaged_segments(0), b.value());
  EXPECT_FALSE(info->lost_unknown_region()) << "a readable header names the one damaged segment";
  auto bad = h.client().ReadEntrySync(b, EntryId(20));
  EXPECT_TRUE(bad.status().Is(NodeErrc::kIoError)) << bad.status().ToString();
  auto also_bad = h.client().ReadEntrySync(b, EntryId(3));
  EXPECT_TRUE(also_bad.status().Is(NodeErrc::kIoError)) << also_bad.status().ToString();
  for (SegmentId s : {a, c}) {
    for (int64_t e = 0; e < 40; ++e) {
      auto r = h.client().ReadEntrySync(s, EntryId(e));
      ASSERT_TRUE(r.ok()) << s << "/" << e << ": " << r.status().ToString();
      EXPECT_EQ(r->payload.view(), PayloadFor(s, EntryId(e)));
    }
  }
}

// A header flipped in the middle of the journal: the lost record's segment
// cannot be known, so the node reports a lost region of unknown content and
// answers IO_ERROR (never NO_SUCH_ENTRY / NO_SUCH_SEGMENT) for what it does
// not hold, across restarts.
TEST_F(JournalDamageTest, UnreadableHeaderMidJournalIsALostRegion) {
  const SegmentId a(1), b(2);
  Write(a, 20);
  {
    NodeClientHarness h(node_->address());
    ASSERT_TRUE(h.client().AddEntrySync(b, EntryId(0), EntryId(-1), Slice::CopyOf(PayloadFor(b, EntryId(0)))).ok());
    for (int64_t e = 20; e < 30; ++e) {
      ASSERT_TRUE(
          h.client().AddEntrySync(a, EntryId(e), EntryId(e - 1), Slice::CopyOf(PayloadFor(a, EntryId(e)))).ok());
    }
  }
  node_->Kill9();
  auto records = ScanJournal(node_->data_dir() + "/journal");
  auto victim =
      std::find_if(records.begin(), records.end(), [&](const RecordAt& r) { return r.header.segment == b.value(); });
  ASSERT_NE(victim, records.end());
  FlipByte(victim->file, victim->offset + 9);  // segment id byte: the header CRC fails

  for (int run = 0; run < 2; ++run) {
    ASSERT_TRUE(node_->Start(false)) << node_->Stderr();
    if (run == 0) EXPECT_NE(node_->Stderr().find("unknown content"), std::string::npos) << node_->Stderr();
    NodeClientHarness h(node_->address());
    auto info = h.client().NodeInfoSync();
    ASSERT_TRUE(info.ok());
    EXPECT_TRUE(info->lost_unknown_region());
    auto lost = h.client().ReadEntrySync(b, EntryId(0));
    EXPECT_TRUE(lost.status().Is(NodeErrc::kIoError)) << lost.status().ToString();
    auto never = h.client().ReadEntrySync(SegmentId(77), EntryId(0));
    EXPECT_TRUE(never.status().Is(NodeErrc::kIoError)) << never.status().ToString();
    node_->Kill9();
  }
}

}  // namespace
}  // namespace dlog::test
