// The MetadataStore contract: every test runs on ZooKeeper (a real server
// this suite starts) and on the embedded store.
#include <gtest/gtest.h>

#include <future>
#include <set>
#include <thread>

#include "common/clock.h"
#include "metadata/id_allocator.h"
#include "metadata/layout.h"
#include "metadata/records.h"
#include "tests/metadata/store_test_util.h"

namespace dlog::metadata {
namespace {

using std::chrono::milliseconds;
using testing::Recorder;
using testing::RunningLoop;

enum class Kind { kZk, kEmbedded };

std::string KindName(const ::testing::TestParamInfo<Kind>& info) {
  return info.param == Kind::kZk ? "ZooKeeper" : "Embedded";
}

class ContractTest : public ::testing::TestWithParam<Kind> {
 protected:
  static void SetUpTestSuite() {
    if (!test::ZkServer::Available()) return;
    zk_ = new test::ZkServer(200);
    if (!zk_->Start()) {
      ADD_FAILURE() << "ZooKeeper did not start: " << zk_->Log();
      delete zk_;
      zk_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete zk_;
    zk_ = nullptr;
  }

  void SetUp() override {
    if (GetParam() == Kind::kZk && zk_ == nullptr) GTEST_SKIP() << "no ZooKeeper server";
    static int counter = 0;
    root_ = "/contract-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    store_ = Open();
    ASSERT_NE(store_, nullptr);
    ASSERT_TRUE(store_->EnsurePathSync(root_).ok());
  }

  void TearDown() override {
    if (store_) store_->CloseSync();
    store_.reset();
  }

  std::unique_ptr<MetadataStore> Open(bool drop_ephemerals_on_close = true) {
    if (GetParam() == Kind::kZk) {
      auto r = ZkStore::Open(testing::ZkOptions(*zk_), loop_.get());
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) return nullptr;
      return std::move(r).value();
    }
    EmbeddedStoreOptions o;
    o.dir = dir_.Sub("meta");
    o.drop_ephemerals_on_close = drop_ephemerals_on_close;
    auto r = EmbeddedStore::Open(o, loop_.get());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    return std::move(r).value();
  }

  // Closes the store and opens a new one (a new session / a new process).
  void Reopen(bool drop_ephemerals_on_close = true) {
    store_->CloseSync();
    store_.reset();
    store_ = Open(drop_ephemerals_on_close);
    ASSERT_NE(store_, nullptr);
  }

  std::string P(const std::string& rel) const { return root_ + "/" + rel; }

  static test::ZkServer* zk_;
  RunningLoop loop_;  // outlives store_
  test::TempDir dir_;
  std::string root_;
  std::unique_ptr<MetadataStore> store_;
};

test::ZkServer* ContractTest::zk_ = nullptr;

TEST_P(ContractTest, CreateGetSetDeleteWithVersions) {
  auto c = store_->CreateSync(P("a"), "one");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, P("a"));

  auto g = store_->GetSync(P("a"));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->data, "one");
  EXPECT_EQ(g->stat.version, 0);
  EXPECT_EQ(g->stat.ephemeral_owner, 0);

  auto s = store_->SetSync(P("a"), "two", 0);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->version, 1);
  // A CAS with a stale version is a conflict, and changes nothing.
  auto stale = store_->SetSync(P("a"), "three", 0);
  EXPECT_TRUE(stale.status().Is(MetaErrc::kBadVersion)) << stale.status().ToString();
  EXPECT_EQ(store_->GetSync(P("a"))->data, "two");
  auto any = store_->SetSync(P("a"), "four", kAnyVersion);
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->version, 2);

  EXPECT_TRUE(store_->DeleteSync(P("a"), 1).Is(MetaErrc::kBadVersion));
  EXPECT_TRUE(store_->DeleteSync(P("a"), 2).ok());
  EXPECT_TRUE(store_->GetSync(P("a")).status().Is(MetaErrc::kNoNode));
  EXPECT_TRUE(store_->DeleteSync(P("a"), kAnyVersion).Is(MetaErrc::kNoNode));
  EXPECT_TRUE(store_->SetSync(P("a"), "x", kAnyVersion).status().Is(MetaErrc::kNoNode));
}

TEST_P(ContractTest, DistinctErrors) {
  ASSERT_TRUE(store_->CreateSync(P("a"), "").ok());
  EXPECT_TRUE(store_->CreateSync(P("a"), "").status().Is(MetaErrc::kNodeExists));
  EXPECT_TRUE(store_->CreateSync(P("missing/child"), "").status().Is(MetaErrc::kNoNode));
  EXPECT_TRUE(store_->CreateSync("relative", "").status().Is(MetaErrc::kInvalidArgument));
  EXPECT_TRUE(store_->CreateSync(P("a/"), "").status().Is(MetaErrc::kInvalidArgument));
  EXPECT_TRUE(store_->CreateSync(P("a//b"), "").status().Is(MetaErrc::kInvalidArgument));
  EXPECT_TRUE(store_->GetSync(P("a/../a")).status().Is(MetaErrc::kInvalidArgument));
  EXPECT_TRUE(store_->CreateSync(P("big"), std::string(kMaxDataSize + 1, 'x')).status().Is(MetaErrc::kInvalidArgument));
  EXPECT_TRUE(store_->CreateSync(P("max"), std::string(kMaxDataSize, 'x')).ok());
  EXPECT_EQ(store_->GetSync(P("max"))->data.size(), kMaxDataSize);

  ASSERT_TRUE(store_->CreateSync(P("a/b"), "").ok());
  EXPECT_TRUE(store_->DeleteSync(P("a"), kAnyVersion).Is(MetaErrc::kNotEmpty));

  ASSERT_TRUE(store_->CreateSync(P("eph"), "", CreateMode::kEphemeral).ok());
  EXPECT_TRUE(store_->CreateSync(P("eph/child"), "").status().Is(MetaErrc::kInvalidArgument));
  EXPECT_TRUE(store_->DeleteSync("/", kAnyVersion).Is(MetaErrc::kInvalidArgument));
}

TEST_P(ContractTest, ChildrenSortedAndStat) {
  ASSERT_TRUE(store_->CreateSync(P("d"), "").ok());
  for (const char* n : {"c", "a", "b"}) ASSERT_TRUE(store_->CreateSync(P("d/") + n, n).ok());
  auto kids = store_->GetChildrenSync(P("d"));
  ASSERT_TRUE(kids.ok());
  EXPECT_EQ(*kids, (std::vector<std::string>{"a", "b", "c"}));
  auto st = store_->ExistsSync(P("d"));
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(st->has_value());
  EXPECT_EQ((*st)->num_children, 3);
  EXPECT_EQ((*st)->cversion, 3);
  ASSERT_TRUE(store_->DeleteSync(P("d/b"), kAnyVersion).ok());
  EXPECT_EQ((*store_->ExistsSync(P("d")))->cversion, 4);
  EXPECT_FALSE(store_->ExistsSync(P("nope"))->has_value());
  EXPECT_TRUE(store_->GetChildrenSync(P("nope")).status().Is(MetaErrc::kNoNode));
  EXPECT_TRUE(store_->GetChildrenSync(P("d/a"))->empty());
}

TEST_P(ContractTest, SequentialNamesIncreaseAndAreNeverReused) {
  ASSERT_TRUE(store_->CreateSync(P("q"), "").ok());
  int64_t last = -1;
  for (int i = 0; i < 5; ++i) {
    auto c = store_->CreateSync(P("q/n-"), std::to_string(i), CreateMode::kPersistentSequential);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::string name = BaseName(*c);
    ASSERT_EQ(name.size(), 2u + kSequenceDigits) << name;
    EXPECT_EQ(name.substr(0, 2), "n-");
    int64_t seq = SequenceOf(name);
    EXPECT_GT(seq, last);
    last = seq;
    // Deleting the newest child must not let its number come back.
    if (i == 2) ASSERT_TRUE(store_->DeleteSync(*c, kAnyVersion).ok());
  }
  Reopen();
  auto c = store_->CreateSync(P("q/n-"), "after", CreateMode::kEphemeralSequential);
  ASSERT_TRUE(c.ok());
  EXPECT_GT(SequenceOf(BaseName(*c)), last);
  EXPECT_EQ((*store_->ExistsSync(*c))->ephemeral_owner, store_->SessionId());
}

TEST_P(ContractTest, EphemeralNodesEndWithTheSession) {
  auto c = store_->CreateSync(P("eph"), "mine", CreateMode::kEphemeral);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto st = store_->ExistsSync(P("eph"));
  ASSERT_TRUE(st.ok() && st->has_value());
  EXPECT_NE((*st)->ephemeral_owner, 0);
  EXPECT_EQ((*st)->ephemeral_owner, store_->SessionId());
  ASSERT_TRUE(store_->CreateSync(P("persist"), "p").ok());
  int64_t old_session = store_->SessionId();
  Reopen();
  EXPECT_NE(store_->SessionId(), old_session);
  EXPECT_FALSE(store_->ExistsSync(P("eph"))->has_value());
  EXPECT_EQ(store_->GetSync(P("persist"))->data, "p");
}

TEST_P(ContractTest, MultiIsAtomic) {
  ASSERT_TRUE(store_->CreateSync(P("m"), "v0").ok());
  ASSERT_TRUE(store_->CreateSync(P("gone"), "").ok());
  auto r = store_->MultiSync({Op::Check(P("m"), 0), Op::Create(P("new"), "n"),
                              Op::Create(P("seq-"), "s", CreateMode::kPersistentSequential), Op::Set(P("m"), "v1", 0),
                              Op::Delete(P("gone"), 0)});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 5u);
  EXPECT_EQ((*r)[1].path, P("new"));
  EXPECT_EQ((*r)[2].path.substr(0, P("seq-").size()), P("seq-"));
  EXPECT_EQ((*r)[3].stat.version, 1);
  EXPECT_EQ(store_->GetSync(P("m"))->data, "v1");
  EXPECT_FALSE(store_->ExistsSync(P("gone"))->has_value());

  // A failing check: nothing of the multi is applied.
  auto f = store_->MultiSync({Op::Create(P("x"), ""), Op::Set(P("m"), "v2", 1), Op::Check(P("m"), 0)});
  EXPECT_TRUE(f.status().Is(MetaErrc::kBadVersion)) << f.status().ToString();
  EXPECT_NE(f.status().message().find("multi op #2"), std::string::npos) << f.status().message();
  EXPECT_FALSE(store_->ExistsSync(P("x"))->has_value());
  EXPECT_EQ(store_->GetSync(P("m"))->data, "v1");

  auto e = store_->MultiSync({Op::Create(P("y"), ""), Op::Create(P("new"), "")});
  EXPECT_TRUE(e.status().Is(MetaErrc::kNodeExists)) << e.status().ToString();
  EXPECT_FALSE(store_->ExistsSync(P("y"))->has_value());
  auto n = store_->MultiSync({Op::Delete(P("nothing"), kAnyVersion)});
  EXPECT_TRUE(n.status().Is(MetaErrc::kNoNode));
  auto empty = store_->MultiSync({});
  EXPECT_TRUE(empty.ok());
}

TEST_P(ContractTest, WatchesFireOnceOnTheLoop) {
  Recorder rec;
  ASSERT_TRUE(store_->CreateSync(P("w"), "0").ok());
  std::atomic<bool> on_loop{true};
  auto watch = [&](const WatchEvent& ev) {
    if (!store_->loop()->InLoopThread()) on_loop = false;
    rec.Watch()(ev);
  };
  // Data watch via Get, fired by a Set, once.
  ASSERT_TRUE(store_->GetSync(P("w")).ok());
  std::promise<void> got;
  store_->Get(
      P("w"),
      [&](Result<NodeData> r) {
        EXPECT_TRUE(r.ok());
        got.set_value();
      },
      watch);
  got.get_future().get();
  ASSERT_TRUE(store_->SetSync(P("w"), "1", kAnyVersion).ok());
  ASSERT_TRUE(
      test::WaitFor([&] { return rec.CountWatch(WatchEventType::kDataChanged, P("w")) == 1; }, milliseconds(5000)));
  ASSERT_TRUE(store_->SetSync(P("w"), "2", kAnyVersion).ok());

  // Exists watch on an absent node fires on create.
  std::promise<void> got2;
  store_->Exists(
      P("later"),
      [&](Result<std::optional<Stat>> r) {
        EXPECT_TRUE(r.ok() && !r->has_value());
        got2.set_value();
      },
      watch);
  got2.get_future().get();
  ASSERT_TRUE(store_->CreateSync(P("later"), "").ok());
  ASSERT_TRUE(
      test::WaitFor([&] { return rec.CountWatch(WatchEventType::kCreated, P("later")) == 1; }, milliseconds(5000)));

  // Children watch fires on a new child; a data watch fires on delete.
  std::promise<void> got3;
  store_->GetChildren(
      P("w"),
      [&](Result<std::vector<std::string>> r) {
        EXPECT_TRUE(r.ok());
        got3.set_value();
      },
      watch);
  got3.get_future().get();
  ASSERT_TRUE(store_->CreateSync(P("w/kid"), "").ok());
  ASSERT_TRUE(
      test::WaitFor([&] { return rec.CountWatch(WatchEventType::kChildrenChanged, P("w")) == 1; }, milliseconds(5000)));
  std::promise<void> got4;
  store_->Exists(
      P("later"), [&](Result<std::optional<Stat>>) { got4.set_value(); }, watch);
  got4.get_future().get();
  ASSERT_TRUE(store_->DeleteSync(P("later"), kAnyVersion).ok());
  ASSERT_TRUE(
      test::WaitFor([&] { return rec.CountWatch(WatchEventType::kDeleted, P("later")) == 1; }, milliseconds(5000)));

  // A Get on an absent node sets no watch.
  std::promise<void> got5;
  store_->Get(
      P("absent"),
      [&](Result<NodeData> r) {
        EXPECT_TRUE(r.status().Is(MetaErrc::kNoNode));
        got5.set_value();
      },
      watch);
  got5.get_future().get();
  ASSERT_TRUE(store_->CreateSync(P("absent"), "").ok());

  // Sync point: a later watch proves earlier events were delivered.
  std::promise<void> got6;
  store_->Get(
      P("w"), [&](Result<NodeData>) { got6.set_value(); }, watch);
  got6.get_future().get();
  ASSERT_TRUE(store_->SetSync(P("w"), "3", kAnyVersion).ok());
  ASSERT_TRUE(
      test::WaitFor([&] { return rec.CountWatch(WatchEventType::kDataChanged, P("w")) == 2; }, milliseconds(5000)));
  EXPECT_EQ(rec.CountWatch(WatchEventType::kCreated, P("absent")), 0u);
  EXPECT_EQ(rec.watch_events().size(), 5u);
  EXPECT_TRUE(on_loop);
}

TEST_P(ContractTest, CloseFailsCallsAndFiresWatchesWithClosed) {
  Recorder rec;
  store_->SubscribeSession(rec.Session());
  ASSERT_TRUE(store_->CreateSync(P("c"), "").ok());
  std::promise<void> got;
  store_->Get(
      P("c"), [&](Result<NodeData>) { got.set_value(); }, rec.Watch());
  got.get_future().get();
  store_->CloseSync();
  EXPECT_EQ(rec.CountWatch(WatchEventType::kClosed, P("c")), 1u);
  EXPECT_EQ(rec.CountSession(SessionState::kClosed), 1u);
  EXPECT_TRUE(store_->GetSync(P("c")).status().Is(MetaErrc::kClosed));
  EXPECT_TRUE(store_->CreateSync(P("d"), "").status().Is(MetaErrc::kClosed));
  store_->CloseSync();  // twice is fine
}

TEST_P(ContractTest, AllocateIdNeverRepeats) {
  std::string counter = P("segment-id");
  std::set<uint64_t> seen;
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    auto id = AllocateIdSync(store_.get(), counter);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_GT(*id, last);
    last = *id;
    seen.insert(*id);
  }
  // Concurrent allocations (CAS conflicts) still give distinct ids.
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto id = AllocateIdSync(store_.get(), counter);
        ASSERT_TRUE(id.ok()) << id.status().ToString();
        std::lock_guard<std::mutex> l(mu);
        EXPECT_TRUE(seen.insert(*id).second) << "id " << *id << " handed out twice";
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen.size(), 60u);
  uint64_t max_seen = *seen.rbegin();
  Reopen();
  auto id = AllocateIdSync(store_.get(), counter);
  ASSERT_TRUE(id.ok());
  EXPECT_GT(*id, max_seen);
}

TEST_P(ContractTest, RecordsRoundTripAndCorruptionNamesThePath) {
  auto layout = Layout::Make("c1");
  ASSERT_TRUE(layout.ok());
  proto::SegmentMetadata seg;
  seg.set_segment_id(123456);
  seg.set_state(proto::SEGMENT_OPEN);
  seg.set_ensemble_size(3);
  seg.set_write_quorum(2);
  seg.set_ack_quorum(2);
  auto* f = seg.add_fragments();
  f->set_first_entry_id(0);
  for (const char* n : {"n1", "n2", "n3"}) f->add_ensemble(n);
  std::string path = root_ + layout->Segment(SegmentId(123456));
  ASSERT_TRUE(store_->EnsurePathSync(ParentPath(path)).ok());
  ASSERT_TRUE(store_->CreateSync(path, Encode(seg)).ok());
  auto back = Decode<proto::SegmentMetadata>(path, store_->GetSync(path)->data);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->fragments(0).ensemble_size(), 3);

  ASSERT_TRUE(store_->SetSync(path, "garbage\xff", kAnyVersion).ok());
  auto bad = Decode<proto::SegmentMetadata>(path, store_->GetSync(path)->data);
  EXPECT_TRUE(bad.status().Is(MetaErrc::kCorruptRecord));
  EXPECT_NE(bad.status().message().find(path), std::string::npos) << bad.status().message();
}

TEST_P(ContractTest, BlockingCallsAndLastContact) {
  int64_t before = MonoNanos();
  ASSERT_TRUE(store_->CreateSync(P("lc"), "").ok());
  EXPECT_GE(store_->LastContactNanos(), before);
  EXPECT_LE(store_->LastContactNanos(), MonoNanos());
  EXPECT_GT(store_->SessionTimeout().count(), 0);
  EXPECT_FALSE(store_->SessionGuid().empty());
  // Callbacks never run inline in the caller.
  bool inline_run = true;
  std::promise<void> done;
  store_->Get(P("lc"), [&](Result<NodeData>) {
    EXPECT_TRUE(store_->loop()->InLoopThread());
    done.set_value();
  });
  inline_run = false;
  done.get_future().get();
  EXPECT_FALSE(inline_run);
}

TEST_P(ContractTest, ManyChildrenInOneBucket) {
  ASSERT_TRUE(store_->CreateSync(P("b"), "").ok());
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  for (int i = 0; i < 300; ++i) {
    store_->Create(P("b/") + std::to_string(i), "x", CreateMode::kPersistent, [&](Result<std::string> r) {
      if (!r.ok()) ++failed;
      ++done;
    });
  }
  ASSERT_TRUE(test::WaitFor([&] { return done == 300; }, milliseconds(20000)));
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(store_->GetChildrenSync(P("b"))->size(), 300u);
}

INSTANTIATE_TEST_SUITE_P(Both, ContractTest, ::testing::Values(Kind::kZk, Kind::kEmbedded), KindName);

// ---- embedded only ----

TEST(EmbeddedStoreTest, EphemeralsOfACrashedProcessAreDroppedOnOpen) {
  RunningLoop loop;
  test::TempDir dir;
  EmbeddedStoreOptions o;
  o.dir = dir.Sub("meta");
  o.drop_ephemerals_on_close = false;  // as if the process died
  {
    auto s = EmbeddedStore::Open(o, loop.get());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->CreateSync("/lock", "", CreateMode::kEphemeral).ok());
    ASSERT_TRUE((*s)->CreateSync("/data", "kept").ok());
    ASSERT_TRUE((*s)->CreateSync("/data/seq-", "", CreateMode::kPersistentSequential).ok());
    (*s)->CloseSync();
  }
  auto s = EmbeddedStore::Open(o, loop.get());
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE((*s)->ExistsSync("/lock")->has_value());
  EXPECT_EQ((*s)->GetSync("/data")->data, "kept");
  auto c = (*s)->CreateSync("/data/seq-", "", CreateMode::kPersistentSequential);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, "/data/seq-0000000001");  // the synced counter survived
  (*s)->CloseSync();
}

}  // namespace
}  // namespace dlog::metadata
