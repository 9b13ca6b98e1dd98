// NodeProbe: the storage node's metrics, as plain atomics and histograms.
// The node updates them; only the server (server/) exports them to
// prometheus-cpp (names in server/metrics.cc). Thread-safe, lock-free.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/histogram.h"

namespace dlog::node {

struct NodeProbe {
  std::atomic<uint64_t> adds_total{0};               // adds acknowledged OK
  std::atomic<uint64_t> add_bytes_total{0};          // payload bytes of those adds
  std::atomic<uint64_t> reads_total{0};              // reads answered (any code)
  std::atomic<uint64_t> read_bytes_total{0};         // payload bytes returned
  std::atomic<uint64_t> cache_hits_total{0};         // reads served from the tail cache
  std::atomic<uint64_t> cache_misses_total{0};       // reads that went to disk
  std::atomic<uint64_t> fences_total{0};             // fencing reads received
  std::atomic<uint64_t> rejected_too_many_total{0};  // TOO_MANY_REQUESTS answers
  std::atomic<uint64_t> rejected_fenced_total{0};    // FENCED answers to adds
  std::atomic<uint64_t> bad_requests_total{0};       // BAD_REQUEST answers and protocol errors
  std::atomic<uint64_t> journal_batches_total{0};
  std::atomic<uint64_t> journal_bytes_total{0};
  std::atomic<uint64_t> journal_fsync_errors_total{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<int64_t> healthy{1};              // 1 healthy, 0 unhealthy
  std::atomic<int64_t> journal_queue_bytes{0};  // bytes waiting for the journal writer

  Histogram add_latency_us;         // request arrival -> reply queued, microseconds
  Histogram fsync_latency_us;       // one fdatasync, microseconds
  Histogram journal_batch_entries;  // records per journal batch
  Histogram journal_batch_bytes;    // bytes per journal batch
};

}  // namespace dlog::node
