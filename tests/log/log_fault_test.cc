// Log streams under faults, with writer PROCESSES (log_test_writer) over a
// real ZooKeeper and 4 `dlogd logstore` nodes (E=3, Qw=3, Qa=2):
//
//   log_writer_failover: writer A is SIGKILLed mid-stream; writer B waits for
//     the lock (A's session expires), recovers and writes. A tailing reader in
//     the test saw every acknowledged record exactly once, in order, and
//     nothing that was never sent.
//   log_writer_paused: writer A is SIGSTOPped for 2x the session timeout;
//     B takes over; A resumes and gets nothing more acknowledged; the log
//     holds every record either writer saw acknowledged.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/log/log_fixture.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;

constexpr int kSessionTimeoutMs = 2000;  // ZkServer tick 200 ms: within [400, 4000]

// Like WaitFor (scaled timeout) but polls every 100 ms: the conditions parse files.
bool Poll(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + Scaled(timeout);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return cond();
}

// What a writer process printed.
struct WriterLog {
  bool opened = false;
  bool done = false;
  std::set<std::string> sent, acked, unknown, failed;
  std::map<std::string, std::string> ack_dlsn;  // payload -> DLSN text
  std::vector<std::string> lines;
};

WriterLog Parse(const std::string& out) {
  WriterLog w;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    w.lines.push_back(line);
    std::istringstream ls(line);
    std::string kind, payload, dlsn;
    ls >> kind >> payload;
    if (kind == "OPEN") {
      w.opened = true;
    } else if (kind == "SEND") {
      w.sent.insert(payload);
    } else if (kind == "ACK") {
      ls >> dlsn;
      w.acked.insert(payload);
      w.ack_dlsn[payload] = dlsn;
    } else if (kind == "UNKNOWN") {
      w.unknown.insert(payload);
    } else if (kind == "FAIL") {
      w.failed.insert(payload);
    } else if (kind == "DONE") {
      w.done = true;
    }
  }
  return w;
}

class LogFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ZkServer::Available()) << "ZooKeeper is not installed (scripts/install-deps.sh installs it)";
    zk_ = std::make_unique<ZkServer>(200);
    ASSERT_TRUE(zk_->Start()) << zk_->Log();
    cluster_ = std::make_unique<SegmentCluster>(4, zk_.get());
    ASSERT_TRUE(cluster_->Start()) << cluster_->error();
    segment::SegmentOptions so;
    so.node_request_timeout_ms = 2000;
    client_ = cluster_->NewClient(so);
    NamespaceSettings s;
    s.ensemble_size = 3;
    s.write_quorum = 3;
    s.ack_quorum = 2;
    s.roll_entries = 300;  // a few rolls during the run
    auto ns = Namespace::CreateSync(client_, "fault", s);
    ASSERT_TRUE(ns.ok()) << ns.status().ToString();
    ns_ = std::move(*ns);
    ASSERT_TRUE(ns_->CreateLogSync("stream").ok());
  }

  void TearDown() override {
    writers_.clear();
    ns_.reset();
    cluster_.reset();
    zk_.reset();
  }

  // `interval_us` between writes: A writes fast (so records are in flight
  // when it is killed or stopped), B at a moderate pace.
  Process* StartWriter(const std::string& tag, int64_t count, int64_t lock_timeout_ms, int64_t interval_us) {
    ProcessOptions o;
    o.argv = {LOG_TEST_WRITER_PATH,
              "--metadata",
              "zk://" + zk_->connect() + "/dlog",
              "--cluster",
              "seg",
              "--namespace",
              "fault",
              "--log",
              "stream",
              "--tag",
              tag,
              "--session-timeout-ms",
              std::to_string(kSessionTimeoutMs),
              "--lock-timeout-ms",
              std::to_string(lock_timeout_ms),
              "--window",
              "32",
              "--count",
              std::to_string(count),
              "--interval-us",
              std::to_string(interval_us)};
    o.stdout_path = cluster_->dir().Sub("writer-" + tag + ".out");
    o.stderr_path = cluster_->dir().Sub("writer-" + tag + ".err");
    writers_.push_back(std::make_unique<Process>(o));
    EXPECT_TRUE(writers_.back()->Start()) << tag;
    return writers_.back().get();
  }

  static size_t Acks(Process* p) { return Parse(p->Stdout()).acked.size(); }

  // Tail of a process's stderr for failure messages.
  static std::string ErrTail(Process* p) {
    std::string e = p->Stderr();
    return e.size() > 3000 ? e.substr(e.size() - 3000) : e;
  }

  std::unique_ptr<ZkServer> zk_;
  std::unique_ptr<SegmentCluster> cluster_;
  SegmentClient* client_ = nullptr;
  std::unique_ptr<Namespace> ns_;
  std::vector<std::unique_ptr<Process>> writers_;
};

// A reader thread that follows the log until stopped.
class TailReader {
 public:
  explicit TailReader(LogReader* r) : r_(r), t_([this] { Run(); }) {}
  ~TailReader() { Stop(); }
  void Stop() {
    stop_ = true;
    if (t_.joinable()) t_.join();
  }
  std::vector<Rec> records() {
    MutexLock l(&mu_);
    return recs_;
  }
  Status error() {
    MutexLock l(&mu_);
    return err_;
  }
  bool Has(const std::set<std::string>& payloads) {
    MutexLock l(&mu_);
    size_t found = 0;
    for (auto& r : recs_) found += payloads.count(r.payload);
    return found >= payloads.size();
  }

 private:
  void Run() {
    while (!stop_.load()) {
      auto res = r_->ReadNextSync(500, 200);
      if (!res.ok()) {
        if (res.status().Is(LogErrc::kTimeout)) continue;
        MutexLock l(&mu_);
        err_ = res.status();
        return;
      }
      MutexLock l(&mu_);
      for (auto& lr : *res) recs_.push_back(Rec{lr.dlsn, lr.seq, lr.txid, lr.payload.ToString()});
    }
  }

  LogReader* r_;
  std::atomic<bool> stop_{false};
  Mutex mu_;
  std::vector<Rec> recs_ DLOG_GUARDED_BY(mu_);
  Status err_ DLOG_GUARDED_BY(mu_);
  std::thread t_;
};

// The checks both tests share. `seen`: records of the log in order.
void CheckLog(const std::vector<Rec>& seen, const WriterLog& a, const WriterLog& b) {
  EXPECT_EQ(CheckOrder(seen, 0), "");
  std::map<std::string, size_t> pos;
  size_t first_b = seen.size();
  for (size_t i = 0; i < seen.size(); ++i) {
    const std::string& p = seen[i].payload;
    EXPECT_TRUE(pos.emplace(p, i).second) << "record " << p << " read twice";
    const bool is_a = p.rfind("A-", 0) == 0, is_b = p.rfind("B-", 0) == 0;
    if (is_b && first_b == seen.size()) first_b = i;
    if (is_a) {
      EXPECT_TRUE(a.sent.count(p)) << p << " was never sent by A";
      EXPECT_LT(i, first_b) << "A's " << p << " at " << i << " after B's first record at " << first_b;
    } else if (is_b) {
      EXPECT_TRUE(b.sent.count(p)) << p << " was never sent by B";
      if (b.done) EXPECT_TRUE(b.acked.count(p) || b.unknown.count(p)) << p << ": B neither acked nor unknown";
    } else {
      ADD_FAILURE() << "record '" << p << "' from nobody";
    }
  }
  for (const WriterLog* w : {&a, &b}) {
    for (const auto& p : w->acked) {
      auto it = pos.find(p);
      if (it == pos.end()) {
        ADD_FAILURE() << "acknowledged " << p << " (" << w->ack_dlsn.at(p) << ") is not in the log";
        continue;
      }
      EXPECT_EQ(seen[it->second].dlsn.ToString(), w->ack_dlsn.at(p)) << p;
    }
    for (const auto& p : w->failed) EXPECT_EQ(pos.count(p), 0u) << p << " was refused but is in the log";
  }
  // Each writer's records appear in the order it sent them, with no gaps
  // among what was read (entries complete in order).
  for (const char* prefix : {"A-", "B-"}) {
    int64_t expect = 0;
    for (const Rec& r : seen) {
      if (r.payload.rfind(prefix, 0) != 0) continue;
      EXPECT_EQ(r.payload, prefix + std::to_string(expect)) << "out of order or gap";
      ++expect;
    }
  }
}

TEST_F(LogFaultTest, log_writer_failover) {
  auto rd = ns_->OpenReaderSync("stream", StartPosition::Earliest());
  ASSERT_TRUE(rd.ok()) << rd.status().ToString();
  TailReader tail(rd->get());

  Process* a = StartWriter("A", 0, 10000, 100);
  ASSERT_TRUE(Poll([&] { return Acks(a) >= 400; }, 30000ms)) << a->Stdout().substr(0, 2000) << ErrTail(a);
  a->Kill9AndWait();
  const int64_t killed_at = MonoMillis();
  WriterLog la = Parse(a->Stdout());
  std::fprintf(stderr, "A: sent %zu, acked %zu before SIGKILL\n", la.sent.size(), la.acked.size());

  Process* b = StartWriter("B", 400, Scaled(30000ms).count(), 500);
  ASSERT_TRUE(b->WaitForOutput("OPEN", 30000ms).has_value()) << b->Stdout() << ErrTail(b);
  std::fprintf(stderr, "B opened %lld ms after A was killed\n", static_cast<long long>(MonoMillis() - killed_at));
  auto exit = b->Wait(60000ms);
  ASSERT_TRUE(exit.has_value()) << "B did not finish: " << ErrTail(b);
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << *exit << ErrTail(b);
  WriterLog lb = Parse(b->Stdout());
  EXPECT_TRUE(lb.done) << b->Stdout().substr(0, 2000);
  EXPECT_EQ(lb.acked.size(), 400u) << "B: " << lb.unknown.size() << " unknown, " << lb.failed.size() << " failed";

  std::set<std::string> all = la.acked;
  all.insert(lb.acked.begin(), lb.acked.end());
  EXPECT_TRUE(Poll([&] { return tail.Has(all); }, 20000ms)) << "the tailing reader missed acknowledged records";
  std::this_thread::sleep_for(300ms);  // anything extra would show up now
  tail.Stop();
  EXPECT_TRUE(tail.error().ok()) << tail.error().ToString();
  std::vector<Rec> seen = tail.records();
  std::fprintf(stderr, "reader saw %zu records (A acked %zu, B acked %zu)\n", seen.size(), la.acked.size(),
               lb.acked.size());
  CheckLog(seen, la, lb);

  // A fresh reader agrees with the tailing one.
  auto fresh = ns_->OpenReaderSync("stream", StartPosition::Earliest());
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  ReadOut again = ReadN(fresh->get(), seen.size() + 1, 5000ms, 1000);
  ASSERT_EQ(again.recs.size(), seen.size()) << again.error.ToString();
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(again.recs[i].payload, seen[i].payload) << i;
    ASSERT_EQ(again.recs[i].dlsn, seen[i].dlsn) << i;
  }
}

TEST_F(LogFaultTest, log_writer_paused) {
  Process* a = StartWriter("A", 0, 10000, 100);
  ASSERT_TRUE(Poll([&] { return Acks(a) >= 400; }, 30000ms)) << a->Stdout().substr(0, 2000) << ErrTail(a);
  a->Signal(SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(Scaled(std::chrono::milliseconds(2 * kSessionTimeoutMs))));
  const std::string a_before = a->Stdout();
  const WriterLog la_before = Parse(a_before);
  std::fprintf(stderr, "A paused: sent %zu, acked %zu\n", la_before.sent.size(), la_before.acked.size());

  Process* b = StartWriter("B", 600, Scaled(30000ms).count(), 500);
  ASSERT_TRUE(b->WaitForOutput("OPEN", 30000ms).has_value()) << b->Stdout() << ErrTail(b);
  ASSERT_TRUE(Poll([&] { return Acks(b) >= 100; }, 30000ms)) << ErrTail(b);
  // A wakes up while B writes.
  EXPECT_EQ(a->Stdout().size(), a_before.size()) << "A printed while stopped?";
  a->Signal(SIGCONT);
  auto exit = b->Wait(60000ms);
  ASSERT_TRUE(exit.has_value()) << "B did not finish: " << ErrTail(b);
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << *exit << ErrTail(b);
  // Give A time to notice and report its pending writes.
  IgnoreError(Poll([&] { return Parse(a->Stdout()).done; }, 10000ms));
  a->Signal(SIGTERM);
  IgnoreError(a->Wait(10000ms));
  if (a->Running()) a->Kill9AndWait();
  WriterLog la = Parse(a->Stdout());
  WriterLog lb = Parse(b->Stdout());
  EXPECT_EQ(lb.acked.size(), 600u) << "B: " << lb.unknown.size() << " unknown, " << lb.failed.size() << " failed";

  // A's lines after it resumed: no ACK of a record that is not in the log
  // (checked below) and no ACK of anything sent after the resume.
  std::set<std::string> acked_after_resume;
  for (size_t i = la_before.lines.size(); i < la.lines.size(); ++i) {
    if (la.lines[i].rfind("ACK ", 0) == 0) acked_after_resume.insert(la.lines[i]);
  }
  std::set<std::string> sent_after_resume;
  for (const auto& p : la.sent) {
    if (!la_before.sent.count(p)) sent_after_resume.insert(p);
  }
  for (const auto& p : sent_after_resume) {
    EXPECT_FALSE(la.acked.count(p)) << "A sent " << p << " after resuming and got it acknowledged";
  }
  std::fprintf(stderr, "A after resume: %zu more lines, %zu ACK, %zu UNKNOWN total, %zu sent after resume; done=%d\n",
               la.lines.size() - la_before.lines.size(), acked_after_resume.size(), la.unknown.size(),
               sent_after_resume.size(), la.done);
  for (const auto& l : acked_after_resume) std::fprintf(stderr, "  A after resume: %s\n", l.c_str());

  // The whole log, from a fresh reader.
  auto rd = ns_->OpenReaderSync("stream", StartPosition::Earliest());
  ASSERT_TRUE(rd.ok()) << rd.status().ToString();
  const size_t upper = la.sent.size() + lb.sent.size();
  ReadOut got = ReadN(rd->get(), upper + 1, 8000ms, 1000);
  EXPECT_TRUE(got.error.ok()) << got.error.ToString();
  std::fprintf(stderr, "log holds %zu records (A acked %zu, B acked %zu)\n", got.recs.size(), la.acked.size(),
               lb.acked.size());
  CheckLog(got.recs, la, lb);
}

}  // namespace
}  // namespace dlog::test
