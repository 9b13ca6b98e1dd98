// node_durability: crash the store at many points through the fault-injecting
// Env, drop everything that was not synced (or tear the unsynced writes), and
// check that every acknowledged entry, fence and delete survived and that no
// read returns wrong bytes. DESIGN.md "Tests and benchmarks": SIGKILL keeps
// the page cache, so only this kind of test catches a missing fsync.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/logging.h"
#include "logstore/node/fault_injection_env.h"
#include "store_test_util.h"

namespace dlog::node {
namespace {

using testing::MustOpen;
using testing::ReadSync;
using testing::TempDir;

constexpr uint64_t kSegments = 4;  // segments 1..4, one adder thread each
constexpr int64_t kEntriesPerSegment = 150;
constexpr uint64_t kFencedSeg = 2;   // fenced at ~30%, then written with recovery adds
constexpr uint64_t kDeletedSeg = 3;  // deleted at ~60%
constexpr uint64_t kUnknownFencedSeg = 50;
constexpr int kMaxOutstanding = 3;

size_t SizeFor(uint64_t seg, int64_t e) {
  uint64_t x = seg * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(e) * 0xC2B2AE3D27D4EB4Full;
  x ^= x >> 29;
  return 1 + static_cast<size_t>(x % 8192);
}
std::string PayloadOf(uint64_t seg, int64_t e) { return testing::PayloadFor(seg, e, SizeFor(seg, e), 17); }

StoreOptions Options(const std::string& dir, bool format, Env* env) {
  StoreOptions o;
  o.data_dir = dir;
  o.node_id = "durable-node";
  o.format = format;
  o.journal_file_bytes = 256 << 10;  // small files: rolling and preallocation are exercised
  o.journal_max_batch_bytes = 48 << 10;
  o.cache_bytes = 256 << 10;
  o.index_flush_interval_ms = 15;  // flushes (and GC) during the run
  o.env = env;
  return o;
}

struct Outcome {
  std::mutex mu;
  std::set<std::pair<uint64_t, int64_t>> acked;
  std::set<std::pair<uint64_t, int64_t>> submitted;
  bool fence_acked = false, unknown_fence_acked = false;
  bool delete_submitted = false, delete_acked = false;
};

// Runs the workload against `s`; returns when every callback has run.
void RunWorkload(Store* s, Outcome* out) {
  std::atomic<int64_t> progress{0};  // adds submitted, all threads
  const int64_t total = static_cast<int64_t>(kSegments) * kEntriesPerSegment;
  std::atomic<bool> fence_done{false};
  std::atomic<int> callbacks_left{0};
  auto adder = [&](uint64_t seg) {
    std::atomic<int> outstanding{0};
    for (int64_t e = 0; e < kEntriesPerSegment; ++e) {
      while (outstanding.load() >= kMaxOutstanding) std::this_thread::sleep_for(std::chrono::microseconds(50));
      const std::string p = PayloadOf(seg, e);
      const bool recovery = seg == kFencedSeg && fence_done.load();
      {
        std::lock_guard<std::mutex> l(out->mu);
        out->submitted.insert({seg, e});
      }
      outstanding.fetch_add(1);
      callbacks_left.fetch_add(1);
      s->AddEntry(SegmentId(seg), EntryId(e), EntryId(e - 1), crc32c::Value(p.data(), p.size()), Slice::CopyOf(p),
                  recovery, [&, seg, e](const Status& st) {
                    if (st.ok()) {
                      std::lock_guard<std::mutex> l(out->mu);
                      out->acked.insert({seg, e});
                    }
                    outstanding.fetch_sub(1);
                    callbacks_left.fetch_sub(1);
                  });
      progress.fetch_add(1);
    }
    while (outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
  };
  std::vector<std::thread> threads;
  for (uint64_t seg = 1; seg <= kSegments; ++seg) threads.emplace_back(adder, seg);
  // The fencer and the deleter.
  while (progress.load() < total * 3 / 10) std::this_thread::sleep_for(std::chrono::microseconds(200));
  auto fence = [&](uint64_t seg, bool* acked) {
    std::promise<Status> p;
    s->ReadEntry(SegmentId(seg), EntryId(0), true, [&p](ReadResult&& r) { p.set_value(r.status); });
    Status st = p.get_future().get();
    // OK or NO_SUCH_ENTRY both mean the fence is durable and indexed.
    if (st.ok() || st.Is(NodeErrc::kNoSuchEntry)) {
      std::lock_guard<std::mutex> l(out->mu);
      *acked = true;
    }
  };
  fence(kFencedSeg, &out->fence_acked);
  fence_done = true;
  fence(kUnknownFencedSeg, &out->unknown_fence_acked);
  while (progress.load() < total * 6 / 10) std::this_thread::sleep_for(std::chrono::microseconds(200));
  {
    std::lock_guard<std::mutex> l(out->mu);
    out->delete_submitted = true;
  }
  std::promise<Status> dp;
  s->DeleteSegments({SegmentId(kDeletedSeg)}, [&dp](const Status& st, uint32_t) { dp.set_value(st); });
  if (dp.get_future().get().ok()) {
    std::lock_guard<std::mutex> l(out->mu);
    out->delete_acked = true;
  }
  for (auto& t : threads) t.join();
  while (callbacks_left.load() > 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
}

// Checks the reopened store against what was acknowledged.
void Verify(Store* s, Outcome& o, const std::string& what) {
  SCOPED_TRACE(what);
  size_t checked = 0;
  for (uint64_t seg = 1; seg <= kSegments; ++seg) {
    for (int64_t e = 0; e < kEntriesPerSegment; ++e) {
      const bool acked = o.acked.count({seg, e}) > 0;
      ReadResult r = ReadSync(s, seg, e);
      if (seg == kDeletedSeg && o.delete_acked) {
        ASSERT_TRUE(r.status.Is(NodeErrc::kNoSuchSegment)) << "deleted segment readable: " << r.status.ToString();
        continue;
      }
      if (seg == kDeletedSeg && o.delete_submitted && r.status.Is(NodeErrc::kNoSuchSegment))
        continue;  // unknown outcome
      if (r.status.ok()) {
        // Whatever is read must be exactly what was written (acked or not).
        ASSERT_TRUE(o.submitted.count({seg, e})) << "segment " << seg << " entry " << e << " was never written";
        ASSERT_EQ(r.payload.ToString(), PayloadOf(seg, e)) << "WRONG BYTES: segment " << seg << " entry " << e;
        ++checked;
        continue;
      }
      ASSERT_FALSE(acked) << "LOST acknowledged entry: segment " << seg << " entry " << e << ": "
                          << r.status.ToString();
      ASSERT_TRUE(r.status.Is(NodeErrc::kNoSuchEntry) || r.status.Is(NodeErrc::kNoSuchSegment))
          << "segment " << seg << " entry " << e << ": " << r.status.ToString();
    }
  }
  if (o.fence_acked) {
    EXPECT_TRUE(s->GetSegment(SegmentId(kFencedSeg)).fenced) << "acknowledged fence lost";
    EXPECT_TRUE(testing::AddSync(s, kFencedSeg, 1000, "late").Is(NodeErrc::kFenced));
  }
  if (o.unknown_fence_acked) {
    EXPECT_TRUE(s->GetSegment(SegmentId(kUnknownFencedSeg)).fenced) << "acknowledged fence of a new segment lost";
  }
  if (o.delete_acked) {
    EXPECT_TRUE(s->GetSegment(SegmentId(kDeletedSeg)).deleted) << "acknowledged delete lost";
    EXPECT_TRUE(testing::AddSync(s, kDeletedSeg, 1000, "again").Is(NodeErrc::kNoSuchSegment));
  }
  StoreInfo info = s->Info();
  EXPECT_TRUE(info.healthy);
  EXPECT_TRUE(info.damaged_segments.empty()) << "a crash must look like a torn tail, never like corruption";
  if (!o.delete_submitted) EXPECT_GE(checked, o.acked.size());
}

struct TrialResult {
  uint64_t ops = 0;
  size_t acked = 0;
};

TrialResult RunTrial(uint64_t crash_after, FaultInjectionEnv::CrashMode mode, uint64_t seed) {
  TempDir dir;
  FaultInjectionEnv env(Env::Posix(), seed);
  Outcome o;
  TrialResult tr;
  {
    auto s = MustOpen(Options(dir.data(), true, &env));
    if (!s) return tr;
    const uint64_t ops0 = env.ops();
    if (crash_after > 0) env.CrashAfterOps(crash_after);
    RunWorkload(s.get(), &o);
    tr.ops = env.ops() - ops0;
    tr.acked = o.acked.size();
    s->CrashForTest();
    Status st = env.SimulateCrash(mode);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  const std::string what = "crash after " + std::to_string(crash_after) + " ops (" +
                           (mode == FaultInjectionEnv::CrashMode::kTorn ? "torn" : "drop unsynced") + "), " +
                           std::to_string(o.acked.size()) + " acked";
  // Reopen on a clean env, twice: the first start may cut a torn tail, the
  // second must find the same data.
  for (int round = 0; round < 2; ++round) {
    auto s = MustOpen(Options(dir.data(), false, nullptr));
    if (!s) {
      ADD_FAILURE() << "reopen failed: " << what;
      return tr;
    }
    Verify(s.get(), o, what + (round ? " (second start)" : ""));
    if (round == 0) {
      s->CrashForTest();
    } else {
      EXPECT_TRUE(s->Close().ok());
    }
  }
  return tr;
}

TEST(NodeDurability, EveryAcknowledgedEntrySurvivesACrashAtAnyPoint) {
  const int64_t t0 = MonoMillis();
  const LogLevel saved = GetLogLevel();
  SetLogLevel(LogLevel::kError);  // a crash per trial is noisy; errors still show
  // Calibrate: how many mutating operations does the workload make?
  TrialResult full = RunTrial(0, FaultInjectionEnv::CrashMode::kDropUnsynced, 1);
  ASSERT_GT(full.ops, 50u);
  ASSERT_GT(full.acked, static_cast<size_t>(kEntriesPerSegment * 2));
  constexpr int kPoints = 100;
  size_t total_acked = 0;
  for (int i = 0; i < kPoints && !::testing::Test::HasFatalFailure(); ++i) {
    const uint64_t k = 1 + static_cast<uint64_t>(i) * full.ops / kPoints;
    const auto mode = (i % 3 == 2) ? FaultInjectionEnv::CrashMode::kTorn : FaultInjectionEnv::CrashMode::kDropUnsynced;
    TrialResult tr = RunTrial(k, mode, 100 + static_cast<uint64_t>(i));
    total_acked += tr.acked;
  }
  SetLogLevel(saved);
  std::cerr << "node_durability: " << kPoints << " crash points over " << full.ops << " operations, " << total_acked
            << " acknowledged entries checked, " << (MonoMillis() - t0) << " ms\n";
}

}  // namespace
}  // namespace dlog::node
