// ZooKeeper-only behaviour: re-read and compare after a connection loss,
// session expiry, last contact, a server that is not there.
#include <gtest/gtest.h>
#include <zookeeper/zookeeper.h>

#include <cstring>
#include <future>
#include <thread>

#include "common/clock.h"
#include "common/failpoint.h"
#include "tests/metadata/store_test_util.h"

namespace dlog::metadata {
namespace {

using std::chrono::milliseconds;
using testing::Recorder;
using testing::RunningLoop;

class ZkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::ZkServer::Available()) GTEST_SKIP() << "no ZooKeeper installed";
    ASSERT_TRUE(zk_.Start()) << zk_.Log();
    auto r = ZkStore::Open(testing::ZkOptions(zk_), loop_.get());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(r).value();
    store_->SubscribeSession(rec_.Session());
  }
  void TearDown() override {
    failpoint::DisarmAll();
    if (store_) store_->CloseSync();
    store_.reset();
  }

  test::ZkServer zk_{200};
  RunningLoop loop_;
  Recorder rec_;
  std::unique_ptr<ZkStore> store_;
};

#ifdef DLOG_FAILPOINTS
// The reply of an applied write is lost: the re-read recognises the write as
// ours and reports success; nothing is applied twice.
TEST_F(ZkStoreTest, LostReplyOfAnAppliedWriteIsRecognised) {
  ASSERT_TRUE(store_->CreateSync("/r", "").ok());
  failpoint::Arm("metadata.zk.lose_reply", 1);
  auto c = store_->CreateSync("/r/a", "v0");
  ASSERT_TRUE(c.ok()) << c.status().ToString();

  failpoint::Arm("metadata.zk.lose_reply", 1);
  auto s = store_->SetSync("/r/a", "v1", 0);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->version, 1);  // applied once, not twice

  failpoint::Arm("metadata.zk.lose_reply", 1);
  auto seq = store_->CreateSync("/r/lock-" + store_->SessionGuid() + "-", "me", CreateMode::kEphemeralSequential);
  ASSERT_TRUE(seq.ok()) << seq.status().ToString();
  EXPECT_EQ(store_->GetChildrenSync("/r")->size(), 2u);  // a and one lock node

  failpoint::Arm("metadata.zk.lose_reply", 1);
  auto m = store_->MultiSync({Op::Check("/r/a", 1), Op::Set("/r/a", "v2", 1), Op::Create("/r/b", "b")});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)[1].stat.version, 2);
  EXPECT_EQ((*m)[2].path, "/r/b");

  failpoint::Arm("metadata.zk.lose_reply", 1);
  EXPECT_TRUE(store_->DeleteSync("/r/b", 0).ok());
  EXPECT_FALSE(store_->ExistsSync("/r/b")->has_value());

  // A lost reply of a write that lost its race is still a conflict.
  failpoint::Arm("metadata.zk.lose_reply", 1);
  EXPECT_TRUE(store_->SetSync("/r/a", "late", 0).status().Is(MetaErrc::kBadVersion));
  EXPECT_EQ(store_->GetSync("/r/a")->data, "v2");
}

// The request never reached the server: the re-read finds it not applied and
// sends it again, once.
TEST_F(ZkStoreTest, WriteThatWasNotAppliedIsSentAgain) {
  ASSERT_TRUE(store_->CreateSync("/r", "").ok());
  failpoint::Arm("metadata.zk.drop_request", 1);
  ASSERT_TRUE(store_->CreateSync("/r/a", "v0").ok());
  failpoint::Arm("metadata.zk.drop_request", 2);
  auto s = store_->SetSync("/r/a", "v1", 0);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->version, 1);
  failpoint::Arm("metadata.zk.drop_request", 1);
  auto seq = store_->CreateSync("/r/s-", "uniq", CreateMode::kPersistentSequential);
  ASSERT_TRUE(seq.ok());
  failpoint::Arm("metadata.zk.drop_request", 1);
  ASSERT_TRUE(store_->MultiSync({Op::Set("/r/a", "v2", 1), Op::Delete(*seq, 0)}).ok());
  EXPECT_EQ(store_->GetChildrenSync("/r")->size(), 1u);
  EXPECT_EQ(store_->GetSync("/r/a")->stat.version, 2);
}
#endif

// A real connection loss: the server is killed and restarted (same port and
// data dir) while CAS increments are in flight. Every increment either
// succeeds exactly once or fails definitely; the final value and version
// agree with the successes.
TEST_F(ZkStoreTest, ServerRestartDuringCasWrites) {
  ASSERT_TRUE(store_->CreateSync("/counter", "0").ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::string failure;
  std::thread writer([&] {
    int32_t version = 0;
    int value = 0;
    while (!stop) {
      auto s = store_->SetSync("/counter", std::to_string(value + 1), version);
      if (!s.ok()) {
        failure = s.status().ToString();
        return;
      }
      ++value;
      version = s->version;
      ++ok;
    }
  });
  ASSERT_TRUE(test::WaitFor([&] { return ok > 20; }, milliseconds(10000)));
  zk_.Stop(/*hard=*/true);
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_TRUE(zk_.Start()) << zk_.Log();
  int at_restart = ok;
  ASSERT_TRUE(test::WaitFor([&] { return ok > at_restart + 20 || !failure.empty(); }, milliseconds(20000)));
  stop = true;
  writer.join();
  ASSERT_TRUE(failure.empty()) << failure;
  auto g = store_->GetSync("/counter");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->data, std::to_string(ok.load()));
  EXPECT_EQ(g->stat.version, ok.load());
  EXPECT_GE(rec_.CountSession(SessionState::kDisconnected), 1u);
  EXPECT_GE(rec_.CountSession(SessionState::kConnected), 1u);
  EXPECT_EQ(rec_.CountSession(SessionState::kExpired), 0u);
}

// Expire the session from a second handle with the same id and password.
bool ExpireSession(const std::string& connect, int64_t id, const std::string& passwd) {
  clientid_t cid{};
  cid.client_id = id;
  std::memcpy(cid.passwd, passwd.data(), std::min(passwd.size(), sizeof(cid.passwd)));
  zhandle_t* zh = zookeeper_init(connect.c_str(), nullptr, 2000, &cid, nullptr, 0);
  if (zh == nullptr) return false;
  bool connected = test::WaitFor([&] { return zoo_state(zh) == ZOO_CONNECTED_STATE; }, milliseconds(5000));
  zookeeper_close(zh);
  return connected;
}

TEST_F(ZkStoreTest, SessionExpiryIsReportedAndANewSessionIsMade) {
  ASSERT_TRUE(store_->CreateSync("/eph", "", CreateMode::kEphemeral).ok());
  ASSERT_TRUE(store_->CreateSync("/watched", "").ok());
  Recorder watches;
  std::promise<void> got;
  store_->Get(
      "/watched", [&](Result<NodeData>) { got.set_value(); }, watches.Watch());
  got.get_future().get();
  int64_t old_session = store_->SessionId();
  auto [id, passwd] = store_->SessionCredentials();
  ASSERT_EQ(id, old_session);

  bool expired = false;
  for (int attempt = 0; attempt < 5 && !expired; ++attempt) {
    ASSERT_TRUE(ExpireSession(zk_.connect(), id, passwd));
    expired = test::WaitFor([&] { return rec_.CountSession(SessionState::kExpired) > 0; }, milliseconds(5000));
  }
  ASSERT_TRUE(expired);
  bool saw_old = false;
  for (auto& e : rec_.session_events())
    saw_old = saw_old || (e.state == SessionState::kExpired && e.session_id == old_session);
  EXPECT_TRUE(saw_old);
  EXPECT_EQ(watches.CountWatch(WatchEventType::kSessionExpired, "/watched"), 1u);

  // A new session comes up by itself, and calls work again.
  ASSERT_TRUE(test::WaitFor([&] { return store_->SessionId() != old_session; }, milliseconds(10000)));
  ASSERT_TRUE(test::WaitFor(
      [&] {
        auto ev = rec_.session_events();
        return !ev.empty() && ev.back().state == SessionState::kConnected && ev.back().session_id != old_session;
      },
      milliseconds(10000)));
  EXPECT_FALSE(store_->ExistsSync("/eph")->has_value());
  auto c = store_->CreateSync("/eph", "", CreateMode::kEphemeral);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*store_->ExistsSync("/eph"))->ephemeral_owner, store_->SessionId());
}

TEST_F(ZkStoreTest, LastContactAdvancesWhileIdle) {
  int64_t t0 = store_->LastContactNanos();
  EXPECT_GT(t0, 0);
  std::this_thread::sleep_for(store_->SessionTimeout());
  int64_t t1 = store_->LastContactNanos();
  EXPECT_GT(t1, t0);
  // Heartbeats every timeout / 4: never older than about half the timeout.
  EXPECT_LT(MonoNanos() - t1, std::chrono::nanoseconds(store_->SessionTimeout()).count() * 3 / 4);

  // While the server is paused, last contact stops moving.
  zk_.Pause();
  std::this_thread::sleep_for(milliseconds(300));
  int64_t t2 = store_->LastContactNanos();
  std::this_thread::sleep_for(milliseconds(700));
  EXPECT_EQ(store_->LastContactNanos(), t2);
  zk_.Resume();
  ASSERT_TRUE(test::WaitFor([&] { return store_->LastContactNanos() > t2; }, milliseconds(10000)));
}

TEST(ZkStoreOpenTest, NoServerIsConnectionLoss) {
  RunningLoop loop;
  ZkStoreOptions o;
  o.connect = "127.0.0.1:" + std::to_string(test::FreePort());
  o.connect_timeout = milliseconds(500);
  auto r = ZkStore::Open(o, loop.get());
  EXPECT_TRUE(r.status().Is(MetaErrc::kConnectionLoss)) << r.status().ToString();
}

}  // namespace
}  // namespace dlog::metadata
