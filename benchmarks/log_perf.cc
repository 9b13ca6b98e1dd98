// log_perf: one log-stream writer against a real cluster (ZooKeeper + logstore
// nodes), with a tailing reader in the same process on its own metadata
// session and loop. The dlog side of benchmarks/log_vs_jetstream.sh.
//
//   log_perf --metadata zk://127.0.0.1:2181/dlog --ensemble 3 --write-quorum 3 --ack-quorum 2
//            --mode throughput|rate [--rate 5000] --size 100 --window 1000 --seconds 10
//
// Each record carries its send time (MonoNanos) in its first 8 bytes. Measured
// after a 1 s warm-up: records/s and MB/s acknowledged, write-ack latency
// (Write -> callback) and write->tail-read latency, p50/p99/p99.9, and the
// average records per entry. Rate mode paces writes on an absolute schedule
// and times latency from the actual send, as jetstream_bench does. Ends with
//   RESULT system=dlog workload=<throughput|rate> size=<B> records_per_s=<x> mb_per_s=<x>
//          ack_p50_us=.. ack_p99_us=.. ack_p999_us=.. e2e_p50_us=.. e2e_p99_us=.. e2e_p999_us=..
//          records_per_entry=<x>
#include <CLI/CLI.hpp>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <random>
#include <semaphore>
#include <thread>

#include "common/clock.h"
#include "common/histogram.h"
#include "logstore/log/log_client.h"
#include "logstore/log/namespace.h"

namespace dlog::bench {
namespace {

struct Flags {
  std::string metadata;
  int ensemble = 3, write_quorum = 3, ack_quorum = 2;
  std::string mode = "throughput";
  double rate = 5000;
  size_t size = 100;
  int window = 1000;
  double seconds = 10;
  double warmup = 1;
  int64_t flush_delay_us = -1;  // -1: the writer's default
  int64_t lac_flush_ms = -1;    // -1: the segment client's default
};

int Fail(const std::string& what, const Status& st) {
  std::fprintf(stderr, "log_perf: %s: %s\n", what.c_str(), st.ToString().c_str());
  return 1;
}

int Run(const Flags& f) {
  if (f.size < 8) {
    std::fprintf(stderr, "log_perf: --size must be at least 8 (the timestamp)\n");
    return 2;
  }
  log::LogClientOptions o;
  o.metadata_url = f.metadata;
  if (f.lac_flush_ms >= 0) o.segment.lac_flush_ms = f.lac_flush_ms;
  auto wc = log::LogClient::Open(o);
  if (!wc.ok()) return Fail("connect", wc.status());
  auto rc = log::LogClient::Open(o);
  if (!rc.ok()) return Fail("connect (reader)", rc.status());

  log::NamespaceSettings s;
  s.ensemble_size = f.ensemble;
  s.write_quorum = f.write_quorum;
  s.ack_quorum = f.ack_quorum;
  s.roll_bytes = 1ll << 30;
  const std::string ns_name =
      "perf-" + std::to_string(f.ensemble) + "-" + std::to_string(f.write_quorum) + "-" + std::to_string(f.ack_quorum);
  auto ns = log::Namespace::OpenOrCreateSync((*wc)->segments(), ns_name, s);
  if (!ns.ok()) return Fail("namespace", ns.status());
  std::mt19937_64 rng(std::random_device{}());
  const std::string log_name = "perf-" + std::to_string(rng() % 1000000000);
  if (Status st = (*ns)->CreateLogSync(log_name); !st.ok()) return Fail("create log", st);
  auto rns = log::Namespace::OpenSync((*rc)->segments(), ns_name);
  if (!rns.ok()) return Fail("namespace (reader)", rns.status());

  log::WriterOptions wo;
  if (f.flush_delay_us >= 0) wo.flush_delay_us = f.flush_delay_us;
  auto writer = (*ns)->OpenWriterSync(log_name, wo);
  if (!writer.ok()) return Fail("open writer", writer.status());
  log::ReaderOptions ro;
  ro.read_ahead_entries = 64;
  auto reader = (*rns)->OpenReaderSync(log_name, log::StartPosition::Earliest(), ro);
  if (!reader.ok()) return Fail("open reader", reader.status());

  Histogram ack_us, e2e_us;
  std::atomic<uint64_t> acked{0}, failed{0};
  std::atomic<int64_t> measure_from{INT64_MAX};
  std::atomic<bool> stop_reader{false};
  std::atomic<uint64_t> read_count{0};

  std::thread tail([&] {
    while (!stop_reader.load()) {
      auto r = (*reader)->ReadNextSync(4096, 200);
      if (!r.ok()) {
        if (r.status().Is(log::LogErrc::kTimeout)) continue;
        std::fprintf(stderr, "log_perf: reader: %s\n", r.status().ToString().c_str());
        return;
      }
      const int64_t now = MonoNanos();
      for (const auto& rec : *r) {
        int64_t sent;
        std::memcpy(&sent, rec.payload.data(), sizeof sent);
        if (sent >= measure_from.load(std::memory_order_relaxed))
          e2e_us.Record(static_cast<uint64_t>((now - sent) / 1000));
      }
      read_count.fetch_add(r->size());
    }
  });

  std::counting_semaphore<1 << 20> permits(f.window);
  std::string payload(f.size, 'x');
  const int64_t start = MonoNanos();
  const int64_t warm_end = start + static_cast<int64_t>(f.warmup * 1e9);
  const int64_t end = warm_end + static_cast<int64_t>(f.seconds * 1e9);
  measure_from.store(warm_end);
  uint64_t acked_at_warm = 0;
  bool warm = false;
  const bool paced = f.mode == "rate";
  const double interval_ns = paced ? 1e9 / f.rate : 0;
  uint64_t sent_count = 0;
  log::WriterStats stats_at_warm{};
  while (true) {
    int64_t now = MonoNanos();
    if (now >= end) break;
    if (!warm && now >= warm_end) {
      warm = true;
      acked_at_warm = acked.load();
      stats_at_warm = (*writer)->stats();
    }
    if (paced) {
      const int64_t due = start + static_cast<int64_t>(static_cast<double>(sent_count) * interval_ns);
      if (now < due) {
        if (due - now > 200'000) std::this_thread::sleep_for(std::chrono::nanoseconds(due - now - 100'000));
        continue;
      }
    }
    permits.acquire();
    const int64_t t = MonoNanos();
    std::memcpy(payload.data(), &t, sizeof t);
    ++sent_count;
    (*writer)->Write(Slice::Unowned(payload.data(), payload.size()), [&, t](Result<log::WriteResult> r) {
      if (r.ok()) {
        if (t >= warm_end) ack_us.Record(static_cast<uint64_t>((MonoNanos() - t) / 1000));
        acked.fetch_add(1, std::memory_order_relaxed);
      } else {
        failed.fetch_add(1, std::memory_order_relaxed);
      }
      permits.release();
    });
  }
  const uint64_t acked_at_end = acked.load();
  const log::WriterStats stats_at_end = (*writer)->stats();
  const double secs = static_cast<double>(MonoNanos() - warm_end) / 1e9;
  if (Status st = (*writer)->FlushSync(); !st.ok()) return Fail("flush", st);
  // Let the reader catch up with everything acknowledged.
  const int64_t drain_deadline = MonoNanos() + 30'000'000'000;
  while (read_count.load() < acked.load() && MonoNanos() < drain_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop_reader.store(true);
  tail.join();
  if (Status st = (*writer)->CloseSync(); !st.ok()) return Fail("close", st);
  if (failed.load() > 0) {
    std::fprintf(stderr, "log_perf: %" PRIu64 " writes failed\n", failed.load());
    return 1;
  }
  const double rps = static_cast<double>(acked_at_end - acked_at_warm) / secs;
  const double entries = static_cast<double>(stats_at_end.entries - stats_at_warm.entries);
  const double rpe = entries > 0 ? static_cast<double>(stats_at_end.records - stats_at_warm.records) / entries : 0;
  reader->reset();
  IgnoreError((*ns)->DeleteLogSync(log_name));
  std::printf("RESULT system=dlog workload=%s size=%zu records_per_s=%.0f mb_per_s=%.2f ack_p50_us=%" PRIu64
              " ack_p99_us=%" PRIu64 " ack_p999_us=%" PRIu64 " e2e_p50_us=%" PRIu64 " e2e_p99_us=%" PRIu64
              " e2e_p999_us=%" PRIu64 " records_per_entry=%.1f\n",
              f.mode.c_str(), f.size, rps, rps * static_cast<double>(f.size) / 1e6, ack_us.Percentile(0.5),
              ack_us.Percentile(0.99), ack_us.Percentile(0.999), e2e_us.Percentile(0.5), e2e_us.Percentile(0.99),
              e2e_us.Percentile(0.999), rpe);
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace dlog::bench

int main(int argc, char** argv) {
  dlog::bench::Flags f;
  CLI::App app{"log_perf: one log writer + a tailing reader against a dlog cluster"};
  app.add_option("--metadata", f.metadata, "zk://HOST:PORT/dlog")->required();
  app.add_option("--ensemble", f.ensemble)->capture_default_str();
  app.add_option("--write-quorum", f.write_quorum)->capture_default_str();
  app.add_option("--ack-quorum", f.ack_quorum)->capture_default_str();
  app.add_option("--mode", f.mode)->check(CLI::IsMember({"throughput", "rate"}))->capture_default_str();
  app.add_option("--rate", f.rate, "records/s in rate mode")->capture_default_str();
  app.add_option("--size", f.size, "record bytes")->capture_default_str();
  app.add_option("--window", f.window, "writes in flight")->capture_default_str();
  app.add_option("--seconds", f.seconds, "measured seconds (after a 1 s warm-up)")->capture_default_str();
  app.add_option("--flush-delay-us", f.flush_delay_us, "writer flush delay (default: the writer's)");
  app.add_option("--lac-flush-ms", f.lac_flush_ms, "idle LAC push delay (default: the segment client's)");
  CLI11_PARSE(app, argc, argv);
  return dlog::bench::Run(f);
}
