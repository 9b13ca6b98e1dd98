// A real `dlogd logstore` process on loopback, driven through NodeClient.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "common/clock.h"
#include "net/errors.h"
#include "protocol/node_errors.h"
#include "tests/support/node_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

uint64_t DirBytes(const std::string& dir) {
  uint64_t total = 0;
  for (auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<LogstoreNode>(dir_.path(), FreePort(),
                                           std::vector<std::string>{"--journal-file-size", "1MiB"});
    ASSERT_TRUE(node_->Start(/*format=*/true)) << node_->Stderr();
    client_ = std::make_unique<NodeClientHarness>(node_->address());
  }
  void TearDown() override {
    client_.reset();
    node_->Kill9();
  }
  node::NodeClient& c() { return client_->client(); }

  void Restart() {
    client_.reset();
    node_->Kill9();
    ASSERT_TRUE(node_->Start(/*format=*/false)) << node_->Stderr();
    client_ = std::make_unique<NodeClientHarness>(node_->address());
  }

  TempDir dir_;
  std::unique_ptr<LogstoreNode> node_;
  std::unique_ptr<NodeClientHarness> client_;
};

TEST_F(NodeTest, AddsReadBackAndInfoIsHealthy) {
  const SegmentId seg(11);
  for (int64_t e = 0; e < 200; ++e) {
    ASSERT_TRUE(c().AddEntrySync(seg, EntryId(e), EntryId(e - 1), Slice::CopyOf(PayloadFor(seg, EntryId(e)))).ok());
  }
  for (int64_t e = 0; e < 200; ++e) {
    auto r = c().ReadEntrySync(seg, EntryId(e));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->has_entry);
    EXPECT_EQ(r->payload.view(), PayloadFor(seg, EntryId(e)));
  }
  auto missing = c().ReadEntrySync(seg, EntryId(500));
  EXPECT_TRUE(missing.status().Is(NodeErrc::kNoSuchEntry)) << missing.status().ToString();
  auto unknown = c().ReadEntrySync(SegmentId(999), EntryId(0));
  EXPECT_TRUE(unknown.status().Is(NodeErrc::kNoSuchSegment)) << unknown.status().ToString();

  auto info = c().NodeInfoSync();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->healthy());
  EXPECT_EQ(info->node_id(), node_->address());
  EXPECT_EQ(info->protocol_version(), proto::NODE_PROTOCOL_V1);
  EXPECT_FALSE(info->instance_id().empty());

  // Metrics: served by prometheus-cpp on the metrics port, counting our adds.
  std::string metrics = HttpGet(node_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("dlog_node_adds_total 200"), std::string::npos) << metrics.substr(0, 2000);
  EXPECT_NE(metrics.find("dlog_node_add_latency_seconds_bucket"), std::string::npos);
  EXPECT_NE(metrics.find("dlog_node_fsync_latency_seconds_count"), std::string::npos);
  EXPECT_NE(metrics.find("dlog_node_healthy 1"), std::string::npos);
}

TEST_F(NodeTest, BadAddsAreRefusedAndChangeNothing) {
  const SegmentId seg(12);
  // lac must be below the entry id.
  Status st = c().AddEntrySync(seg, EntryId(3), EntryId(3), Slice::CopyOf("x"));
  EXPECT_TRUE(st.Is(NodeErrc::kBadRequest)) << st.ToString();
  EXPECT_NE(st.message().find("lac"), std::string::npos);
  st = c().AddEntrySync(SegmentId(0), EntryId(0), kNoEntry, Slice::CopyOf("x"));
  EXPECT_TRUE(st.Is(NodeErrc::kBadRequest)) << st.ToString();
  auto r = c().ReadEntrySync(seg, EntryId(3));
  EXPECT_TRUE(r.status().Is(NodeErrc::kNoSuchSegment)) << r.status().ToString();
}

TEST_F(NodeTest, FenceRefusesPlainAddsAcceptsRecoveryAndSurvivesKill9) {
  const SegmentId seg(21);
  for (int64_t e = 0; e < 10; ++e) {
    ASSERT_TRUE(c().AddEntrySync(seg, EntryId(e), EntryId(e - 1), Slice::CopyOf(PayloadFor(seg, EntryId(e)))).ok());
  }
  auto fence = c().ReadEntrySync(seg, EntryId(9), /*fence=*/true);
  ASSERT_TRUE(fence.ok()) << fence.status().ToString();
  EXPECT_TRUE(fence->fenced);
  EXPECT_EQ(fence->payload.view(), PayloadFor(seg, EntryId(9)));

  Status plain = c().AddEntrySync(seg, EntryId(10), EntryId(9), Slice::CopyOf("late"));
  EXPECT_TRUE(plain.Is(NodeErrc::kFenced)) << plain.ToString();
  Status recovery = c().AddEntrySync(seg, EntryId(9), EntryId(8), Slice::CopyOf(PayloadFor(seg, EntryId(9))), true);
  EXPECT_TRUE(recovery.ok()) << recovery.ToString();

  // A fence on a segment the node never saw creates it, fenced.
  auto fresh = c().ReadEntrySync(SegmentId(22), EntryId(0), /*fence=*/true);
  EXPECT_TRUE(fresh.status().Is(NodeErrc::kNoSuchEntry)) << fresh.status().ToString();
  EXPECT_TRUE(c().AddEntrySync(SegmentId(22), EntryId(0), kNoEntry, Slice::CopyOf("x")).Is(NodeErrc::kFenced));

  Restart();
  EXPECT_TRUE(c().AddEntrySync(seg, EntryId(10), EntryId(9), Slice::CopyOf("late")).Is(NodeErrc::kFenced));
  EXPECT_TRUE(c().AddEntrySync(SegmentId(22), EntryId(0), kNoEntry, Slice::CopyOf("x")).Is(NodeErrc::kFenced));
  auto lac = c().ReadLacSync(seg);
  ASSERT_TRUE(lac.ok()) << lac.status().ToString();
  EXPECT_TRUE(lac->fenced);
  EXPECT_EQ(lac->last_entry, EntryId(9));
  for (int64_t e = 0; e < 10; ++e) {
    auto r = c().ReadEntrySync(seg, EntryId(e));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->payload.view(), PayloadFor(seg, EntryId(e)));
  }
}

TEST_F(NodeTest, LongPollWakesWhenLacPassesAndTimesOutOtherwise) {
  const SegmentId seg(31);
  ASSERT_TRUE(c().AddEntrySync(seg, EntryId(0), kNoEntry, Slice::CopyOf("e0")).ok());
  ASSERT_TRUE(c().AddEntrySync(seg, EntryId(1), EntryId(0), Slice::CopyOf("e1")).ok());
  // The node's LAC is 0; wait for entry 1 to become confirmed.
  std::atomic<bool> done{false};
  Status got;
  node::EntryReply reply_out;
  int64_t t0 = MonoMillis();
  int64_t t_done = 0;
  c().ReadEntry(seg, EntryId(1), false, 5000, [&](const Status& st, node::EntryReply&& r) {
    got = st;
    reply_out = std::move(r);
    t_done = MonoMillis();
    done = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(done.load()) << "long poll answered before the LAC reached the entry";
  // An explicit WriteLac confirms entry 1.
  auto w = c().WriteLacSync(seg, EntryId(1));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE(WaitFor([&] { return done.load(); }, 3000ms));
  EXPECT_TRUE(got.ok()) << got.ToString();
  EXPECT_EQ(reply_out.payload.view(), "e1");
  EXPECT_EQ(reply_out.lac, EntryId(1));
  EXPECT_LT(t_done - t0, 2000);

  // Nothing will confirm entry 5: the poll ends at its timeout with NO_SUCH_ENTRY and the LAC.
  t0 = MonoMillis();
  auto r = c().ReadEntrySync(seg, EntryId(5), false, 300);
  int64_t waited = MonoMillis() - t0;
  EXPECT_TRUE(r.status().Is(NodeErrc::kNoSuchEntry)) << r.status().ToString();
  EXPECT_GE(waited, 250);
}

TEST_F(NodeTest, WriteLacKeepsTheHighest) {
  const SegmentId seg(41);
  ASSERT_TRUE(c().AddEntrySync(seg, EntryId(0), kNoEntry, Slice::CopyOf("a")).ok());
  ASSERT_TRUE(c().WriteLacSync(seg, EntryId(7)).ok());
  auto w = c().WriteLacSync(seg, EntryId(3));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->lac, EntryId(7));
  auto r = c().ReadLacSync(seg);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lac, EntryId(7));
}

TEST_F(NodeTest, DeleteSegmentsFreesDiskAndStaysDeleted) {
  const std::string journal = node_->data_dir() + "/journal";
  const SegmentId doomed(51), kept(52);
  std::string big(16 * 1024, 'z');
  for (int64_t e = 0; e < 300; ++e) {  // ~4.8 MiB: several 1 MiB journal files
    ASSERT_TRUE(c().AddEntrySync(doomed, EntryId(e), EntryId(e - 1), Slice::CopyOf(big)).ok());
  }
  ASSERT_TRUE(c().AddEntrySync(kept, EntryId(0), kNoEntry, Slice::CopyOf("keep me")).ok());
  const uint64_t before = DirBytes(journal);
  ASSERT_TRUE(c().DeleteSegmentsSync({doomed}).ok());
  ASSERT_TRUE(WaitFor([&] { return DirBytes(journal) + (3u << 20) <= before; }, 10000ms))
      << "journal bytes before " << before << ", after " << DirBytes(journal);
  EXPECT_TRUE(c().ReadEntrySync(doomed, EntryId(0)).status().Is(NodeErrc::kNoSuchSegment));
  Restart();
  EXPECT_TRUE(c().ReadEntrySync(doomed, EntryId(0)).status().Is(NodeErrc::kNoSuchSegment));
  EXPECT_TRUE(c().AddEntrySync(doomed, EntryId(300), EntryId(299), Slice::CopyOf("x")).Is(NodeErrc::kNoSuchSegment));
  auto r = c().ReadEntrySync(kept, EntryId(0));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload.view(), "keep me");
}

// Cookie checks: a node that forgot what it acknowledged must never serve.
class CookieTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(CookieTest, WipedDataDirRefusesToStart) {
  LogstoreNode n(dir_.path(), FreePort());
  ASSERT_TRUE(n.Start(true)) << n.Stderr();
  EXPECT_EQ(n.Stop(), 0);
  fs::remove_all(n.data_dir());
  fs::create_directories(n.data_dir());
  Process* p = n.StartRaw(false);
  ASSERT_NE(p, nullptr);
  auto st = p->Wait(10000ms);
  ASSERT_TRUE(st.has_value()) << "node started on a wiped data dir";
  EXPECT_NE(WEXITSTATUS(*st), 0);
  EXPECT_NE(n.Stderr().find("no cookie"), std::string::npos) << n.Stderr();
}

TEST_F(CookieTest, SwappedDataDirRefusesToStart) {
  TempDir other;
  LogstoreNode a(dir_.path(), FreePort());
  LogstoreNode b(other.path(), FreePort());
  ASSERT_TRUE(a.Start(true)) << a.Stderr();
  ASSERT_TRUE(b.Start(true)) << b.Stderr();
  EXPECT_EQ(a.Stop(), 0);
  EXPECT_EQ(b.Stop(), 0);
  // Swap the two data dirs.
  fs::rename(a.data_dir(), dir_.Sub("tmp"));
  fs::rename(b.data_dir(), a.data_dir());
  fs::rename(dir_.Sub("tmp"), b.data_dir());
  Process* p = a.StartRaw(false);
  ASSERT_NE(p, nullptr);
  auto st = p->Wait(10000ms);
  ASSERT_TRUE(st.has_value()) << "node started on another node's data dir";
  EXPECT_NE(WEXITSTATUS(*st), 0);
  EXPECT_NE(a.Stderr().find("belongs to node " + b.address()), std::string::npos) << a.Stderr();
}

TEST_F(CookieTest, FormatRefusesAnExistingNode) {
  LogstoreNode n(dir_.path(), FreePort());
  ASSERT_TRUE(n.Start(true)) << n.Stderr();
  EXPECT_EQ(n.Stop(), 0);
  Process* p = n.StartRaw(true);
  auto st = p->Wait(10000ms);
  ASSERT_TRUE(st.has_value());
  EXPECT_NE(WEXITSTATUS(*st), 0);
  EXPECT_NE(n.Stderr().find("already formatted"), std::string::npos) << n.Stderr();
  // Without --format it starts and still has its identity.
  ASSERT_TRUE(n.Start(false)) << n.Stderr();
}

}  // namespace
}  // namespace dlog::test
