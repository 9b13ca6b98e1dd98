// LogServiceProbe: the log service's metrics, as plain atomics and a
// histogram; exported by server/metrics.cc under dlog_log_service_*.
// Thread-safe, lock-free.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/histogram.h"

namespace dlog::server {

struct LogServiceProbe {
  std::atomic<uint64_t> requests_total{0};      // requests received (any op)
  std::atomic<uint64_t> errors_total{0};        // replies with a non-OK code
  std::atomic<uint64_t> bad_requests_total{0};  // BAD_REQUEST replies and protocol errors
  std::atomic<uint64_t> appended_records_total{0};
  std::atomic<uint64_t> appended_bytes_total{0};
  std::atomic<uint64_t> read_records_total{0};
  std::atomic<uint64_t> read_bytes_total{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<int64_t> writers_open{0};
  std::atomic<int64_t> readers_open{0};
  Histogram append_latency_us;  // append request arrival -> reply queued, microseconds
};

}  // namespace dlog::server
