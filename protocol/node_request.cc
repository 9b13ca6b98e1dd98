#include "protocol/node_request.h"

#include <string>

#include "protocol/node_errors.h"

namespace dlog::protocol {
namespace {

Status Bad(std::string msg) { return Status::Error(NodeErrc::kBadRequest, std::move(msg)); }

}  // namespace

Status ValidateNodeRequest(const proto::NodeRequest& r, std::string_view payload, const NodeRequestLimits& limits) {
  if (r.op_case() != proto::NodeRequest::kAddEntry && !payload.empty()) {
    return Bad("only AddEntry carries a payload");
  }
  switch (r.op_case()) {
    case proto::NodeRequest::kAddEntry: {
      const auto& a = r.add_entry();
      if (a.segment_id() == 0) return Bad("segment id 0 is reserved");
      if (a.entry_id() < 0) return Bad("entry id " + std::to_string(a.entry_id()) + " is negative");
      if (a.lac() < -1 || a.lac() >= a.entry_id()) {
        return Bad("lac " + std::to_string(a.lac()) + " must be in [-1, entry id " + std::to_string(a.entry_id()) +
                   ")");
      }
      if (payload.size() > limits.max_payload_bytes) {
        return Bad("payload of " + std::to_string(payload.size()) + " bytes exceeds " +
                   std::to_string(limits.max_payload_bytes));
      }
      return Status::OK();
    }
    case proto::NodeRequest::kReadEntry: {
      const auto& q = r.read_entry();
      if (q.segment_id() == 0) return Bad("segment id 0 is reserved");
      if (q.entry_id() < 0) return Bad("entry id " + std::to_string(q.entry_id()) + " is negative");
      if (q.long_poll_timeout_ms() > limits.max_long_poll_ms) {
        return Bad("long-poll timeout " + std::to_string(q.long_poll_timeout_ms()) + " ms exceeds " +
                   std::to_string(limits.max_long_poll_ms));
      }
      return Status::OK();
    }
    case proto::NodeRequest::kReadLac:
      if (r.read_lac().segment_id() == 0) return Bad("segment id 0 is reserved");
      return Status::OK();
    case proto::NodeRequest::kWriteLac:
      if (r.write_lac().segment_id() == 0) return Bad("segment id 0 is reserved");
      if (r.write_lac().lac() < 0) return Bad("lac " + std::to_string(r.write_lac().lac()) + " is negative");
      return Status::OK();
    case proto::NodeRequest::kDeleteSegments: {
      const auto& d = r.delete_segments();
      if (d.segment_ids_size() == 0) return Bad("no segment ids to delete");
      if (d.segment_ids_size() > limits.max_delete_segments) {
        return Bad("too many segment ids: " + std::to_string(d.segment_ids_size()) + " > " +
                   std::to_string(limits.max_delete_segments));
      }
      for (uint64_t id : d.segment_ids()) {
        if (id == 0) return Bad("segment id 0 is reserved");
      }
      return Status::OK();
    }
    case proto::NodeRequest::kNodeInfo:
      return Status::OK();
    case proto::NodeRequest::OP_NOT_SET:
      break;
  }
  return Bad("unknown command (no known operation set; this node speaks protocol version " +
             std::to_string(proto::NODE_PROTOCOL_V1) + ")");
}

}  // namespace dlog::protocol
