#include "common/buffer.h"

#include <algorithm>
#include <new>

namespace dlog {

Chunk* Chunk::TryAllocate(size_t capacity, MemoryBudget* budget) {
  const int64_t charge = static_cast<int64_t>(capacity + sizeof(Chunk));
  if (budget != nullptr && !budget->TryReserve(charge)) return nullptr;
  void* mem = ::operator new(sizeof(Chunk) + capacity);
  return new (mem) Chunk(capacity, budget);
}

void Chunk::Free() {
  if (budget_ != nullptr) budget_->Release(static_cast<int64_t>(capacity_ + sizeof(Chunk)));
  this->~Chunk();
  ::operator delete(static_cast<void*>(this));
}

Slice Slice::CopyOf(std::string_view bytes) {
  ChunkRef c(Chunk::Allocate(bytes.size()));
  if (!bytes.empty()) std::memcpy(c->data(), bytes.data(), bytes.size());
  const uint8_t* d = c->data();
  return Slice(std::move(c), d, bytes.size());
}

void ByteBuffer::Grow(size_t need) {
  size_t cap = std::max<size_t>(need, std::max<size_t>(cap_ * 2, 4096));
  auto* d = new uint8_t[cap];
  if (size_ > 0) std::memcpy(d, data_, size_);
  delete[] data_;
  data_ = d;
  cap_ = cap;
}

void ByteBuffer::ShrinkTo(size_t keep) {
  if (size_ == 0 && cap_ > keep) {
    delete[] data_;
    data_ = nullptr;
    cap_ = 0;
  }
}

}  // namespace dlog
