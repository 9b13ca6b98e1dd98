// broker/cursor against cursor logs on real `dlogd logstore` children with the
// embedded metadata store: acks vs a std::set model (100k ops), partial,
// cumulative, reset; persistence through the RocksDB fast path and through
// replay (another broker's empty CursorDb); snapshots and truncation; a
// second owner waiting for the lock; the memory budget with 100k holes.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "broker/cursor/cursor_db.h"
#include "broker/cursor/partition_cursors.h"
#include "tests/log/log_fixture.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;
using broker::CursorDb;
using broker::CursorDbOptions;
using broker::PartitionCursors;
using broker::PartitionCursorsOptions;
using broker::SubscriptionCursor;
using Item = SubscriptionCursor::AckItem;
using CState = SubscriptionCursor::State;

// What a cursor should hold.
struct Model {
  int64_t md = 0;
  std::set<int64_t> acked;                   // fully acked, >= md
  std::map<int64_t, std::set<int>> partial;  // seq -> acked indexes
  std::map<int64_t, int> batch_size;

  void Advance() {
    while (acked.count(md)) acked.erase(md++);
  }
  void Whole(int64_t s) {
    if (s < md) return;
    acked.insert(s);
    partial.erase(s);
  }
  void Index(int64_t s, int bi, int bs) {
    if (s < md || acked.count(s)) return;
    partial[s].insert(bi);
    if (static_cast<int>(partial[s].size()) == bs) {
      partial.erase(s);
      acked.insert(s);
    }
  }
  void JumpTo(int64_t m) {
    if (m <= md) return;
    md = m;
    acked.erase(acked.begin(), acked.lower_bound(m));
    partial.erase(partial.begin(), partial.lower_bound(m));
  }
  void Cumulative(int64_t s, int bi, int bs) {
    if (bi < 0) {
      JumpTo(s + 1);
    } else {
      JumpTo(s);
      for (int i = 0; i <= bi; ++i) Index(s, i, bs);
    }
    Advance();
  }
  void Reset(int64_t m) {
    md = m;
    acked.clear();
    partial.clear();
  }
  int64_t Holes() const {
    int64_t h = 0;
    int64_t prev = -2;
    for (int64_t s : acked) {
      if (s != prev + 1) ++h;
      prev = s;
    }
    return h;
  }
};

class CursorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<SegmentCluster>(1);
    ASSERT_TRUE(cluster_->Start()) << cluster_->error();
    segment::SegmentOptions so;
    so.node_request_timeout_ms = 2000;
    client_ = cluster_->NewClient(so);
    NamespaceSettings s;
    s.roll_entries = 20;  // segments roll so that truncation has something to drop
    s.truncation_grace_ms = 0;
    auto ns = Namespace::CreateSync(client_, "cursors-ns", s);
    ASSERT_TRUE(ns.ok()) << ns.status().ToString();
    ns_ = std::move(*ns);
    loop_ = std::make_unique<net::EventLoop>("broker");
    loop_->Start();
  }

  void TearDown() override {
    for (auto& p : open_) {
      if (*p) loop_->RunSync([&] { p->reset(); });
    }
    dbs_.clear();
    loop_->Stop();
    ns_.reset();
    cluster_.reset();
  }

  CursorDb* NewDb(int64_t budget = 64 << 20) {
    CursorDbOptions o;
    o.path = dir_.Sub("db" + std::to_string(dbs_.size()));
    o.cache_budget_bytes = budget;
    o.sync_meta = false;
    auto r = CursorDb::Open(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    dbs_.push_back(std::move(*r));
    return dbs_.back().get();
  }

  Result<std::unique_ptr<PartitionCursors>> OpenSync(CursorDb* db, const std::string& log,
                                                     PartitionCursorsOptions o = {}) {
    std::promise<Result<std::unique_ptr<PartitionCursors>>> p;
    PartitionCursors::Open(db, ns_.get(), log, loop_.get(), o,
                           [&](Result<std::unique_ptr<PartitionCursors>> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }

  // Opens and keeps it for TearDown (destroyed on the loop).
  PartitionCursors* Open(CursorDb* db, const std::string& log, PartitionCursorsOptions o = {}) {
    auto r = OpenSync(db, log, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    open_.push_back(std::make_shared<std::unique_ptr<PartitionCursors>>(std::move(*r)));
    return open_.back()->get();
  }

  Status Close(PartitionCursors* pc) {
    Status st = Call([&](auto done) { pc->Close(done); });
    for (auto& p : open_) {
      if (p->get() == pc) loop_->RunSync([&] { p->reset(); });
    }
    return st;
  }

  Status Call(const std::function<void(std::function<void(Status)>)>& f) {
    std::promise<Status> p;
    loop_->Post([&] { f([&](Status st) { p.set_value(st); }); });
    return p.get_future().get();
  }

  SubscriptionCursor* Create(PartitionCursors* pc, const std::string& name, int64_t md = 0) {
    std::promise<Result<SubscriptionCursor*>> p;
    loop_->Post([&] { pc->CreateSubscription(name, 1, md, [&](Result<SubscriptionCursor*> r) { p.set_value(r); }); });
    auto r = p.get_future().get();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : nullptr;
  }

  Status Ack(SubscriptionCursor* c, std::vector<Item> items) {
    return Call([&](auto done) { c->Ack(items, done); });
  }

  // Compares the cursor with the model over [md, hi] (prefetching block-sized ranges).
  std::string Compare(SubscriptionCursor* c, const Model& m, int64_t hi) {
    std::string problem;
    loop_->RunSync([&] {
      if (c->mark_delete() != m.md) {
        problem = "mark_delete " + std::to_string(c->mark_delete()) + " != " + std::to_string(m.md);
      } else if (c->acked_records_beyond() != static_cast<int64_t>(m.acked.size())) {
        problem = "acked_beyond " + std::to_string(c->acked_records_beyond()) + " != " + std::to_string(m.acked.size());
      } else if (c->ack_holes() != m.Holes()) {
        problem = "holes " + std::to_string(c->ack_holes()) + " != " + std::to_string(m.Holes());
      }
    });
    if (!problem.empty()) return problem;
    for (int64_t from = m.md; from <= hi && problem.empty(); from += 4096) {
      const int64_t to = std::min(hi, from + 4095);
      std::promise<void> p;
      loop_->Post([&] { c->Prefetch(from, to, [&] { p.set_value(); }); });
      p.get_future().get();
      loop_->RunSync([&] {
        for (int64_t s = from; s <= to && problem.empty(); ++s) {
          std::vector<uint64_t> bits;
          CState st = c->Check(s, &bits);
          CState want = m.acked.count(s) || s < m.md ? CState::kAcked
                        : m.partial.count(s)         ? CState::kPartial
                                                     : CState::kUnacked;
          if (st != want) {
            problem = "seq " + std::to_string(s) + ": state " + std::to_string(static_cast<int>(st)) +
                      " != " + std::to_string(static_cast<int>(want));
          } else if (st == CState::kPartial) {
            for (int i = 0; i < 64; ++i) {
              const bool got = (bits[0] >> i) & 1;
              if (got != (m.partial.at(s).count(i) > 0)) problem = "seq " + std::to_string(s) + ": bit mismatch";
            }
          }
        }
        c->Unpin(from, to);
      });
    }
    return problem;
  }

  TempDir dir_;
  std::unique_ptr<SegmentCluster> cluster_;
  SegmentClient* client_ = nullptr;
  std::unique_ptr<Namespace> ns_;
  std::unique_ptr<net::EventLoop> loop_;
  std::vector<std::unique_ptr<CursorDb>> dbs_;
  std::vector<std::shared_ptr<std::unique_ptr<PartitionCursors>>> open_;
};

// Random individual, partial, cumulative acks and resets against the model
// (100k ack items); then the same state after reopening on the same
// CursorDb (fast path) and on another (replay).
TEST_F(CursorTest, RandomAcksMatchModelAndSurviveReopen) {
  CursorDb* db = NewDb(256 << 10);
  PartitionCursorsOptions o;
  o.snapshot_every_deltas = 300;
  PartitionCursors* pc = Open(db, "t-partition-0~cursors", o);
  ASSERT_NE(pc, nullptr);
  SubscriptionCursor* c = Create(pc, "sub");
  ASSERT_NE(c, nullptr);
  Model m;
  std::mt19937_64 rng(42);
  const int64_t span = 30000;
  int64_t items = 0;
  int calls = 0;
  while (items < 100000) {
    ++calls;
    const int r = static_cast<int>(rng() % 100);
    if (r == 0) {
      const int64_t to = static_cast<int64_t>(rng() % span);
      ASSERT_TRUE(Call([&](auto done) { c->Reset(to, done); }).ok());
      m.Reset(to);
      continue;
    }
    if (r < 4) {
      const int64_t s = m.md + static_cast<int64_t>(rng() % 2000);
      const int bi = static_cast<int>(rng() % 3) - 1;
      ASSERT_TRUE(Call([&](auto done) { c->AckCumulative(Item{s, bi, 4}, done); }).ok());
      m.Cumulative(s, bi, 4);
      ++items;
      continue;
    }
    std::vector<Item> batch;
    const int64_t base = m.md + static_cast<int64_t>(rng() % 8000);
    for (int k = 0; k < 100; ++k) {
      const int64_t s = std::min(span, base + static_cast<int64_t>(rng() % 3000));
      if (rng() % 4 == 0) {
        batch.push_back(Item{s, static_cast<int32_t>(rng() % 4), 4});
      } else {
        batch.push_back(Item{s, -1, 1});
      }
    }
    Status st = Ack(c, batch);
    ASSERT_TRUE(st.ok()) << st.ToString();
    for (auto& it : batch) {
      if (it.batch_index < 0) {
        m.Whole(it.seq);
      } else {
        m.Index(it.seq, it.batch_index, 4);
      }
    }
    m.Advance();
    items += 100;
    if (calls % 200 == 0) ASSERT_EQ(Compare(c, m, span), "") << "after " << items << " items";
  }
  ASSERT_EQ(Compare(c, m, span), "");
  EXPECT_GT(pc->stats().snapshots, 0);
  ASSERT_TRUE(Close(pc).ok());

  // Same broker: RocksDB fast path.
  pc = Open(db, "t-partition-0~cursors", o);
  ASSERT_NE(pc, nullptr);
  EXPECT_TRUE(pc->stats().opened_from_db);
  c = pc->Find("sub");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(Compare(c, m, span), "");
  ASSERT_TRUE(Close(pc).ok());

  // Another broker: replay of the (snapshotted, truncated) cursor log.
  CursorDb* other = NewDb(64 << 10);
  pc = Open(other, "t-partition-0~cursors", o);
  ASSERT_NE(pc, nullptr);
  EXPECT_FALSE(pc->stats().opened_from_db);
  EXPECT_GT(pc->stats().replayed_records, 0);
  c = pc->Find("sub");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(Compare(c, m, span), "");
  ASSERT_TRUE(Close(pc).ok());
}

TEST_F(CursorTest, PartialCumulativeResetAndSubscriptions) {
  CursorDb* db = NewDb();
  PartitionCursors* pc = Open(db, "p~cursors");
  ASSERT_NE(pc, nullptr);
  SubscriptionCursor* a = Create(pc, "a");
  SubscriptionCursor* b = Create(pc, "b", 100);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(Call([&](auto done) {
                 pc->CreateSubscription("a", 0, 0, [done](Result<SubscriptionCursor*> r) { done(r.status()); });
               }).ok());
  // Partial batch: indexes 0..2 of 4, then 3: the record becomes whole and mark_delete moves.
  ASSERT_TRUE(Ack(a, {{0, 0, 4}, {0, 1, 4}, {0, 2, 4}}).ok());
  loop_->RunSync([&] {
    std::vector<uint64_t> bits;
    EXPECT_EQ(a->Check(0, &bits), CState::kPartial);
    EXPECT_EQ(bits[0], 7u);
    EXPECT_EQ(a->mark_delete(), 0);
  });
  ASSERT_TRUE(Ack(a, {{0, 3, 4}, {2, -1, 1}, {3, -1, 1}, {7, -1, 1}}).ok());
  loop_->RunSync([&] {
    EXPECT_EQ(a->mark_delete(), 1);
    EXPECT_EQ(a->acked_records_beyond(), 3);
    EXPECT_EQ(a->ack_holes(), 2);
  });
  ASSERT_TRUE(Call([&](auto done) { a->AckCumulative(Item{5, 1, 3}, done); }).ok());
  loop_->RunSync([&] {
    EXPECT_EQ(a->mark_delete(), 5);
    EXPECT_EQ(a->acked_records_beyond(), 1);  // 7
  });
  ASSERT_TRUE(Call([&](auto done) { a->AckCumulative(Item{5, 2, 3}, done); }).ok());
  loop_->RunSync([&] { EXPECT_EQ(a->mark_delete(), 6); });
  ASSERT_TRUE(Call([&](auto done) { a->AckCumulative(Item{6, -1, 1}, done); }).ok());
  loop_->RunSync([&] {
    EXPECT_EQ(a->mark_delete(), 8);
    EXPECT_EQ(a->acked_records_beyond(), 0);
  });
  // Seek backward.
  ASSERT_TRUE(Ack(a, {{10, -1, 1}, {20, -1, 1}}).ok());
  ASSERT_TRUE(Call([&](auto done) { a->Reset(2, done); }).ok());
  loop_->RunSync([&] {
    EXPECT_EQ(a->mark_delete(), 2);
    EXPECT_EQ(a->acked_records_beyond(), 0);
    EXPECT_EQ(a->ack_holes(), 0);
  });
  // Bad input is refused.
  EXPECT_FALSE(Ack(a, {{-1, -1, 1}}).ok());
  EXPECT_FALSE(Ack(a, {{3, 5, 4}}).ok());
  // Dedup snapshot and delete.
  ASSERT_TRUE(Call([&](auto done) { pc->SaveDedupSnapshot("dedup-1", done); }).ok());
  ASSERT_TRUE(Call([&](auto done) { pc->DeleteSubscription("b", done); }).ok());
  loop_->RunSync([&] {
    EXPECT_EQ(pc->Find("b"), nullptr);
    EXPECT_EQ(pc->SubscriptionNames(), std::vector<std::string>{"a"});
  });
  ASSERT_TRUE(Close(pc).ok());
  CursorDb* other = NewDb();
  pc = Open(other, "p~cursors");
  ASSERT_NE(pc, nullptr);
  loop_->RunSync([&] {
    ASSERT_NE(pc->dedup_snapshot(), nullptr);
    EXPECT_EQ(*pc->dedup_snapshot(), "dedup-1");
    EXPECT_EQ(pc->SubscriptionNames(), std::vector<std::string>{"a"});
    EXPECT_EQ(pc->Find("a")->mark_delete(), 2);
  });
}

// Snapshots every few records; the cursor log is truncated behind them, and
// a replay (another broker) starts at a snapshot.
TEST_F(CursorTest, SnapshotTruncateReplay) {
  CursorDb* db = NewDb();
  PartitionCursorsOptions o;
  o.snapshot_every_deltas = 25;
  o.snapshot_chunk_bytes = 4096;  // several chunks per snapshot
  PartitionCursors* pc = Open(db, "s~cursors", o);
  ASSERT_NE(pc, nullptr);
  Model ma, mb;
  SubscriptionCursor* a = Create(pc, "a");
  SubscriptionCursor* b = Create(pc, "b");
  ASSERT_TRUE(Call([&](auto done) { pc->SaveDedupSnapshot(std::string(5000, 'd'), done); }).ok());
  std::mt19937_64 rng(3);
  for (int i = 0; i < 400; ++i) {
    std::vector<Item> batch;
    for (int k = 0; k < 20; ++k) batch.push_back(Item{static_cast<int64_t>(rng() % 100000), -1, 1});
    SubscriptionCursor* c = i % 2 ? a : b;
    Model& m = i % 2 ? ma : mb;
    ASSERT_TRUE(Ack(c, batch).ok());
    for (auto& it : batch) m.Whole(it.seq);
    m.Advance();
  }
  EXPECT_GE(pc->stats().snapshots, 5);
  ASSERT_TRUE(WaitFor([&] { return pc->stats().truncations > 0; }, 10000ms));
  ASSERT_TRUE(Close(pc).ok());
  auto info = ns_->GetLogInfoSync("s~cursors");
  ASSERT_TRUE(info.ok());
  EXPECT_GT(info->meta.truncated_before_seq(), 0);
  CursorDb* other = NewDb(32 << 10);
  pc = Open(other, "s~cursors", o);
  ASSERT_NE(pc, nullptr);
  EXPECT_LT(pc->stats().replayed_records, 400);
  ASSERT_EQ(Compare(pc->Find("a"), ma, 100000), "");
  ASSERT_EQ(Compare(pc->Find("b"), mb, 100000), "");
  loop_->RunSync([&] { EXPECT_EQ(*pc->dedup_snapshot(), std::string(5000, 'd')); });
}

// A second owner waits for the lock while the first holds it; once it has
// it, the first can persist nothing more.
TEST_F(CursorTest, SecondOwnerWaitsThenTakesOver) {
  CursorDb* db_a = NewDb();
  CursorDb* db_b = NewDb();
  PartitionCursors* a = Open(db_a, "o~cursors");
  ASSERT_NE(a, nullptr);
  SubscriptionCursor* sa = Create(a, "sub");
  ASSERT_TRUE(Ack(sa, {{0, -1, 1}, {1, -1, 1}, {5, -1, 1}}).ok());
  std::atomic<bool> b_open{false};
  Result<std::unique_ptr<PartitionCursors>> b = Status::Error(CommonErrc::kAborted, "not opened");
  PartitionCursorsOptions ob;
  ob.lock_timeout_ms = Scaled(20000ms).count();
  std::thread tb([&] {
    b = OpenSync(db_b, "o~cursors", ob);
    b_open = true;
  });
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(b_open.load());
  ASSERT_TRUE(Ack(sa, {{2, -1, 1}}).ok());
  // A goes away without Close (abandoned: e.g. the broker lost the partition).
  loop_->RunSync([&] { open_.front()->reset(); });
  tb.join();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  open_.push_back(std::make_shared<std::unique_ptr<PartitionCursors>>(std::move(*b)));
  PartitionCursors* pb = open_.back()->get();
  SubscriptionCursor* sb = pb->Find("sub");
  ASSERT_NE(sb, nullptr);
  loop_->RunSync([&] {
    EXPECT_EQ(sb->mark_delete(), 3);
    EXPECT_EQ(sb->acked_records_beyond(), 1);
  });
}

// 200,000 records, half of them (every odd one) acked one by one in random
// order (100,000 holes), with a
// cache budget of 16 KiB (a few dozen blocks): the budget is never exceeded,
// and the state is exact after reopening (fast path and replay).
TEST_F(CursorTest, HolesSpillWithinBudget) {
  const int64_t budget = 16 << 10;
  CursorDb* db = NewDb(budget);
  PartitionCursorsOptions o;
  o.snapshot_every_deltas = 40;
  PartitionCursors* pc = Open(db, "m~cursors", o);
  ASSERT_NE(pc, nullptr);
  SubscriptionCursor* c = Create(pc, "sub");
  Model m;
  std::mt19937_64 rng(9);
  const int64_t n = 200000;
  std::vector<int64_t> chunks;
  for (int64_t s = 0; s < n; s += 2048) chunks.push_back(s);
  std::shuffle(chunks.begin(), chunks.end(), rng);
  for (int64_t from : chunks) {
    // Every odd record, one by one in random order: 100,000 holes in the end.
    std::vector<Item> batch;
    for (int64_t s = from + 1; s < std::min(n, from + 2048); s += 2) batch.push_back(Item{s, -1, 1});
    std::shuffle(batch.begin(), batch.end(), rng);
    ASSERT_TRUE(Ack(c, batch).ok());
    for (auto& it : batch) m.Whole(it.seq);
  }
  m.Advance();
  auto stats = db->cache_stats();
  EXPECT_LE(stats.peak_bytes, budget);
  EXPECT_EQ(stats.overcommits_total, 0);
  EXPECT_GT(stats.evictions_total, 0);
  std::fprintf(stderr, "holes %lld, peak %lld of %lld, evictions %lld, loads %lld\n", static_cast<long long>(m.Holes()),
               static_cast<long long>(stats.peak_bytes), static_cast<long long>(budget),
               static_cast<long long>(stats.evictions_total), static_cast<long long>(stats.loads_total));
  EXPECT_EQ(m.Holes(), 100000);
  ASSERT_EQ(Compare(c, m, n), "");
  ASSERT_TRUE(Close(pc).ok());
  pc = Open(db, "m~cursors", o);
  ASSERT_NE(pc, nullptr);
  EXPECT_TRUE(pc->stats().opened_from_db);
  ASSERT_EQ(Compare(pc->Find("sub"), m, n), "");
  ASSERT_TRUE(Close(pc).ok());
  CursorDb* other = NewDb(budget);
  pc = Open(other, "m~cursors", o);
  ASSERT_NE(pc, nullptr);
  ASSERT_EQ(Compare(pc->Find("sub"), m, n), "");
  EXPECT_LE(other->cache_stats().peak_bytes, budget);
  EXPECT_LE(db->cache_stats().peak_bytes, budget);
}

}  // namespace
}  // namespace dlog::test
