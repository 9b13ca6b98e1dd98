// Parsing of the values people write in flags and config files.
// Every parser returns a Result whose error names the bad text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dlog {

// "4096", "64KiB", "5MiB", "1GiB", "10KB" (KB = 1000). Returns bytes.
Result<uint64_t> ParseByteSize(std::string_view text);

// "250us", "10ms", "2s", "1m", "0". A bare number is milliseconds. Returns microseconds.
Result<int64_t> ParseDurationMicros(std::string_view text);

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
  bool operator==(const HostPort&) const = default;
};

// "127.0.0.1:4181". The host must be an IPv4 literal (we bind and connect on
// loopback in tests; names resolve later, in the metadata issue).
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace dlog
