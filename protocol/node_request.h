// Validation of node requests: pure checks on a parsed NodeRequest and its
// payload, shared by the node (which answers BAD_REQUEST with the text) and
// the fuzz target. No I/O.
#pragma once

#include <string_view>

#include "common/status.h"
#include "node.pb.h"

namespace dlog::protocol {

struct NodeRequestLimits {
  uint32_t max_payload_bytes = 5u << 20;
  uint32_t max_long_poll_ms = 60000;
  int max_delete_segments = 10000;
};

// OK, or a NodeErrc::kBadRequest status whose message says what is wrong.
// Checks: an op is set (else "unknown command"); segment ids > 0; entry ids
// >= 0; an add's lac in [-1, entry_id); payload only on adds; long-poll
// timeout and delete list within limits. The payload CRC is checked by the
// store, which must compute it anyway.
Status ValidateNodeRequest(const proto::NodeRequest& request, std::string_view payload,
                           const NodeRequestLimits& limits);

}  // namespace dlog::protocol
