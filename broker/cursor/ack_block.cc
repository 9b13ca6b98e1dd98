#include "broker/cursor/ack_block.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "cursor.pb.h"

namespace dlog::broker {

namespace {

size_t WordsFor(int32_t batch_size) { return static_cast<size_t>((batch_size + 63) / 64); }

// True if bits [0, batch_size) are all set.
bool AllSet(const PartialBits& p) {
  const size_t full = static_cast<size_t>(p.batch_size / 64);
  for (size_t i = 0; i < full; ++i) {
    if (p.words[i] != ~uint64_t{0}) return false;
  }
  const int rem = p.batch_size % 64;
  if (rem == 0) return true;
  const uint64_t mask = (uint64_t{1} << rem) - 1;
  return (p.words[full] & mask) == mask;
}

}  // namespace

std::vector<uint64_t> IndexesUpTo(int32_t upto) {
  std::vector<uint64_t> w(WordsFor(upto + 1), 0);
  for (int32_t i = 0; i <= upto; ++i) w[static_cast<size_t>(i / 64)] |= uint64_t{1} << (i % 64);
  return w;
}

Status ValidatePartial(int64_t seq, int32_t batch_size, size_t words) {
  if (seq < 0) return Status::Error(CommonErrc::kInvalidArgument, "negative seq " + std::to_string(seq));
  if (batch_size < 1 || batch_size > kMaxBatchSize) {
    return Status::Error(CommonErrc::kInvalidArgument, "batch size " + std::to_string(batch_size) + " of record " +
                                                           std::to_string(seq) + " out of [1, " +
                                                           std::to_string(kMaxBatchSize) + "]");
  }
  if (words > WordsFor(batch_size)) {
    return Status::Error(CommonErrc::kInvalidArgument,
                         "partial ack of record " + std::to_string(seq) + " has more words than its batch");
  }
  return Status::OK();
}

bool AckBlock::IsAcked(int64_t seq) const { return Bit(seq - first_seq()); }

const PartialBits* AckBlock::Partial(int64_t seq) const {
  auto it = partials_.find(seq);
  return it == partials_.end() ? nullptr : &it->second;
}

int64_t AckBlock::AckRange(int64_t from, int64_t to) {
  from = std::max(from, first_seq());
  to = std::min(to, end_seq() - 1);
  int64_t added = 0;
  for (int64_t s = from; s <= to; ++s) {
    const int64_t off = s - first_seq();
    if (!Bit(off)) {
      SetBit(off);
      ++added;
    }
  }
  if (!partials_.empty()) partials_.erase(partials_.lower_bound(from), partials_.upper_bound(to));
  return added;
}

bool AckBlock::AckIndexes(int64_t seq, int32_t batch_size, std::span<const uint64_t> words) {
  const int64_t off = seq - first_seq();
  if (Bit(off)) return false;
  PartialBits& p = partials_[seq];
  bool changed = false;
  if (p.batch_size < batch_size) {
    // A first ack, or one naming a bigger batch: the bigger size wins.
    p.batch_size = batch_size;
    p.words.resize(WordsFor(batch_size), 0);
  }
  for (size_t i = 0; i < words.size() && i < p.words.size(); ++i) {
    uint64_t w = words[i];
    if (i == p.words.size() - 1 && p.batch_size % 64 != 0) w &= (uint64_t{1} << (p.batch_size % 64)) - 1;
    if ((p.words[i] | w) != p.words[i]) changed = true;
    p.words[i] |= w;
  }
  if (AllSet(p)) {
    partials_.erase(seq);
    SetBit(off);
    return true;
  }
  bool any = false;
  for (uint64_t w : p.words) any = any || w != 0;
  if (!any) partials_.erase(seq);
  return changed;
}

void AckBlock::ClearBelow(int64_t seq) {
  if (seq <= first_seq()) return;
  if (seq >= end_seq()) {
    bits_.fill(0);
    partials_.clear();
    return;
  }
  const int64_t off = seq - first_seq();
  const int64_t full = off / 64;
  for (int64_t i = 0; i < full; ++i) bits_[static_cast<size_t>(i)] = 0;
  if (off % 64 != 0) bits_[static_cast<size_t>(full)] &= ~((uint64_t{1} << (off % 64)) - 1);
  partials_.erase(partials_.begin(), partials_.lower_bound(seq));
}

int64_t AckBlock::FirstUnackedFrom(int64_t from) const {
  int64_t off = std::max(from, first_seq()) - first_seq();
  while (off < kBlockRecords) {
    const uint64_t w = ~bits_[static_cast<size_t>(off >> 6)] >> (off & 63);
    if (w != 0) return std::min(end_seq(), first_seq() + off + std::countr_zero(w));
    off = (off | 63) + 1;
  }
  return end_seq();
}

BlockSummary AckBlock::Summarize() const {
  BlockSummary s;
  bool prev = false;
  for (int i = 0; i < kBlockWords; ++i) {
    const uint64_t w = bits_[static_cast<size_t>(i)];
    s.count += std::popcount(w);
    // Run starts: set bits whose predecessor is clear.
    const uint64_t shifted = (w << 1) | (prev ? 1 : 0);
    s.runs += std::popcount(w & ~shifted);
    prev = (w >> 63) & 1;
  }
  s.last = prev;
  s.prefix = static_cast<int32_t>(FirstUnackedFrom(first_seq()) - first_seq());
  s.partials = static_cast<int32_t>(partials_.size());
  return s;
}

int64_t AckBlock::MemoryBytes() const {
  int64_t b = static_cast<int64_t>(sizeof(AckBlock));
  for (const auto& [seq, p] : partials_) {
    // A map node (three pointers, colour, key) plus the words.
    b += 48 + static_cast<int64_t>(sizeof(PartialBits) + p.words.capacity() * sizeof(uint64_t));
  }
  return b;
}

void AckBlock::ToProto(proto::CursorBlock* out) const {
  out->set_index(index_);
  std::string bits(kBlockWords * 8, '\0');
  for (int i = 0; i < kBlockWords; ++i) {
    const uint64_t w = bits_[static_cast<size_t>(i)];
    for (int b = 0; b < 8; ++b) bits[static_cast<size_t>(i * 8 + b)] = static_cast<char>((w >> (8 * b)) & 0xff);
  }
  out->set_bits(std::move(bits));
  for (const auto& [seq, p] : partials_) {
    proto::PartialAck* pa = out->add_partials();
    pa->set_seq(seq);
    pa->set_batch_size(p.batch_size);
    for (uint64_t w : p.words) pa->add_words(w);
  }
}

Result<AckBlock> AckBlock::FromProto(const proto::CursorBlock& in) {
  if (in.index() < 0 || in.index() > (int64_t{1} << 50)) {
    return Status::Error(CommonErrc::kCorruption, "cursor block index " + std::to_string(in.index()) + " out of range");
  }
  if (in.bits().size() != kBlockWords * 8) {
    return Status::Error(CommonErrc::kCorruption, "cursor block " + std::to_string(in.index()) + " has " +
                                                      std::to_string(in.bits().size()) + " bitmap bytes, not 512");
  }
  AckBlock b(in.index());
  const auto* p = reinterpret_cast<const uint8_t*>(in.bits().data());
  for (int i = 0; i < kBlockWords; ++i) {
    uint64_t w = 0;
    for (int k = 0; k < 8; ++k) w |= uint64_t{p[i * 8 + k]} << (8 * k);
    b.bits_[static_cast<size_t>(i)] = w;
  }
  for (const auto& pa : in.partials()) {
    if (pa.seq() < b.first_seq() || pa.seq() >= b.end_seq()) {
      return Status::Error(CommonErrc::kCorruption, "partial ack of record " + std::to_string(pa.seq()) +
                                                        " outside cursor block " + std::to_string(in.index()));
    }
    if (Status st = ValidatePartial(pa.seq(), pa.batch_size(), static_cast<size_t>(pa.words_size())); !st.ok()) {
      return Status::Error(CommonErrc::kCorruption, st.message());
    }
    std::vector<uint64_t> words(pa.words().begin(), pa.words().end());
    b.AckIndexes(pa.seq(), pa.batch_size(), words);
  }
  return b;
}

}  // namespace dlog::broker
