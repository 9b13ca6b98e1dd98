// CRC32C (Castagnoli), as used by iSCSI (RFC 3720) and every dlog format.
// Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise.
// Thread-safe, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dlog::crc32c {

// Extends `crc` (the value returned for the bytes before) with `n` bytes.
uint32_t Extend(uint32_t crc, const void* data, size_t n);

inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// True when the hardware path is in use (for benchmarks and logs).
bool HardwareAccelerated();

}  // namespace dlog::crc32c
