// SegmentErrc: errors of replicated segments (logstore/segment).
#pragma once

#include "common/status.h"

namespace dlog::segment {

enum class SegmentErrc : int {
  // The writer was fenced (a node answered FENCED, or the segment's metadata is
  // no longer OPEN because someone recovers or recovered it). For an add this
  // means "outcome unknown": the entry may or may not be in the recovered
  // segment. Never retried.
  kFenced = 1,
  // The writer gave up on an add whose outcome it does not know (the writer was
  // destroyed or its client closed with the add in flight).
  kOutcomeUnknown = 2,
  // The writer's in-flight window is full; the add was not sent (back-pressure:
  // retry after an earlier add completes).
  kWindowFull = 3,
  // The writer is closing or closed; the add was not sent.
  kClosed = 4,
  // Placement found fewer live nodes than needed.
  kNotEnoughNodes = 5,
  // A read asked for an entry beyond what may be read (the LAC of a segment
  // that is not CLOSED, or the last entry of a CLOSED one).
  kNotReadable = 6,
  // No replica could serve a read (every replica of the write set failed).
  kUnavailable = 7,
  // Bad arguments: quorums (E >= Qw >= Qa >= 1), payload too large, ...
  kInvalidArgument = 8,
  // The segment's metadata is not in a state the call allows (e.g. recovery of
  // a segment without fragments).
  kBadState = 9,
};

}  // namespace dlog::segment

template <>
struct dlog::ErrcTraits<dlog::segment::SegmentErrc> {
  static constexpr ErrorDomain kDomain = ErrorDomain::kSegment;
  static const char* Name(int code);
};
