// Many logs in one namespace (embedded store, one `dlogd logstore` node):
// create 10,000 logs, write one record to each, list them, read a sample,
// delete them all. Prints the time of each phase. DLOG_LOG_SCALE_LOGS
// overrides the count, DLOG_LOG_SCALE_THREADS the writer threads (4).
#include <gtest/gtest.h>

#include <atomic>
#include <semaphore>
#include <set>
#include <thread>

#include "tests/log/log_fixture.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;

std::string LogName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "log-%05d", i);
  return buf;
}

// Runs op(i, done) for i in [0, n) with at most `window` outstanding; returns
// the first failure ("" if none).
std::string RunAsync(int n, int window, const std::function<void(int, std::function<void(Status)>)>& op) {
  std::counting_semaphore<1 << 16> permits(window);
  Mutex mu;
  std::string first;
  int failures = 0;
  for (int i = 0; i < n; ++i) {
    permits.acquire();
    op(i, [&, i](Status st) {
      if (!st.ok()) {
        MutexLock l(&mu);
        if (failures++ == 0) first = LogName(i) + ": " + st.ToString();
      }
      permits.release();
    });
  }
  for (int k = 0; k < window; ++k) permits.acquire();
  MutexLock l(&mu);
  return failures == 0 ? "" : std::to_string(failures) + " failures, first " + first;
}

TEST(LogScaleTest, TenThousandLogs) {
  const char* env = std::getenv("DLOG_LOG_SCALE_LOGS");
  const int n = env ? std::atoi(env) : 10000;
  SegmentCluster c(1);
  ASSERT_TRUE(c.Start()) << c.error();
  SegmentClient* client = c.NewClient();
  NamespaceSettings s;  // E = Qw = Qa = 1
  auto nsr = Namespace::CreateSync(client, "scale", s);
  ASSERT_TRUE(nsr.ok()) << nsr.status().ToString();
  Namespace* ns = nsr->get();
  const int64_t t_start = MonoMillis();

  int64_t t0 = MonoMillis();
  std::string err = RunAsync(n, 64, [&](int i, std::function<void(Status)> done) { ns->CreateLog(LogName(i), done); });
  ASSERT_EQ(err, "");
  const int64_t create_ms = MonoMillis() - t0;
  std::fprintf(stderr, "created %d logs in %lld ms\n", n, static_cast<long long>(create_ms));

  // One record each: open a writer, write, close; a few threads at once.
  t0 = MonoMillis();
  const char* tenv = std::getenv("DLOG_LOG_SCALE_THREADS");
  const int threads = tenv ? std::max(1, std::atoi(tenv)) : 4;
  std::atomic<int> next{0};
  std::atomic<int> write_failures{0};
  Mutex mu;
  std::string first_write_error;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        Status st;
        auto w = ns->OpenWriterSync(LogName(i), {.sweep_interval_ms = 0});
        if (!w.ok()) {
          st = w.status();
        } else {
          auto r = (*w)->WriteSync(Slice::CopyOf("record of " + LogName(i)));
          st = r.ok() ? (*w)->CloseSync() : r.status();
        }
        if (!st.ok()) {
          MutexLock l(&mu);
          if (write_failures++ == 0) first_write_error = LogName(i) + ": " + st.ToString();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  const int64_t write_ms = MonoMillis() - t0;
  {
    MutexLock l(&mu);
    ASSERT_EQ(write_failures.load(), 0) << first_write_error;
  }
  std::fprintf(stderr, "wrote one record to each of %d logs in %lld ms (%.2f ms per log, %d threads)\n", n,
               static_cast<long long>(write_ms), static_cast<double>(write_ms) / n, threads);

  t0 = MonoMillis();
  auto list = ns->ListLogsSync();
  const int64_t list_ms = MonoMillis() - t0;
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->size(), static_cast<size_t>(n));
  std::set<std::string> names(list->begin(), list->end());
  EXPECT_EQ(names.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; i += 997) EXPECT_TRUE(names.count(LogName(i))) << LogName(i);
  std::fprintf(stderr, "listed %zu logs in %lld ms\n", list->size(), static_cast<long long>(list_ms));

  // A sample reads back.
  for (int i = 0; i < n; i += std::max(1, n / 20)) {
    auto info = ns->GetLogInfoSync(LogName(i));
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    ASSERT_EQ(info->segments.size(), 1u) << LogName(i);
    EXPECT_EQ(info->segments[0].meta.state(), proto::SEGMENT_CLOSED);
    EXPECT_EQ(info->segments[0].meta.record_count(), 1);
    auto r = ns->OpenReaderSync(LogName(i), StartPosition::Earliest());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ReadOut got = ReadN(r->get(), 1, 5000ms);
    ASSERT_EQ(got.recs.size(), 1u) << LogName(i) << ": " << got.error.ToString();
    EXPECT_EQ(got.recs[0].payload, "record of " + LogName(i));
  }

  t0 = MonoMillis();
  err = RunAsync(n, 64, [&](int i, std::function<void(Status)> done) { ns->DeleteLog(LogName(i), done); });
  ASSERT_EQ(err, "");
  const int64_t delete_ms = MonoMillis() - t0;
  auto after = ns->ListLogsSync();
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(after->empty()) << after->size() << " logs left";
  std::fprintf(stderr, "deleted %d logs in %lld ms\n", n, static_cast<long long>(delete_ms));
  std::fprintf(stderr,
               "log_scale_test: %d logs: create %lld ms, write %lld ms, list %lld ms, delete %lld ms, total %lld ms\n",
               n, static_cast<long long>(create_ms), static_cast<long long>(write_ms), static_cast<long long>(list_ms),
               static_cast<long long>(delete_ms), static_cast<long long>(MonoMillis() - t_start));
  // The segments' metadata went with the logs.
  auto segs = c.main()->store->GetChildrenSync(c.layout().SegmentsDir());
  ASSERT_TRUE(segs.ok()) << segs.status().ToString();
  size_t left = 0;
  for (const auto& bucket : *segs) {
    auto kids = c.main()->store->GetChildrenSync(c.layout().SegmentsDir() + "/" + bucket);
    if (kids.ok()) left += kids->size();
  }
  EXPECT_EQ(left, 0u) << "segment records left after deleting every log";
}

}  // namespace
}  // namespace dlog::test
