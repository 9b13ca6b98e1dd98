#include "protocol/log_request.h"

#include <string>

namespace dlog::protocol {
namespace {

Status Bad(std::string msg) { return Status::Error(CommonErrc::kInvalidArgument, std::move(msg)); }

Status CheckName(const std::string& name, const char* what, const LogRequestLimits& limits) {
  if (name.empty()) return Bad(std::string(what) + " name is empty");
  if (name.size() > limits.max_name_bytes) {
    return Bad(std::string(what) + " name of " + std::to_string(name.size()) + " bytes exceeds " +
               std::to_string(limits.max_name_bytes));
  }
  return Status::OK();
}

Status CheckDlsn(const proto::LogDlsn& d) {
  if (d.segment_seq() < 0 || d.entry() < 0 || d.slot() < 0) {
    return Bad("DLSN " + std::to_string(d.segment_seq()) + "/" + std::to_string(d.entry()) + "/" +
               std::to_string(d.slot()) + " has a negative part");
  }
  return Status::OK();
}

Status CheckAppend(const proto::AppendRequest& a, std::string_view payload, const LogRequestLimits& limits) {
  DLOG_RETURN_IF_ERROR(CheckName(a.log(), "log", limits));
  const int n = a.record_sizes_size();
  if (n == 0) return Bad("an append carries no records");
  if (static_cast<uint32_t>(n) > limits.max_append_records) {
    return Bad(std::to_string(n) + " records in one append exceed " + std::to_string(limits.max_append_records));
  }
  if (payload.size() > limits.max_payload_bytes) {
    return Bad("append payload of " + std::to_string(payload.size()) + " bytes exceeds " +
               std::to_string(limits.max_payload_bytes));
  }
  uint64_t total = 0;
  for (int i = 0; i < n; ++i) {
    const uint32_t size = a.record_sizes(i);
    if (size > limits.max_record_bytes) {
      return Bad("record " + std::to_string(i) + " is " + std::to_string(size) + " bytes; records are at most " +
                 std::to_string(limits.max_record_bytes));
    }
    total += size;
  }
  if (total != payload.size()) {
    return Bad("record sizes add up to " + std::to_string(total) + " bytes but the payload has " +
               std::to_string(payload.size()));
  }
  if (a.txids_size() != 0) {
    if (a.txids_size() != n) {
      return Bad(std::to_string(a.txids_size()) + " txids for " + std::to_string(n) +
                 " records (give none or one per record)");
    }
    int64_t prev = 0;
    for (int i = 0; i < n; ++i) {
      const int64_t t = a.txids(i);
      if (t < 0) return Bad("txid " + std::to_string(t) + " of record " + std::to_string(i) + " is negative");
      if (t < prev) {
        return Bad("txid " + std::to_string(t) + " of record " + std::to_string(i) + " is below the previous " +
                   std::to_string(prev) + " (txids must not decrease)");
      }
      prev = t;
    }
  }
  return Status::OK();
}

Status CheckRead(const proto::ReadRequest& r, const LogRequestLimits& limits) {
  if (r.max_records() == 0 || r.max_records() > limits.max_read_records) {
    return Bad("max_records " + std::to_string(r.max_records()) + " must be in [1, " +
               std::to_string(limits.max_read_records) + "]");
  }
  if (r.wait_ms() > limits.max_wait_ms) {
    return Bad("wait_ms " + std::to_string(r.wait_ms()) + " exceeds " + std::to_string(limits.max_wait_ms));
  }
  if (r.reader_id() != 0) return Status::OK();
  DLOG_RETURN_IF_ERROR(CheckName(r.log(), "log", limits));
  switch (r.start().kind_case()) {
    case proto::LogStartPosition::kDlsn:
      return CheckDlsn(r.start().dlsn());
    case proto::LogStartPosition::kTxid:
      if (r.start().txid() < 0) return Bad("start txid " + std::to_string(r.start().txid()) + " is negative");
      return Status::OK();
    case proto::LogStartPosition::kEarliest:
    case proto::LogStartPosition::kLatest:
      return Status::OK();
    case proto::LogStartPosition::KIND_NOT_SET:
      break;
  }
  return Bad("a read that opens a reader needs a start position");
}

}  // namespace

Status ValidateLogRequest(const proto::LogRequest& r, std::string_view payload, const LogRequestLimits& limits) {
  if (r.request_id() == 0) return Bad("request id 0 is reserved");
  if (r.namespace_name().size() > limits.max_name_bytes) {
    return Bad("namespace name of " + std::to_string(r.namespace_name().size()) + " bytes exceeds " +
               std::to_string(limits.max_name_bytes));
  }
  if (r.op_case() != proto::LogRequest::kAppend && !payload.empty()) return Bad("only Append carries a payload");
  switch (r.op_case()) {
    case proto::LogRequest::kCreateLog:
      return CheckName(r.create_log().log(), "log", limits);
    case proto::LogRequest::kDeleteLog:
      return CheckName(r.delete_log().log(), "log", limits);
    case proto::LogRequest::kListLogs:
      return Status::OK();
    case proto::LogRequest::kGetLogInfo:
      return CheckName(r.get_log_info().log(), "log", limits);
    case proto::LogRequest::kAppend:
      return CheckAppend(r.append(), payload, limits);
    case proto::LogRequest::kRead:
      return CheckRead(r.read(), limits);
    case proto::LogRequest::kCloseReader:
      if (r.close_reader().reader_id() == 0) return Bad("reader id 0 is reserved");
      return Status::OK();
    case proto::LogRequest::kTruncate:
      DLOG_RETURN_IF_ERROR(CheckName(r.truncate().log(), "log", limits));
      if (!r.truncate().has_dlsn()) return Bad("truncate needs a DLSN");
      return CheckDlsn(r.truncate().dlsn());
    case proto::LogRequest::OP_NOT_SET:
      break;
  }
  return Bad("unknown command (no known operation set; this service speaks log service protocol version " +
             std::to_string(proto::LOG_SERVICE_PROTOCOL_V1) + ")");
}

}  // namespace dlog::protocol
