// NATS JetStream peer benchmark for log_vs_jetstream.sh: the same workloads
// `dlog perf log` runs, against a JetStream cluster, through the NATS C client.
//
// It (re)creates a file-storage stream with R replicas on one subject, opens a
// second connection with an ordered push consumer (DeliverNew) on that stream,
// then publishes from one publisher with js_PublishAsync and at most --window
// unacknowledged messages (jsOptions.PublishAsync.MaxPending):
//   --mode throughput  as fast as the window allows, records of --size bytes;
//   --mode rate        paced at --rate records/s (absolute schedule).
// Every payload starts with its send time (CLOCK_MONOTONIC ns, 8 bytes, host
// order). Measured: ack latency (send -> PubAck in the ack handler) and
// end-to-end latency (send -> the consumer's callback), for records sent after
// the --warmup; records/s and MB/s (10^6 payload bytes) count the acks that
// arrive in the --seconds measurement window. Ends with exactly one line
//   RESULT system=jetstream workload=<mode> size=<B> records_per_s=<x> mb_per_s=<x>
//          ack_p50_us=<x> ack_p99_us=<x> ack_p999_us=<x>
//          e2e_p50_us=<x> e2e_p99_us=<x> e2e_p999_us=<x> records_per_entry=0
// (one line; it also carries consumed_per_s=<x>, the deliveries that arrived
// in the window per second). On any failure: a message on stderr, no RESULT,
// exit code 1 (2 for bad flags).
//
// The pub/sub workload of pubsub_vs_jetstream.sh (OpenMessaging Benchmark's
// 1-topic-16-partitions-1kb) is `--subjects 16 --consumer durable`: the
// stream gets the subjects <subject>.0 .. <subject>.15 (its "partitions"),
// the publisher sends to them round robin, and the consumer is a durable
// push consumer over all of them with explicit acks (every message is acked
// with natsMsg_Ack in the callback; at most --max-ack-pending unacked).
//
//   jetstream_bench --servers nats://127.0.0.1:4222,nats://127.0.0.1:4223 \
//       [--replicas 3] [--mode throughput|rate] [--size 1024] [--window 1000] \
//       [--rate 5000] [--seconds 10] [--warmup 1] [--setup-timeout 30] \
//       [--stream DLOGBENCH] [--subject dlogbench.log] [--max-bytes 2147483648] [--keep-stream] \
//       [--subjects 1] [--consumer ordered|durable] [--max-ack-pending 16000]
#include <nats/nats.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int64_t MonoNanos() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void SleepUntil(int64_t mono_ns) {
  timespec ts{};
  ts.tv_sec = mono_ns / 1'000'000'000;
  ts.tv_nsec = mono_ns % 1'000'000'000;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

void SleepMillis(int64_t ms) { SleepUntil(MonoNanos() + ms * 1'000'000); }

// Log-bucketed histogram of nanosecond values (HdrHistogram-like): exact
// below 128 ns, then 128 sub-buckets per power of two (relative error < 0.8 %),
// up to 2^42 ns (~73 min); larger values land in the last bucket. Fixed
// memory; one writer thread per histogram, read after the writers stop.
class LogHistogram {
 public:
  void Record(int64_t ns) {
    const uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
    buckets_[Index(v)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // The q-quantile in microseconds (upper bound of the bucket holding it).
  double QuantileMicros(double q) const {
    const uint64_t n = count();
    if (n == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(n));
    if (rank >= n) rank = n - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i].load(std::memory_order_relaxed);
      if (seen > rank) return static_cast<double>(UpperBound(i)) / 1000.0;
    }
    return static_cast<double>(UpperBound(kBuckets - 1)) / 1000.0;
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr int kMaxExp = 42;
  static constexpr size_t kBuckets = (kMaxExp - kSubBits + 2) * kSub;

  static size_t Index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int e = 63 - std::countl_zero(v);  // >= kSubBits
    if (e > kMaxExp) return kBuckets - 1;
    const uint64_t sub = (v >> (e - kSubBits)) & (kSub - 1);
    return static_cast<size_t>((e - kSubBits + 1) * kSub + sub);
  }
  static uint64_t UpperBound(size_t i) {
    if (i < kSub) return i;
    const int e = static_cast<int>(i / kSub) + kSubBits - 1;
    const uint64_t sub = i % kSub;
    const uint64_t lo = (uint64_t{1} << e) + (sub << (e - kSubBits));
    return lo + (uint64_t{1} << (e - kSubBits)) - 1;
  }

  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
};

struct Options {
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};
  std::string stream = "DLOGBENCH";
  std::string subject = "dlogbench.log";
  std::string mode = "throughput";
  int replicas = 3;
  int size = 1024;
  int window = 1000;
  double rate = 5000;
  double seconds = 10;
  double warmup = 1;
  double setup_timeout = 30;
  int64_t max_bytes = int64_t{2} << 30;
  bool keep_stream = false;
  int subjects = 1;                  // > 1: subjects <subject>.0 .. <subject>.N-1, published round robin
  std::string consumer = "ordered";  // ordered: ordered push consumer, no acks; durable: explicit acks
  int64_t max_ack_pending = 16000;   // durable consumer only

  // The subjects published to, in round-robin order.
  std::vector<std::string> PublishSubjects() const {
    if (subjects <= 1) return {subject};
    std::vector<std::string> out;
    for (int i = 0; i < subjects; ++i) out.push_back(subject + "." + std::to_string(i));
    return out;
  }
};

// Shared between the publisher thread, the ack-handler thread (the JetStream
// context's reply subscription) and the consumer's callback thread.
struct State {
  // Set once before the first publish (no message flows before it).
  std::atomic<int64_t> measure_start{0};
  std::atomic<int64_t> measure_end{0};
  std::atomic<uint64_t> acks{0};
  std::atomic<uint64_t> acks_in_window{0};
  std::atomic<uint64_t> ack_errors{0};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> delivered_measured{0};
  std::atomic<uint64_t> delivered_in_window{0};
  std::atomic<uint64_t> ack_send_errors{0};
  bool manual_ack = false;  // set before the consumer starts
  std::atomic<uint64_t> async_errors{0};
  std::atomic<bool> first_error_printed{false};
  LogHistogram ack_latency;
  LogHistogram e2e_latency;

  bool InWindow(int64_t t) const {
    return t >= measure_start.load(std::memory_order_relaxed) && t < measure_end.load(std::memory_order_relaxed);
  }
};

int64_t SendTime(const natsMsg* msg) {
  if (msg == nullptr || natsMsg_GetDataLength(msg) < 8) return -1;
  int64_t sent = 0;
  std::memcpy(&sent, natsMsg_GetData(msg), sizeof(sent));
  return sent;
}

void OnPubAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  const int64_t now = MonoNanos();
  auto* st = static_cast<State*>(closure);
  if (pa != nullptr && pae == nullptr) {
    st->acks.fetch_add(1, std::memory_order_relaxed);
    if (st->InWindow(now)) st->acks_in_window.fetch_add(1, std::memory_order_relaxed);
    const int64_t sent = SendTime(msg);
    if (sent >= 0 && st->InWindow(sent)) st->ack_latency.Record(now - sent);
  } else {
    st->ack_errors.fetch_add(1, std::memory_order_relaxed);
    if (pae != nullptr && !st->first_error_printed.exchange(true)) {
      std::fprintf(stderr, "jetstream_bench: publish not acknowledged: %s (status %s, JetStream error %d)\n",
                   pae->ErrText != nullptr ? pae->ErrText : "?", natsStatus_GetText(pae->Err),
                   static_cast<int>(pae->ErrCode));
    }
  }
  natsMsg_Destroy(msg);
}

void OnDeliver(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  const int64_t now = MonoNanos();
  auto* st = static_cast<State*>(closure);
  const int64_t sent = SendTime(msg);
  st->delivered.fetch_add(1, std::memory_order_relaxed);
  if (st->InWindow(now)) st->delivered_in_window.fetch_add(1, std::memory_order_relaxed);
  if (sent >= 0 && st->InWindow(sent)) {
    st->e2e_latency.Record(now - sent);
    st->delivered_measured.fetch_add(1, std::memory_order_relaxed);
  }
  // Explicit ack (durable consumer): sent to the message's reply subject, not awaited.
  if (st->manual_ack && natsMsg_Ack(msg, nullptr) != NATS_OK) st->ack_send_errors.fetch_add(1);
  natsMsg_Destroy(msg);
}

void OnAsyncError(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  auto* st = static_cast<State*>(closure);
  if (st->async_errors.fetch_add(1) < 5) {
    std::fprintf(stderr, "jetstream_bench: asynchronous client error: %s\n", natsStatus_GetText(err));
  }
}

std::string LastError(natsStatus s) {
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  std::string out = natsStatus_GetText(s);
  if (text != nullptr && *text != '\0') out += std::string(": ") + text;
  return out;
}

// Owns every NATS object so that each failure path can simply return.
struct Session {
  natsOptions* pub_opts = nullptr;
  natsOptions* sub_opts = nullptr;
  natsConnection* pub_nc = nullptr;
  natsConnection* sub_nc = nullptr;
  jsCtx* admin = nullptr;  // stream management and probe, on pub_nc
  jsCtx* pub = nullptr;    // async publishing, on pub_nc
  jsCtx* sub_js = nullptr;
  natsSubscription* sub = nullptr;
  std::string stream_to_delete;

  ~Session() {
    if (sub != nullptr) {
      natsSubscription_Unsubscribe(sub);  // deletes the ephemeral consumer
      natsSubscription_Destroy(sub);
    }
    if (admin != nullptr && !stream_to_delete.empty()) {
      jsErrCode jerr = static_cast<jsErrCode>(0);
      const natsStatus s = js_DeleteStream(admin, stream_to_delete.c_str(), nullptr, &jerr);
      if (s != NATS_OK && s != NATS_NOT_FOUND) {
        std::fprintf(stderr, "jetstream_bench: warning: deleting stream %s: %s\n", stream_to_delete.c_str(),
                     LastError(s).c_str());
      }
    }
    jsCtx_Destroy(pub);
    jsCtx_Destroy(admin);
    jsCtx_Destroy(sub_js);
    natsConnection_Destroy(pub_nc);
    natsConnection_Destroy(sub_nc);
    natsOptions_Destroy(pub_opts);
    natsOptions_Destroy(sub_opts);
  }
};

bool Connect(const Options& o, State* st, const char* name, int64_t deadline, natsOptions** opts, natsConnection** nc) {
  std::vector<const char*> urls;
  for (const std::string& u : o.servers) urls.push_back(u.c_str());
  natsStatus s = natsOptions_Create(opts);
  if (s == NATS_OK) s = natsOptions_SetServers(*opts, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK) s = natsOptions_SetName(*opts, name);
  if (s == NATS_OK) s = natsOptions_SetTimeout(*opts, 2000);
  if (s == NATS_OK) s = natsOptions_SetIOBufSize(*opts, 256 * 1024);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(*opts, OnAsyncError, st);
  if (s != NATS_OK) {
    std::fprintf(stderr, "jetstream_bench: client options: %s\n", LastError(s).c_str());
    return false;
  }
  for (;;) {
    s = natsConnection_Connect(nc, *opts);
    if (s == NATS_OK) return true;
    if (MonoNanos() >= deadline) {
      std::fprintf(stderr, "jetstream_bench: cannot connect to %s: %s\n", o.servers.front().c_str(),
                   LastError(s).c_str());
      return false;
    }
    SleepMillis(250);
  }
}

// Deletes any old stream of that name and creates it; retries until the
// JetStream meta group has a leader and accepts the request, or the deadline.
bool CreateStream(const Options& o, jsCtx* js, int64_t deadline) {
  const std::vector<std::string> names = o.PublishSubjects();
  std::vector<const char*> subjects;
  for (const std::string& n : names) subjects.push_back(n.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = o.stream.c_str();
  cfg.Subjects = subjects.data();
  cfg.SubjectsLen = static_cast<int>(subjects.size());
  cfg.Storage = js_FileStorage;
  cfg.Retention = js_LimitsPolicy;
  cfg.Discard = js_DiscardOld;
  cfg.Replicas = o.replicas;
  cfg.MaxBytes = o.max_bytes;  // bounds the disk a long run uses
  bool said_waiting = false;
  std::string last;
  for (;;) {
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_DeleteStream(js, o.stream.c_str(), nullptr, &jerr);
    if (s == NATS_OK || s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
      jsStreamInfo* si = nullptr;
      jerr = static_cast<jsErrCode>(0);
      s = js_AddStream(&si, js, &cfg, nullptr, &jerr);
      jsStreamInfo_Destroy(si);
      if (s == NATS_OK) return true;
    }
    last = LastError(s) + (jerr != 0 ? " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")" : "");
    if (MonoNanos() >= deadline) {
      std::fprintf(
          stderr,
          "jetstream_bench: cannot create stream %s (R%d, file storage) within %.0f s: %s\n"
          "  (is JetStream enabled on every server, and do the servers form one cluster with a meta leader?)\n",
          o.stream.c_str(), o.replicas, o.setup_timeout, last.c_str());
      return false;
    }
    if (!said_waiting) {
      std::fprintf(stderr, "jetstream_bench: waiting for the JetStream cluster (%s)...\n", last.c_str());
      said_waiting = true;
    }
    SleepMillis(500);
  }
}

// One synchronous publish that must succeed: the stream has a leader and quorum.
bool Probe(const Options& o, jsCtx* js, int64_t deadline) {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 2000;
  const char probe[] = "probe";  // shorter than 8 bytes: never measured
  for (;;) {
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsPubAck* pa = nullptr;
    const natsStatus s = js_Publish(&pa, js, o.PublishSubjects().front().c_str(), probe, 5, &po, &jerr);
    jsPubAck_Destroy(pa);
    if (s == NATS_OK) return true;
    if (MonoNanos() >= deadline) {
      std::fprintf(stderr, "jetstream_bench: stream %s accepts no publish: %s\n", o.stream.c_str(),
                   LastError(s).c_str());
      return false;
    }
    SleepMillis(250);
  }
}

int Run(const Options& o) {
  State st;
  Session ss;
  const int64_t setup_deadline = MonoNanos() + static_cast<int64_t>(o.setup_timeout * 1e9);
  const int64_t setup_start = MonoNanos();

  if (!Connect(o, &st, "jetstream_bench-pub", setup_deadline, &ss.pub_opts, &ss.pub_nc)) return 1;
  natsStatus s = natsConnection_JetStream(&ss.admin, ss.pub_nc, nullptr);
  if (s != NATS_OK) {
    std::fprintf(stderr, "jetstream_bench: JetStream context: %s\n", LastError(s).c_str());
    return 1;
  }
  if (!CreateStream(o, ss.admin, setup_deadline)) return 1;
  if (!o.keep_stream) ss.stream_to_delete = o.stream;
  if (!Probe(o, ss.admin, setup_deadline)) return 1;

  // The consumer: its own connection; an ordered push consumer from now on,
  // or a durable push consumer with explicit acks over every subject.
  if (!Connect(o, &st, "jetstream_bench-sub", setup_deadline, &ss.sub_opts, &ss.sub_nc)) return 1;
  s = natsConnection_JetStream(&ss.sub_js, ss.sub_nc, nullptr);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = o.stream.c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const std::string durable = o.stream + "_DURABLE";
  const std::string deliver = "_dlogbench.deliver." + o.stream;
  if (o.consumer == "durable") {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable.c_str();
    cc.DeliverSubject = deliver.c_str();
    cc.DeliverPolicy = js_DeliverNew;
    cc.AckPolicy = js_AckExplicit;
    cc.MaxAckPending = o.max_ack_pending;
    jsConsumerInfo* ci = nullptr;
    if (s == NATS_OK) s = js_AddConsumer(&ci, ss.sub_js, o.stream.c_str(), &cc, nullptr, &jerr);
    jsConsumerInfo_Destroy(ci);
    so.Consumer = durable.c_str();
    so.ManualAck = true;
    st.manual_ack = true;
  } else {
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverNew;
  }
  // A bound durable consumer needs no subject; an ordered one filters on them all.
  const std::string wildcard = o.subject + ".*";
  const char* sub_subject = o.subjects == 1 ? o.subject.c_str() : o.consumer == "durable" ? nullptr : wildcard.c_str();
  if (s == NATS_OK) s = js_Subscribe(&ss.sub, ss.sub_js, sub_subject, OnDeliver, &st, nullptr, &so, &jerr);
  // Never drop on the client side (a drop would reset the ordered consumer).
  if (s == NATS_OK) s = natsSubscription_SetPendingLimits(ss.sub, -1, -1);
  if (s != NATS_OK) {
    std::fprintf(stderr, "jetstream_bench: %s consumer on %s: %s (JetStream error %d)\n", o.consumer.c_str(),
                 o.stream.c_str(), LastError(s).c_str(), static_cast<int>(jerr));
    return 1;
  }

  // The publisher's context: async publish with a bounded window.
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = o.window;
  jo.PublishAsync.AckHandler = OnPubAck;
  jo.PublishAsync.AckHandlerClosure = &st;
  jo.PublishAsync.StallWait = 1000;
  s = natsConnection_JetStream(&ss.pub, ss.pub_nc, &jo);
  if (s != NATS_OK) {
    std::fprintf(stderr, "jetstream_bench: JetStream publish context: %s\n", LastError(s).c_str());
    return 1;
  }
  std::fprintf(stderr, "jetstream_bench: stream %s ready (R%d, file, %d subject%s, %s consumer) after %.1f s\n",
               o.stream.c_str(), o.replicas, o.subjects, o.subjects == 1 ? "" : "s", o.consumer.c_str(),
               static_cast<double>(MonoNanos() - setup_start) / 1e9);
  const std::vector<std::string> subjects = o.PublishSubjects();

  std::vector<char> payload(static_cast<size_t>(o.size));
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);

  const int64_t start = MonoNanos();
  const int64_t measure_start = start + static_cast<int64_t>(o.warmup * 1e9);
  const int64_t measure_end = measure_start + static_cast<int64_t>(o.seconds * 1e9);
  st.measure_start.store(measure_start);
  st.measure_end.store(measure_end);
  const bool paced = o.mode == "rate";
  const double period_ns = 1e9 / o.rate;
  uint64_t sent = 0, sent_measured = 0, stalls = 0;
  int64_t max_behind = 0;
  for (;;) {
    int64_t now = MonoNanos();
    if (paced) {
      const int64_t due = start + static_cast<int64_t>(static_cast<double>(sent) * period_ns);
      if (due >= measure_end) break;
      if (now < due) {
        SleepUntil(due);
        now = MonoNanos();
      } else {
        max_behind = std::max(max_behind, now - due);
      }
    } else if (now >= measure_end) {
      break;
    }
    for (int stalled = 0;; ++stalled) {
      std::memcpy(payload.data(), &now, sizeof(now));
      s = js_PublishAsync(ss.pub, subjects[sent % subjects.size()].c_str(), payload.data(), o.size, nullptr);
      if (s != NATS_TIMEOUT) break;
      ++stalls;  // window full for StallWait (1 s without an ack): keep waiting, up to 30 s
      if (stalled >= 30) break;
      now = MonoNanos();
    }
    if (s != NATS_OK) {
      std::fprintf(stderr, "jetstream_bench: publish #%" PRIu64 " failed: %s\n", sent, LastError(s).c_str());
      return 1;
    }
    ++sent;
    if (st.InWindow(now)) ++sent_measured;
  }

  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 30000;
  s = js_PublishAsyncComplete(ss.pub, &po);
  if (s != NATS_OK) {
    std::fprintf(stderr, "jetstream_bench: outstanding acks not received within 30 s: %s\n", LastError(s).c_str());
    return 1;
  }
  // Let the consumer catch up with every measured record (bounded wait).
  const int64_t catchup_deadline = MonoNanos() + 30'000'000'000;
  while (st.delivered_measured.load() < sent_measured && MonoNanos() < catchup_deadline) SleepMillis(20);

  const uint64_t ack_errors = st.ack_errors.load();
  if (ack_errors > 0) {
    std::fprintf(stderr, "jetstream_bench: %" PRIu64 " of %" PRIu64 " publishes were not acknowledged\n", ack_errors,
                 sent);
    return 1;
  }
  if (st.ack_latency.count() == 0) {
    std::fprintf(stderr, "jetstream_bench: no acknowledged record in the measurement window\n");
    return 1;
  }
  if (st.delivered_measured.load() < sent_measured) {
    std::fprintf(stderr,
                 "jetstream_bench: warning: the consumer received %" PRIu64 " of %" PRIu64
                 " measured records within 30 s; e2e percentiles cover those only\n",
                 st.delivered_measured.load(), sent_measured);
  }
  if (paced && max_behind > 100'000'000) {
    std::fprintf(stderr, "jetstream_bench: warning: the publisher fell up to %.0f ms behind the %.0f/s schedule\n",
                 static_cast<double>(max_behind) / 1e6, o.rate);
  }
  std::fprintf(stderr,
               "jetstream_bench: sent %" PRIu64 " (%" PRIu64 " measured), acked %" PRIu64 ", delivered %" PRIu64
               ", window stalls %" PRIu64 ", async client errors %" PRIu64 ", ack send errors %" PRIu64 "\n",
               sent, sent_measured, st.acks.load(), st.delivered.load(), stalls, st.async_errors.load(),
               st.ack_send_errors.load());

  const double rps = static_cast<double>(st.acks_in_window.load()) / o.seconds;
  const double mbps = rps * o.size / 1e6;
  const double consumed = static_cast<double>(st.delivered_in_window.load()) / o.seconds;
  std::printf(
      "RESULT system=jetstream workload=%s size=%d records_per_s=%.0f mb_per_s=%.2f consumed_per_s=%.0f "
      "ack_p50_us=%.0f ack_p99_us=%.0f ack_p999_us=%.0f e2e_p50_us=%.0f e2e_p99_us=%.0f e2e_p999_us=%.0f "
      "records_per_entry=0\n",
      o.mode.c_str(), o.size, rps, mbps, consumed, st.ack_latency.QuantileMicros(0.50),
      st.ack_latency.QuantileMicros(0.99), st.ack_latency.QuantileMicros(0.999), st.e2e_latency.QuantileMicros(0.50),
      st.e2e_latency.QuantileMicros(0.99), st.e2e_latency.QuantileMicros(0.999));
  std::fflush(stdout);
  return 0;
}

bool ParseDouble(const std::string& v, double* out) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (errno != 0 || end == v.c_str() || *end != '\0') return false;
  *out = d;
  return true;
}

bool ParseInt(const std::string& v, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (errno != 0 || end == v.c_str() || *end != '\0') return false;
  *out = x;
  return true;
}

int Usage(const char* why) {
  std::fprintf(stderr,
               "jetstream_bench: %s\n"
               "usage: jetstream_bench --servers nats://H:P[,nats://H:P...] [--replicas 3]\n"
               "         [--mode throughput|rate] [--size 1024] [--window 1000] [--rate 5000]\n"
               "         [--seconds 10] [--warmup 1] [--setup-timeout 30] [--stream DLOGBENCH]\n"
               "         [--subject dlogbench.log] [--max-bytes 2147483648] [--keep-stream]\n"
               "         [--subjects 1] [--consumer ordered|durable] [--max-ack-pending 16000]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      Usage("NATS JetStream publish benchmark");
      return 0;
    }
    if (k == "--keep-stream") {  // leave the stream (and its files) behind for inspection
      o.keep_stream = true;
      continue;
    }
    if (i + 1 >= argc) return Usage(("flag " + k + " needs a value").c_str());
    const std::string v = argv[++i];
    int64_t n = 0;
    double d = 0;
    const auto bad = [&] { return Usage(("bad value '" + v + "' for " + k).c_str()); };
    if (k == "--servers") {
      o.servers.clear();
      size_t pos = 0;
      while (pos <= v.size()) {
        size_t comma = v.find(',', pos);
        if (comma == std::string::npos) comma = v.size();
        if (comma > pos) o.servers.push_back(v.substr(pos, comma - pos));
        pos = comma + 1;
      }
      if (o.servers.empty()) return bad();
    } else if (k == "--stream") {
      o.stream = v;
    } else if (k == "--subject") {
      o.subject = v;
    } else if (k == "--mode") {
      if (v != "throughput" && v != "rate") return bad();
      o.mode = v;
    } else if (k == "--replicas") {
      if (!ParseInt(v, &n) || n < 1 || n > 5) return bad();
      o.replicas = static_cast<int>(n);
    } else if (k == "--size") {
      if (!ParseInt(v, &n) || n < 8 || n > (8 << 20)) return Usage("--size must be 8..8388608 bytes");
      o.size = static_cast<int>(n);
    } else if (k == "--window") {
      if (!ParseInt(v, &n) || n < 1 || n > 1'000'000) return bad();
      o.window = static_cast<int>(n);
    } else if (k == "--rate") {
      if (!ParseDouble(v, &d) || d <= 0) return bad();
      o.rate = d;
    } else if (k == "--seconds") {
      if (!ParseDouble(v, &d) || d <= 0) return bad();
      o.seconds = d;
    } else if (k == "--warmup") {
      if (!ParseDouble(v, &d) || d < 0) return bad();
      o.warmup = d;
    } else if (k == "--setup-timeout") {
      if (!ParseDouble(v, &d) || d <= 0) return bad();
      o.setup_timeout = d;
    } else if (k == "--subjects") {
      if (!ParseInt(v, &n) || n < 1 || n > 4096) return bad();
      o.subjects = static_cast<int>(n);
    } else if (k == "--consumer") {
      if (v != "ordered" && v != "durable") return bad();
      o.consumer = v;
    } else if (k == "--max-ack-pending") {
      if (!ParseInt(v, &n) || n < 1) return bad();
      o.max_ack_pending = n;
    } else if (k == "--max-bytes") {
      if (!ParseInt(v, &n) || n < (1 << 20)) return bad();
      o.max_bytes = n;
    } else {
      return Usage(("unknown flag " + k).c_str());
    }
  }
  const int rc = Run(o);
  nats_CloseAndWait(5000);
  return rc;
}
