// broker/cursor without servers: the block bitmap, partial batches, summaries
// and the block encoding, against a std::set model.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "broker/cursor/ack_block.h"
#include "cursor.pb.h"

namespace dlog::broker {
namespace {

BlockSummary ModelSummary(const std::set<int64_t>& acked, int64_t start, size_t partials) {
  BlockSummary s;
  for (int64_t q = start; q < start + kBlockRecords; ++q) {
    if (!acked.count(q)) continue;
    ++s.count;
    if (q == start || !acked.count(q - 1)) ++s.runs;
  }
  while (s.prefix < kBlockRecords && acked.count(start + s.prefix)) ++s.prefix;
  s.last = acked.count(start + kBlockRecords - 1) > 0;
  s.partials = static_cast<int32_t>(partials);
  return s;
}

TEST(AckBlockTest, RandomAcksMatchModel) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20; ++round) {
    const int64_t index = static_cast<int64_t>(rng() % 5);
    AckBlock b(index);
    const int64_t start = b.first_seq();
    std::set<int64_t> acked;
    std::map<int64_t, std::set<int>> partial;  // seq -> acked indexes (batch size 8)
    int64_t floor = start;
    for (int op = 0; op < 5000; ++op) {
      const int64_t seq = start + static_cast<int64_t>(rng() % kBlockRecords);
      // The cursor never hands a block acks below mark_delete.
      if (seq < floor) continue;
      switch (rng() % 8) {
        case 0: {  // range
          const int64_t to = std::min(b.end_seq() - 1, seq + static_cast<int64_t>(rng() % 100));
          b.AckRange(seq, to);
          for (int64_t q = std::max(seq, floor); q <= to; ++q) {
            acked.insert(q);
            partial.erase(q);
          }
          break;
        }
        case 1: {  // partial
          const int bi = static_cast<int>(rng() % 8);
          std::vector<uint64_t> w{uint64_t{1} << bi};
          b.AckIndexes(seq, 8, w);
          if (seq >= floor && !acked.count(seq)) {
            partial[seq].insert(bi);
            if (partial[seq].size() == 8) {
              partial.erase(seq);
              acked.insert(seq);
            }
          }
          break;
        }
        case 2:
          if (rng() % 50 == 0) {
            b.ClearBelow(seq);
            floor = std::max(floor, seq);
            acked.erase(acked.begin(), acked.lower_bound(seq));
            partial.erase(partial.begin(), partial.lower_bound(seq));
          }
          break;
        default: {
          b.AckRange(seq, seq);
          if (seq >= floor) {
            acked.insert(seq);
            partial.erase(seq);
          }
        }
      }
      if (op % 500 == 0) {
        ASSERT_EQ(b.Summarize(), ModelSummary(acked, start, partial.size())) << "op " << op;
        int64_t f = std::max(floor, start);
        while (f < b.end_seq() && acked.count(f)) ++f;
        ASSERT_EQ(b.FirstUnackedFrom(floor), f);
      }
    }
    for (int64_t q = start; q < b.end_seq(); ++q) {
      ASSERT_EQ(b.IsAcked(q), acked.count(q) > 0) << q;
      const PartialBits* p = b.Partial(q);
      ASSERT_EQ(p != nullptr, partial.count(q) > 0) << q;
      if (p != nullptr) {
        for (int i = 0; i < 8; ++i) EXPECT_EQ((p->words[0] >> i) & 1, partial[q].count(i)) << q;
      }
    }
    // Encoding round trip.
    proto::CursorBlock pb;
    b.ToProto(&pb);
    auto back = AckBlock::FromProto(pb);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->Summarize(), b.Summarize());
    for (int64_t q = start; q < b.end_seq(); ++q) ASSERT_EQ(back->IsAcked(q), b.IsAcked(q));
  }
}

TEST(AckBlockTest, PartialBatchBecomesWhole) {
  AckBlock b(0);
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(b.IsAcked(5));
    std::vector<uint64_t> w(2, 0);
    w[static_cast<size_t>(i / 64)] = uint64_t{1} << (i % 64);
    EXPECT_TRUE(b.AckIndexes(5, 100, w));
  }
  EXPECT_TRUE(b.IsAcked(5));
  EXPECT_EQ(b.Partial(5), nullptr);
  // An ack past the batch is masked; a repeated one changes nothing.
  std::vector<uint64_t> w{~uint64_t{0}};
  EXPECT_FALSE(b.AckIndexes(5, 100, w));
  EXPECT_EQ(b.Summarize().count, 1);
  auto up = IndexesUpTo(69);
  EXPECT_FALSE(b.AckIndexes(7, 100, up) && b.IsAcked(7));
  EXPECT_EQ(b.Partial(7)->words[0], ~uint64_t{0});
  EXPECT_EQ(b.Partial(7)->words[1], (uint64_t{1} << 6) - 1);
}

TEST(AckBlockTest, RejectsBadEncodings) {
  proto::CursorBlock pb;
  pb.set_index(1);
  pb.set_bits(std::string(10, '\0'));
  EXPECT_FALSE(AckBlock::FromProto(pb).ok());
  pb.set_bits(std::string(512, '\0'));
  auto* pa = pb.add_partials();
  pa->set_seq(3);  // not in block 1
  pa->set_batch_size(4);
  EXPECT_FALSE(AckBlock::FromProto(pb).ok());
  pa->set_seq(4097);
  pa->set_batch_size(kMaxBatchSize + 1);
  EXPECT_FALSE(AckBlock::FromProto(pb).ok());
  pa->set_batch_size(4);
  EXPECT_TRUE(AckBlock::FromProto(pb).ok());
  EXPECT_FALSE(ValidatePartial(1, 0, 0).ok());
  EXPECT_FALSE(ValidatePartial(1, 64, 2).ok());
}

}  // namespace
}  // namespace dlog::broker
