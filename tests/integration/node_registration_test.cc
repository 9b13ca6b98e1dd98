// `dlogd logstore --metadata zk://...` against a real ZooKeeper: the node
// registers itself as an ephemeral entry with its address, leaves on a clean
// shutdown, disappears when its session expires after a kill -9, and refuses to
// start when metadata remembers a different data dir for its node id.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>

#include "metadata/layout.h"
#include "metadata/records.h"
#include "metadata/zk_store.h"
#include "net/event_loop.h"
#include "tests/metadata/zk_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class NodeRegistrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(zk_.Start()) << zk_.Log();
    loop_.Start();
    metadata::ZkStoreOptions o;
    o.connect = zk_.connect();
    o.session_timeout = 2000ms;
    auto s = metadata::ZkStore::Open(o, &loop_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    meta_ = std::move(s).value();
  }
  void TearDown() override {
    if (meta_) meta_->CloseSync();
    meta_.reset();
    loop_.Stop();
  }

  std::vector<std::string> NodeArgs() {
    return {"--metadata", "zk://" + zk_.connect() + "/dlog", "--metadata-session-timeout", "1s"};
  }
  std::string NodePath(const LogstoreNode& n) { return layout_.Node(n.address()); }
  bool Registered(const LogstoreNode& n) {
    auto e = meta_->ExistsSync(NodePath(n));
    return e.ok() && e->has_value();
  }

  ZkServer zk_{200};
  net::EventLoop loop_{"test-meta"};
  std::unique_ptr<metadata::ZkStore> meta_;
  metadata::Layout layout_ = *metadata::Layout::Make("dlog");
};

TEST_F(NodeRegistrationTest, RegistersLeavesOnShutdownAndExpiresAfterKill9) {
  TempDir dir;
  LogstoreNode node(dir.path(), FreePort(), NodeArgs());
  ASSERT_TRUE(node.Start(true)) << node.Stderr();
  ASSERT_TRUE(Registered(node));
  auto data = meta_->GetSync(NodePath(node));
  ASSERT_TRUE(data.ok());
  auto reg = metadata::Decode<proto::NodeRegistration>(NodePath(node), data->data);
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  EXPECT_EQ(reg->address(), node.address());
  EXPECT_EQ(reg->cookie().node_id(), node.address());
  EXPECT_FALSE(reg->cookie().instance_id().empty());
  EXPECT_NE(data->stat.ephemeral_owner, 0);

  // Clean shutdown: gone at once.
  EXPECT_EQ(node.Stop(), 0);
  EXPECT_FALSE(Registered(node));

  // Restart, then kill -9: gone once the session expires.
  ASSERT_TRUE(node.Start(false)) << node.Stderr();
  ASSERT_TRUE(Registered(node));
  node.Kill9();
  EXPECT_TRUE(Registered(node)) << "an ephemeral entry should outlive its process until the session expires";
  EXPECT_TRUE(WaitFor([&] { return !Registered(node); }, 10000ms));

  // Restart right after a kill -9: the new process waits out the old entry and registers.
  ASSERT_TRUE(node.Start(false)) << node.Stderr();
  node.Kill9();
  ASSERT_TRUE(node.Start(false)) << node.Stderr();
  EXPECT_TRUE(Registered(node));
}

TEST_F(NodeRegistrationTest, WipedAndReformattedDataDirIsRefusedByTheMetadataCookie) {
  TempDir dir;
  LogstoreNode node(dir.path(), FreePort(), NodeArgs());
  ASSERT_TRUE(node.Start(true)) << node.Stderr();
  EXPECT_EQ(node.Stop(), 0);
  // Wipe the data dir and format a new one under the same node id: the disk
  // alone cannot tell, metadata can.
  fs::remove_all(node.data_dir());
  Process* p = node.StartRaw(/*format=*/true);
  ASSERT_NE(p, nullptr);
  auto st = p->Wait(20000ms);
  ASSERT_TRUE(st.has_value()) << "a re-formatted node started although metadata knows another instance";
  EXPECT_NE(WEXITSTATUS(*st), 0);
  EXPECT_NE(node.Stderr().find("wiped and re-formatted, or swapped"), std::string::npos) << node.Stderr();
  EXPECT_FALSE(Registered(node));
  // An operator who really replaces the node deletes the cookie record; then it starts.
  ASSERT_TRUE(meta_->DeleteSync(layout_.Cookie(node.address()), metadata::kAnyVersion).ok());
  fs::remove_all(node.data_dir());
  ASSERT_TRUE(node.Start(true)) << node.Stderr();
  EXPECT_TRUE(Registered(node));
}

TEST_F(NodeRegistrationTest, BadMetadataUrlIsRefused) {
  TempDir dir;
  LogstoreNode node(dir.path(), FreePort(), {"--metadata", "http://" + zk_.connect()});
  Process* p = node.StartRaw(true);
  auto st = p->Wait(10000ms);
  ASSERT_TRUE(st.has_value());
  EXPECT_NE(WEXITSTATUS(*st), 0);
  EXPECT_NE(node.Stderr().find("must start with zk://"), std::string::npos) << node.Stderr();
}

}  // namespace
}  // namespace dlog::test
