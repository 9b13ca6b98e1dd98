#include "logstore/segment/errors.h"

const char* dlog::ErrcTraits<dlog::segment::SegmentErrc>::Name(int code) {
  using dlog::segment::SegmentErrc;
  switch (static_cast<SegmentErrc>(code)) {
    case SegmentErrc::kFenced:
      return "FENCED";
    case SegmentErrc::kOutcomeUnknown:
      return "OUTCOME_UNKNOWN";
    case SegmentErrc::kWindowFull:
      return "WINDOW_FULL";
    case SegmentErrc::kClosed:
      return "CLOSED";
    case SegmentErrc::kNotEnoughNodes:
      return "NOT_ENOUGH_NODES";
    case SegmentErrc::kNotReadable:
      return "NOT_READABLE";
    case SegmentErrc::kUnavailable:
      return "UNAVAILABLE";
    case SegmentErrc::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case SegmentErrc::kBadState:
      return "BAD_STATE";
  }
  return "UNKNOWN";
}
