#include "protocol/node_errors.h"

#include <string>

namespace dlog {

const char* ErrcTraits<NodeErrc>::Name(int code) {
  switch (static_cast<NodeErrc>(code)) {
    case NodeErrc::kNoSuchEntry:
      return "NO_SUCH_ENTRY";
    case NodeErrc::kNoSuchSegment:
      return "NO_SUCH_SEGMENT";
    case NodeErrc::kFenced:
      return "FENCED";
    case NodeErrc::kBadRequest:
      return "BAD_REQUEST";
    case NodeErrc::kTooManyRequests:
      return "TOO_MANY_REQUESTS";
    case NodeErrc::kIoError:
      return "IO_ERROR";
    case NodeErrc::kUnhealthy:
      return "UNHEALTHY";
  }
  return "UNKNOWN";
}

proto::NodeStatusCode ToWireCode(const Status& st) {
  if (st.ok()) return proto::OK;
  if (st.domain() == ErrorDomain::kNode) return static_cast<proto::NodeStatusCode>(st.code());
  if (st.Is(CommonErrc::kInvalidArgument) || st.domain() == ErrorDomain::kProtocol) return proto::BAD_REQUEST;
  return proto::IO_ERROR;
}

Status FromWire(proto::NodeStatusCode code, const std::string& text) {
  if (code == proto::OK) return Status::OK();
  if (code >= proto::NO_SUCH_ENTRY && code <= proto::UNHEALTHY) {
    return Status::Error(static_cast<NodeErrc>(code), text);
  }
  return Status::Error(NodeErrc::kBadRequest, "unknown node status code " + std::to_string(code) + ": " + text);
}

}  // namespace dlog
