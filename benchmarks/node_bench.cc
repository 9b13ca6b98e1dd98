// End-to-end node benchmark: C connections, each keeping W adds of S bytes in
// flight against a real `dlogd logstore` process, for T seconds. Prints
// entries/s, MB/s, add latency percentiles and the node's average journal
// batch; then, in the same run and on the same disk, the disk's own limit: a
// plain loop of pwrite + fdatasync into a preallocated, zero-filled file with
// the same batch size and write pattern as the journal. Ends with
//   ratio_vs_raw_fsync=<node entries/s / raw entries/s>
//
//   node_bench [--connections 4] [--window 256] [--size 1024] [--seconds 5]
//              [--dir DIR] [--dlogd PATH]
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/histogram.h"
#include "logstore/node/client.h"
#include "net/event_loop.h"
#include "tests/support/node_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::bench {
namespace {

struct Flags {
  int connections = 4;
  int window = 256;
  size_t size = 1024;
  double seconds = 5;
  std::string dir;
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--connections")
      f.connections = std::atoi(v.c_str());
    else if (k == "--window")
      f.window = std::atoi(v.c_str());
    else if (k == "--size")
      f.size = static_cast<size_t>(std::atoll(v.c_str()));
    else if (k == "--seconds")
      f.seconds = std::atof(v.c_str());
    else if (k == "--dir")
      f.dir = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      std::exit(2);
    }
  }
  return f;
}

// Scrapes one metric's value from the node's /metrics text.
double Metric(const std::string& text, const std::string& name) {
  size_t pos = 0;
  while ((pos = text.find(name, pos)) != std::string::npos) {
    bool line_start = pos == 0 || text[pos - 1] == '\n';
    size_t after = pos + name.size();
    if (line_start && after < text.size() && text[after] == ' ') return std::atof(text.c_str() + after + 1);
    pos = after;
  }
  return 0;
}

struct Writer {
  std::unique_ptr<node::NodeClient> client;
  SegmentId segment;
  int64_t next = 0;
  int64_t acked = 0;
  int64_t errors = 0;
};

struct Result {
  double entries_per_s = 0;
  double mb_per_s = 0;
  uint64_t p50 = 0, p99 = 0, p999 = 0;
  double batch_entries = 0;
  double batch_bytes = 0;
  int64_t errors = 0;
};

Result RunNode(const Flags& f, const std::string& address, uint16_t metrics_port) {
  net::EventLoop loop("bench-client");
  loop.Start();
  std::vector<Writer> writers(static_cast<size_t>(f.connections));
  auto hp = *ParseHostPort(address);
  for (int i = 0; i < f.connections; ++i) {
    node::NodeClientOptions o;
    o.address = hp;
    o.window = static_cast<size_t>(f.window) * 2;
    writers[static_cast<size_t>(i)].client = std::make_unique<node::NodeClient>(&loop, o);
    writers[static_cast<size_t>(i)].segment = SegmentId(static_cast<uint64_t>(i + 1));
  }
  Slice payload = Slice::CopyOf(std::string(f.size, 'x'));
  Histogram latency_us;
  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{0};

  std::function<void(Writer*)> issue = [&](Writer* w) {
    const int64_t start = MonoNanos();
    const EntryId e(w->next++);
    in_flight.fetch_add(1, std::memory_order_relaxed);
    w->client->AddEntry(w->segment, e, EntryId(w->acked - 1), payload, false, [&, w, start](const Status& st) {
      in_flight.fetch_sub(1, std::memory_order_relaxed);
      if (st.ok()) {
        ++w->acked;
        latency_us.Record(static_cast<uint64_t>((MonoNanos() - start) / 1000));
      } else {
        ++w->errors;
      }
      if (!stop.load(std::memory_order_relaxed)) issue(w);
    });
  };

  const std::string m0 = test::HttpGet(metrics_port, "/metrics");
  const int64_t t0 = MonoNanos();
  loop.RunSync([&] {
    for (auto& w : writers) {
      for (int k = 0; k < f.window; ++k) issue(&w);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(f.seconds * 1000)));
  stop = true;
  while (in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double elapsed = static_cast<double>(MonoNanos() - t0) / 1e9;
  const std::string m1 = test::HttpGet(metrics_port, "/metrics");

  Result r;
  int64_t acked = 0;
  for (auto& w : writers) {
    acked += w.acked;
    r.errors += w.errors;
  }
  r.entries_per_s = static_cast<double>(acked) / elapsed;
  r.mb_per_s = r.entries_per_s * static_cast<double>(f.size) / 1e6;
  r.p50 = latency_us.Percentile(0.5);
  r.p99 = latency_us.Percentile(0.99);
  r.p999 = latency_us.Percentile(0.999);
  const double batches = Metric(m1, "dlog_node_journal_batches_total") - Metric(m0, "dlog_node_journal_batches_total");
  const double bytes =
      Metric(m1, "dlog_node_journal_written_bytes_total") - Metric(m0, "dlog_node_journal_written_bytes_total");
  const double adds = Metric(m1, "dlog_node_adds_total") - Metric(m0, "dlog_node_adds_total");
  r.batch_entries = batches > 0 ? adds / batches : 0;
  r.batch_bytes = batches > 0 ? bytes / batches : 0;
  for (auto& w : writers) w.client->Close();
  writers.clear();
  loop.Stop();
  return r;
}

// The disk's own limit with the journal's pattern: sequential pwrite of
// `batch_bytes` into a preallocated, zero-filled file, one fdatasync each.
// Returns batches per second.
double RawFsyncBatchesPerSecond(const std::string& dir, size_t batch_bytes, double seconds) {
  const std::string path = dir + "/raw-fsync.bin";
  const size_t file_bytes = 64u << 20;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return 0;
  std::vector<char> zeros(1 << 20, 0);
  for (size_t off = 0; off < file_bytes; off += zeros.size()) {
    if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(off)) < 0) break;
  }
  ::fdatasync(fd);
  std::vector<char> buf(std::max<size_t>(batch_bytes, 8), 'r');
  int64_t batches = 0;
  size_t off = 0;
  const int64_t t0 = MonoNanos();
  const int64_t end = t0 + static_cast<int64_t>(seconds * 1e9);
  while (MonoNanos() < end) {
    if (off + buf.size() > file_bytes) off = 0;
    if (::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(off)) < 0) break;
    ::fdatasync(fd);
    off += buf.size();
    ++batches;
  }
  const double elapsed = static_cast<double>(MonoNanos() - t0) / 1e9;
  ::close(fd);
  ::unlink(path.c_str());
  return static_cast<double>(batches) / elapsed;
}

}  // namespace
}  // namespace dlog::bench

int main(int argc, char** argv) {
  using namespace dlog;
  bench::Flags f = bench::ParseFlags(argc, argv);
  std::unique_ptr<test::TempDir> tmp;
  if (f.dir.empty()) {
    tmp = std::make_unique<test::TempDir>();
    f.dir = tmp->path();
  }
  test::LogstoreNode node(f.dir, test::FreePort());
  if (!node.Start(true)) {
    std::fprintf(stderr, "node did not start:\n%s\n", node.Stderr().c_str());
    return 1;
  }
  bench::Result r = bench::RunNode(f, node.address(), node.metrics_port());
  node.Stop();
  // Raw baseline: same batch bytes the journal wrote per fdatasync.
  const size_t batch_bytes = static_cast<size_t>(r.batch_bytes > 0 ? r.batch_bytes : 4096);
  const double raw_batches = bench::RawFsyncBatchesPerSecond(f.dir + "/data", batch_bytes, std::min(f.seconds, 3.0));
  const double raw_entries = raw_batches * r.batch_entries;
  const double ratio = raw_entries > 0 ? r.entries_per_s / raw_entries : 0;
  std::printf(
      "node_bench size=%zu connections=%d window=%d: entries_per_s=%.0f mb_per_s=%.1f "
      "add_latency_us p50=%" PRIu64 " p99=%" PRIu64 " p99.9=%" PRIu64
      " journal_batch_entries=%.1f journal_batch_bytes=%.0f errors=%" PRId64 "\n",
      f.size, f.connections, f.window, r.entries_per_s, r.mb_per_s, r.p50, r.p99, r.p999, r.batch_entries,
      r.batch_bytes, r.errors);
  std::printf("raw_fsync size=%zu batch_bytes=%zu: fdatasyncs_per_s=%.0f entries_per_s=%.0f\n", f.size, batch_bytes,
              raw_batches, raw_entries);
  std::printf("ratio_vs_raw_fsync=%.2f\n", ratio);
  return 0;
}
