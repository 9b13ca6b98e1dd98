// Conversions between the log library's values and the log service's wire
// messages (protocol/proto/log_service.proto), shared by the service
// (server/log_service.h) and the `dlog` CLI. Pure; thread-safe.
#pragma once

#include <string>

#include "common/status.h"
#include "log_service.pb.h"
#include "logstore/log/dlsn.h"
#include "logstore/log/log_reader.h"

namespace dlog::client {

// The wire code for a status: LogErrc codes keep their numbers; invalid
// arguments, timeouts and corruption of other domains map to the LogErrc
// codes of the same meaning; transport, node, segment and metadata errors to
// UNAVAILABLE; anything else to INTERNAL.
proto::LogStatusCode ToLogWireCode(const Status& st);
// The text sent with it: the message for LogErrc statuses (the code says the
// rest), "domain.CODE: message" for the others.
std::string ToLogWireText(const Status& st);
// The status for a wire code and text: LogErrc for 1..16; BAD_REQUEST ->
// CommonErrc::kInvalidArgument, UNAVAILABLE -> kUnavailable, INTERNAL and
// unknown codes -> kInternal, NO_SUCH_READER -> kNotFound, TOO_MANY_READERS
// -> LogErrc::kBusy. OK for LOG_STATUS_OK.
Status FromLogWire(proto::LogStatusCode code, const std::string& text);

void ToProto(const log::Dlsn& d, proto::LogDlsn* out);
log::Dlsn FromProto(const proto::LogDlsn& d);
void ToProto(const log::StartPosition& p, proto::LogStartPosition* out);
// KIND_NOT_SET reads as Earliest (requests are validated first).
log::StartPosition FromProto(const proto::LogStartPosition& p);

// "earliest", "latest", "txid:N" or a DLSN "seq/entry/slot".
Result<log::StartPosition> ParseStartPosition(const std::string& text);
std::string StartPositionToString(const log::StartPosition& p);

}  // namespace dlog::client
