// `dlog perf`: load generator for the broker, modelled on Apache Pulsar's
// pulsar-perf, built on the public client library (client/include/dlog/).
//
//   dlog perf produce TOPIC [--rate R] [--size B] [--partitions N] [--producers P] ...
//   dlog perf consume TOPIC [--subscription S] [--sub-type T] [--consumers C] ...
//   dlog perf pubsub  TOPIC ...   (both in one process: consumers subscribe first)
//
// Every message carries its send time (steady clock, ns) and a marker in its
// first 16 bytes, so a consumer on the same machine measures end-to-end
// latency (receive time - send time) — also across processes, as the steady
// clock is the machine's CLOCK_MONOTONIC. Progress every second on stderr; a
// summary on stdout at the end (with --result, also one machine-readable
// `RESULT system=dlog ...` line). Exit code 0; 1 if a call failed or a
// message was not acknowledged; 2 for usage errors.
//
// Threading: the main thread sets up, reports and tears down; one thread per
// producer paces and sends; acks and received messages are counted on the
// clients' loop threads (lock-free counters and histograms).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace dlog::cli {

struct PerfArgs {
  std::string service_url = "dlog://127.0.0.1:6650";
  int64_t timeout_ms = 30000;
  std::string topic;
  int32_t partitions = 0;  // > 0: create the topic with this many partitions if missing
  double rate = 100;       // messages/s over all producers; 0: as fast as possible
  int size = 1024;
  int producers = 1;
  int consumers = 1;
  std::string subscription = "perf-sub";
  std::string sub_type = "exclusive";
  std::string position = "latest";
  bool disable_batching = false;
  int batch_max_messages = 1000;
  uint32_t batch_max_bytes = 128u << 10;
  int64_t batch_delay_ms = 1;
  int max_pending = 1000;
  std::string compression = "none";
  int receiver_queue_size = 1000;
  double duration_s = 0;     // measured seconds after the warm-up; 0: until --num-messages or SIGINT
  int64_t num_messages = 0;  // produce/pubsub: messages to send; consume: to receive; 0: no limit
  double warmup_s = 1;
  double drain_timeout_s = 30;
  bool result_line = false;
  bool quiet = false;

  CLI::App* perf = nullptr;
  CLI::App* produce = nullptr;
  CLI::App* consume = nullptr;
  CLI::App* pubsub = nullptr;
};

// Adds `perf produce|consume|pubsub` to `app`; their values land in *args.
void AddPerfCommands(CLI::App* app, PerfArgs* args);
// True if one of them was given.
bool PerfCommandParsed(const PerfArgs& args);
// Runs the parsed command (blocks for the whole run): 0, or 1 after printing
// one line on stderr.
int RunPerfCommand(const PerfArgs& args);

}  // namespace dlog::cli
