#include "common/buffer.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace dlog {
namespace {

TEST(Buffer, SliceKeepsChunkAlive) {
  MemoryBudget budget(1 << 20);
  Slice s;
  {
    ChunkRef c(Chunk::TryAllocate(100, &budget));
    ASSERT_TRUE(c);
    std::memcpy(c->data(), "hello world", 11);
    s = Slice(c, c->data() + 6, 5);
  }
  EXPECT_EQ(s.view(), "world");
  EXPECT_GT(budget.used(), 0);
  s = Slice();
  EXPECT_EQ(budget.used(), 0);
}

TEST(Buffer, BudgetRefusesBeyondLimit) {
  MemoryBudget budget(1000);
  Chunk* a = Chunk::TryAllocate(800, &budget);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(Chunk::TryAllocate(800, &budget), nullptr);
  a->Unref();
  Chunk* b = Chunk::TryAllocate(800, &budget);
  ASSERT_NE(b, nullptr);
  b->Unref();
  EXPECT_EQ(budget.used(), 0);
}

TEST(Buffer, RefcountAcrossThreads) {
  MemoryBudget budget(1 << 20);
  ChunkRef c(Chunk::TryAllocate(64, &budget));
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([c] {
      for (int i = 0; i < 10000; ++i) {
        ChunkRef copy = c;
        Slice s(copy, copy->data(), 1);
      }
    });
  }
  for (auto& t : ts) t.join();
  c.reset();
  EXPECT_EQ(budget.used(), 0);
}

TEST(Buffer, ByteBufferGrowsAndKeepsCapacity) {
  ByteBuffer b;
  for (int i = 0; i < 1000; ++i) b.Append("abcdefgh", 8);
  EXPECT_EQ(b.size(), 8000u);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(b.data()) + 7992, 8), "abcdefgh");
  size_t cap = b.capacity();
  b.Clear();
  EXPECT_EQ(b.capacity(), cap);
}

TEST(Buffer, Endianness) {
  uint8_t p[8];
  PutBe32(p, 0x01020304);
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[3], 4);
  EXPECT_EQ(GetBe32(p), 0x01020304u);
  PutBe64(p, 0x0102030405060708ull);
  EXPECT_EQ(GetBe64(p), 0x0102030405060708ull);
  PutLe<uint32_t>(p, 0x01020304);
  EXPECT_EQ(p[0], 4);
  EXPECT_EQ(GetLe<uint32_t>(p), 0x01020304u);
}

}  // namespace
}  // namespace dlog
