#include "common/histogram.h"

#include <bit>

namespace dlog {

int Histogram::BucketOf(uint64_t v) {
  if (v < static_cast<uint64_t>(kSub)) return static_cast<int>(v);
  int msb = 63 - std::countl_zero(v);
  if (msb > kMaxExp) return kBuckets - 1;
  int shift = msb - kSubBits;
  int sub = static_cast<int>((v >> shift) & (kSub - 1));
  return (shift + 1) * kSub + sub;
}

uint64_t Histogram::BucketUpper(int b) {
  if (b < kSub) return static_cast<uint64_t>(b);
  int shift = b / kSub - 1;
  uint64_t sub = static_cast<uint64_t>(b % kSub);
  return (((uint64_t{1} << kSubBits) | sub) << shift) + ((uint64_t{1} << shift) - 1);
}

uint64_t Histogram::Percentile(double q) const {
  uint64_t total = Count();
  if (total == 0) return 0;
  auto target = static_cast<uint64_t>(q * static_cast<double>(total));
  if (target >= total) target = total - 1;
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[b].load(std::memory_order_relaxed);
    if (seen > target) return BucketUpper(b);
  }
  return BucketUpper(kBuckets - 1);
}

uint64_t Histogram::CountAtMost(uint64_t bound) const {
  uint64_t n = 0;
  for (int b = 0; b < kBuckets && BucketUpper(b) <= bound; ++b) n += counts_[b].load(std::memory_order_relaxed);
  return n;
}

void Histogram::Reset() {
  for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  count_.store(0);
  sum_.store(0);
}

void Histogram::Merge(const Histogram& other) {
  for (int b = 0; b < kBuckets; ++b)
    counts_[b].fetch_add(other.counts_[b].load(std::memory_order_relaxed), std::memory_order_relaxed);
  count_.fetch_add(other.Count());
  sum_.fetch_add(other.Sum());
}

}  // namespace dlog
