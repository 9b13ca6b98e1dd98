// NodeErrc: the storage node's error codes, one per NodeStatusCode on the wire
// (protocol/proto/node.proto). Used by the node (logstore/node) to answer and
// by the node client to report.
#pragma once

#include "common/status.h"
#include "node.pb.h"

namespace dlog {

enum class NodeErrc : int {
  kNoSuchEntry = proto::NO_SUCH_ENTRY,
  kNoSuchSegment = proto::NO_SUCH_SEGMENT,
  kFenced = proto::FENCED,
  kBadRequest = proto::BAD_REQUEST,
  kTooManyRequests = proto::TOO_MANY_REQUESTS,
  kIoError = proto::IO_ERROR,
  kUnhealthy = proto::UNHEALTHY,
};

template <>
struct ErrcTraits<NodeErrc> {
  static constexpr ErrorDomain kDomain = ErrorDomain::kNode;
  static const char* Name(int code);
};

// Wire code for a status: OK, the NodeErrc it carries, or IO_ERROR/BAD_REQUEST
// for statuses of other domains (corruption and I/O map to IO_ERROR).
proto::NodeStatusCode ToWireCode(const Status& st);
// Status for a wire code and text (OK for proto::OK; unknown codes become
// kBadRequest with the number in the message).
Status FromWire(proto::NodeStatusCode code, const std::string& text);

}  // namespace dlog
