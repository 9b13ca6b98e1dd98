#include "client/cli/perf.h"

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/histogram.h"
#include "common/thread_annotations.h"
#include "dlog/dlog.h"

namespace dlog::cli {
namespace {

using client::ClientErrc;

// The first 16 bytes of every perf message: send time (steady clock ns, host
// order), then this marker (so that other messages on the topic are not
// mistaken for timestamps).
constexpr char kMagic[8] = {'d', 'l', 'o', 'g', 'p', 'e', 'r', 'f'};
constexpr int kHeaderBytes = 16;

std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop.store(true); }

void SleepUntil(int64_t mono_ns) {
  timespec ts{};
  ts.tv_sec = mono_ns / 1'000'000'000;
  ts.tv_nsec = mono_ns % 1'000'000'000;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

int Fail(const std::string& what, const std::string& message) {
  std::fprintf(stderr, "dlog %s: %s\n", what.c_str(), message.c_str());
  return 1;
}

std::string Describe(const Status& st, const PerfArgs& a) {
  if (st.Is(ClientErrc::kConnectError)) return st.message() + "; is a broker running at " + a.service_url + "?";
  if (st.Is(ClientErrc::kTopicNotFound)) return "topic " + a.topic + " not found";
  return st.message().empty() ? std::string(st.CodeName()) : st.message();
}

double Ms(uint64_t us) { return static_cast<double>(us) / 1000.0; }

// Counters and histograms shared by the producer threads, the clients' loop
// threads (send callbacks, message listeners) and the reporting main thread.
// Latencies are recorded in microseconds.
struct Stats {
  // The measurement window [start, end) on the steady clock; INT64_MAX until
  // the run starts. A message is "measured" if it was sent inside it (for
  // `consume` alone: received inside it).
  std::atomic<int64_t> window_start{INT64_MAX};
  std::atomic<int64_t> window_end{INT64_MAX};
  // Messages sent before this (an earlier run's backlog) are not reported.
  std::atomic<int64_t> run_start{INT64_MAX};

  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> acked{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> acked_in_window{0};  // acks that arrived inside the window
  std::atomic<uint64_t> acked_measured{0};   // acked messages sent inside the window
  std::atomic<uint64_t> batches_measured{0};
  Histogram pub_total;
  Histogram pub_interval;

  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> received_in_window{0};
  std::atomic<uint64_t> received_measured{0};
  std::atomic<uint64_t> ack_failures{0};
  Histogram e2e_total;
  Histogram e2e_interval;

  Mutex mu;
  Status first_error DLOG_GUARDED_BY(mu);

  bool InWindow(int64_t t) const {
    return t >= window_start.load(std::memory_order_relaxed) && t < window_end.load(std::memory_order_relaxed);
  }
  void Error(const Status& st) {
    MutexLock l(&mu);
    if (first_error.ok()) first_error = st;
  }
  Status FirstError() {
    MutexLock l(&mu);
    return first_error;
  }
};

enum class Mode { kProduce, kConsume, kPubSub };

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kProduce:
      return "produce";
    case Mode::kConsume:
      return "consume";
    case Mode::kPubSub:
      break;
  }
  return "pubsub";
}

Result<client::SubscriptionType> ParseSubType(const std::string& s) {
  if (s == "exclusive") return client::SubscriptionType::kExclusive;
  if (s == "shared") return client::SubscriptionType::kShared;
  if (s == "failover") return client::SubscriptionType::kFailover;
  if (s == "key_shared") return client::SubscriptionType::kKeyShared;
  return Status::Error(CommonErrc::kInvalidArgument,
                       "subscription type '" + s + "' is not exclusive, shared, failover or key_shared");
}

Result<client::CompressionType> ParseCompression(const std::string& s) {
  if (s == "none") return client::CompressionType::kNone;
  if (s == "lz4") return client::CompressionType::kLz4;
  if (s == "zstd") return client::CompressionType::kZstd;
  return Status::Error(CommonErrc::kInvalidArgument, "compression '" + s + "' is not none, lz4 or zstd");
}

Result<std::unique_ptr<client::Client>> NewClient(const PerfArgs& a) {
  client::ClientConfig c;
  c.service_url = a.service_url;
  c.operation_timeout_ms = a.timeout_ms;
  c.connection_timeout_ms = std::min<int64_t>(a.timeout_ms, 10000);
  return client::Client::Create(c);
}

// Creates the topic with --partitions partitions unless it exists; returns
// the topic's partition count.
Result<int32_t> EnsureTopic(client::Client* c, const PerfArgs& a) {
  if (a.partitions > 0) {
    Status st = c->CreateTopic(a.topic, a.partitions);
    if (st.ok()) {
      std::fprintf(stderr, "dlog perf: created topic %s with %d partition%s\n", a.topic.c_str(), a.partitions,
                   a.partitions == 1 ? "" : "s");
      return a.partitions;
    }
    if (!st.Is(ClientErrc::kTopicExists)) return st;
  }
  auto n = c->GetPartitionCount(a.topic);
  if (n.ok() && a.partitions > 0 && *n != a.partitions) {
    std::fprintf(stderr, "dlog perf: topic %s already exists with %d partition%s (not %d); using it\n", a.topic.c_str(),
                 *n, *n == 1 ? "" : "s", a.partitions);
  }
  return n;
}

// One producer thread: paces (or not) and sends until the window ends, its
// share of --num-messages is sent, or a stop.
void ProducerLoop(client::Producer producer, Stats* stats, double rate, int64_t count, int size, uint64_t seed,
                  int64_t* max_behind_ns) {
  std::string tmpl(static_cast<size_t>(size), '\0');
  std::mt19937_64 rng(seed);
  for (size_t i = kHeaderBytes; i < tmpl.size(); ++i) tmpl[i] = static_cast<char>(rng());  // incompressible
  std::memcpy(tmpl.data() + 8, kMagic, sizeof(kMagic));
  const int64_t start = stats->run_start.load();
  const int64_t end = stats->window_end.load();
  const double period_ns = rate > 0 ? 1e9 / rate : 0;
  for (int64_t i = 0; count == 0 || i < count; ++i) {
    if (g_stop.load(std::memory_order_relaxed)) break;
    int64_t now = MonoNanos();
    if (rate > 0) {
      const int64_t due = start + static_cast<int64_t>(static_cast<double>(i) * period_ns);
      if (due >= end) break;
      if (now < due) {
        SleepUntil(due);
        now = MonoNanos();
      } else {
        *max_behind_ns = std::max(*max_behind_ns, now - due);
      }
    } else if (now >= end) {
      break;
    }
    std::string body = tmpl;
    std::memcpy(body.data(), &now, sizeof(now));
    stats->sent.fetch_add(1, std::memory_order_relaxed);
    producer.SendAsync(client::Message::Create(std::move(body)), [stats, now](Result<client::MessageId> r) {
      const int64_t t = MonoNanos();
      if (!r.ok()) {
        stats->failed.fetch_add(1, std::memory_order_relaxed);
        stats->Error(r.status());
        return;
      }
      stats->acked.fetch_add(1, std::memory_order_relaxed);
      if (stats->InWindow(t)) stats->acked_in_window.fetch_add(1, std::memory_order_relaxed);
      const auto us = static_cast<uint64_t>(std::max<int64_t>(0, t - now) / 1000);
      stats->pub_interval.Record(us);
      if (stats->InWindow(now)) {
        stats->pub_total.Record(us);
        stats->acked_measured.fetch_add(1, std::memory_order_relaxed);
        if (r->batch_index() <= 0) stats->batches_measured.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
}

// Runs on a consumer client's loop thread for every message.
void OnMessage(Stats* stats, bool window_by_send_time, client::Consumer& consumer, const client::Message& m) {
  const int64_t now = MonoNanos();
  stats->received.fetch_add(1, std::memory_order_relaxed);
  if (stats->InWindow(now)) stats->received_in_window.fetch_add(1, std::memory_order_relaxed);
  const std::string_view p = m.payload();
  if (p.size() >= kHeaderBytes && std::memcmp(p.data() + 8, kMagic, sizeof(kMagic)) == 0) {
    int64_t sent = 0;
    std::memcpy(&sent, p.data(), sizeof(sent));
    if (sent >= stats->run_start.load(std::memory_order_relaxed) || !window_by_send_time) {
      const auto us = static_cast<uint64_t>(std::max<int64_t>(0, now - sent) / 1000);
      stats->e2e_interval.Record(us);
      if (stats->InWindow(window_by_send_time ? sent : now)) {
        stats->e2e_total.Record(us);
        stats->received_measured.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  consumer.AcknowledgeAsync(m.id(), [stats](Status st) {
    if (!st.ok()) stats->ack_failures.fetch_add(1, std::memory_order_relaxed);
  });
}

struct Previous {
  uint64_t acked = 0, received = 0;
  int64_t at = 0;
};

void PrintProgress(Mode mode, const PerfArgs& a, Stats* s, Previous* prev, int64_t now, int pending) {
  const double dt = static_cast<double>(now - prev->at) / 1e9;
  const uint64_t acked = s->acked.load(), received = s->received.load();
  const double pub_rate = static_cast<double>(acked - prev->acked) / dt;
  const double recv_rate = static_cast<double>(received - prev->received) / dt;
  *prev = Previous{acked, received, now};
  const int64_t ws = s->window_start.load();
  const double t = static_cast<double>(now - s->run_start.load()) / 1e9;
  std::string line;
  char buf[256];
  std::snprintf(buf, sizeof(buf), "perf %s %6.1fs%s", ModeName(mode), t, now < ws ? " (warm-up)" : "");
  line += buf;
  if (mode != Mode::kConsume) {
    std::snprintf(buf, sizeof(buf), " | pub %9.1f msg/s %7.2f MB/s lat p50 %7.3f p99 %7.3f ms pending %d", pub_rate,
                  pub_rate * a.size / 1e6, Ms(s->pub_interval.Percentile(0.5)), Ms(s->pub_interval.Percentile(0.99)),
                  pending);
    line += buf;
  }
  if (mode != Mode::kProduce) {
    std::snprintf(buf, sizeof(buf), " | recv %9.1f msg/s %7.2f MB/s e2e p50 %7.3f p99 %7.3f ms", recv_rate,
                  recv_rate * a.size / 1e6, Ms(s->e2e_interval.Percentile(0.5)), Ms(s->e2e_interval.Percentile(0.99)));
    line += buf;
  }
  s->pub_interval.Reset();
  s->e2e_interval.Reset();
  std::fprintf(stderr, "%s\n", line.c_str());
}

int Run(Mode mode, const PerfArgs& a) {
  const std::string what = std::string("perf ") + ModeName(mode) + " " + a.topic;
  if (mode != Mode::kConsume && a.size < kHeaderBytes) {
    return Fail(what, "--size must be at least " + std::to_string(kHeaderBytes) + " bytes (send time + marker)");
  }
  auto sub_type = ParseSubType(a.sub_type);
  if (!sub_type.ok()) return Fail(what, sub_type.status().message());
  auto compression = ParseCompression(a.compression);
  if (!compression.ok()) return Fail(what, compression.status().message());
  if (a.position != "earliest" && a.position != "latest") {
    return Fail(what, "--position must be earliest or latest, not '" + a.position + "'");
  }

  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  // Declared before the clients: their callbacks use it until they are closed.
  auto stats = std::make_unique<Stats>();
  Stats* s = stats.get();

  // Producers share one client (one loop thread); consumers get their own so
  // that receiving does not compete with sending on one loop.
  auto pclient = NewClient(a);
  if (!pclient.ok()) return Fail(what, Describe(pclient.status(), a));
  std::unique_ptr<client::Client> cclient_owned;
  client::Client* cclient = pclient->get();
  if (mode == Mode::kPubSub) {
    auto c = NewClient(a);
    if (!c.ok()) return Fail(what, Describe(c.status(), a));
    cclient_owned = std::move(c).value();
    cclient = cclient_owned.get();
  }
  auto partitions = EnsureTopic(pclient->get(), a);
  if (!partitions.ok()) return Fail(what, Describe(partitions.status(), a));

  // Consumers first: in pubsub mode they see every message produced.
  std::vector<client::Consumer> consumers;
  if (mode != Mode::kProduce) {
    const bool by_send = mode == Mode::kPubSub;
    for (int i = 0; i < a.consumers; ++i) {
      client::ConsumerConfig cc;
      cc.subscription_type = *sub_type;
      cc.consumer_name = "perf-" + std::to_string(i);
      cc.initial_position =
          a.position == "earliest" ? client::InitialPosition::kEarliest : client::InitialPosition::kLatest;
      cc.receiver_queue_size = a.receiver_queue_size;
      cc.message_listener = [s, by_send](client::Consumer& c, const client::Message& m) {
        OnMessage(s, by_send, c, m);
      };
      auto c = cclient->Subscribe(a.topic, a.subscription, cc);
      if (!c.ok()) return Fail(what, "subscribing consumer " + std::to_string(i) + ": " + Describe(c.status(), a));
      consumers.push_back(*c);
    }
  }
  std::vector<client::Producer> producers;
  if (mode != Mode::kConsume) {
    for (int i = 0; i < a.producers; ++i) {
      client::ProducerConfig pc;
      pc.batching_enabled = !a.disable_batching;
      pc.batching_max_messages = a.batch_max_messages;
      pc.batching_max_bytes = a.batch_max_bytes;
      pc.batching_max_delay_ms = a.batch_delay_ms;
      pc.max_pending_messages = a.max_pending;
      pc.block_if_queue_full = true;
      pc.compression = *compression;
      auto p = pclient->get()->CreateProducer(a.topic, pc);
      if (!p.ok()) return Fail(what, "creating producer " + std::to_string(i) + ": " + Describe(p.status(), a));
      producers.push_back(*p);
    }
  }

  std::string rate_text = a.rate > 0 ? std::to_string(static_cast<int64_t>(a.rate)) + " msg/s" : "max rate";
  std::fprintf(stderr, "dlog perf %s: %s (%d partition%s)", ModeName(mode), a.topic.c_str(), *partitions,
               *partitions == 1 ? "" : "s");
  if (mode != Mode::kConsume) {
    std::fprintf(stderr, ", %d producer%s, %d-byte messages, %s, batching %s", a.producers, a.producers == 1 ? "" : "s",
                 a.size, rate_text.c_str(),
                 a.disable_batching
                     ? "off"
                     : (std::to_string(a.batch_max_messages) + " msgs/" + std::to_string(a.batch_max_bytes) + " B/" +
                        std::to_string(a.batch_delay_ms) + " ms")
                           .c_str());
  }
  if (mode != Mode::kProduce) {
    std::fprintf(stderr, ", %d consumer%s on %s (%s)", a.consumers, a.consumers == 1 ? "" : "s", a.subscription.c_str(),
                 a.sub_type.c_str());
  }
  std::fprintf(stderr, "\n");

  const int64_t start = MonoNanos();
  const int64_t window_start = start + static_cast<int64_t>(a.warmup_s * 1e9);
  const int64_t window_end = a.duration_s > 0 ? window_start + static_cast<int64_t>(a.duration_s * 1e9) : INT64_MAX;
  s->window_end.store(window_end);
  s->window_start.store(window_start);
  s->run_start.store(start);

  std::vector<std::thread> threads;
  std::vector<int64_t> behind(static_cast<size_t>(a.producers), 0);
  std::atomic<int> producers_running{0};
  if (mode != Mode::kConsume) {
    producers_running.store(a.producers);
    for (int i = 0; i < a.producers; ++i) {
      const int64_t share = a.num_messages == 0 ? 0 : a.num_messages / a.producers + (i < a.num_messages % a.producers);
      if (a.num_messages != 0 && share == 0) {
        producers_running.fetch_sub(1);
        continue;
      }
      threads.emplace_back([&, i, share] {
        ProducerLoop(producers[static_cast<size_t>(i)], s, a.rate / a.producers, share, a.size,
                     static_cast<uint64_t>(start) + static_cast<uint64_t>(i), &behind[static_cast<size_t>(i)]);
        producers_running.fetch_sub(1);
      });
    }
  }

  // Report every second until the run ends.
  Previous prev{0, 0, start};
  int64_t next_report = start + 1'000'000'000;
  auto pending = [&] {
    int n = 0;
    for (auto& p : producers) n += p.pending_messages();
    return n;
  };
  for (;;) {
    const int64_t now = MonoNanos();
    if (g_stop.load()) break;
    if (mode != Mode::kConsume && producers_running.load() == 0) break;
    if (mode == Mode::kConsume) {
      if (now >= window_end) break;
      if (a.num_messages > 0 && s->received.load() >= static_cast<uint64_t>(a.num_messages)) break;
    }
    if (now >= next_report) {
      if (!a.quiet) PrintProgress(mode, a, s, &prev, now, pending());
      next_report += 1'000'000'000;
    }
    SleepUntil(std::min(next_report, now + 20'000'000));
  }
  for (auto& t : threads) t.join();
  int64_t stopped = MonoNanos();

  // Wait for the outstanding acks, then (pubsub) for the consumers to catch up.
  Status flushed;
  for (auto& p : producers) {
    if (Status st = p.Flush(); !st.ok() && flushed.ok()) flushed = st;
  }
  if (mode == Mode::kPubSub) {
    const int64_t deadline = MonoNanos() + static_cast<int64_t>(a.drain_timeout_s * 1e9);
    while (s->received_measured.load() < s->acked_measured.load() && MonoNanos() < deadline && !g_stop.load()) {
      SleepUntil(MonoNanos() + 20'000'000);
    }
  }
  const int64_t measured_until = std::min(window_end, stopped);
  const double measured_s =
      std::max(1e-9, static_cast<double>(measured_until - window_start) / 1e9);  // negative: stopped in the warm-up

  for (auto& p : producers) IgnoreError(p.Close());
  for (auto& c : consumers) IgnoreError(c.Close());
  if (cclient_owned) IgnoreError(cclient_owned->Close());
  IgnoreError((*pclient)->Close());

  // ---- summary ----
  const bool measured_any = measured_until > window_start;
  std::printf("dlog perf %s: %s, %d partition%s, %d-byte messages\n", ModeName(mode), a.topic.c_str(), *partitions,
              *partitions == 1 ? "" : "s", a.size);
  if (!measured_any) {
    std::printf("stopped during the %.1f s warm-up: nothing measured\n", a.warmup_s);
  } else {
    std::printf("measured %.1f s after a %.1f s warm-up\n", measured_s, a.warmup_s);
  }
  const double pub_rate = static_cast<double>(s->acked_in_window.load()) / measured_s;
  const double recv_rate = static_cast<double>(s->received_in_window.load()) / measured_s;
  const uint64_t batches = s->batches_measured.load();
  const double per_batch =
      batches > 0 ? static_cast<double>(s->acked_measured.load()) / static_cast<double>(batches) : 0;
  if (mode != Mode::kConsume) {
    std::printf("published: %" PRIu64 " sent, %" PRIu64 " acknowledged, %" PRIu64
                " failed; in the window %.1f msg/s, %.2f MB/s, %.1f msgs/batch\n",
                s->sent.load(), s->acked.load(), s->failed.load(), pub_rate, pub_rate * a.size / 1e6, per_batch);
    const Histogram& h = s->pub_total;
    std::printf("publish latency (ms): p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (%" PRIu64 " messages)\n",
                Ms(h.Percentile(0.5)), Ms(h.Percentile(0.99)), Ms(h.Percentile(0.999)), Ms(h.Percentile(1.0)),
                h.Count());
  }
  if (mode != Mode::kProduce) {
    std::printf("received: %" PRIu64 " messages; in the window %.1f msg/s, %.2f MB/s; ack failures %" PRIu64 "\n",
                s->received.load(), recv_rate, recv_rate * a.size / 1e6, s->ack_failures.load());
    const Histogram& h = s->e2e_total;
    std::printf("end-to-end latency (ms): p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (%" PRIu64 " messages)\n",
                Ms(h.Percentile(0.5)), Ms(h.Percentile(0.99)), Ms(h.Percentile(0.999)), Ms(h.Percentile(1.0)),
                h.Count());
  }
  if (mode == Mode::kPubSub && s->received_measured.load() < s->acked_measured.load()) {
    std::fprintf(stderr,
                 "dlog %s: warning: the consumers received %" PRIu64 " of %" PRIu64
                 " measured messages within %.0f s; end-to-end percentiles cover those only\n",
                 what.c_str(), s->received_measured.load(), s->acked_measured.load(), a.drain_timeout_s);
  }
  const int64_t max_behind = behind.empty() ? 0 : *std::max_element(behind.begin(), behind.end());
  if (a.rate > 0 && max_behind > 100'000'000) {
    std::fprintf(stderr, "dlog %s: warning: producers fell up to %.0f ms behind the %.0f msg/s schedule\n",
                 what.c_str(), static_cast<double>(max_behind) / 1e6, a.rate);
  }
  if (a.result_line) {
    std::printf(
        "RESULT system=dlog workload=%s size=%d records_per_s=%.0f mb_per_s=%.2f consumed_per_s=%.0f "
        "ack_p50_us=%" PRIu64 " ack_p99_us=%" PRIu64 " ack_p999_us=%" PRIu64 " e2e_p50_us=%" PRIu64
        " e2e_p99_us=%" PRIu64 " e2e_p999_us=%" PRIu64 " msgs_per_batch=%.1f\n",
        a.rate > 0 ? "rate" : "throughput", a.size, mode == Mode::kConsume ? recv_rate : pub_rate,
        (mode == Mode::kConsume ? recv_rate : pub_rate) * a.size / 1e6, recv_rate, s->pub_total.Percentile(0.5),
        s->pub_total.Percentile(0.99), s->pub_total.Percentile(0.999), s->e2e_total.Percentile(0.5),
        s->e2e_total.Percentile(0.99), s->e2e_total.Percentile(0.999), per_batch);
  }
  std::fflush(stdout);

  const Status first = s->FirstError();
  if (!first.ok()) {
    return Fail(what,
                std::to_string(s->failed.load()) + " message(s) not acknowledged; first error: " + Describe(first, a));
  }
  if (!flushed.ok()) return Fail(what, "flush: " + Describe(flushed, a));
  return 0;
}

}  // namespace

void AddPerfCommands(CLI::App* app, PerfArgs* a) {
  a->perf = app->add_subcommand("perf", "Load generator (like pulsar-perf): produce, consume, pubsub");
  a->perf->require_subcommand(1);
  auto common = [a](CLI::App* cmd) {
    cmd->add_option("TOPIC", a->topic, "tenant/namespace/topic")->required();
    cmd->add_option("--service-url", a->service_url, "Brokers: dlog://HOST:PORT[,HOST:PORT...]")->capture_default_str();
    cmd->add_option("--timeout", a->timeout_ms, "Operation timeout in ms (lookups, connects, admin calls)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("-p,--partitions", a->partitions,
                    "Create the topic with this many partitions if it does not exist (0: use it as it is)")
        ->capture_default_str()
        ->check(CLI::Range(0, 4096));
    cmd->add_option("-d,--duration", a->duration_s,
                    "Seconds to measure after the warm-up (0: until --num-messages or Ctrl-C)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("-n,--num-messages", a->num_messages, "Messages to send (consume: to receive); 0: no limit")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--warmup", a->warmup_s, "Seconds at the start that are not measured")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--result", a->result_line, "Also print one `RESULT system=dlog ...` line (for scripts)");
    cmd->add_flag("-q,--quiet", a->quiet, "No progress lines");
  };
  auto produce_opts = [a](CLI::App* cmd) {
    cmd->add_option("-r,--rate", a->rate, "Messages/s over all producers (0: as fast as possible)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("-s,--size", a->size, "Message size in bytes (at least 16)")
        ->capture_default_str()
        ->check(CLI::Range(kHeaderBytes, 4 << 20));
    cmd->add_option("--producers", a->producers, "Producers (one thread each)")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    cmd->add_flag("--disable-batching", a->disable_batching, "One message per batch");
    cmd->add_option("--batch-max-messages", a->batch_max_messages, "Messages per batch at most")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000000));
    cmd->add_option("--batch-max-bytes", a->batch_max_bytes, "Bytes per batch at most")
        ->capture_default_str()
        ->check(CLI::Range(1u, 5u << 20));
    cmd->add_option("--batch-delay-ms", a->batch_delay_ms, "A batch waits at most this long for more messages")
        ->capture_default_str()
        ->check(CLI::Range(0, 10000));
    cmd->add_option("--max-pending", a->max_pending, "Messages sent and not yet acknowledged, per producer")
        ->capture_default_str()
        ->check(CLI::Range(1, 10000000));
    cmd->add_option("--compression", a->compression, "none, lz4 or zstd")->capture_default_str();
  };
  auto consume_opts = [a](CLI::App* cmd) {
    cmd->add_option("--subscription", a->subscription, "Subscription name")->capture_default_str();
    cmd->add_option("-t,--sub-type", a->sub_type, "exclusive, shared, failover or key_shared")->capture_default_str();
    cmd->add_option("--consumers", a->consumers, "Consumers on the subscription")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    cmd->add_option("--receiver-queue-size", a->receiver_queue_size, "Messages prefetched per partition")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000000));
    cmd->add_option("--position", a->position, "Where a new subscription starts: earliest or latest")
        ->capture_default_str();
  };
  a->produce = a->perf->add_subcommand("produce", "Publish messages and report rate and publish latency");
  common(a->produce);
  produce_opts(a->produce);
  a->consume = a->perf->add_subcommand(
      "consume", "Consume (and ack) messages and report rate and end-to-end latency (producers on this machine)");
  common(a->consume);
  consume_opts(a->consume);
  a->pubsub = a->perf->add_subcommand(
      "pubsub", "Consumers subscribe, then producers publish, in one process: publish and end-to-end latency");
  common(a->pubsub);
  produce_opts(a->pubsub);
  consume_opts(a->pubsub);
  a->pubsub
      ->add_option("--drain-timeout", a->drain_timeout_s,
                   "After producing, seconds to wait for the consumers to receive every measured message")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

bool PerfCommandParsed(const PerfArgs& a) { return a.perf != nullptr && a.perf->parsed(); }

int RunPerfCommand(const PerfArgs& a) {
  if (a.produce->parsed()) return Run(Mode::kProduce, a);
  if (a.consume->parsed()) return Run(Mode::kConsume, a);
  if (a.pubsub->parsed()) return Run(Mode::kPubSub, a);
  return 2;
}

}  // namespace dlog::cli
