// node_crash: a client writes continuously to a real `dlogd logstore`
// process, which is killed with SIGKILL at random moments (at least 20 times)
// and restarted. After each restart every acknowledged entry reads back
// byte-identical, and no read ever returns corrupt data.
//
// SIGKILL keeps the page cache, so this cannot catch a missing fsync (the
// node_durability test does that); it catches everything else a crash can
// break: replay, index position, torn records, the cookie, restart itself.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "net/errors.h"
#include "protocol/node_errors.h"
#include "tests/support/node_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;

constexpr int kKills = 22;
constexpr int kSegmentsPerRound = 3;

struct Acked {
  std::mutex mu;
  std::map<std::pair<uint64_t, int64_t>, bool> entries;  // (segment, entry) acknowledged
};

// Writes entries to `segments` with a window of async adds until `stop`.
void WriteUntilStopped(node::NodeClient& client, const std::vector<SegmentId>& segments, Acked* acked,
                       std::atomic<bool>* stop, std::atomic<int64_t>* failures) {
  std::vector<int64_t> next(segments.size(), 0);
  std::atomic<int> in_flight{0};
  size_t turn = 0;
  while (!stop->load()) {
    if (in_flight.load() >= 64) {
      std::this_thread::sleep_for(200us);
      continue;
    }
    size_t i = turn++ % segments.size();
    SegmentId seg = segments[i];
    EntryId e(next[i]++);
    in_flight.fetch_add(1);
    client.AddEntry(seg, e, EntryId(e.value() - 1), Slice::CopyOf(PayloadFor(seg, e, 4096)), false,
                    [acked, seg, e, &in_flight, failures](const Status& st) {
                      if (st.ok()) {
                        std::lock_guard<std::mutex> l(acked->mu);
                        acked->entries[{seg.value(), e.value()}] = true;
                      } else {
                        failures->fetch_add(1);
                      }
                      in_flight.fetch_sub(1);
                    });
  }
  // Wait for every callback (the client fails what is in flight when the node dies).
  while (in_flight.load() > 0) std::this_thread::sleep_for(1ms);
}

// Reads every key back with a window of reads in flight; returns the first
// problem found ("" if every entry is there and byte-identical).
std::string VerifyAll(node::NodeClient& client, const std::vector<std::pair<uint64_t, int64_t>>& keys) {
  std::mutex mu;
  std::string problem;
  std::atomic<int> in_flight{0};
  for (const auto& key : keys) {
    while (in_flight.load() >= 128) std::this_thread::sleep_for(50us);
    in_flight.fetch_add(1);
    SegmentId seg(key.first);
    EntryId e(key.second);
    client.ReadEntry(seg, e, false, 0, [&, seg, e](const Status& st, node::EntryReply&& r) {
      std::string err;
      if (!st.ok()) {
        err = "acknowledged entry " + std::to_string(seg.value()) + "/" + std::to_string(e.value()) +
              " unreadable: " + st.ToString();
      } else if (!r.has_entry || r.payload.view() != PayloadFor(seg, e, 4096)) {
        err = "acknowledged entry " + std::to_string(seg.value()) + "/" + std::to_string(e.value()) +
              " reads back different bytes";
      }
      if (!err.empty()) {
        std::lock_guard<std::mutex> l(mu);
        if (problem.empty()) problem = err;
      }
      in_flight.fetch_sub(1);
    });
  }
  while (in_flight.load() > 0) std::this_thread::sleep_for(1ms);
  return problem;
}

TEST(NodeCrash, Kill9RepeatedlyLosesNoAcknowledgedEntry) {
  TempDir dir;
  LogstoreNode node(dir.path(), FreePort(), {"--journal-file-size", "2MiB"});
  std::mt19937 rng(static_cast<uint32_t>(time(nullptr)));
  Acked acked;
  int64_t total_failures = 0;
  for (int round = 0; round < kKills; ++round) {
    ASSERT_TRUE(node.Start(/*format=*/round == 0)) << "restart " << round << " failed:\n" << node.Stderr();
    {
      NodeClientHarness h(node.address(), 256, 3000);
      // What the last round acknowledged, and a random sample of older rounds,
      // reads back byte-identical (everything is checked after the last kill).
      std::vector<std::pair<uint64_t, int64_t>> check;
      {
        std::lock_guard<std::mutex> l(acked.mu);
        const uint64_t last_round_first_segment = static_cast<uint64_t>((round - 1) * 10 + 1);
        for (const auto& [key, ok] : acked.entries) {
          if (key.first >= last_round_first_segment || rng() % 50 == 0) check.push_back(key);
        }
      }
      std::string problem = VerifyAll(h.client(), check);
      ASSERT_TRUE(problem.empty()) << "round " << round << ": " << problem;
      // New segments each round; write until a random moment, then SIGKILL mid-stream.
      std::vector<SegmentId> segs;
      for (int s = 0; s < kSegmentsPerRound; ++s) segs.emplace_back(static_cast<uint64_t>(round * 10 + s + 1));
      std::atomic<bool> stop{false};
      std::atomic<int64_t> failures{0};
      std::thread writer(WriteUntilStopped, std::ref(h.client()), segs, &acked, &stop, &failures);
      std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 250));
      node.Kill9();
      stop = true;
      writer.join();
      total_failures += failures.load();
    }
  }
  // Final restart and full check.
  ASSERT_TRUE(node.Start(false)) << node.Stderr();
  NodeClientHarness h(node.address(), 256, 3000);
  std::vector<std::pair<uint64_t, int64_t>> all;
  for (const auto& [key, ok] : acked.entries) all.push_back(key);
  std::string problem = VerifyAll(h.client(), all);
  ASSERT_TRUE(problem.empty()) << "after the last restart: " << problem;
  const size_t n = all.size();
  EXPECT_GT(n, 1000u) << "too few entries were acknowledged for the test to mean much";
  std::printf("node_crash: %d kills, %zu acknowledged entries verified, %ld adds failed in flight\n", kKills, n,
              static_cast<long>(total_failures));
}

}  // namespace
}  // namespace dlog::test
