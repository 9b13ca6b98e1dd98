// Store: group commit, replay, index position, cache, back-pressure, fsync
// errors, torn tails, corruption, fencing, deletion and GC.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "common/failpoint.h"
#include "logstore/node/cookie.h"
#include "logstore/node/fault_injection_env.h"
#include "logstore/node/journal_format.h"
#include "logstore/node/reader.h"
#include "store_test_util.h"

namespace dlog::node {
namespace {

using testing::AddSync;
using testing::CountJournalFiles;
using testing::DeleteSync;
using testing::Impl;
using testing::MustOpen;
using testing::PayloadFor;
using testing::ReadSync;
using testing::SmallOptions;
using testing::TempDir;
using testing::Waiter;

struct OnDisk {
  std::string path;
  uint64_t offset;
  RecordHeader h;
  uint32_t seed;  // the file's header-CRC seed
};

uint32_t SeedOf(const std::string& data_dir, const std::string& journal_path) {
  uint64_t id = 0;
  EXPECT_TRUE(ParseJournalFileName(std::filesystem::path(journal_path).filename().string(), &id)) << journal_path;
  auto seed = ReadJournalSeed(Env::Posix(), data_dir, id);
  EXPECT_TRUE(seed.ok()) << seed.status().ToString();
  return seed.ok() ? *seed : 0;
}

// Every valid record of every journal file, in order.
std::vector<OnDisk> ScanJournal(const std::string& data_dir) {
  std::vector<std::string> paths;
  for (const auto& e : std::filesystem::directory_iterator(data_dir + "/journal")) {
    if (e.path().extension() == ".jnl") paths.push_back(e.path().string());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<OnDisk> out;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    std::vector<uint8_t> d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const uint32_t seed = SeedOf(data_dir, p);
    uint64_t off = 0;
    while (off < d.size()) {
      RecordHeader h;
      if (DecodeRecord(d.data() + off, d.size() - off, seed, &h) != RecordError::kOk) break;
      out.push_back({p, off, h, seed});
      off += RecordFootprint(h.payload_len);
    }
  }
  return out;
}

void PatchFile(const std::string& path, uint64_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

void ExpectEntry(Store* s, uint64_t seg, int64_t e, const std::string& want) {
  ReadResult r = ReadSync(s, seg, e);
  ASSERT_TRUE(r.status.ok()) << "segment " << seg << " entry " << e << ": " << r.status.ToString();
  ASSERT_TRUE(r.has_entry);
  ASSERT_EQ(r.payload.ToString(), want) << "segment " << seg << " entry " << e;
  ASSERT_EQ(r.payload_crc32c, crc32c::Value(want.data(), want.size()));
}

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Format(Env* env = nullptr) { return MustOpen(SmallOptions(dir_.data(), true, env)); }
  std::unique_ptr<Store> Reopen(Env* env = nullptr) { return MustOpen(SmallOptions(dir_.data(), false, env)); }
  TempDir dir_;
};

TEST_F(StoreTest, AddReadBasicsAndErrors) {
  auto s = Format();
  ASSERT_TRUE(s);
  EXPECT_TRUE(ReadSync(s.get(), 1, 0).status.Is(NodeErrc::kNoSuchSegment));
  ASSERT_TRUE(AddSync(s.get(), 1, 0, "a").ok());
  ASSERT_TRUE(AddSync(s.get(), 1, 1, "bb", 0).ok());
  ExpectEntry(s.get(), 1, 0, "a");
  ExpectEntry(s.get(), 1, 1, "bb");
  ReadResult r = ReadSync(s.get(), 1, 2);
  EXPECT_TRUE(r.status.Is(NodeErrc::kNoSuchEntry));  // > last entry: answered at once
  EXPECT_EQ(r.segment.last_entry, EntryId(1));
  EXPECT_EQ(r.segment.lac, EntryId(0));
  // Bad requests.
  std::promise<Status> p;
  s->AddEntry(SegmentId(1), EntryId(3), EntryId(-1), 12345, Slice::CopyOf("x"), false,
              [&](const Status& st) { p.set_value(st); });
  EXPECT_TRUE(p.get_future().get().Is(NodeErrc::kBadRequest));
  EXPECT_TRUE(AddSync(s.get(), 1, -5, "x").Is(NodeErrc::kBadRequest));
  // LAC: explicit WriteLac is memory only and notifies.
  std::atomic<int64_t> seen{-1};
  s->SetLacListener([&](SegmentId, EntryId lac) { seen = lac.value(); });
  auto lac = s->WriteLac(SegmentId(1), EntryId(1));
  ASSERT_TRUE(lac.ok());
  EXPECT_EQ(*lac, EntryId(1));
  EXPECT_EQ(seen.load(), 1);
  EXPECT_EQ(*s->WriteLac(SegmentId(1), EntryId(0)), EntryId(1));  // never goes down
  EXPECT_TRUE(s->WriteLac(SegmentId(77), EntryId(0)).status().Is(NodeErrc::kNoSuchSegment));
  ASSERT_TRUE(AddSync(s.get(), 1, 2, "c", 5).ok());
  EXPECT_EQ(seen.load(), 5);
  EXPECT_EQ(s->GetSegment(SegmentId(1)).lac, EntryId(5));
  StoreInfo info = s->Info();
  EXPECT_TRUE(info.healthy);
  EXPECT_EQ(info.node_id, "node-a");
  EXPECT_EQ(info.segments, 1u);
  EXPECT_GE(info.journal_files, 1u);
  EXPECT_GT(info.disk_free_bytes, 0u);
  EXPECT_EQ(s->probe()->adds_total.load(), 3u);
  ASSERT_TRUE(s->Close().ok());
}

TEST_F(StoreTest, GroupCommitBatchesConcurrentAdds) {
  auto s = Format();
  ASSERT_TRUE(s);
  constexpr int kThreads = 8, kPerThread = 250;
  Waiter w;
  w.Add(kThreads * kPerThread);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string p = PayloadFor(static_cast<uint64_t>(t), i, 100 + static_cast<size_t>(i % 300));
        s->AddEntry(SegmentId(static_cast<uint64_t>(t)), EntryId(i), EntryId(i - 1), crc32c::Value(p.data(), p.size()),
                    Slice::CopyOf(p), false, [&](const Status& st) {
                      if (!st.ok()) failures.fetch_add(1);
                      w.Done();
                    });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(w.Wait());
  EXPECT_EQ(failures.load(), 0);
  const uint64_t adds = s->probe()->adds_total.load();
  const uint64_t batches = s->probe()->journal_batches_total.load();
  EXPECT_EQ(adds, uint64_t{kThreads * kPerThread});
  EXPECT_LT(batches, adds) << "group commit should put several adds in one fdatasync";
  // One fdatasync per batch (two for a batch that rolls into the next file).
  EXPECT_GE(s->probe()->fsync_latency_us.Count(), batches);
  EXPECT_LE(s->probe()->fsync_latency_us.Count(), 2 * batches);
  std::cerr << "group commit: " << adds << " adds in " << batches << " batches\n";
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      ExpectEntry(s.get(), static_cast<uint64_t>(t), i,
                  PayloadFor(static_cast<uint64_t>(t), i, 100 + static_cast<size_t>(i % 300)));
    }
  }
  ASSERT_TRUE(s->Close().ok());
}

TEST_F(StoreTest, ReplayAfterCrashRestoresEntriesAndState) {
  {
    auto s = Format();
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 40; ++e) {
      for (uint64_t seg = 1; seg <= 3; ++seg)
        ASSERT_TRUE(AddSync(s.get(), seg, e, PayloadFor(seg, e, 500), e - 1).ok());
    }
    ASSERT_TRUE(ReadSync(s.get(), 2, 39, /*fence=*/true).status.ok());
    ASSERT_TRUE(AddSync(s.get(), 2, 40, PayloadFor(2, 40, 500), 39, /*recovery=*/true).ok());
    s->CrashForTest();
  }
  auto s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_GT(Impl(s.get())->replay_stats().entries, 100u);
  for (uint64_t seg = 1; seg <= 3; ++seg) {
    for (int64_t e = 0; e < 40; ++e) ExpectEntry(s.get(), seg, e, PayloadFor(seg, e, 500));
    SegmentState st = s->GetSegment(SegmentId(seg));
    EXPECT_TRUE(st.exists);
    EXPECT_EQ(st.fenced, seg == 2);
    EXPECT_EQ(st.last_entry, EntryId(seg == 2 ? 40 : 39));
    EXPECT_EQ(st.lac, EntryId(seg == 2 ? 39 : 38));
  }
  ExpectEntry(s.get(), 2, 40, PayloadFor(2, 40, 500));
  EXPECT_TRUE(AddSync(s.get(), 2, 41, "late").Is(NodeErrc::kFenced));
  // The journal never appends to a file of an earlier run.
  const auto before = ScanJournal(dir_.data());
  ASSERT_TRUE(AddSync(s.get(), 1, 40, "new run").ok());
  const auto after = ScanJournal(dir_.data());
  ASSERT_EQ(after.size(), before.size() + 1);
  EXPECT_GT(after.back().path, before.back().path);
  EXPECT_EQ(after.back().offset, 0u);
  ASSERT_TRUE(s->Close().ok());
}

TEST_F(StoreTest, UnknownRecordVersionRefusesToStart) {
  {
    auto s = Format();
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 3; ++e) ASSERT_TRUE(AddSync(s.get(), 1, e, "v1").ok());
    s->CrashForTest();
  }
  auto recs = ScanJournal(dir_.data());
  ASSERT_EQ(recs.size(), 3u);
  // Rewrite the middle record's header as a (well-formed) version 2 header.
  RecordHeader h = recs[1].h;
  h.version = 2;
  uint8_t hdr[kRecordHeaderSize];
  EncodeHeader(h, recs[1].seed, hdr);
  PatchFile(recs[1].path, recs[1].offset, std::string(reinterpret_cast<char*>(hdr), sizeof(hdr)));
  auto r = Store::Open(SmallOptions(dir_.data(), false));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown to this dlog"), std::string::npos) << r.status().ToString();
}

TEST_F(StoreTest, ReplayStartsAtTheFlushedIndexPosition) {
  JournalPos flushed;
  {
    auto s = Format();
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 50; ++e) ASSERT_TRUE(AddSync(s.get(), 5, e, PayloadFor(5, e, 300)).ok());
    ASSERT_TRUE(Impl(s.get())->FlushIndexForTest().ok());
    flushed = Impl(s.get())->durable_index_position();
    for (int64_t e = 50; e < 80; ++e) ASSERT_TRUE(AddSync(s.get(), 5, e, PayloadFor(5, e, 300)).ok());
    s->CrashForTest();
  }
  auto s = Reopen();
  ASSERT_TRUE(s);
  const ReplayStats& rs = Impl(s.get())->replay_stats();
  EXPECT_EQ(rs.start, flushed);
  EXPECT_EQ(rs.entries, 30u) << "only the entries after the flushed position are replayed";
  EXPECT_EQ(rs.torn_tails, 0u);
  for (int64_t e = 0; e < 80; ++e) ExpectEntry(s.get(), 5, e, PayloadFor(5, e, 300));
  EXPECT_EQ(s->GetSegment(SegmentId(5)).last_entry, EntryId(79));
  // A clean close flushes: the next start replays nothing.
  ASSERT_TRUE(s->Close().ok());
  s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_EQ(Impl(s.get())->replay_stats().entries, 0u);
  ExpectEntry(s.get(), 5, 79, PayloadFor(5, 79, 300));
}

TEST_F(StoreTest, TailCacheEvictsAndEvictedEntriesComeFromDisk) {
  StoreOptions o = SmallOptions(dir_.data(), true);
  o.cache_bytes = 64 << 10;
  auto s = MustOpen(o);
  ASSERT_TRUE(s);
  for (int64_t e = 0; e < 200; ++e) ASSERT_TRUE(AddSync(s.get(), 1, e, PayloadFor(1, e, 2000)).ok());
  EXPECT_LE(Impl(s.get())->tail_cache().used_bytes(), 64u << 10);
  ReadResult newest = ReadSync(s.get(), 1, 199);
  ASSERT_TRUE(newest.status.ok());
  EXPECT_TRUE(newest.from_cache);
  ReadResult old = ReadSync(s.get(), 1, 0);
  ASSERT_TRUE(old.status.ok());
  EXPECT_FALSE(old.from_cache);
  EXPECT_EQ(old.payload.ToString(), PayloadFor(1, 0, 2000));
  for (int64_t e = 0; e < 200; ++e) ExpectEntry(s.get(), 1, e, PayloadFor(1, e, 2000));
  EXPECT_GT(s->probe()->cache_hits_total.load(), 0u);
  EXPECT_GT(s->probe()->cache_misses_total.load(), 100u);
  ASSERT_TRUE(s->Close().ok());
}

TEST_F(StoreTest, BackPressureRejectsInsteadOfGrowing) {
  FaultInjectionEnv env(Env::Posix());
  StoreOptions o = SmallOptions(dir_.data(), true, &env);
  o.journal_queue_max_bytes = 64 << 10;
  o.journal_queue_max_records = 16;
  o.journal_max_batch_bytes = 32 << 10;
  auto s = MustOpen(o);
  ASSERT_TRUE(s);
  env.SetSyncDelayUs(20000);  // a 20 ms fdatasync
  MemoryBudget budget(1 << 30);
  Waiter w;
  std::atomic<int> ok{0}, too_many{0}, other{0};
  int64_t peak_queue = 0, peak_mem = 0;
  const std::string p(4000, 'q');
  const uint32_t crc = crc32c::Value(p.data(), p.size());
  for (int i = 0; i < 600; ++i) {
    ChunkRef c(Chunk::TryAllocate(p.size(), &budget));
    std::memcpy(c->data(), p.data(), p.size());
    const uint8_t* d = c->data();
    w.Add();
    s->AddEntry(SegmentId(1), EntryId(i), EntryId(-1), crc, Slice(std::move(c), d, p.size()), false,
                [&](const Status& st) {
                  if (st.ok()) {
                    ok.fetch_add(1);
                  } else if (st.Is(NodeErrc::kTooManyRequests)) {
                    too_many.fetch_add(1);
                  } else {
                    other.fetch_add(1);
                  }
                  w.Done();
                });
    peak_queue = std::max(peak_queue, s->probe()->journal_queue_bytes.load());
    peak_mem = std::max(peak_mem, budget.used());
    if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(w.Wait());
  EXPECT_GT(too_many.load(), 300) << "most adds must be refused while the disk is slow";
  EXPECT_GT(ok.load(), 16);
  EXPECT_EQ(other.load(), 0);
  EXPECT_LE(peak_queue, 64 << 10);
  // Queue bound + the journal's batches in flight (4 x 32 KiB) + the one being built.
  EXPECT_LE(peak_mem, (64 << 10) + 5 * (40 << 10));
  EXPECT_EQ(s->probe()->rejected_too_many_total.load(), static_cast<uint64_t>(too_many.load()));
  env.SetSyncDelayUs(0);
  ASSERT_TRUE(s->Close().ok());
}

TEST_F(StoreTest, FsyncErrorMakesTheNodeUnhealthyAndNothingLaterIsAcked) {
  FaultInjectionEnv env(Env::Posix());
  {
    auto s = Format(&env);
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 20; ++e) ASSERT_TRUE(AddSync(s.get(), 1, e, PayloadFor(1, e, 100)).ok());
    env.FailNthSync(1, JournalFileName(1));  // the journal's sync, not the preallocator's
    Waiter w;
    std::atomic<int> unhealthy{0}, ok{0};
    for (int64_t e = 20; e < 40; ++e) {
      w.Add();
      const std::string p = PayloadFor(1, e, 100);
      s->AddEntry(SegmentId(1), EntryId(e), EntryId(-1), crc32c::Value(p.data(), p.size()), Slice::CopyOf(p), false,
                  [&](const Status& st) {
                    if (st.ok()) ok.fetch_add(1);
                    if (st.Is(NodeErrc::kUnhealthy)) unhealthy.fetch_add(1);
                    w.Done();
                  });
    }
    ASSERT_TRUE(w.Wait());
    EXPECT_EQ(ok.load(), 0);
    EXPECT_EQ(unhealthy.load(), 20);
    StoreInfo info = s->Info();
    EXPECT_FALSE(info.healthy);
    EXPECT_NE(info.unhealthy_reason.find("fdatasync"), std::string::npos) << info.unhealthy_reason;
    EXPECT_EQ(s->probe()->healthy.load(), 0);
    EXPECT_EQ(s->probe()->journal_fsync_errors_total.load(), 1u);
    EXPECT_TRUE(AddSync(s.get(), 1, 40, "after").Is(NodeErrc::kUnhealthy));
    EXPECT_TRUE(ReadSync(s.get(), 1, 0, true).status.Is(NodeErrc::kUnhealthy));
    s->CrashForTest();
    ASSERT_TRUE(env.SimulateCrash(FaultInjectionEnv::CrashMode::kDropUnsynced).ok());
  }
  auto s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->Info().healthy);
  for (int64_t e = 0; e < 20; ++e) ExpectEntry(s.get(), 1, e, PayloadFor(1, e, 100));
  EXPECT_EQ(s->GetSegment(SegmentId(1)).last_entry, EntryId(19));
  ASSERT_TRUE(s->Close().ok());
}

TEST_F(StoreTest, WriteErrorAlsoStopsTheJournal) {
  FaultInjectionEnv env(Env::Posix());
  auto s = Format(&env);
  ASSERT_TRUE(s);
  ASSERT_TRUE(AddSync(s.get(), 1, 0, "ok").ok());
  env.FailNthWrite(1, JournalFileName(1));
  EXPECT_TRUE(AddSync(s.get(), 1, 1, "lost").Is(NodeErrc::kUnhealthy));
  EXPECT_TRUE(AddSync(s.get(), 1, 2, "later").Is(NodeErrc::kUnhealthy));
  EXPECT_FALSE(s->Info().healthy);
  s->CrashForTest();
}

// The last record of the journal is cut short (as if the crash came mid-write).
void TornTailCase(TempDir& dir, bool flip_instead) {
  {
    auto s = MustOpen(SmallOptions(dir.data(), true));
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 30; ++e) ASSERT_TRUE(AddSync(s.get(), 1, e, PayloadFor(1, e, 700)).ok());
    s->CrashForTest();
  }
  auto recs = ScanJournal(dir.data());
  ASSERT_EQ(recs.size(), 30u);
  const OnDisk& last = recs.back();
  ASSERT_EQ(last.h.entry, 29);
  if (flip_instead) {
    FlipByte(last.path, last.offset + kRecordHeaderSize + 100);
  } else {
    PatchFile(last.path, last.offset + 200, std::string(kRecordHeaderSize + 700 - 200, '\0'));
  }
  {
    auto s = MustOpen(SmallOptions(dir.data(), false));
    ASSERT_TRUE(s);
    EXPECT_EQ(Impl(s.get())->replay_stats().torn_tails, 1u);
    EXPECT_EQ(Impl(s.get())->replay_stats().corrupt_records, 0u);
    EXPECT_TRUE(s->Info().damaged_segments.empty());
    for (int64_t e = 0; e < 29; ++e) ExpectEntry(s.get(), 1, e, PayloadFor(1, e, 700));
    EXPECT_TRUE(ReadSync(s.get(), 1, 29).status.Is(NodeErrc::kNoSuchEntry));
    // The node goes on writing after the cut.
    ASSERT_TRUE(AddSync(s.get(), 1, 29, "rewritten", -1, true).ok());
    s->CrashForTest();
  }
  // The tail was cut off for good: the next start sees no torn tail and no corruption.
  auto s = MustOpen(SmallOptions(dir.data(), false));
  ASSERT_TRUE(s);
  EXPECT_EQ(Impl(s.get())->replay_stats().torn_tails, 0u);
  EXPECT_EQ(Impl(s.get())->replay_stats().corrupt_records, 0u);
  EXPECT_TRUE(s->Info().damaged_segments.empty());
  ExpectEntry(s.get(), 1, 29, "rewritten");
  ASSERT_TRUE(s->Close().ok());
}

TEST_F(StoreTest, TornTailTruncatedRecordIsCutOff) { TornTailCase(dir_, false); }
TEST_F(StoreTest, TornTailFlippedByteIsCutOff) { TornTailCase(dir_, true); }

// A bad record in the middle (followed by valid ones) is corruption.
void MidJournalCase(TempDir& dir, bool header) {
  {
    auto s = MustOpen(SmallOptions(dir.data(), true));
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 20; ++e) {
      for (uint64_t seg = 1; seg <= 3; ++seg) ASSERT_TRUE(AddSync(s.get(), seg, e, PayloadFor(seg, e, 400)).ok());
    }
    s->CrashForTest();
  }
  auto recs = ScanJournal(dir.data());
  ASSERT_EQ(recs.size(), 60u);
  const OnDisk* victim = nullptr;
  for (const auto& r : recs) {
    if (r.h.segment == 2 && r.h.entry == 10) victim = &r;
  }
  ASSERT_NE(victim, nullptr);
  FlipByte(victim->path, victim->offset + (header ? 9 : kRecordHeaderSize + 5));
  auto s = MustOpen(SmallOptions(dir.data(), false));
  ASSERT_TRUE(s);
  const ReplayStats& rs = Impl(s.get())->replay_stats();
  EXPECT_EQ(rs.corrupt_records, 1u);
  EXPECT_EQ(rs.torn_tails, 0u);
  StoreInfo info = s->Info();
  if (header) {
    // The header is bad: every segment with records in that file is suspect.
    EXPECT_NE(std::find(info.damaged_segments.begin(), info.damaged_segments.end(), 2u), info.damaged_segments.end());
  } else {
    EXPECT_EQ(info.damaged_segments, std::vector<uint64_t>{2});
    for (uint64_t seg : {1u, 3u}) {
      for (int64_t e = 0; e < 20; ++e) ExpectEntry(s.get(), seg, e, PayloadFor(seg, e, 400));
    }
  }
  EXPECT_TRUE(ReadSync(s.get(), 2, 3).status.Is(NodeErrc::kIoError));
  EXPECT_TRUE(ReadSync(s.get(), 2, 10).status.Is(NodeErrc::kIoError));
  EXPECT_TRUE(s->GetSegment(SegmentId(2)).damaged);
  EXPECT_TRUE(AddSync(s.get(), 2, 20, "x").Is(NodeErrc::kIoError));
  // Damage is durable.
  ASSERT_TRUE(s->Close().ok());
  s = MustOpen(SmallOptions(dir.data(), false));
  ASSERT_TRUE(s);
  EXPECT_EQ(Impl(s.get())->replay_stats().corrupt_records, 0u);
  info = s->Info();
  EXPECT_NE(std::find(info.damaged_segments.begin(), info.damaged_segments.end(), 2u), info.damaged_segments.end());
  EXPECT_TRUE(ReadSync(s.get(), 2, 3).status.Is(NodeErrc::kIoError));
}

TEST_F(StoreTest, MidJournalPayloadCorruptionDamagesThatSegmentOnly) { MidJournalCase(dir_, false); }
TEST_F(StoreTest, MidJournalHeaderCorruptionDamagesTheFilesSegments) { MidJournalCase(dir_, true); }

TEST_F(StoreTest, ReadsVerifyTheRecordAndNeverReturnBadBytes) {
  {
    auto s = Format();
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 10; ++e) {
      ASSERT_TRUE(AddSync(s.get(), 4, e, PayloadFor(4, e, 300)).ok());
      ASSERT_TRUE(AddSync(s.get(), 6, e, PayloadFor(6, e, 300)).ok());
    }
    ASSERT_TRUE(s->Close().ok());  // indexed and flushed: replay will not look at these records again
  }
  for (const auto& r : ScanJournal(dir_.data())) {
    if (r.h.segment == 4 && r.h.entry == 3) FlipByte(r.path, r.offset + kRecordHeaderSize + 7);
  }
  auto s = Reopen();
  ASSERT_TRUE(s);
  ReadResult r = ReadSync(s.get(), 4, 3);
  EXPECT_TRUE(r.status.Is(NodeErrc::kIoError)) << r.status.ToString();
  EXPECT_FALSE(r.has_entry);
  EXPECT_TRUE(r.payload.empty());
  EXPECT_EQ(s->Info().damaged_segments, std::vector<uint64_t>{4});
  EXPECT_TRUE(ReadSync(s.get(), 4, 4).status.Is(NodeErrc::kIoError));
  for (int64_t e = 0; e < 10; ++e) ExpectEntry(s.get(), 6, e, PayloadFor(6, e, 300));
  ASSERT_TRUE(s->Close().ok());
  s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Info().damaged_segments, std::vector<uint64_t>{4});
}

TEST_F(StoreTest, FencingRefusesPlainAddsAndSurvivesCrash) {
  {
    auto s = Format();
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 5; ++e) ASSERT_TRUE(AddSync(s.get(), 1, e, PayloadFor(1, e, 50), e - 1).ok());
    ReadResult r = ReadSync(s.get(), 1, 4, /*fence=*/true);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.payload.ToString(), PayloadFor(1, 4, 50));
    EXPECT_TRUE(r.segment.fenced);
    EXPECT_EQ(r.segment.lac, EntryId(3));
    EXPECT_TRUE(AddSync(s.get(), 1, 5, "plain").Is(NodeErrc::kFenced));
    EXPECT_EQ(s->probe()->rejected_fenced_total.load(), 1u);
    ASSERT_TRUE(AddSync(s.get(), 1, 5, "recovery", 4, /*recovery=*/true).ok());
    ExpectEntry(s.get(), 1, 5, "recovery");
    // A second fence on an already durable fence answers directly.
    EXPECT_TRUE(ReadSync(s.get(), 1, 5, true).status.ok());
    // A fence on an unknown segment creates it, durably fenced; never NO_SUCH_SEGMENT.
    ReadResult u = ReadSync(s.get(), 99, -1, /*fence=*/true);
    EXPECT_TRUE(u.status.Is(NodeErrc::kNoSuchEntry)) << u.status.ToString();
    EXPECT_TRUE(u.segment.exists);
    EXPECT_TRUE(u.segment.fenced);
    EXPECT_TRUE(AddSync(s.get(), 99, 0, "plain").Is(NodeErrc::kFenced));
    EXPECT_EQ(s->probe()->fences_total.load(), 3u);
    s->CrashForTest();
  }
  auto s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->GetSegment(SegmentId(1)).fenced);
  EXPECT_TRUE(s->GetSegment(SegmentId(99)).fenced);
  EXPECT_TRUE(AddSync(s.get(), 1, 6, "plain").Is(NodeErrc::kFenced));
  EXPECT_TRUE(AddSync(s.get(), 99, 0, "plain").Is(NodeErrc::kFenced));
  ExpectEntry(s.get(), 1, 5, "recovery");
  ASSERT_TRUE(s->Close().ok());
}

// Regression for the BookKeeper fencing race (apache/bookkeeper#2614): an add
// acknowledged before the fence reply must be readable after it, and no add
// submitted after the fence call returned may be acknowledged.
TEST_F(StoreTest, FenceRaceEveryAckedAddIsReadableAfterTheFence) {
  auto s = Format();
  ASSERT_TRUE(s);
  constexpr int kThreads = 4;
  constexpr uint64_t kSeg = 8;
  std::atomic<bool> fence_returned{false}, stop{false};
  std::mutex mu;
  std::vector<int64_t> acked;              // entry ids acknowledged OK
  std::vector<int64_t> acked_after_fence;  // OK answers to adds submitted after the fence call returned
  std::atomic<int> outstanding{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t i = 0; !stop.load(); ++i) {
        const int64_t e = i * kThreads + t;
        const bool after = fence_returned.load();
        const std::string p = PayloadFor(kSeg, e, 64 + static_cast<size_t>(e % 500));
        outstanding.fetch_add(1);
        s->AddEntry(SegmentId(kSeg), EntryId(e), EntryId(-1), crc32c::Value(p.data(), p.size()), Slice::CopyOf(p),
                    false, [&, e, after](const Status& st) {
                      if (st.ok()) {
                        std::lock_guard<std::mutex> l(mu);
                        acked.push_back(e);
                        if (after) acked_after_fence.push_back(e);
                      }
                      outstanding.fetch_sub(1);
                    });
        if (after && i > 2000) break;
        if (e % 64 == 0) std::this_thread::yield();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  std::promise<ReadResult> fenced;
  s->ReadEntry(SegmentId(kSeg), EntryId(0), /*fence=*/true, [&](ReadResult&& r) { fenced.set_value(std::move(r)); });
  fence_returned = true;
  ReadResult fr = fenced.get_future().get();
  ASSERT_TRUE(fr.status.ok() || fr.status.Is(NodeErrc::kNoSuchEntry)) << fr.status.ToString();
  std::vector<int64_t> acked_before_reply;
  {
    std::lock_guard<std::mutex> l(mu);
    acked_before_reply = acked;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  stop = true;
  for (auto& t : threads) t.join();
  while (outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_GT(acked_before_reply.size(), 10u);
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_TRUE(acked_after_fence.empty()) << acked_after_fence.size() << " adds acknowledged after the fence";
    // Every acknowledged add (including ones whose ack raced the fence reply) is readable.
    for (int64_t e : acked) ExpectEntry(s.get(), kSeg, e, PayloadFor(kSeg, e, 64 + static_cast<size_t>(e % 500)));
  }
  EXPECT_GE(s->GetSegment(SegmentId(kSeg)).last_entry.value(),
            *std::max_element(acked_before_reply.begin(), acked_before_reply.end()));
  EXPECT_GT(s->probe()->rejected_fenced_total.load(), 0u);
  ASSERT_TRUE(s->Close().ok());
}

TEST_F(StoreTest, DeleteSegmentsFreesDiskAndStaysDeleted) {
  auto s = Format();
  ASSERT_TRUE(s);
  // About 8 journal files (256 KiB each) of entries in segments 1 and 2.
  Waiter w;
  for (int64_t e = 0; e < 250; ++e) {
    for (uint64_t seg = 1; seg <= 2; ++seg) {
      const std::string p = PayloadFor(seg, e, 4000);
      w.Add();
      s->AddEntry(SegmentId(seg), EntryId(e), EntryId(-1), crc32c::Value(p.data(), p.size()), Slice::CopyOf(p), false,
                  [&](const Status& st) {
                    EXPECT_TRUE(st.ok()) << st.ToString();
                    w.Done();
                  });
    }
  }
  ASSERT_TRUE(w.Wait());
  ASSERT_TRUE(AddSync(s.get(), 3, 0, "keep").ok());
  uint64_t bytes_before = 0;
  const size_t files_before = CountJournalFiles(dir_.data(), &bytes_before);
  ASSERT_GE(files_before, 6u);
  uint32_t n = 0;
  ASSERT_TRUE(DeleteSync(s.get(), {SegmentId(1), SegmentId(2), SegmentId(1234)}, &n).ok());
  EXPECT_EQ(n, 2u);
  EXPECT_TRUE(ReadSync(s.get(), 1, 0).status.Is(NodeErrc::kNoSuchSegment));
  EXPECT_TRUE(AddSync(s.get(), 1, 250, "again").Is(NodeErrc::kNoSuchSegment));
  EXPECT_TRUE(AddSync(s.get(), 1234, 0, "never").Is(NodeErrc::kNoSuchSegment));
  EXPECT_TRUE(ReadSync(s.get(), 2, 0, /*fence=*/true).status.Is(NodeErrc::kNoSuchSegment));
  // GC runs on the index thread after the delete is indexed and flushed.
  for (int i = 0; i < 500 && Impl(s.get())->journal_files_removed() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  uint64_t bytes_after = 0;
  const size_t files_after = CountJournalFiles(dir_.data(), &bytes_after);
  EXPECT_LE(files_after, 3u) << "before: " << files_before;
  EXPECT_LT(bytes_after, bytes_before);
  EXPECT_GT(Impl(s.get())->journal_files_removed(), 0u);
  ExpectEntry(s.get(), 3, 0, "keep");
  s->CrashForTest();
  s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->GetSegment(SegmentId(1)).deleted);
  EXPECT_TRUE(s->GetSegment(SegmentId(1234)).deleted);
  EXPECT_TRUE(ReadSync(s.get(), 2, 5).status.Is(NodeErrc::kNoSuchSegment));
  EXPECT_TRUE(AddSync(s.get(), 2, 0, "again").Is(NodeErrc::kNoSuchSegment));
  ExpectEntry(s.get(), 3, 0, "keep");
  EXPECT_EQ(s->Info().segments, 1u);
  ASSERT_TRUE(s->Close().ok());
  s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->GetSegment(SegmentId(2)).deleted);
  ASSERT_TRUE(s->Close().ok());
}

// A client's payload that embeds a well-formed DELETE record (sealed as a
// client could: without the node's secret per-file salt) at an aligned
// offset, in a record whose header is then corrupted: replay's forward scan
// must not take the forged record for a real one.
TEST_F(StoreTest, ForgedRecordInAPayloadIsNeverReplayed) {
  constexpr uint64_t kVictim = 7, kCarrier = 1;
  {
    auto s = Format();
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 5; ++e) ASSERT_TRUE(AddSync(s.get(), kVictim, e, PayloadFor(kVictim, e, 200)).ok());
    ASSERT_TRUE(s->Close().ok());  // the victim's records stay in an earlier file than the carrier's
  }
  // The forged record: DELETE [kVictim], header CRC unsalted (seed 0).
  const std::string ids = EncodeDeletePayload({kVictim});
  RecordHeader d;
  d.type = RecordType::kDelete;
  d.segment = 0;
  d.entry = -1;
  d.lac = -1;
  d.payload_len = static_cast<uint32_t>(ids.size());
  d.payload_crc = crc32c::Value(ids.data(), ids.size());
  std::string forged(kRecordHeaderSize, '\0');
  EncodeHeader(d, /*seed=*/0, reinterpret_cast<uint8_t*>(forged.data()));
  forged += ids;
  // Carrier payload: 16 bytes of filler, then the forged record (at record offset 48 + 16: 8-aligned).
  const std::string carrier = std::string(16, 'x') + forged + std::string(40, 'y');
  {
    auto s = Reopen();
    ASSERT_TRUE(s);
    ASSERT_TRUE(AddSync(s.get(), kCarrier, 0, carrier).ok());
    for (int64_t e = 1; e < 10; ++e) ASSERT_TRUE(AddSync(s.get(), kCarrier, e, PayloadFor(kCarrier, e, 100)).ok());
    s->CrashForTest();
  }
  const OnDisk* victim = nullptr;
  const auto recs = ScanJournal(dir_.data());
  for (const auto& r : recs) {
    if (r.h.segment == kCarrier && r.h.entry == 0) victim = &r;
  }
  ASSERT_NE(victim, nullptr);
  FlipByte(victim->path, victim->offset + 9);  // the carrier's header (segment id): unreadable
  auto s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_EQ(Impl(s.get())->replay_stats().corrupt_records, 1u);
  EXPECT_EQ(Impl(s.get())->replay_stats().deletes, 0u) << "a DELETE forged in a payload was replayed";
  EXPECT_FALSE(s->GetSegment(SegmentId(kVictim)).deleted);
  for (int64_t e = 0; e < 5; ++e) ExpectEntry(s.get(), kVictim, e, PayloadFor(kVictim, e, 200));
  ASSERT_TRUE(s->Close().ok());
  s = Reopen();
  ASSERT_TRUE(s);
  for (int64_t e = 0; e < 5; ++e) ExpectEntry(s.get(), kVictim, e, PayloadFor(kVictim, e, 200));
  ASSERT_TRUE(s->Close().ok());
}

// An unreadable header in the middle of the journal: the segments of the lost
// record cannot be known, so the node must never again say "no such entry"
// (or "no such segment" for a segment it does not know to be deleted).
TEST_F(StoreTest, LostUnknownRegionNeverAnswersNoSuchEntry) {
  {
    auto s = Format();
    ASSERT_TRUE(s);
    ASSERT_TRUE(AddSync(s.get(), 2, 0, PayloadFor(2, 0, 300)).ok());
    ASSERT_TRUE(AddSync(s.get(), 3, 0, PayloadFor(3, 0, 300)).ok());
    ASSERT_TRUE(s->Close().ok());  // flushed: segment 2 entry 0 is known from the index
  }
  {
    auto s = Reopen();
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 5; ++e) ASSERT_TRUE(AddSync(s.get(), 1, e, PayloadFor(1, e, 300)).ok());
    ASSERT_TRUE(AddSync(s.get(), 2, 1, PayloadFor(2, 1, 300)).ok());  // segment 2's only record in this file
    for (int64_t e = 5; e < 10; ++e) ASSERT_TRUE(AddSync(s.get(), 1, e, PayloadFor(1, e, 300)).ok());
    s->CrashForTest();
  }
  const OnDisk* victim = nullptr;
  const auto recs = ScanJournal(dir_.data());
  for (const auto& r : recs) {
    if (r.h.segment == 2 && r.h.entry == 1) victim = &r;
  }
  ASSERT_NE(victim, nullptr);
  FlipByte(victim->path, victim->offset + 9);  // header (segment id) unreadable; valid records follow
  auto check = [](Store* s) {
    StoreInfo info = s->Info();
    EXPECT_TRUE(info.lost_unknown_region);
    EXPECT_NE(info.lost_region.find("journal file"), std::string::npos) << info.lost_region;
    // The acknowledged entry whose record was lost: never NO_SUCH_ENTRY.
    ReadResult r = ReadSync(s, 2, 1);
    EXPECT_TRUE(r.status.Is(NodeErrc::kIoError)) << r.status.ToString();
    EXPECT_NE(r.status.message().find("lost a journal region of unknown content"), std::string::npos)
        << r.status.ToString();
    // An entry that never existed, on that segment and on others: the node cannot say.
    EXPECT_TRUE(ReadSync(s, 2, 7).status.Is(NodeErrc::kIoError));
    EXPECT_TRUE(ReadSync(s, 3, 1).status.Is(NodeErrc::kIoError));
    // An unknown segment: not NO_SUCH_SEGMENT either.
    EXPECT_TRUE(ReadSync(s, 99, 0).status.Is(NodeErrc::kIoError));
    EXPECT_TRUE(s->WriteLac(SegmentId(99), EntryId(0)).status().Is(NodeErrc::kIoError));
    EXPECT_TRUE(s->GetSegment(SegmentId(99)).lost_unknown_region);
    // A fencing read of an unknown entry as recovery does it.
    EXPECT_TRUE(ReadSync(s, 98, 0, /*fence=*/true).status.Is(NodeErrc::kIoError));
    // What is held is still served.
    ExpectEntry(s, 2, 0, PayloadFor(2, 0, 300));
    ExpectEntry(s, 3, 0, PayloadFor(3, 0, 300));
  };
  auto s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_EQ(Impl(s.get())->replay_stats().corrupt_records, 1u);
  EXPECT_FALSE(Impl(s.get())->replay_stats().lost_region.empty());
  check(s.get());
  // A deleted segment is known to be gone: still NO_SUCH_SEGMENT.
  ASSERT_TRUE(DeleteSync(s.get(), {SegmentId(3)}).ok());
  EXPECT_TRUE(ReadSync(s.get(), 3, 0).status.Is(NodeErrc::kNoSuchSegment));
  s->CrashForTest();
  // The flag is durable: it survives a crash and a clean restart.
  s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_EQ(Impl(s.get())->replay_stats().corrupt_records, 0u);
  EXPECT_TRUE(s->Info().lost_unknown_region);
  EXPECT_TRUE(ReadSync(s.get(), 2, 1).status.Is(NodeErrc::kIoError));
  EXPECT_TRUE(ReadSync(s.get(), 99, 0).status.Is(NodeErrc::kIoError));
  ASSERT_TRUE(s->Close().ok());
  s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->Info().lost_unknown_region);
  EXPECT_TRUE(ReadSync(s.get(), 2, 1).status.Is(NodeErrc::kIoError));
  EXPECT_TRUE(ReadSync(s.get(), 2, 7).status.Is(NodeErrc::kIoError));
  ExpectEntry(s.get(), 2, 0, PayloadFor(2, 0, 300));
  ASSERT_TRUE(s->Close().ok());
}

// Payload corruption with a readable header names its segment: nothing of
// unknown content is lost, and "no such entry" stays an honest answer.
TEST_F(StoreTest, PayloadCorruptionIsNotALostRegion) {
  {
    auto s = Format();
    ASSERT_TRUE(s);
    for (int64_t e = 0; e < 10; ++e) ASSERT_TRUE(AddSync(s.get(), 1, e, PayloadFor(1, e, 300)).ok());
    ASSERT_TRUE(AddSync(s.get(), 2, 0, PayloadFor(2, 0, 300)).ok());
    ASSERT_TRUE(AddSync(s.get(), 1, 10, PayloadFor(1, 10, 300)).ok());
    s->CrashForTest();
  }
  for (const auto& r : ScanJournal(dir_.data())) {
    if (r.h.segment == 2 && r.h.entry == 0) FlipByte(r.path, r.offset + kRecordHeaderSize + 3);
  }
  auto s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_EQ(Impl(s.get())->replay_stats().corrupt_records, 1u);
  EXPECT_FALSE(s->Info().lost_unknown_region);
  EXPECT_EQ(s->Info().damaged_segments, std::vector<uint64_t>{2});
  EXPECT_TRUE(ReadSync(s.get(), 1, 11).status.Is(NodeErrc::kNoSuchEntry));
  EXPECT_TRUE(ReadSync(s.get(), 99, 0).status.Is(NodeErrc::kNoSuchSegment));
  ASSERT_TRUE(s->Close().ok());
}

// A failed index write stops the node like a failed journal fsync: it turns
// unhealthy and later adds get UNHEALTHY; what was acknowledged survives.
TEST_F(StoreTest, IndexWriteErrorMakesTheNodeUnhealthy) {
  {
    auto s = Format();
    ASSERT_TRUE(s);
    ASSERT_TRUE(AddSync(s.get(), 1, 0, "before").ok());
    ASSERT_TRUE(Impl(s.get())->FlushIndexForTest().ok());
    failpoint::Arm("index.write", 1);
    // Acknowledged once durable in the journal; its index write then fails.
    EXPECT_TRUE(AddSync(s.get(), 1, 1, "journaled").ok());
    for (int i = 0; i < 500 && s->Info().healthy; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    failpoint::DisarmAll();
    StoreInfo info = s->Info();
    EXPECT_FALSE(info.healthy);
    EXPECT_NE(info.unhealthy_reason.find("index"), std::string::npos) << info.unhealthy_reason;
    EXPECT_EQ(s->probe()->healthy.load(), 0);
    EXPECT_TRUE(AddSync(s.get(), 1, 2, "after").Is(NodeErrc::kUnhealthy));
    EXPECT_TRUE(ReadSync(s.get(), 1, 0).status.Is(NodeErrc::kUnhealthy));
    EXPECT_TRUE(ReadSync(s.get(), 1, 0, /*fence=*/true).status.Is(NodeErrc::kUnhealthy));
    s->CrashForTest();
  }
  auto s = Reopen();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->Info().healthy);
  ExpectEntry(s.get(), 1, 0, "before");
  ExpectEntry(s.get(), 1, 1, "journaled");
  EXPECT_TRUE(ReadSync(s.get(), 1, 2).status.Is(NodeErrc::kNoSuchEntry));
  ASSERT_TRUE(s->Close().ok());
}

// GC removes a journal file while a reader is between opening it and caching
// the handle: the handle must not be cached (it would keep the deleted file's
// disk space until restart).
TEST(JournalFileCacheTest, AFileRemovedWhileBeingOpenedIsNeverCached) {
  TempDir dir;
  const std::string jdir = dir.path() + "/journal";
  ASSERT_TRUE(Env::Posix()->CreateDir(jdir).ok());
  for (uint64_t id : {1u, 2u}) {
    auto f = Env::Posix()->OpenFile(JoinPath(jdir, JournalFileName(id)), OpenMode::kCreateExcl);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->WriteZeros(0, 4096).ok());
  }
  JournalFileCache cache(Env::Posix(), jdir, "instance");
  // GC runs its whole removal of file 1 while Get(1) is between open and cache.
  cache.SetAfterOpenHookForTest([&](uint64_t id) {
    if (id != 1) return;
    cache.BeginRemove(1);
    ASSERT_TRUE(Env::Posix()->RemoveFile(JoinPath(jdir, JournalFileName(1))).ok());
    cache.EndRemove(1);
  });
  auto f = cache.Get(1);
  ASSERT_TRUE(f.ok()) << f.status().ToString();  // that one read may use the handle
  EXPECT_FALSE(cache.CachedForTest(1)) << "a handle to a removed journal file was cached";
  EXPECT_FALSE(cache.Get(1).ok()) << "the removed file is still served from the cache";
  // GC begins removing file 2 while Get(2) is between open and cache.
  cache.SetAfterOpenHookForTest([&](uint64_t id) {
    if (id == 2) cache.BeginRemove(2);
  });
  ASSERT_TRUE(cache.Get(2).ok());
  EXPECT_FALSE(cache.CachedForTest(2));
  EXPECT_TRUE(cache.Get(2).status().Is(CommonErrc::kNotFound)) << "a file being removed is not opened";
  cache.EndRemove(2);
  // Without a race, files are cached once.
  cache.SetAfterOpenHookForTest(nullptr);
  ASSERT_TRUE(cache.Get(2).ok());
  EXPECT_TRUE(cache.CachedForTest(2));
}

}  // namespace
}  // namespace dlog::node
