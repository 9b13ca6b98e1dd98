// SegmentProbe: metrics of replicated segments, as plain atomics and
// histograms (like logstore/node/probe.h). Writers, readers and recoveries
// update them; only the server exports them (dlog_segment_* names).
// Thread-safe, lock-free.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/histogram.h"

namespace dlog::segment {

struct SegmentProbe {
  std::atomic<uint64_t> adds_total{0};  // adds acknowledged to callers
  std::atomic<uint64_t> add_bytes_total{0};
  std::atomic<uint64_t> adds_fenced_total{0};         // adds failed as fenced (outcome unknown)
  std::atomic<uint64_t> add_retries_total{0};         // resends after TOO_MANY_REQUESTS / a full node window
  std::atomic<uint64_t> lac_writes_total{0};          // explicit WriteLac rounds of idle writers
  std::atomic<uint64_t> ensemble_changes_total{0};    // fragments added or replaced by a CAS
  std::atomic<uint64_t> recoveries_total{0};          // recoveries that closed (or adopted a close)
  std::atomic<uint64_t> recovered_entries_total{0};   // entries rewritten by recovery
  std::atomic<uint64_t> reads_total{0};               // entries read OK
  std::atomic<uint64_t> read_retries_total{0};        // reads sent to another replica after an error
  std::atomic<uint64_t> speculative_reads_total{0};   // reads sent to another replica after a slow one
  std::atomic<int64_t> under_replicated_segments{0};  // open writers running with a dead slot

  Histogram add_latency_us;  // Add() on the loop -> completion, microseconds
};

}  // namespace dlog::segment
