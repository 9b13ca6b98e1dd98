// Strong types for identifiers: a SegmentId is not an EntryId is not a
// NodeId, even though each is an integer underneath.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace dlog {

template <typename Tag, typename T>
class StrongId {
 public:
  using value_type = T;
  constexpr StrongId() = default;
  constexpr explicit StrongId(T v) : v_(v) {}
  constexpr T value() const { return v_; }
  constexpr auto operator<=>(const StrongId&) const = default;
  friend std::ostream& operator<<(std::ostream& os, const StrongId& id) { return os << id.v_; }

 private:
  T v_{};
};

struct SegmentIdTag {};
struct EntryIdTag {};
using SegmentId = StrongId<SegmentIdTag, uint64_t>;
// Entry ids start at 0; kNoEntry (-1) means "none" (an empty segment's LAC).
using EntryId = StrongId<EntryIdTag, int64_t>;
inline constexpr EntryId kNoEntry{-1};

}  // namespace dlog

template <typename Tag, typename T>
struct std::hash<dlog::StrongId<Tag, T>> {
  size_t operator()(const dlog::StrongId<Tag, T>& id) const noexcept { return std::hash<T>()(id.value()); }
};
