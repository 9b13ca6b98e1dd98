#include "common/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace dlog {
namespace {

TEST(Histogram, BucketsAreMonotonicAndCoverValues) {
  for (uint64_t v : {0ull, 1ull, 31ull, 32ull, 33ull, 1000ull, 123456789ull, 1ull << 40}) {
    int b = Histogram::BucketOf(v);
    EXPECT_GE(Histogram::BucketUpper(b), v) << v;
    if (b > 0) EXPECT_LT(Histogram::BucketUpper(b - 1), v) << v;
  }
}

TEST(Histogram, PercentilesWithinPrecision) {
  Histogram h;
  std::mt19937_64 rng(1);
  std::vector<uint64_t> vals;
  for (int i = 0; i < 100000; ++i) {
    uint64_t v = rng() % 100000;
    vals.push_back(v);
    h.Record(v);
  }
  std::sort(vals.begin(), vals.end());
  for (double q : {0.5, 0.99, 0.999}) {
    double exact = static_cast<double>(vals[static_cast<size_t>(q * vals.size())]);
    double got = static_cast<double>(h.Percentile(q));
    EXPECT_NEAR(got, exact, exact * 0.04 + 1) << q;
  }
  EXPECT_EQ(h.Count(), 100000u);
  EXPECT_EQ(h.CountAtMost(UINT64_MAX >> 1), 100000u);
}

}  // namespace
}  // namespace dlog
