// Replicated segment add benchmark: one writer keeping W adds of S bytes in
// flight against real `dlogd logstore` children on loopback, for T seconds,
// with E=3,Qw=3,Qa=2 and, in the same invocation and on the same nodes and
// disk, the baseline E=Qw=Qa=1. Prints entries/s, MB/s and add latency
// p50/p99/p99.9 per (quorum, size); ends with
//   ratio_replicated_vs_single=<E3 entries/s / E1 entries/s at 1 KiB>
//
//   segment_bench [--window 1000] [--seconds 5] [--sizes 100,1024]
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <semaphore>
#include <string>
#include <vector>

#include "common/clock.h"
#include "tests/segment/segment_fixture.h"

namespace dlog::bench {
namespace {

using namespace dlog::test;

struct RunResult {
  double eps = 0;
  double mbps = 0;
  uint64_t p50 = 0, p99 = 0, p999 = 0;
};

RunResult Run(SegmentCluster& c, WriterConfig cfg, size_t size, int window, double seconds) {
  SegmentClient* client = c.NewClient();
  auto w = SegmentWriter::CreateSync(client, cfg);
  if (!w.ok()) {
    std::fprintf(stderr, "create: %s\n", w.status().ToString().c_str());
    std::exit(1);
  }
  const std::string payload(size, 'x');
  std::counting_semaphore<1 << 20> permits(window);
  std::atomic<uint64_t> ok{0}, failed{0};
  const int64_t start = MonoNanos();
  const int64_t end = start + static_cast<int64_t>(seconds * 1e9);
  while (MonoNanos() < end) {
    permits.acquire();
    (*w)->Add(Slice::CopyOf(payload), [&](Result<EntryId> r) {
      (r.ok() ? ok : failed).fetch_add(1);
      permits.release();
    });
  }
  for (int i = 0; i < window; ++i) permits.acquire();
  const double secs = static_cast<double>(MonoNanos() - start) / 1e9;
  IgnoreError((*w)->CloseSync());
  if (failed.load() > 0) std::fprintf(stderr, "%" PRIu64 " adds failed\n", failed.load());
  RunResult r;
  r.eps = static_cast<double>(ok.load()) / secs;
  r.mbps = r.eps * static_cast<double>(size) / 1e6;
  const Histogram& h = client->probe().add_latency_us;
  r.p50 = h.Percentile(0.5);
  r.p99 = h.Percentile(0.99);
  r.p999 = h.Percentile(0.999);
  std::printf("segment_add E=%d Qw=%d Qa=%d size=%zu window=%d: %.0f entries/s %.1f MB/s p50=%" PRIu64 "us p99=%" PRIu64
              "us p99.9=%" PRIu64 "us\n",
              cfg.ensemble_size, cfg.write_quorum, cfg.ack_quorum, size, window, r.eps, r.mbps, r.p50, r.p99, r.p999);
  std::fflush(stdout);
  return r;
}

}  // namespace
}  // namespace dlog::bench

int main(int argc, char** argv) {
  using namespace dlog::bench;
  int window = 1000;
  double seconds = 5;
  std::vector<size_t> sizes = {100, 1024};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--window")
      window = std::atoi(v.c_str());
    else if (k == "--seconds")
      seconds = std::atof(v.c_str());
    else if (k == "--sizes") {
      sizes.clear();
      size_t pos = 0;
      while (pos < v.size()) {
        size_t comma = v.find(',', pos);
        if (comma == std::string::npos) comma = v.size();
        sizes.push_back(static_cast<size_t>(std::atoll(v.substr(pos, comma - pos).c_str())));
        pos = comma + 1;
      }
    } else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  dlog::test::SegmentCluster c(3);
  if (!c.Start()) {
    std::fprintf(stderr, "cluster start failed: %s\n", c.error().c_str());
    return 1;
  }
  double rep_1k = 0, single_1k = 0;
  for (size_t size : sizes) {
    RunResult rep = Run(c, {3, 3, 2}, size, window, seconds);
    RunResult single = Run(c, {1, 1, 1}, size, window, seconds);
    if (size == 1024) {
      rep_1k = rep.eps;
      single_1k = single.eps;
    }
  }
  if (single_1k > 0) std::printf("ratio_replicated_vs_single=%.3f\n", rep_1k / single_1k);
  return 0;
}
