// libFuzzer target for what the log service does with a frame's contents:
// parse a LogRequest and validate it with its payload. Frames themselves are
// fuzzed by frame_fuzz.
//
// Input: u16 header length (big-endian) | header | payload. The service
// slices an Append's payload by record_sizes once validation passes, so a
// valid Append whose sizes do not add up to the payload is a bug (trap).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "log_service.pb.h"
#include "protocol/log_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t hlen = (static_cast<size_t>(data[0]) << 8) | data[1];
  if (size - 2 < hlen) return 0;
  std::string_view header(reinterpret_cast<const char*>(data + 2), hlen);
  std::string_view payload(reinterpret_cast<const char*>(data + 2 + hlen), size - 2 - hlen);
  dlog::proto::LogRequest req;
  if (!req.ParseFromArray(header.data(), static_cast<int>(header.size()))) return 0;
  dlog::protocol::LogRequestLimits limits;
  dlog::Status v = dlog::protocol::ValidateLogRequest(req, payload, limits);
  if (!v.ok()) {
    if (v.message().empty()) __builtin_trap();  // every rejection has a text
    return 0;
  }
  if (req.request_id() == 0 || req.op_case() == dlog::proto::LogRequest::OP_NOT_SET) __builtin_trap();
  if (req.has_append()) {
    uint64_t total = 0;
    for (uint32_t s : req.append().record_sizes()) {
      if (s > limits.max_record_bytes) __builtin_trap();
      total += s;
    }
    if (total != payload.size() || req.append().record_sizes_size() == 0) __builtin_trap();
    if (req.append().txids_size() != 0 && req.append().txids_size() != req.append().record_sizes_size()) {
      __builtin_trap();
    }
  } else if (!payload.empty()) {
    __builtin_trap();
  }
  if (req.has_read()) {
    if (req.read().max_records() == 0 || req.read().wait_ms() > limits.max_wait_ms) __builtin_trap();
    if (req.read().reader_id() == 0 && req.read().start().kind_case() == dlog::proto::LogStartPosition::KIND_NOT_SET) {
      __builtin_trap();
    }
  }
  return 0;
}
