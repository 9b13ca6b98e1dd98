// LogServiceClient: a client of the log service (`dlogd standalone
// --listen`), one connection to one address, over net::RpcClient: request
// ids, a bounded window, per-request timeouts, reconnects. It owns its event
// loop thread. Protocol: docs/formats/log-service.md.
//
// Errors: a reply's code as a Status (client/log_wire.h FromLogWire), or a
// NetErrc: kConnectFailed (not sent: nothing listens there), kWindowFull,
// kClosed (not sent), kTimeout and kConnectionLost (sent: outcome unknown),
// kProtocolError (the reply does not parse).
//
// Threading: Call is thread-safe and its callback runs on the client's loop;
// CallSync blocks (any thread but the loop's). Close (or the destructor)
// fails what is in flight with kClosed; not on the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/buffer.h"
#include "common/config.h"
#include "common/status.h"
#include "log_service.pb.h"

namespace dlog::client {

struct LogServiceClientOptions {
  HostPort address;
  size_t window = 64;
  int64_t connect_timeout_ms = 3000;
  uint32_t max_frame_bytes = 5u << 20;
};

struct LogServiceReply {
  Status status;  // the reply's code as a status (OK unless the call was made with keep_errors)
  proto::LogResponse response;
  Slice payload;  // record bytes of a Read
};

class LogServiceClient {
 public:
  using Callback = std::function<void(Result<LogServiceReply>)>;

  explicit LogServiceClient(LogServiceClientOptions options);
  ~LogServiceClient();
  LogServiceClient(const LogServiceClient&) = delete;
  LogServiceClient& operator=(const LogServiceClient&) = delete;

  // Sends `request` (its request_id is assigned here) with `payload`. The
  // callback gets the reply if its code is OK, else the error; with
  // `keep_errors`, a reply with an error code is delivered too, its code in
  // LogServiceReply::status (an Append's reply lists what was written before
  // the error). A read adds its wait_ms to `timeout_ms`.
  void Call(proto::LogRequest request, std::string payload, int64_t timeout_ms, Callback cb, bool keep_errors = false);
  Result<LogServiceReply> CallSync(proto::LogRequest request, std::string payload, int64_t timeout_ms,
                                   bool keep_errors = false);
  void Close();

  const HostPort& address() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace dlog::client
