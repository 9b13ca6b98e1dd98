#include "broker/record_cache.h"

#include <cstring>

namespace dlog::broker {

uint32_t KeyHash(std::string_view key) {
  // MurmurHash3_x86_32, seed 0.
  const auto* data = reinterpret_cast<const uint8_t*>(key.data());
  const size_t len = key.size();
  const size_t nblocks = len / 4;
  uint32_t h = 0;
  constexpr uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
  auto rotl = [](uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
  for (size_t i = 0; i < nblocks; ++i) {
    uint32_t k;
    std::memcpy(&k, data + i * 4, 4);
    k *= c1;
    k = rotl(k, 15);
    k *= c2;
    h ^= k;
    h = rotl(h, 13);
    h = h * 5 + 0xe6546b64;
  }
  const uint8_t* tail = data + nblocks * 4;
  uint32_t k1 = 0;
  switch (len & 3) {
    case 3:
      k1 ^= uint32_t{tail[2]} << 16;
      [[fallthrough]];
    case 2:
      k1 ^= uint32_t{tail[1]} << 8;
      [[fallthrough]];
    case 1:
      k1 ^= tail[0];
      k1 *= c1;
      k1 = rotl(k1, 15);
      k1 *= c2;
      h ^= k1;
  }
  h ^= static_cast<uint32_t>(len);
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h % kKeyHashRange;
}

void RecordCache::Append(const RecordInfo& r) {
  if (max_bytes_ == 0) {
    end_seq_ = r.seq + 1;
    return;
  }
  if (!records_.empty() && r.seq != end_seq_) Clear();
  const size_t n = r.data.size();
  if (n > max_bytes_) {
    Clear();
    end_seq_ = r.seq + 1;
    return;
  }
  uint8_t* dst;
  ChunkRef chunk;
  if (n > chunk_bytes_ / 4) {
    chunk = ChunkRef(Chunk::Allocate(n));
    dst = chunk->data();
  } else {
    if (!chunk_ || chunk_used_ + n > chunk_->capacity()) {
      chunk_ = ChunkRef(Chunk::Allocate(chunk_bytes_));
      chunk_used_ = 0;
    }
    chunk = chunk_;
    dst = chunk_->data() + chunk_used_;
    chunk_used_ += n;
  }
  if (n > 0) std::memcpy(dst, r.data.data(), n);
  RecordInfo copy = r;
  copy.data = Slice(std::move(chunk), dst, n);
  records_.push_back(std::move(copy));
  bytes_ += n;
  end_seq_ = r.seq + 1;
  while (bytes_ > max_bytes_ && !records_.empty()) {
    bytes_ -= records_.front().data.size();
    records_.pop_front();
  }
}

const RecordInfo* RecordCache::Find(int64_t seq) const {
  if (records_.empty() || seq < records_.front().seq || seq >= end_seq_) return nullptr;
  return &records_[static_cast<size_t>(seq - records_.front().seq)];
}

void RecordCache::Clear() {
  records_.clear();
  bytes_ = 0;
}

}  // namespace dlog::broker
