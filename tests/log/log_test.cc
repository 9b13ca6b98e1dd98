// Log streams (logstore/log) against real `dlogd logstore` children, every
// case on both metadata stores (embedded and a real ZooKeeper): namespaces and
// logs, writing and reading back, start positions, tailing, rolling, a second
// writer, end of stream, txids, errors, truncation, retention and sweeping
// (metadata and node data), the writer lock, takeover and recovery.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "logstore/segment/errors.h"
#include "protocol/node_errors.h"
#include "tests/log/log_fixture.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;
using log::SegmentInfo;

enum class StoreKind { kEmbedded, kZooKeeper };

// One ZooKeeper server for the whole binary (started on first use); each test
// gets its own namespace, nodes and sessions. A global test environment stops
// it when the tests are done, so no server outlives the binary.
ZkServer*& SharedZkSlot() {
  static ZkServer* zk = nullptr;
  return zk;
}

ZkServer* SharedZk() {
  static bool tried = false;
  if (!tried) {
    tried = true;
    if (ZkServer::Available()) {
      auto* z = new ZkServer(200);
      if (z->Start()) {
        SharedZkSlot() = z;
      } else {
        std::fprintf(stderr, "ZooKeeper did not start: %s\n", z->Log().c_str());
        delete z;
      }
    }
  }
  return SharedZkSlot();
}

class SharedZkCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    delete SharedZkSlot();
    SharedZkSlot() = nullptr;
  }
};
[[maybe_unused]] ::testing::Environment* const kSharedZkCleanup =
    ::testing::AddGlobalTestEnvironment(new SharedZkCleanup);

class LogTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    ZkServer* zk = nullptr;
    if (GetParam() == StoreKind::kZooKeeper) {
      zk = SharedZk();
      ASSERT_NE(zk, nullptr) << "ZooKeeper did not start (scripts/install-deps.sh installs it)";
    }
    cluster_ = std::make_unique<SegmentCluster>(3, zk);
    ASSERT_TRUE(cluster_->Start()) << cluster_->error();
    client_ = cluster_->NewClient(SegOptions());
    std::string n = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(n.begin(), n.end(), '/', '-');
    ns_prefix_ = "ns-" + n;
  }

  void TearDown() override {
    namespaces_.clear();
    cluster_.reset();
  }

  bool zk() const { return GetParam() == StoreKind::kZooKeeper; }

  static segment::SegmentOptions SegOptions() {
    segment::SegmentOptions o;
    o.node_request_timeout_ms = 2000;
    return o;
  }

  static NamespaceSettings Settings() {
    NamespaceSettings s;
    s.ensemble_size = 3;
    s.write_quorum = 3;
    s.ack_quorum = 2;
    return s;
  }

  // A new namespace (unique per test) with `s`, on the main client.
  Namespace* MakeNs(const NamespaceSettings& s, const std::string& suffix = "") {
    auto ns = Namespace::CreateSync(client_, ns_prefix_ + suffix, s);
    EXPECT_TRUE(ns.ok()) << ns.status().ToString();
    if (!ns.ok()) return nullptr;
    namespaces_.push_back(std::move(*ns));
    return namespaces_.back().get();
  }

  // The same namespace through another client: on ZooKeeper, another session.
  Namespace* OtherNs(Namespace* ns) {
    StoreHandle* store = cluster_->OpenStore();
    EXPECT_NE(store, nullptr) << cluster_->error();
    if (store == nullptr) return nullptr;
    other_stores_.push_back(store);
    SegmentClient* c = cluster_->NewClient(SegOptions(), store);
    auto o = Namespace::OpenSync(c, ns->name());
    EXPECT_TRUE(o.ok()) << o.status().ToString();
    if (!o.ok()) return nullptr;
    namespaces_.push_back(std::move(*o));
    return namespaces_.back().get();
  }

  std::unique_ptr<LogWriter> Writer(Namespace* ns, const std::string& log, WriterOptions o = {}) {
    auto w = ns->OpenWriterSync(log, o);
    EXPECT_TRUE(w.ok()) << log << ": " << w.status().ToString();
    return w.ok() ? std::move(*w) : nullptr;
  }

  std::unique_ptr<LogReader> Reader(Namespace* ns, const std::string& log, StartPosition p = StartPosition::Earliest(),
                                    ReaderOptions o = {}) {
    auto r = ns->OpenReaderSync(log, p, o);
    EXPECT_TRUE(r.ok()) << log << ": " << r.status().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }

  // Node data of `seg` on node `address`: the status of reading entry 0.
  Status NodeRead(const std::string& address, SegmentId seg) {
    NodeClientHarness h(address, 16, 3000);
    auto r = h.client().ReadEntrySync(seg, EntryId(0));
    return r.ok() ? Status::OK() : r.status();
  }
  int64_t NodeSegments(const std::string& address) {
    NodeClientHarness h(address, 16, 3000);
    auto r = h.client().NodeInfoSync();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? static_cast<int64_t>(r->segments()) : -1;
  }

  std::unique_ptr<SegmentCluster> cluster_;
  SegmentClient* client_ = nullptr;
  std::string ns_prefix_;
  std::vector<StoreHandle*> other_stores_;
  std::vector<std::unique_ptr<Namespace>> namespaces_;
};

// Writes payloads with WriteSync (one record per entry), txid = txid0 + i if txid0 >= 0.
std::vector<WriteResult> WriteSyncN(LogWriter* w, const std::vector<std::string>& payloads, int64_t txid0 = -1) {
  std::vector<WriteResult> out;
  for (size_t i = 0; i < payloads.size(); ++i) {
    auto r = txid0 >= 0 ? w->WriteSync(Slice::CopyOf(payloads[i]), txid0 + static_cast<int64_t>(i))
                        : w->WriteSync(Slice::CopyOf(payloads[i]));
    EXPECT_TRUE(r.ok()) << payloads[i] << ": " << r.status().ToString();
    if (!r.ok()) break;
    out.push_back(*r);
  }
  return out;
}

// Runs `f` at scope exit (joins threads when an ASSERT returns early).
struct JoinOnExit {
  std::function<void()> f;
  explicit JoinOnExit(std::function<void()> fn) : f(std::move(fn)) {}
  ~JoinOnExit() { f(); }
};

std::vector<std::string> PayloadsOf(const std::vector<Rec>& recs) {
  std::vector<std::string> v;
  for (auto& r : recs) v.push_back(r.payload);
  return v;
}

// ---------------------------------------------------------------- namespaces and logs

TEST_P(LogTest, NamespaceLifecycle) {
  NamespaceSettings s = Settings();
  s.roll_entries = 123;
  s.truncation_grace_ms = 4567;
  auto missing = Namespace::OpenSync(client_, ns_prefix_);
  EXPECT_TRUE(missing.status().Is(LogErrc::kNamespaceNotFound)) << missing.status().ToString();
  Namespace* ns = MakeNs(s);
  ASSERT_NE(ns, nullptr);
  EXPECT_EQ(ns->name(), ns_prefix_);
  EXPECT_EQ(ns->settings().roll_entries, 123);
  EXPECT_EQ(ns->settings().truncation_grace_ms, 4567);
  EXPECT_EQ(ns->settings().ensemble_size, 3);
  // Same settings: OK. Other settings: kNamespaceExists.
  auto again = Namespace::CreateSync(client_, ns_prefix_, s);
  EXPECT_TRUE(again.ok()) << again.status().ToString();
  NamespaceSettings other = s;
  other.roll_entries = 1;
  auto conflict = Namespace::CreateSync(client_, ns_prefix_, other);
  EXPECT_TRUE(conflict.status().Is(LogErrc::kNamespaceExists)) << conflict.status().ToString();
  // OpenOrCreate: existing settings win.
  auto ooc = Namespace::OpenOrCreateSync(client_, ns_prefix_, other);
  ASSERT_TRUE(ooc.ok()) << ooc.status().ToString();
  EXPECT_EQ((*ooc)->settings().roll_entries, 123);
  auto opened = Namespace::OpenSync(client_, ns_prefix_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ((*opened)->settings().truncation_grace_ms, 4567);
  auto list = Namespace::ListNamespacesSync(client_);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_NE(std::find(list->begin(), list->end(), ns_prefix_), list->end());
  // Bad settings and bad names.
  NamespaceSettings bad = Settings();
  bad.write_quorum = 4;
  auto b = Namespace::CreateSync(client_, ns_prefix_ + "-bad", bad);
  EXPECT_TRUE(b.status().Is(LogErrc::kInvalidArgument)) << b.status().ToString();
  auto bn = Namespace::CreateSync(client_, "", Settings());
  EXPECT_TRUE(bn.status().Is(LogErrc::kInvalidArgument)) << bn.status().ToString();
}

TEST_P(LogTest, CreateListDeleteStat) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  auto empty = ns->ListLogsSync();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());
  for (const char* n : {"alpha", "beta", "tenant/ns/topic", "punct!?#@"}) {
    ASSERT_TRUE(ns->CreateLogSync(n).ok()) << n;
  }
  Status dup = ns->CreateLogSync("alpha");
  EXPECT_TRUE(dup.Is(LogErrc::kLogExists)) << dup.ToString();
  auto list = ns->ListLogsSync();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::set<std::string> names(list->begin(), list->end());
  EXPECT_EQ(names, (std::set<std::string>{"alpha", "beta", "tenant/ns/topic", "punct!?#@"}));
  EXPECT_EQ(list->size(), 4u);

  auto info = ns->GetLogInfoSync("tenant/ns/topic");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->name, "tenant/ns/topic");
  EXPECT_TRUE(info->segments.empty());
  EXPECT_FALSE(info->owner.has_value());
  EXPECT_FALSE(info->meta.end_of_stream());

  // With records: info lists the segment and the owner while a writer holds it.
  {
    auto w = Writer(ns, "alpha", {.owner_id = "stat-writer"});
    ASSERT_NE(w, nullptr);
    WriteSyncN(w.get(), Payloads("a", 3));
    auto i2 = ns->GetLogInfoSync("alpha");
    ASSERT_TRUE(i2.ok()) << i2.status().ToString();
    ASSERT_EQ(i2->segments.size(), 1u);
    EXPECT_EQ(i2->segments[0].meta.state(), proto::SEGMENT_OPEN);
    EXPECT_EQ(i2->segments[0].meta.log_name(), "alpha");
    EXPECT_EQ(i2->segments[0].meta.segment_seq(), i2->segments[0].seq);
    EXPECT_EQ(i2->segments[0].meta.ensemble_size(), 3u);
    EXPECT_EQ(i2->segments[0].meta.ack_quorum(), 2u);
    ASSERT_TRUE(i2->owner.has_value());
    EXPECT_EQ(i2->owner->owner_id(), "stat-writer");
    ASSERT_TRUE(w->CloseSync().ok());
    auto i3 = ns->GetLogInfoSync("alpha");
    ASSERT_TRUE(i3.ok()) << i3.status().ToString();
    ASSERT_EQ(i3->segments.size(), 1u);
    EXPECT_EQ(i3->segments[0].meta.state(), proto::SEGMENT_CLOSED);
    EXPECT_EQ(i3->segments[0].meta.record_count(), 3);
    EXPECT_EQ(i3->segments[0].meta.first_record_seq(), 0);
    EXPECT_FALSE(i3->owner.has_value());
  }

  ASSERT_TRUE(ns->DeleteLogSync("beta").ok());
  Status again = ns->DeleteLogSync("beta");
  EXPECT_TRUE(again.Is(LogErrc::kLogNotFound)) << again.ToString();
  auto gone = ns->GetLogInfoSync("beta");
  EXPECT_TRUE(gone.status().Is(LogErrc::kLogNotFound)) << gone.status().ToString();
  auto list2 = ns->ListLogsSync();
  ASSERT_TRUE(list2.ok());
  EXPECT_EQ(std::set<std::string>(list2->begin(), list2->end()),
            (std::set<std::string>{"alpha", "tenant/ns/topic", "punct!?#@"}));
}

TEST_P(LogTest, BadNamesAndMissingLogs) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  for (const std::string& bad : {std::string(), std::string(256, 'x'), std::string(".dot"), std::string("lock"),
                                 std::string("new\nline"), std::string("nul\0x", 5), std::string("caf\xc3\xa9")}) {
    Status c = ns->CreateLogSync(bad);
    EXPECT_TRUE(c.Is(LogErrc::kInvalidArgument)) << "create '" << bad << "': " << c.ToString();
    auto w = ns->OpenWriterSync(bad);
    EXPECT_TRUE(w.status().Is(LogErrc::kInvalidArgument)) << "writer '" << bad << "': " << w.status().ToString();
    auto r = ns->OpenReaderSync(bad, StartPosition::Earliest());
    EXPECT_TRUE(r.status().Is(LogErrc::kInvalidArgument)) << "reader '" << bad << "': " << r.status().ToString();
    Status d = ns->DeleteLogSync(bad);
    EXPECT_TRUE(d.Is(LogErrc::kInvalidArgument)) << "delete '" << bad << "': " << d.ToString();
    auto i = ns->GetLogInfoSync(bad);
    EXPECT_TRUE(i.status().Is(LogErrc::kInvalidArgument)) << "info '" << bad << "': " << i.status().ToString();
    Status t = ns->TruncateSync(bad, Dlsn{1, 0, 0});
    EXPECT_TRUE(t.Is(LogErrc::kInvalidArgument)) << "truncate '" << bad << "': " << t.ToString();
    Status sw = ns->SweepSync(bad);
    EXPECT_TRUE(sw.Is(LogErrc::kInvalidArgument)) << "sweep '" << bad << "': " << sw.ToString();
  }
  auto w = ns->OpenWriterSync("missing");
  EXPECT_TRUE(w.status().Is(LogErrc::kLogNotFound)) << w.status().ToString();
  auto r = ns->OpenReaderSync("missing", StartPosition::Earliest());
  EXPECT_TRUE(r.status().Is(LogErrc::kLogNotFound)) << r.status().ToString();
  Status d = ns->DeleteLogSync("missing");
  EXPECT_TRUE(d.Is(LogErrc::kLogNotFound)) << d.ToString();
  Status t = ns->TruncateSync("missing", Dlsn{1, 0, 0});
  EXPECT_TRUE(t.Is(LogErrc::kLogNotFound)) << t.ToString();
  Status sw = ns->SweepSync("missing");
  EXPECT_TRUE(sw.Is(LogErrc::kLogNotFound)) << sw.ToString();
  auto i = ns->GetLogInfoSync("missing");
  EXPECT_TRUE(i.status().Is(LogErrc::kLogNotFound)) << i.status().ToString();
  // The failed open left nothing behind.
  auto list = ns->ListLogsSync();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty()) << list->size();
}

TEST_P(LogTest, DeleteLockedLogAndRecreate) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("x").ok());
  auto w = Writer(ns, "x");
  ASSERT_NE(w, nullptr);
  auto written = WriteSyncN(w.get(), Payloads("old", 5));
  ASSERT_EQ(written.size(), 5u);
  Status locked = ns->DeleteLogSync("x");
  EXPECT_TRUE(locked.Is(LogErrc::kLocked)) << locked.ToString();
  ASSERT_TRUE(w->CloseSync().ok());
  w.reset();
  auto info = ns->GetLogInfoSync("x");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_FALSE(info->segments.empty());
  const uint64_t old_incarnation = info->meta.incarnation();
  std::vector<SegmentId> segs;
  for (auto& s : info->segments) segs.push_back(s.id);

  ASSERT_TRUE(ns->DeleteLogSync("x").ok());
  // Its segments' metadata went with it; the nodes are asked to delete the data.
  for (SegmentId id : segs) {
    auto g = cluster_->main()->store->GetSync(cluster_->layout().Segment(id));
    EXPECT_TRUE(g.status().Is(metadata::MetaErrc::kNoNode)) << id.value() << ": " << g.status().ToString();
    for (size_t n = 0; n < cluster_->size(); ++n) {
      const std::string addr = cluster_->node(n).address();
      EXPECT_TRUE(WaitFor([&] { return NodeRead(addr, id).Is(NodeErrc::kNoSuchSegment); }, 10000ms))
          << "segment " << id.value() << " still on " << addr << ": " << NodeRead(addr, id).ToString();
    }
  }

  // A re-created log is a new one: no old records, a new incarnation, seq from 0.
  ASSERT_TRUE(ns->CreateLogSync("x").ok());
  auto info2 = ns->GetLogInfoSync("x");
  ASSERT_TRUE(info2.ok());
  EXPECT_NE(info2->meta.incarnation(), old_incarnation);
  EXPECT_TRUE(info2->segments.empty());
  auto r = Reader(ns, "x");
  ASSERT_NE(r, nullptr);
  auto nothing = r->ReadNextSync(10, Scaled(300ms).count());
  EXPECT_TRUE(nothing.status().Is(LogErrc::kTimeout))
      << (nothing.ok() ? "read " + nothing->front().payload.ToString() : nothing.status().ToString());
  auto w2 = Writer(ns, "x");
  ASSERT_NE(w2, nullptr);
  EXPECT_EQ(w2->next_seq(), 0);
  auto n1 = w2->WriteSync(Slice::CopyOf("new-0"));
  ASSERT_TRUE(n1.ok()) << n1.status().ToString();
  EXPECT_EQ(n1->seq, 0);
  ReadOut got = ReadN(r.get(), 1, 5000ms);
  ASSERT_EQ(got.recs.size(), 1u) << got.error.ToString();
  EXPECT_EQ(got.recs[0].payload, "new-0");
  EXPECT_EQ(got.recs[0].seq, 0);
}

// ---------------------------------------------------------------- write and read back

TEST_P(LogTest, WriteSyncReadBack) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->log_name(), "log");
  EXPECT_EQ(w->next_seq(), 0);
  EXPECT_TRUE(w->health().ok()) << w->health().ToString();
  const size_t n = 200;
  std::vector<std::string> payloads = Payloads("sync", n);
  payloads[7] = "";                        // an empty record
  payloads[8] = std::string(100000, 'B');  // a big one
  std::vector<WriteResult> res;
  for (size_t i = 0; i < n; ++i) {
    auto r = w->WriteSync(Slice::CopyOf(payloads[i]), static_cast<int64_t>(1000 + 10 * i));
    ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
    EXPECT_EQ(r->seq, static_cast<int64_t>(i));
    if (!res.empty()) EXPECT_LT(res.back().dlsn, r->dlsn) << i;
    res.push_back(*r);
  }
  EXPECT_EQ(w->next_seq(), static_cast<int64_t>(n));
  EXPECT_EQ(w->last_txid(), static_cast<int64_t>(1000 + 10 * (n - 1)));
  EXPECT_EQ(w->stats().records, static_cast<int64_t>(n));
  EXPECT_GE(w->stats().entries, 1);

  auto r = Reader(ns, "log");
  ASSERT_NE(r, nullptr);
  ReadOut got = ReadN(r.get(), n, 10000ms);
  ASSERT_EQ(got.recs.size(), n) << got.error.ToString();
  EXPECT_EQ(CheckOrder(got.recs, 0), "");
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(got.recs[i].payload, payloads[i]) << i;
    EXPECT_EQ(got.recs[i].txid, static_cast<int64_t>(1000 + 10 * i)) << i;
    EXPECT_EQ(got.recs[i].dlsn, res[i].dlsn) << i;
  }
  EXPECT_GT(r->position(), res.back().dlsn);
  // Nothing more (the log is open: the reader waits).
  auto more = r->ReadNextSync(10, Scaled(200ms).count());
  EXPECT_TRUE(more.status().Is(LogErrc::kTimeout)) << more.status().ToString();
  ASSERT_TRUE(w->CloseSync().ok());
  auto after = w->WriteSync(Slice::CopyOf("after-close"));
  EXPECT_TRUE(after.status().Is(LogErrc::kClosed)) << after.status().ToString();
  EXPECT_FALSE(w->health().ok());
}

TEST_P(LogTest, WriteAsyncWindowReadBack) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log");
  ASSERT_NE(w, nullptr);
  const size_t n = 5000;
  std::vector<std::string> payloads;
  for (size_t i = 0; i < n; ++i) payloads.push_back("async-" + std::to_string(i) + std::string(i % 300, 'p'));
  bool order_ok = false;
  const int64_t t0 = MonoMillis();
  auto outs = WriteAsync(w.get(), payloads, 256, nullptr, &order_ok);
  std::fprintf(stderr, "%zu async writes in %lld ms\n", n, static_cast<long long>(MonoMillis() - t0));
  EXPECT_TRUE(order_ok) << "write callbacks ran out of write order";
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(outs[i].status.ok()) << i << ": " << outs[i].status.ToString();
    EXPECT_EQ(outs[i].result.seq, static_cast<int64_t>(i));
    if (i > 0) EXPECT_LT(outs[i - 1].result.dlsn, outs[i].result.dlsn) << i;
  }
  EXPECT_LT(w->stats().entries, static_cast<int64_t>(n)) << "records were not batched into entries";
  EXPECT_EQ(w->last_txid(), 0);  // no txids given: the floor
  ASSERT_TRUE(w->FlushSync().ok());

  // Two readers, one from earliest and one from the first record's DLSN.
  for (StartPosition p : {StartPosition::Earliest(), StartPosition::At(outs[0].result.dlsn)}) {
    auto r = Reader(ns, "log", p, {.read_ahead_entries = 4});
    ASSERT_NE(r, nullptr);
    ReadOut got = ReadN(r.get(), n, 30000ms, 333);
    ASSERT_EQ(got.recs.size(), n) << got.error.ToString();
    EXPECT_EQ(CheckOrder(got.recs, 0), "");
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(got.recs[i].payload, payloads[i]) << i;
      EXPECT_EQ(got.recs[i].dlsn, outs[i].result.dlsn) << i;
      EXPECT_EQ(got.recs[i].txid, 0) << i;
    }
  }
  ASSERT_TRUE(w->CloseSync().ok());
}

TEST_P(LogTest, StartPositions) {
  NamespaceSettings s = Settings();
  s.roll_entries = 7;  // so positions fall in several segments
  Namespace* ns = MakeNs(s);
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log");
  ASSERT_NE(w, nullptr);
  const size_t n = 60;
  auto res = WriteSyncN(w.get(), Payloads("p", n), 100);  // txid of record i: 100 + i
  ASSERT_EQ(res.size(), n);
  auto check_from = [&](StartPosition p, size_t first, const std::string& what) {
    SCOPED_TRACE(what);
    auto r = Reader(ns, "log", p);
    ASSERT_NE(r, nullptr);
    ReadOut got = ReadN(r.get(), n - first, 10000ms);
    ASSERT_EQ(got.recs.size(), n - first) << got.error.ToString();
    EXPECT_EQ(got.recs[0].payload, "p-" + std::to_string(first));
    EXPECT_EQ(CheckOrder(got.recs, static_cast<int64_t>(first)), "");
    auto more = r->ReadNextSync(1, Scaled(100ms).count());
    EXPECT_TRUE(more.status().Is(LogErrc::kTimeout)) << more.status().ToString();
  };
  check_from(StartPosition::Earliest(), 0, "earliest");
  check_from(StartPosition::At(Dlsn::Initial()), 0, "initial DLSN");
  check_from(StartPosition::At(res[0].dlsn), 0, "first DLSN");
  check_from(StartPosition::At(res[37].dlsn), 37, "DLSN of record 37");
  check_from(StartPosition::At(res[7].dlsn), 7, "DLSN of a segment's first record");
  check_from(StartPosition::At(res[n - 1].dlsn), n - 1, "DLSN of the last record");
  {
    // A DLSN between two records: the first record after it.
    Dlsn between = res[20].dlsn;
    between.slot += 1;
    check_from(StartPosition::At(between), 21, "DLSN just after record 20");
  }
  check_from(StartPosition::FromTxid(100), 0, "txid 100");
  check_from(StartPosition::FromTxid(0), 0, "txid 0");
  check_from(StartPosition::FromTxid(100 + 45), 45, "txid of record 45");

  // Latest: only records written after the reader opened.
  auto latest = Reader(ns, "log", StartPosition::Latest());
  ASSERT_NE(latest, nullptr);
  auto none = latest->ReadNextSync(10, Scaled(300ms).count());
  EXPECT_TRUE(none.status().Is(LogErrc::kTimeout))
      << (none.ok() ? "got " + none->front().payload.ToString() : none.status().ToString());
  auto nw = w->WriteSync(Slice::CopyOf("new"), 1000);
  ASSERT_TRUE(nw.ok()) << nw.status().ToString();
  ReadOut got = ReadN(latest.get(), 1, 5000ms);
  ASSERT_EQ(got.recs.size(), 1u) << got.error.ToString();
  EXPECT_EQ(got.recs[0].payload, "new");
  EXPECT_EQ(got.recs[0].seq, static_cast<int64_t>(n));
  EXPECT_EQ(got.recs[0].txid, 1000);
  EXPECT_EQ(got.recs[0].dlsn, nw->dlsn);
  // A txid above every record: the next record with txid >= it.
  auto future = Reader(ns, "log", StartPosition::FromTxid(2000));
  ASSERT_NE(future, nullptr);
  auto nothing = future->ReadNextSync(1, Scaled(200ms).count());
  EXPECT_TRUE(nothing.status().Is(LogErrc::kTimeout)) << nothing.status().ToString();
  ASSERT_TRUE(w->WriteSync(Slice::CopyOf("low"), 1500).ok());
  ASSERT_TRUE(w->WriteSync(Slice::CopyOf("high"), 2500).ok());
  ReadOut f = ReadN(future.get(), 1, 5000ms);
  ASSERT_EQ(f.recs.size(), 1u) << f.error.ToString();
  EXPECT_EQ(f.recs[0].payload, "high");
}

TEST_P(LogTest, TailingReaderSeesNewRecords) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  // The reader opens before the log has any segment.
  auto r = Reader(ns, "log");
  ASSERT_NE(r, nullptr);
  const size_t n = 20;
  std::vector<int64_t> seen_at(n, 0);
  std::vector<Rec> got;
  Status err;
  std::thread reader([&] {
    while (got.size() < n) {
      auto res = r->ReadNextSync(n, Scaled(15000ms).count());
      if (!res.ok()) {
        err = res.status();
        return;
      }
      for (auto& lr : *res) {
        if (got.size() < n) seen_at[got.size()] = MonoMillis();
        got.push_back(Rec{lr.dlsn, lr.seq, lr.txid, lr.payload.ToString()});
      }
    }
  });
  std::this_thread::sleep_for(200ms);
  std::vector<int64_t> acked_at;
  {
    auto w = Writer(ns, "log");
    EXPECT_NE(w, nullptr);
    for (size_t i = 0; w != nullptr && i < n; ++i) {
      auto wr = w->WriteSync(Slice::CopyOf("tail-" + std::to_string(i)));
      EXPECT_TRUE(wr.ok()) << wr.status().ToString();
      if (!wr.ok()) break;
      acked_at.push_back(MonoMillis());
      std::this_thread::sleep_for(20ms);
    }
  }
  reader.join();
  ASSERT_EQ(got.size(), n) << err.ToString();
  ASSERT_EQ(acked_at.size(), n);
  EXPECT_EQ(CheckOrder(got, 0), "");
  int64_t worst = 0;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(got[i].payload, "tail-" + std::to_string(i));
    worst = std::max(worst, seen_at[i] - acked_at[i]);
  }
  std::fprintf(stderr, "tailing: worst delay from ack to read %lld ms\n", static_cast<long long>(worst));
  EXPECT_LT(worst, Scaled(1500ms).count());
}

// ---------------------------------------------------------------- rolling

TEST_P(LogTest, RollingByEntriesAndBytes) {
  NamespaceSettings s = Settings();
  s.roll_entries = 5;
  Namespace* ns = MakeNs(s);
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log");
  ASSERT_NE(w, nullptr);
  const size_t n = 60;
  auto tail = Reader(ns, "log");  // tails across the rolls
  ASSERT_NE(tail, nullptr);
  auto res = WriteSyncN(w.get(), Payloads("roll", n), 0);
  ASSERT_EQ(res.size(), n);
  EXPECT_GE(w->stats().segments_rolled, 11);
  auto info = ns->GetLogInfoSync("log");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_GE(info->segments.size(), 12u);
  int64_t records = 0;
  for (size_t i = 0; i < info->segments.size(); ++i) {
    const auto& seg = info->segments[i];
    SCOPED_TRACE("segment seq " + std::to_string(seg.seq));
    EXPECT_EQ(seg.meta.segment_seq(), seg.seq);
    EXPECT_EQ(seg.meta.segment_id(), seg.id.value());
    if (i > 0) EXPECT_GT(seg.seq, info->segments[i - 1].seq);
    if (i + 1 < info->segments.size()) {
      ASSERT_EQ(seg.meta.state(), proto::SEGMENT_CLOSED);
      EXPECT_LE(seg.meta.last_entry_id() + 1, 5);
      EXPECT_EQ(seg.meta.first_record_seq(), records);
      records += seg.meta.record_count();
      EXPECT_EQ(seg.meta.max_txid(), records - 1);  // txid = seq here
    } else {
      EXPECT_EQ(seg.meta.state(), proto::SEGMENT_OPEN);
    }
  }
  ReadOut got = ReadN(tail.get(), n, 10000ms);
  ASSERT_EQ(got.recs.size(), n) << got.error.ToString();
  EXPECT_EQ(CheckOrder(got.recs, 0), "");
  std::set<int64_t> seg_seqs;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(got.recs[i].payload, "roll-" + std::to_string(i));
    EXPECT_EQ(got.recs[i].dlsn, res[i].dlsn);
    seg_seqs.insert(got.recs[i].dlsn.segment_seq);
  }
  EXPECT_GE(seg_seqs.size(), 12u);
  ASSERT_TRUE(w->CloseSync().ok());

  // By bytes, with batched async writes.
  NamespaceSettings sb = Settings();
  sb.roll_bytes = 2000;
  Namespace* nsb = MakeNs(sb, "-bytes");
  ASSERT_NE(nsb, nullptr);
  ASSERT_TRUE(nsb->CreateLogSync("log").ok());
  auto wb = Writer(nsb, "log");
  ASSERT_NE(wb, nullptr);
  std::vector<std::string> big;
  for (size_t i = 0; i < 100; ++i) big.push_back(std::to_string(i) + ":" + std::string(100, 'b'));
  auto outs = WriteAsync(wb.get(), big, 8);
  for (auto& o : outs) ASSERT_TRUE(o.status.ok()) << o.payload << ": " << o.status.ToString();
  ASSERT_TRUE(wb->CloseSync().ok());
  auto ib = nsb->GetLogInfoSync("log");
  ASSERT_TRUE(ib.ok());
  EXPECT_GE(ib->segments.size(), 3u);
  int64_t sum = 0;
  for (auto& seg : ib->segments) {
    EXPECT_EQ(seg.meta.state(), proto::SEGMENT_CLOSED);
    EXPECT_EQ(seg.meta.first_record_seq(), sum);
    sum += seg.meta.record_count();
  }
  EXPECT_EQ(sum, 100);
  auto rb = Reader(nsb, "log");
  ASSERT_NE(rb, nullptr);
  ReadOut gb = ReadN(rb.get(), 100, 10000ms);
  ASSERT_EQ(gb.recs.size(), 100u) << gb.error.ToString();
  EXPECT_EQ(CheckOrder(gb.recs, 0), "");
  EXPECT_EQ(PayloadsOf(gb.recs), big);
}

TEST_P(LogTest, SecondWriterAppendsNewSegment) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto tail = Reader(ns, "log");
  ASSERT_NE(tail, nullptr);
  auto w1 = Writer(ns, "log");
  ASSERT_NE(w1, nullptr);
  ASSERT_EQ(WriteSyncN(w1.get(), Payloads("w1", 10), 1).size(), 10u);  // txids 1..10
  ASSERT_TRUE(w1->CloseSync().ok());
  auto late = w1->WriteSync(Slice::CopyOf("late"));
  EXPECT_TRUE(late.status().Is(LogErrc::kClosed)) << late.status().ToString();

  auto w2 = Writer(ns, "log");
  ASSERT_NE(w2, nullptr);
  EXPECT_EQ(w2->next_seq(), 10);
  EXPECT_EQ(w2->last_txid(), 10);  // the floor from the closed segment
  auto low = w2->WriteSync(Slice::CopyOf("low"), 9);
  EXPECT_TRUE(low.status().Is(LogErrc::kTxidOutOfOrder)) << low.status().ToString();
  auto res2 = WriteSyncN(w2.get(), Payloads("w2", 10), 11);
  ASSERT_EQ(res2.size(), 10u);
  EXPECT_EQ(res2[0].seq, 10);
  ASSERT_TRUE(w2->CloseSync().ok());

  auto info = ns->GetLogInfoSync("log");
  ASSERT_TRUE(info.ok());
  ASSERT_GE(info->segments.size(), 2u);
  EXPECT_EQ(info->segments[0].meta.state(), proto::SEGMENT_CLOSED);
  EXPECT_EQ(info->segments[0].meta.record_count(), 10);
  EXPECT_EQ(info->segments[0].meta.max_txid(), 10);
  EXPECT_LT(info->segments[0].seq, info->segments.back().seq);

  std::vector<std::string> expect = Payloads("w1", 10);
  for (auto& p : Payloads("w2", 10)) expect.push_back(p);
  // The reader that tailed both writers, and one opened afterwards.
  auto fresh = Reader(ns, "log");
  ASSERT_NE(fresh, nullptr);
  for (LogReader* r : {tail.get(), fresh.get()}) {
    ReadOut got = ReadN(r, 20, 10000ms);
    ASSERT_EQ(got.recs.size(), 20u) << got.error.ToString();
    EXPECT_EQ(PayloadsOf(got.recs), expect);
    EXPECT_EQ(CheckOrder(got.recs, 0), "");
    EXPECT_LT(got.recs[9].dlsn.segment_seq, got.recs[10].dlsn.segment_seq);
  }
}

// ---------------------------------------------------------------- end of stream

TEST_P(LogTest, EndOfStream) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto tail = Reader(ns, "log");
  ASSERT_NE(tail, nullptr);
  auto w = Writer(ns, "log");
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(WriteSyncN(w.get(), Payloads("e", 10), 5).size(), 10u);
  ASSERT_TRUE(w->MarkEndOfStreamSync().ok());
  auto after = w->WriteSync(Slice::CopyOf("after"));
  EXPECT_TRUE(after.status().Is(LogErrc::kEndOfStream)) << after.status().ToString();

  auto info = ns->GetLogInfoSync("log");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->meta.end_of_stream());
  EXPECT_FALSE(info->owner.has_value());
  for (auto& seg : info->segments) EXPECT_EQ(seg.meta.state(), proto::SEGMENT_CLOSED);

  auto fresh = Reader(ns, "log");
  ASSERT_NE(fresh, nullptr);
  for (LogReader* r : {tail.get(), fresh.get()}) {
    ReadOut got = ReadN(r, 11, 10000ms);
    ASSERT_EQ(got.recs.size(), 10u) << got.error.ToString();
    EXPECT_EQ(PayloadsOf(got.recs), Payloads("e", 10));
    EXPECT_EQ(CheckOrder(got.recs, 0), "");
    EXPECT_TRUE(got.error.Is(LogErrc::kEndOfStream)) << got.error.ToString();
    auto again = r->ReadNextSync(1, Scaled(1000ms).count());
    EXPECT_TRUE(again.status().Is(LogErrc::kEndOfStream)) << again.status().ToString();
  }
  auto w2 = ns->OpenWriterSync("log");
  EXPECT_TRUE(w2.status().Is(LogErrc::kEndOfStream)) << w2.status().ToString();
  // A reader from the latest position of an ended log is at the end at once.
  auto latest = Reader(ns, "log", StartPosition::Latest());
  ASSERT_NE(latest, nullptr);
  auto eos = latest->ReadNextSync(1, Scaled(2000ms).count());
  EXPECT_TRUE(eos.status().Is(LogErrc::kEndOfStream)) << eos.status().ToString();
}

// ---------------------------------------------------------------- txids and limits

TEST_P(LogTest, TxidOutOfOrderAndRecordLimits) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log");
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(w->WriteSync(Slice::CopyOf("a"), 10).ok());
  auto bad = w->WriteSync(Slice::CopyOf("b"), 5);
  EXPECT_TRUE(bad.status().Is(LogErrc::kTxidOutOfOrder)) << bad.status().ToString();
  EXPECT_EQ(w->last_txid(), 10);
  EXPECT_TRUE(w->health().ok()) << "a refused write must not break the writer: " << w->health().ToString();
  ASSERT_TRUE(w->WriteSync(Slice::CopyOf("c"), 10).ok());  // equal is fine
  auto d = w->WriteSync(Slice::CopyOf("d"));               // no txid: the floor
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  // Async: the out-of-order write fails alone, its neighbours go through.
  std::vector<std::string> ps = {"e", "f-bad", "g"};
  std::vector<int64_t> txids = {11, 3, 12};
  auto outs = WriteAsync(w.get(), ps, 8, &txids);
  EXPECT_TRUE(outs[0].status.ok()) << outs[0].status.ToString();
  EXPECT_TRUE(outs[1].status.Is(LogErrc::kTxidOutOfOrder)) << outs[1].status.ToString();
  EXPECT_TRUE(outs[2].status.ok()) << outs[2].status.ToString();
  // Too large: refused, nothing written; the largest allowed goes through.
  auto huge = w->WriteSync(Slice::CopyOf(std::string(log::kMaxRecordSize + 1, 'h')), 12);
  EXPECT_TRUE(huge.status().Is(LogErrc::kInvalidArgument)) << huge.status().ToString();
  auto max = w->WriteSync(Slice::CopyOf(std::string(log::kMaxRecordSize, 'm')), 12);
  ASSERT_TRUE(max.ok()) << max.status().ToString();
  ASSERT_TRUE(w->WriteSync(Slice::CopyOf("z"), 13).ok());

  auto r = Reader(ns, "log");
  ASSERT_NE(r, nullptr);
  ReadOut got = ReadN(r.get(), 7, 10000ms);
  ASSERT_EQ(got.recs.size(), 7u) << got.error.ToString();
  EXPECT_EQ(CheckOrder(got.recs, 0), "");
  std::vector<std::string> expect = {"a", "c", "d", "e", "g", std::string(log::kMaxRecordSize, 'm'), "z"};
  EXPECT_EQ(PayloadsOf(got.recs), expect);
  std::vector<int64_t> expect_txids = {10, 10, 10, 11, 12, 12, 13};
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(got.recs[i].txid, expect_txids[i]) << i;
  auto more = r->ReadNextSync(1, Scaled(200ms).count());
  EXPECT_TRUE(more.status().Is(LogErrc::kTimeout)) << more.status().ToString();
}

// ---------------------------------------------------------------- truncation

TEST_P(LogTest, TruncateThenRead) {
  NamespaceSettings s = Settings();
  s.roll_entries = 4;
  s.truncation_grace_ms = 600'000;  // marked, not deleted, in this test
  Namespace* ns = MakeNs(s);
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log", {.sweep_interval_ms = 0});
  ASSERT_NE(w, nullptr);
  const size_t n = 42;
  auto res = WriteSyncN(w.get(), Payloads("t", n), 0);
  ASSERT_EQ(res.size(), n);
  auto first_in_segment = [&](int64_t seg_seq) {
    for (size_t i = 0; i < n; ++i) {
      if (res[i].dlsn.segment_seq == seg_seq) return i;
    }
    return n;
  };

  const Dlsn cut = res[21].dlsn;
  ASSERT_TRUE(ns->TruncateSync("log", cut).ok());
  auto info = ns->GetLogInfoSync("log");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->meta.truncated_before_seq(), cut.segment_seq);
  for (auto& seg : info->segments) {
    if (seg.seq < cut.segment_seq) {
      EXPECT_NE(seg.truncated_at_ms, 0) << "segment " << seg.seq << " before the cut is not marked";
    } else {
      EXPECT_EQ(seg.truncated_at_ms, 0) << "segment " << seg.seq << " at/after the cut is marked";
    }
  }
  // Earliest now starts at the first record of the cut's segment.
  const size_t first = first_in_segment(cut.segment_seq);
  ASSERT_LE(first, 21u);
  {
    auto r = Reader(ns, "log");
    ASSERT_NE(r, nullptr);
    ReadOut got = ReadN(r.get(), n - first, 10000ms);
    ASSERT_EQ(got.recs.size(), n - first) << got.error.ToString();
    EXPECT_EQ(got.recs[0].payload, "t-" + std::to_string(first));
    EXPECT_EQ(CheckOrder(got.recs, static_cast<int64_t>(first)), "");
  }
  // A reader at a truncated position gets kTruncated (at open or at the first read).
  auto truncated_read = [&](StartPosition p) {
    auto r = ns->OpenReaderSync("log", p);
    if (!r.ok()) return r.status();
    auto rr = (*r)->ReadNextSync(10, Scaled(5000ms).count());
    return rr.ok() ? Status::Error(LogErrc::kInvalidArgument, "read " + rr->front().payload.ToString()) : rr.status();
  };
  Status t1 = truncated_read(StartPosition::At(res[3].dlsn));
  EXPECT_TRUE(t1.Is(LogErrc::kTruncated)) << t1.ToString();
  Status t2 = truncated_read(StartPosition::At(Dlsn::Initial()));
  EXPECT_TRUE(t2.Is(LogErrc::kTruncated) || t2.Is(LogErrc::kInvalidArgument)) << t2.ToString();
  if (t2.Is(LogErrc::kInvalidArgument)) {
    // DLSN 0/0/0 may also mean "the earliest record": then it must be the first kept one.
    EXPECT_EQ(t2.message(), "read t-" + std::to_string(first));
  }

  // Truncating at the open segment keeps it: the segment being written is never truncated.
  const Dlsn at_open = res[n - 1].dlsn;
  ASSERT_TRUE(ns->TruncateSync("log", at_open).ok());
  auto info2 = ns->GetLogInfoSync("log");
  ASSERT_TRUE(info2.ok());
  ASSERT_FALSE(info2->segments.empty());
  EXPECT_EQ(info2->segments.back().truncated_at_ms, 0);
  EXPECT_EQ(info2->segments.back().meta.state(), proto::SEGMENT_OPEN);
  const size_t first2 = first_in_segment(at_open.segment_seq);
  auto r2 = Reader(ns, "log");
  ASSERT_NE(r2, nullptr);
  ReadOut got2 = ReadN(r2.get(), n - first2, 10000ms);
  ASSERT_EQ(got2.recs.size(), n - first2) << got2.error.ToString();
  EXPECT_EQ(got2.recs[0].payload, "t-" + std::to_string(first2));
  // The writer goes on; the reader follows.
  ASSERT_TRUE(w->WriteSync(Slice::CopyOf("after-truncate"), 100).ok());
  ReadOut got3 = ReadN(r2.get(), 1, 5000ms);
  ASSERT_EQ(got3.recs.size(), 1u) << got3.error.ToString();
  EXPECT_EQ(got3.recs[0].payload, "after-truncate");
  EXPECT_EQ(got3.recs[0].seq, static_cast<int64_t>(n));
  // Truncating backwards moves nothing back.
  ASSERT_TRUE(ns->TruncateSync("log", res[0].dlsn).ok());
  Status t3 = truncated_read(StartPosition::At(res[3].dlsn));
  EXPECT_TRUE(t3.Is(LogErrc::kTruncated)) << t3.ToString();
}

// After many rolls and a truncation with no grace period, Sweep deletes the
// old segments from metadata and from the nodes' disks.
TEST_P(LogTest, RollingAndRetentionFreesSegments) {
  NamespaceSettings s = Settings();
  s.roll_entries = 3;
  s.truncation_grace_ms = 0;
  Namespace* ns = MakeNs(s);
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log", {.sweep_interval_ms = 0});
  ASSERT_NE(w, nullptr);
  const size_t n = 30;
  auto res = WriteSyncN(w.get(), Payloads("s", n), 0);
  ASSERT_EQ(res.size(), n);
  auto before = ns->GetLogInfoSync("log");
  ASSERT_TRUE(before.ok());
  ASSERT_GE(before->segments.size(), 10u);
  std::map<std::string, int64_t> node_segments;
  for (size_t i = 0; i < cluster_->size(); ++i) {
    node_segments[cluster_->node(i).address()] = NodeSegments(cluster_->node(i).address());
  }
  const Dlsn cut = res[24].dlsn;
  std::vector<SegmentInfo> doomed, kept;
  for (auto& seg : before->segments) (seg.seq < cut.segment_seq ? doomed : kept).push_back(seg);
  ASSERT_GE(doomed.size(), 7u);

  ASSERT_TRUE(ns->TruncateSync("log", cut).ok());
  ASSERT_TRUE(ns->SweepSync("log").ok());

  auto after = ns->GetLogInfoSync("log");
  ASSERT_TRUE(after.ok());
  std::set<uint64_t> listed;
  for (auto& seg : after->segments) listed.insert(seg.id.value());
  for (auto& seg : doomed) {
    EXPECT_EQ(listed.count(seg.id.value()), 0u) << "segment " << seg.seq << " still listed";
    auto g = cluster_->main()->store->GetSync(cluster_->layout().Segment(seg.id));
    EXPECT_TRUE(g.status().Is(metadata::MetaErrc::kNoNode)) << "segment " << seg.seq << ": " << g.status().ToString();
  }
  for (auto& seg : kept) EXPECT_EQ(listed.count(seg.id.value()), 1u) << "segment " << seg.seq << " lost";
  // The nodes deleted the data (asked after the metadata went).
  std::map<std::string, int64_t> expected_drop;
  for (auto& seg : doomed) {
    for (const auto& addr : seg.meta.fragments(0).ensemble()) {
      ++expected_drop[addr];
      EXPECT_TRUE(WaitFor([&] { return NodeRead(addr, seg.id).Is(NodeErrc::kNoSuchSegment); }, 10000ms))
          << "segment " << seg.seq << " still on " << addr << ": " << NodeRead(addr, seg.id).ToString();
    }
  }
  for (auto& entry : node_segments) {
    const std::string addr = entry.first;
    const int64_t want = entry.second - expected_drop[addr];
    EXPECT_TRUE(WaitFor([&] { return NodeSegments(addr) == want; }, 10000ms))
        << addr << ": " << NodeSegments(addr) << " segments, expected " << want;
  }
  // Kept segments are still readable, on every replica.
  for (auto& seg : kept) {
    if (seg.meta.state() != proto::SEGMENT_CLOSED || seg.meta.last_entry_id() < 0) continue;
    for (const auto& addr : seg.meta.fragments(0).ensemble()) {
      EXPECT_TRUE(NodeRead(addr, seg.id).ok()) << "segment " << seg.seq << " on " << addr;
    }
  }
  auto r = Reader(ns, "log");
  ASSERT_NE(r, nullptr);
  ReadOut got = ReadN(r.get(), 1, 5000ms);
  ASSERT_EQ(got.recs.size(), 1u) << got.error.ToString();
  EXPECT_EQ(got.recs[0].dlsn.segment_seq, cut.segment_seq);
  ASSERT_TRUE(w->CloseSync().ok());
}

// Retention by size (with deletion) and by age (marking only: long grace).
TEST_P(LogTest, RetentionBytesAndAge) {
  {
    NamespaceSettings s = Settings();
    s.roll_entries = 2;
    s.retention_bytes = 1000;
    s.truncation_grace_ms = 0;
    Namespace* ns = MakeNs(s, "-bytes");
    ASSERT_NE(ns, nullptr);
    ASSERT_TRUE(ns->CreateLogSync("log").ok());
    auto w = Writer(ns, "log", {.sweep_interval_ms = 0});
    ASSERT_NE(w, nullptr);
    std::vector<std::string> ps;
    for (int i = 0; i < 20; ++i) ps.push_back(std::to_string(i) + ":" + std::string(200, 'r'));
    auto res = WriteSyncN(w.get(), ps, 0);
    ASSERT_EQ(res.size(), 20u);
    ASSERT_TRUE(w->CloseSync().ok());
    auto before = ns->GetLogInfoSync("log");
    ASSERT_TRUE(before.ok());
    ASSERT_GE(before->segments.size(), 10u);
    ASSERT_TRUE(ns->SweepSync("log").ok());
    auto after = ns->GetLogInfoSync("log");
    ASSERT_TRUE(after.ok());
    size_t live = 0;
    for (auto& seg : after->segments) live += seg.truncated_at_ms == 0 ? 1 : 0;
    std::fprintf(stderr, "retention_bytes: %zu segments before, %zu listed after (%zu live)\n", before->segments.size(),
                 after->segments.size(), live);
    EXPECT_GE(live, 1u);  // the newest segment stays
    EXPECT_LE(live, 4u);  // ~1000 bytes of 400-byte segments, give or take one
    EXPECT_LE(after->segments.size(), 4u) << "grace 0: truncated segments should be deleted by the sweep";
    for (auto& seg : before->segments) {
      bool still = false;
      for (auto& a : after->segments) still |= a.id == seg.id;
      if (!still) {
        auto g = cluster_->main()->store->GetSync(cluster_->layout().Segment(seg.id));
        EXPECT_TRUE(g.status().Is(metadata::MetaErrc::kNoNode)) << g.status().ToString();
      }
    }
    // What is left reads from its first record to the end, contiguously.
    auto r = Reader(ns, "log");
    ASSERT_NE(r, nullptr);
    ReadOut got = ReadN(r.get(), 20, 1500ms);
    ASSERT_FALSE(got.recs.empty()) << got.error.ToString();
    EXPECT_GT(got.recs.front().seq, 0);
    EXPECT_EQ(got.recs.back().seq, 19);
    EXPECT_EQ(CheckOrder(got.recs, got.recs.front().seq), "");
  }
  {
    NamespaceSettings s = Settings();
    s.roll_entries = 2;
    s.retention_ms = 1500;
    s.truncation_grace_ms = 600'000;
    Namespace* ns = MakeNs(s, "-age");
    ASSERT_NE(ns, nullptr);
    ASSERT_TRUE(ns->CreateLogSync("log").ok());
    auto w = Writer(ns, "log", {.sweep_interval_ms = 0});
    ASSERT_NE(w, nullptr);
    ASSERT_EQ(WriteSyncN(w.get(), Payloads("old", 10), 0).size(), 10u);
    std::this_thread::sleep_for(Scaled(2500ms));
    ASSERT_EQ(WriteSyncN(w.get(), Payloads("new", 10), 10).size(), 10u);
    ASSERT_TRUE(ns->SweepSync("log").ok());
    auto info = ns->GetLogInfoSync("log");
    ASSERT_TRUE(info.ok());
    size_t marked = 0;
    bool prefix = true;
    for (auto& seg : info->segments) {
      if (seg.truncated_at_ms != 0) {
        ++marked;
        if (marked != static_cast<size_t>(&seg - &info->segments[0]) + 1) prefix = false;
      }
    }
    EXPECT_GE(marked, 4u) << "segments of records older than retention_ms are not marked";
    EXPECT_TRUE(prefix) << "marked segments are not a prefix of the log";
    EXPECT_EQ(info->segments.back().truncated_at_ms, 0);
    // Grace period: marked but still listed and their metadata still there.
    EXPECT_GE(info->segments.size(), 10u);
    // Every record younger than retention_ms is still readable.
    auto r = Reader(ns, "log");
    ASSERT_NE(r, nullptr);
    ReadOut got = ReadN(r.get(), 20, 1500ms);
    ASSERT_FALSE(got.recs.empty()) << got.error.ToString();
    EXPECT_GE(got.recs.front().seq, 8);
    EXPECT_LE(got.recs.front().seq, 10);
    EXPECT_EQ(got.recs.back().payload, "new-9");
    ASSERT_TRUE(w->CloseSync().ok());
  }
}

// ---------------------------------------------------------------- ownership

TEST_P(LogTest, TwoWritersOneLock) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  Namespace* ns_b = OtherNs(ns);
  ASSERT_NE(ns_b, nullptr);
  auto a = Writer(ns, "log", {.owner_id = "writer-A"});
  ASSERT_NE(a, nullptr);
  auto b0 = ns_b->OpenWriterSync("log", {.owner_id = "writer-B"});
  ASSERT_TRUE(b0.status().Is(LogErrc::kLocked)) << b0.status().ToString();
  EXPECT_NE(b0.status().message().find("writer-A"), std::string::npos) << b0.status().ToString();
  auto info = ns->GetLogInfoSync("log");
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(info->owner.has_value());
  EXPECT_EQ(info->owner->owner_id(), "writer-A");
  // Also from A's own namespace object (same session on the embedded store).
  auto a2 = ns->OpenWriterSync("log", {.owner_id = "writer-A2"});
  EXPECT_TRUE(a2.status().Is(LogErrc::kLocked)) << a2.status().ToString();

  auto oa = WriteAsync(a.get(), Payloads("A", 100), 16);
  for (auto& o : oa) ASSERT_TRUE(o.status.ok()) << o.payload << ": " << o.status.ToString();

  // B waits for the lock while A writes more, then closes.
  std::atomic<bool> b_open{false};
  Result<std::unique_ptr<LogWriter>> b = Status::Error(LogErrc::kClosed, "not opened");
  std::thread tb([&] {
    b = ns_b->OpenWriterSync("log", {.owner_id = "writer-B", .lock_timeout_ms = Scaled(20000ms).count()});
    b_open = true;
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(b_open.load()) << "B got the lock while A held it: " << b.status().ToString();
  auto oa2 = WriteAsync(a.get(), Payloads("A", 50, 100), 16);
  for (auto& o : oa2) EXPECT_TRUE(o.status.ok()) << o.payload << ": " << o.status.ToString();
  EXPECT_FALSE(b_open.load());
  Status closed = a->CloseSync();
  EXPECT_TRUE(closed.ok()) << closed.ToString();
  tb.join();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->next_seq(), 150);
  auto ob = WriteAsync(b->get(), Payloads("B", 100), 16);
  for (auto& o : ob) ASSERT_TRUE(o.status.ok()) << o.payload << ": " << o.status.ToString();
  auto late = a->WriteSync(Slice::CopyOf("A-late"));
  EXPECT_TRUE(late.status().Is(LogErrc::kClosed)) << late.status().ToString();

  auto r = Reader(ns, "log");
  ASSERT_NE(r, nullptr);
  ReadOut got = ReadN(r.get(), 250, 10000ms);
  ASSERT_EQ(got.recs.size(), 250u) << got.error.ToString();
  std::vector<std::string> expect = Payloads("A", 150);
  for (auto& p : Payloads("B", 100)) expect.push_back(p);
  EXPECT_EQ(PayloadsOf(got.recs), expect);
  EXPECT_EQ(CheckOrder(got.recs, 0), "");
  ASSERT_TRUE((*b)->CloseSync().ok());
}

// A takes over from B by session expiry (ZooKeeper only): B waits for the lock,
// recovers A's open segment (fencing A); nothing A saw acknowledged is lost
// and A gets nothing more acknowledged.
// Review finding: a slow reader taking small batches from a closed segment
// (records batched many per entry) must not see them twice while it looks
// for the next segment, and position() must not run ahead of delivery.
TEST_P(LogTest, SmallBatchesFromClosedSegmentNoDuplicates) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log", {.max_entries_in_flight = 1, .sweep_interval_ms = 0});
  ASSERT_NE(w, nullptr);
  const size_t n = 300;
  auto outs = WriteAsync(w.get(), Payloads("b", n), 300);
  for (auto& o : outs) ASSERT_TRUE(o.status.ok()) << o.payload << ": " << o.status.ToString();
  ASSERT_GT(w->stats().records, w->stats().entries) << "records were not batched";
  ASSERT_TRUE(w->CloseSync().ok());
  auto r = Reader(ns, "log");
  ASSERT_NE(r, nullptr);
  std::vector<Rec> got;
  while (got.size() < n) {
    auto res = r->ReadNextSync(7, Scaled(5000ms).count());
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    for (auto& lr : *res) got.push_back(Rec{lr.dlsn, lr.seq, lr.txid, lr.payload.ToString()});
    const Dlsn last = got.back().dlsn;
    // position(): after what was delivered, never past the next segment's start.
    EXPECT_GT(r->position(), last);
    EXPECT_LE(r->position(), (Dlsn{last.segment_seq + 1, 0, 0}));
    std::this_thread::sleep_for(Scaled(30ms));  // let the reader go looking for the next segment
  }
  ASSERT_EQ(got.size(), n);
  EXPECT_EQ(CheckOrder(got, 0), "");
  auto more = r->ReadNextSync(10, Scaled(600ms).count());
  EXPECT_TRUE(more.status().Is(LogErrc::kTimeout))
      << (more.ok() ? "read again: " + more->front().payload.ToString() : more.status().ToString());
}

// Review finding: a reader whose next segment was truncated and deleted
// (not just marked) gets kTruncated instead of silently skipping it.
TEST_P(LogTest, ReaderPastDeletedSegmentsGetsTruncated) {
  NamespaceSettings s = Settings();
  s.roll_entries = 1;
  s.truncation_grace_ms = 0;
  Namespace* ns = MakeNs(s);
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log", {.sweep_interval_ms = 0});
  ASSERT_NE(w, nullptr);
  auto res = WriteSyncN(w.get(), Payloads("d", 6));
  ASSERT_EQ(res.size(), 6u);
  ASSERT_GE(res[4].dlsn.segment_seq, res[0].dlsn.segment_seq + 3);
  // Read-ahead of one entry: what the reader fetched before the truncation
  // (at most d-1) may still be delivered; nothing after the deleted segments.
  auto r = Reader(ns, "log", StartPosition::Earliest(), {.read_ahead_entries = 1});
  ASSERT_NE(r, nullptr);
  ReadOut first = ReadN(r.get(), 1, 5000ms, 1);
  ASSERT_EQ(first.recs.size(), 1u) << first.error.ToString();
  EXPECT_EQ(first.recs[0].payload, "d-0");
  // Segments before record 4's are truncated and (grace 0) deleted.
  ASSERT_TRUE(ns->TruncateSync("log", res[4].dlsn).ok());
  auto info = ns->GetLogInfoSync("log");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->segments.front().seq, res[4].dlsn.segment_seq);
  ReadOut rest = ReadN(r.get(), 5, 10000ms, 5);
  EXPECT_TRUE(rest.error.Is(LogErrc::kTruncated)) << "read " << rest.recs.size() << ": " << rest.error.ToString();
  EXPECT_LE(rest.recs.size(), 1u);
  for (auto& rec : rest.recs) EXPECT_EQ(rec.payload, "d-1") << "read past the deleted segments";
}

// A tailing reader follows a roll at once (a watch on the log's metadata
// refreshes the closed segment), not after its long poll times out.
TEST_P(LogTest, TailingReaderFollowsRollsPromptly) {
  NamespaceSettings s = Settings();
  s.roll_entries = 1;  // every entry rolls
  Namespace* ns = MakeNs(s);
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log", {.sweep_interval_ms = 0});
  ASSERT_NE(w, nullptr);
  auto r = Reader(ns, "log", StartPosition::Earliest(), {.long_poll_ms = 20000});
  ASSERT_NE(r, nullptr);
  int64_t last_seq = -1;
  for (int i = 0; i < 4; ++i) {
    const std::string p = "roll-" + std::to_string(i);
    auto wr = w->WriteSync(Slice::CopyOf(p));
    ASSERT_TRUE(wr.ok()) << wr.status().ToString();
    EXPECT_GT(wr->dlsn.segment_seq, last_seq);
    last_seq = wr->dlsn.segment_seq;
    // Well under the 20 s long poll: the reader must not wait it out.
    auto got = r->ReadNextSync(1, Scaled(5000ms).count());
    ASSERT_TRUE(got.ok()) << p << ": " << got.status().ToString();
    EXPECT_EQ(got->front().payload.ToString(), p);
    EXPECT_EQ(got->front().dlsn, wr->dlsn);
  }
}

// Session expiry needs ZooKeeper (the embedded store's one session lives as
// long as the process), so this case runs on ZooKeeper only.
class LogZkTest : public LogTest {};

TEST_P(LogZkTest, TakeoverFencesOldWriter) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  StoreHandle* store_a = cluster_->OpenStore();
  ASSERT_NE(store_a, nullptr);
  SegmentClient* ca = cluster_->NewClient(SegOptions(), store_a);
  auto ns_a = Namespace::OpenSync(ca, ns->name());
  ASSERT_TRUE(ns_a.ok()) << ns_a.status().ToString();
  auto a = (*ns_a)->OpenWriterSync("log", {.owner_id = "A"});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  Namespace* ns_b = OtherNs(ns);
  ASSERT_NE(ns_b, nullptr);

  // A streams until a write fails.
  Mutex mu;
  std::vector<std::string> a_acked;
  std::vector<std::string> a_failed;
  std::atomic<int64_t> acked_count{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> b_took_over_at{0};
  std::atomic<int64_t> a_acked_after_b{0};
  std::atomic<int64_t> issued{0};
  std::thread ta([&] {
    std::counting_semaphore<1024> permits(32);
    for (int64_t i = 0; !stop.load(); ++i) {
      if (!permits.try_acquire_for(std::chrono::milliseconds(100))) continue;
      {
        MutexLock l(&mu);
        if (!a_failed.empty()) {
          permits.release();
          break;
        }
      }
      ++issued;
      std::string p = "A-" + std::to_string(i);
      (*a)->Write(Slice::CopyOf(p), [&, p](Result<WriteResult> r) {
        {
          MutexLock l(&mu);
          if (r.ok()) {
            a_acked.push_back(p);
            if (b_took_over_at.load() != 0) ++a_acked_after_b;
          } else {
            a_failed.push_back(p + ": " + r.status().ToString());
          }
        }
        ++acked_count;
        permits.release();
      });
    }
    // Wait for every callback (bounded).
    const auto deadline = std::chrono::steady_clock::now() + Scaled(30000ms);
    for (int k = 0; k < 32; ++k) {
      if (!permits.try_acquire_until(deadline)) break;
    }
  });
  JoinOnExit join_a([&] {
    stop = true;
    if (ta.joinable()) ta.join();
  });
  ASSERT_TRUE(WaitFor([&] { return acked_count.load() >= 500; }, 20000ms));
  auto [sid, passwd] = store_a->zk->SessionCredentials();
  // Expire A's session from a second handle (retried: A's client may win the
  // reconnection race and keep the session), until A's lock node is gone.
  auto a_holds_lock = [&, sid = sid] {
    auto info = ns->GetLogInfoSync("log");
    return info.ok() && info->owner.has_value() && info->owner->session_id() == sid;
  };
  bool expired = false;
  for (int attempt = 0; attempt < 5 && !expired; ++attempt) {
    ASSERT_TRUE(ExpireZkSession(SharedZk()->connect(), sid, passwd));
    expired = WaitFor([&] { return !a_holds_lock(); }, 3000ms);
  }
  ASSERT_TRUE(expired) << "could not expire A's session";
  auto b = ns_b->OpenWriterSync("log", {.owner_id = "B", .lock_timeout_ms = Scaled(20000ms).count()});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  b_took_over_at = MonoMillis();
  auto ob = WriteAsync(b->get(), Payloads("B", 100), 16);
  for (auto& o : ob) ASSERT_TRUE(o.status.ok()) << o.payload << ": " << o.status.ToString();
  // A must stop: its writes fail (fenced / lock lost / outcome unknown).
  EXPECT_TRUE(WaitFor(
      [&] {
        MutexLock l(&mu);
        return !a_failed.empty();
      },
      20000ms));
  stop = true;
  ta.join();
  EXPECT_FALSE((*a)->health().ok());
  auto late = (*a)->WriteSync(Slice::CopyOf("A-late"));
  EXPECT_FALSE(late.ok()) << "A got a write acknowledged after B took over";
  {
    MutexLock l(&mu);
    ASSERT_FALSE(a_failed.empty());
    std::fprintf(stderr, "A: %zu acked, %zu failed (first: %s), %lld acked after B opened\n", a_acked.size(),
                 a_failed.size(), a_failed.front().c_str(), static_cast<long long>(a_acked_after_b.load()));
  }
  ASSERT_TRUE((*b)->CloseSync().ok());
  a->reset();

  // Read everything: A's acknowledged records all there, once, before B's.
  auto r = Reader(ns, "log");
  ASSERT_NE(r, nullptr);
  ReadOut got = ReadN(r.get(), static_cast<size_t>(issued.load()) + 100, 15000ms, 1000);
  EXPECT_EQ(CheckOrder(got.recs, 0), "");
  std::map<std::string, size_t> pos;
  for (size_t i = 0; i < got.recs.size(); ++i) {
    EXPECT_TRUE(pos.emplace(got.recs[i].payload, i).second) << "duplicate " << got.recs[i].payload;
  }
  MutexLock l(&mu);
  size_t first_b = got.recs.size();
  for (size_t i = 0; i < got.recs.size(); ++i) {
    if (got.recs[i].payload.rfind("B-", 0) == 0) {
      first_b = i;
      break;
    }
  }
  for (auto& p : a_acked) {
    auto it = pos.find(p);
    ASSERT_NE(it, pos.end()) << "acknowledged " << p << " lost";
    EXPECT_LT(it->second, first_b) << p << " after B's first record";
  }
  for (auto& o : ob) EXPECT_EQ(pos.count(o.payload), 1u) << o.payload;
  // A's records form a prefix A-0..A-k (entries complete in order).
  for (size_t i = 0; i < first_b; ++i) EXPECT_EQ(got.recs[i].payload, "A-" + std::to_string(i));
  EXPECT_EQ(got.recs.size(), first_b + 100);
}

// A writer abandoned mid-stream (destroyed without Close): the next writer
// recovers its segment; every acknowledged record is readable exactly once;
// the recovered segment's counters are in its metadata.
TEST_P(LogTest, AbandonedWriterIsRecovered) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto a = Writer(ns, "log");
  ASSERT_NE(a, nullptr);
  const size_t n = 300;
  std::vector<int64_t> txids;
  for (size_t i = 0; i < n + 50; ++i) txids.push_back(static_cast<int64_t>(i) + 1);
  std::vector<int64_t> first_txids(txids.begin(), txids.begin() + n);
  auto oa = WriteAsync(a.get(), Payloads("A", n), 32, &first_txids);
  for (auto& o : oa) ASSERT_TRUE(o.status.ok()) << o.payload << ": " << o.status.ToString();
  // 50 more in flight, then abandon.
  Mutex mu;
  std::vector<Status> tail_status(50);
  std::atomic<int> tail_done{0};
  for (size_t i = 0; i < 50; ++i) {
    a->Write(Slice::CopyOf("A-" + std::to_string(n + i)), txids[n + i], [&, i](Result<WriteResult> r) {
      {
        MutexLock l(&mu);
        tail_status[i] = r.ok() ? Status::OK() : r.status();
      }
      ++tail_done;
    });
  }
  a.reset();
  ASSERT_TRUE(WaitFor([&] { return tail_done.load() == 50; }, 10000ms)) << tail_done.load() << " callbacks";
  size_t tail_acked = 0;
  {
    MutexLock l(&mu);
    for (auto& st : tail_status) {
      if (st.ok()) {
        ++tail_acked;
      } else {
        EXPECT_TRUE(st.Is(LogErrc::kOutcomeUnknown) || st.Is(LogErrc::kClosed)) << st.ToString();
      }
    }
  }
  auto info0 = ns->GetLogInfoSync("log");
  ASSERT_TRUE(info0.ok());
  ASSERT_EQ(info0->segments.size(), 1u);
  EXPECT_EQ(info0->segments[0].meta.state(), proto::SEGMENT_OPEN) << "abandoning must not close the segment";

  auto b = Writer(ns, "log", {.lock_timeout_ms = Scaled(10000ms).count()});
  ASSERT_NE(b, nullptr);
  auto info = ns->GetLogInfoSync("log");
  ASSERT_TRUE(info.ok());
  ASSERT_GE(info->segments.size(), 1u);
  const proto::SegmentMetadata& rec = info->segments[0].meta;
  EXPECT_EQ(rec.state(), proto::SEGMENT_CLOSED);
  const int64_t count = rec.record_count();
  EXPECT_GE(count, static_cast<int64_t>(n + tail_acked));
  EXPECT_LE(count, static_cast<int64_t>(n + 50));
  EXPECT_EQ(rec.first_record_seq(), 0);
  EXPECT_EQ(rec.max_txid(), count);  // txid of record i is i + 1
  EXPECT_EQ(b->next_seq(), count);
  EXPECT_EQ(b->last_txid(), count);
  // Same counters in the segment's own record.
  auto raw = cluster_->main()->store->GetSync(cluster_->layout().Segment(info->segments[0].id));
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  auto dec = metadata::Decode<proto::SegmentMetadata>("segment", raw->data);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  EXPECT_EQ(dec->record_count(), count);
  EXPECT_EQ(dec->max_txid(), count);

  auto ob = WriteSyncN(b.get(), Payloads("B", 10), count + 1);
  ASSERT_EQ(ob.size(), 10u);
  EXPECT_EQ(ob[0].seq, count);

  auto r = Reader(ns, "log");
  ASSERT_NE(r, nullptr);
  ReadOut got = ReadN(r.get(), static_cast<size_t>(count) + 10, 10000ms);
  ASSERT_EQ(got.recs.size(), static_cast<size_t>(count) + 10) << got.error.ToString();
  EXPECT_EQ(CheckOrder(got.recs, 0), "");
  for (int64_t i = 0; i < count; ++i) {
    EXPECT_EQ(got.recs[static_cast<size_t>(i)].payload, "A-" + std::to_string(i));
    EXPECT_EQ(got.recs[static_cast<size_t>(i)].txid, i + 1);
  }
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(got.recs[static_cast<size_t>(count) + i].payload, "B-" + std::to_string(i));
  auto more = r->ReadNextSync(1, Scaled(200ms).count());
  EXPECT_TRUE(more.status().Is(LogErrc::kTimeout)) << more.status().ToString();
  ASSERT_TRUE(b->CloseSync().ok());
}

// Two writers from different sessions race for the lock, each writing a block
// and closing: the blocks never interleave and nothing is lost.
TEST_P(LogTest, ConcurrentWritersSerialize) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  Namespace* others[2] = {OtherNs(ns), OtherNs(ns)};
  ASSERT_NE(others[0], nullptr);
  ASSERT_NE(others[1], nullptr);
  const char* tags[2] = {"X", "Y"};
  Status errs[2];
  std::vector<std::thread> ts;
  for (int k = 0; k < 2; ++k) {
    ts.emplace_back([&, k] {
      for (int round = 0; round < 3; ++round) {
        auto w = others[k]->OpenWriterSync("log", {.owner_id = tags[k], .lock_timeout_ms = Scaled(20000ms).count()});
        if (!w.ok()) {
          errs[k] = w.status();
          return;
        }
        auto outs = WriteAsync(w->get(), Payloads(std::string(tags[k]) + std::to_string(round), 50), 8);
        for (auto& o : outs) {
          if (!o.status.ok() && errs[k].ok()) errs[k] = o.status;
        }
        Status c = (*w)->CloseSync();
        if (!c.ok() && errs[k].ok()) errs[k] = c;
      }
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_TRUE(errs[0].ok()) << errs[0].ToString();
  ASSERT_TRUE(errs[1].ok()) << errs[1].ToString();
  auto r = Reader(ns, "log");
  ASSERT_NE(r, nullptr);
  ReadOut got = ReadN(r.get(), 300, 10000ms);
  ASSERT_EQ(got.recs.size(), 300u) << got.error.ToString();
  EXPECT_EQ(CheckOrder(got.recs, 0), "");
  // Blocks of 50 records of one writer and round, each complete and in order.
  std::set<std::string> blocks;
  for (size_t b = 0; b < 6; ++b) {
    const std::string& first = got.recs[b * 50].payload;
    const std::string block = first.substr(0, first.find('-'));
    EXPECT_TRUE(blocks.insert(block).second) << "block " << block << " appears twice";
    for (size_t i = 0; i < 50; ++i) {
      EXPECT_EQ(got.recs[b * 50 + i].payload, block + "-" + std::to_string(i)) << "interleaved writers";
    }
  }
  EXPECT_EQ(blocks.size(), 6u);
}

// A reader destroyed while it long-polls (and while its segment metadata
// refresh is in flight), then the client and store closed, as
// LogClient::~LogClient does: nothing may touch the closed client afterwards.
TEST_P(LogTest, DestroyTailingReaderThenClient) {
  Namespace* ns = MakeNs(Settings());
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->CreateLogSync("log").ok());
  auto w = Writer(ns, "log");
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(WriteSyncN(w.get(), Payloads("r", 3)).size(), 3u);
  for (int i = 0; i < 3; ++i) {
    auto r = Reader(ns, "log");
    ASSERT_NE(r, nullptr);
    ReadOut got = ReadN(r.get(), 3, 5000ms);
    ASSERT_EQ(got.recs.size(), 3u) << got.error.ToString();
    auto none = r->ReadNextSync(1, 50 * (i + 1));  // now long-polling for record 3
    EXPECT_TRUE(none.status().Is(LogErrc::kTimeout)) << none.status().ToString();
  }  // destroyed mid long poll
  ASSERT_TRUE(w->CloseSync().ok());
  w.reset();
  // Tear down in the documented order now, inside the test, so a crash is attributed here.
  namespaces_.clear();
  cluster_.reset();
  SUCCEED();
}

INSTANTIATE_TEST_SUITE_P(Stores, LogZkTest, ::testing::Values(StoreKind::kZooKeeper),
                         [](const ::testing::TestParamInfo<StoreKind>&) { return std::string("ZooKeeper"); });
INSTANTIATE_TEST_SUITE_P(Stores, LogTest, ::testing::Values(StoreKind::kEmbedded, StoreKind::kZooKeeper),
                         [](const ::testing::TestParamInfo<StoreKind>& i) {
                           return i.param == StoreKind::kEmbedded ? std::string("Embedded") : std::string("ZooKeeper");
                         });

}  // namespace
}  // namespace dlog::test
