// A fixed-memory latency histogram with log-linear buckets (≈3% relative
// precision from 1 µs to ~70 min). Recording is lock-free (relaxed atomic
// increments); reading gives counts, percentiles and Prometheus-style
// cumulative buckets. Used by module probes and by benchmarks.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace dlog {

class Histogram {
 public:
  // 32 sub-buckets per power of two, over values 0 .. 2^42.
  static constexpr int kSubBits = 5;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kMaxExp = 42;
  static constexpr int kBuckets = (kMaxExp - kSubBits + 1) * kSub + kSub;

  void Record(uint64_t value) {
    counts_[BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t Sum() const { return sum_.load(std::memory_order_relaxed); }
  // Value at quantile q in [0,1] (upper edge of its bucket); 0 when empty.
  uint64_t Percentile(double q) const;
  // Count of values <= bound (bucket granularity).
  uint64_t CountAtMost(uint64_t bound) const;
  void Reset();
  // Adds another histogram's counts to this one.
  void Merge(const Histogram& other);

  static int BucketOf(uint64_t v);
  static uint64_t BucketUpper(int b);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

}  // namespace dlog
