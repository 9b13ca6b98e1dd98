// Key hashing for partition routing. Murmur3 (x86, 32-bit, seed 0) over the
// key's bytes: the same on every platform and process (never std::hash),
// so a key maps to the same partition from every producer.
#pragma once

#include <cstdint>
#include <string_view>

namespace dlog::client {

uint32_t Murmur3_32(std::string_view data, uint32_t seed = 0);

// The partition of `key` among `partitions` (>= 1): (murmur3(key) & INT32_MAX) % partitions.
int32_t PartitionForKey(std::string_view key, int32_t partitions);

}  // namespace dlog::client
