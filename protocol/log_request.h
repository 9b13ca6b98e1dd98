// Validation of log service requests (protocol/proto/log_service.proto):
// pure checks on a parsed LogRequest and its payload, shared by the service
// (which answers LOG_STATUS_BAD_REQUEST with the text) and the fuzz target.
// Names are only bounded here; their syntax is the log library's business
// (it answers INVALID_ARGUMENT). No I/O.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"
#include "log_service.pb.h"

namespace dlog::protocol {

struct LogRequestLimits {
  uint32_t max_name_bytes = 1024;         // namespace and log names
  uint32_t max_append_records = 10000;    // records per Append
  uint32_t max_record_bytes = 1u << 20;   // the log library's kMaxRecordSize
  uint32_t max_payload_bytes = 5u << 20;  // an Append's concatenated records
  uint32_t max_read_records = 10000;
  uint32_t max_wait_ms = 60000;
};

// OK, or a CommonErrc::kInvalidArgument status saying what is wrong. Checks:
// an op is set (else "unknown command"); names bounded and non-empty where
// needed; payload only on Append, its size the sum of record_sizes, each
// record <= max_record_bytes; txids none or one per record, >= 0 and
// non-decreasing; a Read opening a reader names a log and a start position;
// bounds on counts and waits; DLSN parts >= 0.
Status ValidateLogRequest(const proto::LogRequest& request, std::string_view payload, const LogRequestLimits& limits);

}  // namespace dlog::protocol
