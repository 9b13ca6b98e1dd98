// TailCache: hits, replacement, eviction bounds, wrap-around.
#include "logstore/node/tail_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace dlog::node {
namespace {

std::string Bytes(uint64_t seg, int64_t e, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seg * 31 + static_cast<uint64_t>(e) * 7 + i);
  return s;
}

TEST(TailCache, HitMissAndReplace) {
  TailCache c(64 << 10);
  c.Insert(1, 0, 11, Slice::CopyOf("zero"));
  c.Insert(1, 1, 12, Slice::CopyOf("one"));
  Slice p;
  uint32_t crc = 0;
  ASSERT_TRUE(c.Lookup(1, 0, &p, &crc));
  EXPECT_EQ(p.ToString(), "zero");
  EXPECT_EQ(crc, 11u);
  EXPECT_FALSE(c.Lookup(1, 2, &p, &crc));
  EXPECT_FALSE(c.Lookup(2, 0, &p, &crc));
  c.Insert(1, 0, 13, Slice::CopyOf("zero again"));
  ASSERT_TRUE(c.Lookup(1, 0, &p, &crc));
  EXPECT_EQ(p.ToString(), "zero again");
  EXPECT_EQ(crc, 13u);
  EXPECT_EQ(c.entries(), 2u);
  c.Insert(1, 5, 0, Slice::CopyOf(""));  // empty payloads are fine
  ASSERT_TRUE(c.Lookup(1, 5, &p, &crc));
  EXPECT_TRUE(p.empty());
}

TEST(TailCache, EvictionBoundsMemoryAndKeepsNewest) {
  const uint64_t cap = 64 << 10;
  TailCache c(cap);
  const size_t fixed = c.memory_bytes();
  std::mt19937 rng(3);
  std::map<int64_t, std::string> all;
  for (int64_t e = 0; e < 5000; ++e) {
    std::string b = Bytes(7, e, 1 + rng() % 2000);
    c.Insert(7, e, static_cast<uint32_t>(e), Slice::CopyOf(b));
    all[e] = b;
    ASSERT_LE(c.used_bytes(), c.capacity());
    ASSERT_EQ(c.memory_bytes(), fixed);
  }
  // The newest entry is always there; whatever is there is byte-exact.
  Slice p;
  uint32_t crc;
  ASSERT_TRUE(c.Lookup(7, 4999, &p, &crc));
  size_t hits = 0;
  for (auto& [e, b] : all) {
    if (c.Lookup(7, e, &p, &crc)) {
      ++hits;
      ASSERT_EQ(p.ToString(), b) << e;
      ASSERT_EQ(crc, static_cast<uint32_t>(e));
    }
  }
  EXPECT_GT(hits, 10u);
  EXPECT_LT(hits, 200u);  // 64 KiB of ~1 KiB entries
  EXPECT_EQ(hits, c.entries());
}

TEST(TailCache, ManySmallEntriesHitTheCountBound) {
  TailCache c(64 << 10);
  for (int64_t e = 0; e < 100000; ++e) c.Insert(1, e, 0, Slice::CopyOf("x"));
  EXPECT_LE(c.entries(), 1024u);
  Slice p;
  uint32_t crc;
  EXPECT_TRUE(c.Lookup(1, 99999, &p, &crc));
  EXPECT_FALSE(c.Lookup(1, 0, &p, &crc));
}

TEST(TailCache, TooLargeIsNotCachedAndEraseSegment) {
  TailCache c(64 << 10);
  c.Insert(1, 0, 0, Slice::CopyOf(std::string(40 << 10, 'x')));
  Slice p;
  uint32_t crc;
  EXPECT_FALSE(c.Lookup(1, 0, &p, &crc));
  for (int64_t e = 0; e < 20; ++e) {
    c.Insert(1, e, 0, Slice::CopyOf("a"));
    c.Insert(2, e, 0, Slice::CopyOf("b"));
  }
  c.EraseSegment(1);
  for (int64_t e = 0; e < 20; ++e) {
    EXPECT_FALSE(c.Lookup(1, e, &p, &crc));
    EXPECT_TRUE(c.Lookup(2, e, &p, &crc));
  }
}

}  // namespace
}  // namespace dlog::node
