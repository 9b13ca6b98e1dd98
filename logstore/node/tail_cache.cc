#include "logstore/node/tail_cache.h"

#include <algorithm>
#include <cstring>

namespace dlog::node {

struct TailCache::ItemHeader {
  uint64_t segment;
  int64_t entry;
  uint32_t len;   // payload bytes
  uint32_t crc;   // the writer's payload CRC
  uint32_t size;  // bytes this item (or pad) takes in the ring
  uint32_t kind;  // kItem or kPad
};

namespace {
constexpr uint32_t kItem = 1, kPad = 2;
constexpr uint64_t kHdr = 32;
static_assert(sizeof(uint64_t) * 2 + sizeof(uint32_t) * 4 == kHdr);

uint64_t Align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

size_t NextPow2(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

uint64_t RoundCap(uint64_t c) { return std::max<uint64_t>(4096, c & ~uint64_t{7}); }
size_t MaxItems(uint64_t cap) { return std::max<size_t>(256, static_cast<size_t>(cap / 512)); }
}  // namespace

TailCache::TailCache(uint64_t capacity_bytes)
    : cap_(RoundCap(capacity_bytes)),
      table_slots_(NextPow2(MaxItems(cap_) * 2)),
      max_items_(table_slots_ / 2),
      ring_(new uint8_t[cap_]),
      table_(new uint64_t[table_slots_]()) {}

TailCache::~TailCache() = default;

size_t TailCache::Hash(uint64_t segment, int64_t entry) const {
  uint64_t x = segment * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(entry);
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return static_cast<size_t>(x) & (table_slots_ - 1);
}

TailCache::ItemHeader* TailCache::ItemAt(uint64_t logical) const {
  return reinterpret_cast<ItemHeader*>(ring_.get() + logical % cap_);
}

int64_t TailCache::FindSlot(uint64_t segment, int64_t entry) const {
  const size_t mask = table_slots_ - 1;
  for (size_t i = Hash(segment, entry);; i = (i + 1) & mask) {
    const uint64_t v = table_[i];
    if (v == 0) return -1;
    const ItemHeader* h = ItemAt(v - 1);
    if (h->segment == segment && h->entry == entry) return static_cast<int64_t>(i);
  }
}

void TailCache::RemoveSlot(size_t i) {
  const size_t mask = table_slots_ - 1;
  table_[i] = 0;
  --items_;
  size_t j = i;
  while (true) {
    j = (j + 1) & mask;
    if (table_[j] == 0) return;
    const ItemHeader* h = ItemAt(table_[j] - 1);
    const size_t k = Hash(h->segment, h->entry);
    // Leave it if its home k lies cyclically in (i, j].
    const bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      table_[i] = table_[j];
      table_[j] = 0;
      i = j;
    }
  }
}

void TailCache::EvictOne() {
  const uint64_t phys = tail_ % cap_;
  if (cap_ - phys < kHdr) {
    tail_ += cap_ - phys;
    return;
  }
  const ItemHeader* h = ItemAt(tail_);
  if (h->kind == kItem) {
    const int64_t slot = FindSlot(h->segment, h->entry);
    if (slot >= 0 && table_[slot] - 1 == tail_) RemoveSlot(static_cast<size_t>(slot));
  }
  tail_ += h->size;
}

void TailCache::Insert(uint64_t segment, int64_t entry, uint32_t payload_crc, const Slice& payload) {
  const uint64_t need = Align8(kHdr + payload.size());
  MutexLock l(&mu_);
  const int64_t old = FindSlot(segment, entry);
  if (old >= 0) RemoveSlot(static_cast<size_t>(old));
  if (need > cap_ / 4) return;
  const uint64_t phys = head_ % cap_;
  if (phys + need > cap_) {
    const uint64_t pad = cap_ - phys;
    while (head_ + pad + need - tail_ > cap_) EvictOne();
    if (pad >= kHdr) {
      ItemHeader* p = ItemAt(head_);
      p->kind = kPad;
      p->size = static_cast<uint32_t>(pad);
    }
    head_ += pad;
  }
  while (head_ + need - tail_ > cap_) EvictOne();
  while (items_ >= max_items_ && tail_ < head_) EvictOne();
  ItemHeader* h = ItemAt(head_);
  h->segment = segment;
  h->entry = entry;
  h->len = static_cast<uint32_t>(payload.size());
  h->crc = payload_crc;
  h->size = static_cast<uint32_t>(need);
  h->kind = kItem;
  if (!payload.empty()) std::memcpy(reinterpret_cast<uint8_t*>(h) + kHdr, payload.data(), payload.size());
  const size_t mask = table_slots_ - 1;
  size_t i = Hash(segment, entry);
  while (table_[i] != 0) i = (i + 1) & mask;
  table_[i] = head_ + 1;
  ++items_;
  head_ += need;
}

bool TailCache::Lookup(uint64_t segment, int64_t entry, Slice* payload, uint32_t* payload_crc) {
  MutexLock l(&mu_);
  const int64_t slot = FindSlot(segment, entry);
  if (slot < 0) return false;
  const ItemHeader* h = ItemAt(table_[slot] - 1);
  ChunkRef c(Chunk::Allocate(h->len));
  if (h->len > 0) std::memcpy(c->data(), reinterpret_cast<const uint8_t*>(h) + kHdr, h->len);
  const uint8_t* d = c->data();
  *payload = Slice(std::move(c), d, h->len);
  *payload_crc = h->crc;
  return true;
}

void TailCache::EraseSegment(uint64_t segment) {
  MutexLock l(&mu_);
  std::vector<int64_t> entries;
  for (size_t i = 0; i < table_slots_; ++i) {
    if (table_[i] == 0) continue;
    const ItemHeader* h = ItemAt(table_[i] - 1);
    if (h->segment == segment) entries.push_back(h->entry);
  }
  for (int64_t e : entries) {
    const int64_t slot = FindSlot(segment, e);
    if (slot >= 0) RemoveSlot(static_cast<size_t>(slot));
  }
}

uint64_t TailCache::used_bytes() const {
  MutexLock l(&mu_);
  return head_ - tail_;
}

uint64_t TailCache::entries() const {
  MutexLock l(&mu_);
  return items_;
}

}  // namespace dlog::node
