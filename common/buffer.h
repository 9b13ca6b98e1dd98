// Reference-counted byte buffers.
//
// A Chunk is one heap block with an atomic reference count. A Slice is a view
// into a Chunk that keeps it alive, so a payload travels from the socket to
// the journal without a copy: the connection reads into a Chunk, each frame's
// payload becomes a Slice of it, and the Chunk is freed when the last Slice
// is dropped (on whatever thread that happens).
//
// A MemoryBudget bounds the bytes held by Chunks charged to it (for example
// all inbound frames of a server): TryAllocate fails instead of growing.
//
// Thread-safety: Chunk refcounts are atomic; a Slice may be moved to and
// destroyed on any thread. The bytes themselves are not synchronised: a
// Chunk's bytes are written once, before any Slice of them is shared.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dlog {

class MemoryBudget {
 public:
  explicit MemoryBudget(int64_t limit_bytes) : limit_(limit_bytes) {}
  // Reserves n bytes; false if that would pass the limit.
  bool TryReserve(int64_t n) {
    int64_t cur = used_.load(std::memory_order_relaxed);
    do {
      if (cur + n > limit_) return false;
    } while (!used_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
    return true;
  }
  void Release(int64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }
  int64_t used() const { return used_.load(std::memory_order_relaxed); }
  int64_t limit() const { return limit_; }

 private:
  const int64_t limit_;
  std::atomic<int64_t> used_{0};
};

class Chunk {
 public:
  // Allocates a chunk of `capacity` bytes charged to `budget` (may be null).
  // Returns null if the budget refuses.
  static Chunk* TryAllocate(size_t capacity, MemoryBudget* budget);
  static Chunk* Allocate(size_t capacity) { return TryAllocate(capacity, nullptr); }

  uint8_t* data() { return reinterpret_cast<uint8_t*>(this + 1); }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(this + 1); }
  size_t capacity() const { return capacity_; }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) Free();
  }

 private:
  Chunk(size_t capacity, MemoryBudget* budget) : capacity_(capacity), budget_(budget) {}
  void Free();

  std::atomic<int32_t> refs_{1};
  size_t capacity_;
  MemoryBudget* budget_;
};

// Owning handle to a Chunk (one reference).
class ChunkRef {
 public:
  ChunkRef() = default;
  // Adopts the reference returned by Chunk::Allocate.
  explicit ChunkRef(Chunk* c) : c_(c) {}
  ChunkRef(const ChunkRef& o) : c_(o.c_) {
    if (c_) c_->Ref();
  }
  ChunkRef(ChunkRef&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  ChunkRef& operator=(ChunkRef o) noexcept {
    std::swap(c_, o.c_);
    return *this;
  }
  ~ChunkRef() {
    if (c_) c_->Unref();
  }
  Chunk* get() const { return c_; }
  Chunk* operator->() const { return c_; }
  explicit operator bool() const { return c_ != nullptr; }
  void reset() { ChunkRef().swap(*this); }
  void swap(ChunkRef& o) noexcept { std::swap(c_, o.c_); }

 private:
  Chunk* c_ = nullptr;
};

// A view of bytes that keeps its chunk alive. A Slice without a chunk views
// memory owned elsewhere (callers must then guarantee its lifetime).
class Slice {
 public:
  Slice() = default;
  Slice(ChunkRef chunk, const uint8_t* data, size_t size) : chunk_(std::move(chunk)), data_(data), size_(size) {}
  static Slice Unowned(const void* data, size_t size) {
    return Slice(ChunkRef(), static_cast<const uint8_t*>(data), size);
  }
  // Copies `bytes` into a new chunk.
  static Slice CopyOf(std::string_view bytes);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  std::string ToString() const { return std::string(view()); }
  Slice Sub(size_t offset, size_t len) const { return Slice(chunk_, data_ + offset, len); }
  const ChunkRef& chunk() const { return chunk_; }

 private:
  ChunkRef chunk_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A growable byte buffer that keeps its capacity across Clear(), for output
// paths that reuse one buffer per connection.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  ~ByteBuffer() { delete[] data_; }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ByteBuffer(ByteBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), cap_(std::exchange(o.cap_, 0)) {}
  ByteBuffer& operator=(ByteBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
    return *this;
  }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }
  bool empty() const { return size_ == 0; }
  void Clear() { size_ = 0; }
  // Makes room for n more bytes and returns where they go; call Commit(n) after.
  uint8_t* Reserve(size_t n) {
    if (size_ + n > cap_) Grow(size_ + n);
    return data_ + size_;
  }
  void Commit(size_t n) { size_ += n; }
  void Append(const void* p, size_t n) {
    std::memcpy(Reserve(n), p, n);
    size_ += n;
  }
  // Releases memory beyond `keep` bytes of capacity when empty.
  void ShrinkTo(size_t keep);
  void swap(ByteBuffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
  }

 private:
  void Grow(size_t need);
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
};

// Big-endian (network order) fixed-width helpers.
inline void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline uint32_t GetBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
inline void PutBe64(uint8_t* p, uint64_t v) {
  PutBe32(p, static_cast<uint32_t>(v >> 32));
  PutBe32(p + 4, static_cast<uint32_t>(v));
}
inline uint64_t GetBe64(const uint8_t* p) { return (uint64_t{GetBe32(p)} << 32) | GetBe32(p + 4); }

// Little-endian helpers (on-disk formats; x86 is little-endian, memcpy compiles to a move).
template <typename T>
inline void PutLe(uint8_t* p, T v) {
  static_assert(std::is_integral_v<T>);
  std::memcpy(p, &v, sizeof(T));
}
template <typename T>
inline T GetLe(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace dlog
