// DLSN: a record's position in a log: (segment sequence number, entry id,
// slot). Records are batched into entries; the slot is the record's index in
// its entry. DLSNs of a log's records strictly increase in log order.
// Text form "seq/entry/slot" (e.g. "3/1742/0"). Pure; thread-compatible.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dlog::log {

struct Dlsn {
  int64_t segment_seq = 0;
  int64_t entry = 0;
  int32_t slot = 0;

  auto operator<=>(const Dlsn&) const = default;
  bool operator==(const Dlsn&) const = default;

  std::string ToString() const;
  // Parses "seq/entry/slot" (all >= 0). kInvalidArgument otherwise.
  static Result<Dlsn> Parse(std::string_view text);
  // Before every record of any log.
  static constexpr Dlsn Initial() { return Dlsn{}; }
};

}  // namespace dlog::log
