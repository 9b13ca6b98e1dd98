#include "client/log_wire.h"

#include <charconv>

#include "logstore/log/errors.h"

namespace dlog::client {

// Codes 1..16 of the wire enum are LogErrc's.
static_assert(proto::LOG_STATUS_LOG_NOT_FOUND == static_cast<int>(log::LogErrc::kLogNotFound));
static_assert(proto::LOG_STATUS_LOG_EXISTS == static_cast<int>(log::LogErrc::kLogExists));
static_assert(proto::LOG_STATUS_LOCKED == static_cast<int>(log::LogErrc::kLocked));
static_assert(proto::LOG_STATUS_TXID_OUT_OF_ORDER == static_cast<int>(log::LogErrc::kTxidOutOfOrder));
static_assert(proto::LOG_STATUS_END_OF_STREAM == static_cast<int>(log::LogErrc::kEndOfStream));
static_assert(proto::LOG_STATUS_TRUNCATED == static_cast<int>(log::LogErrc::kTruncated));
static_assert(proto::LOG_STATUS_INVALID_ARGUMENT == static_cast<int>(log::LogErrc::kInvalidArgument));
static_assert(proto::LOG_STATUS_LOCK_LOST == static_cast<int>(log::LogErrc::kLockLost));
static_assert(proto::LOG_STATUS_FENCED == static_cast<int>(log::LogErrc::kFenced));
static_assert(proto::LOG_STATUS_CLOSED == static_cast<int>(log::LogErrc::kClosed));
static_assert(proto::LOG_STATUS_CORRUPT == static_cast<int>(log::LogErrc::kCorrupt));
static_assert(proto::LOG_STATUS_NAMESPACE_NOT_FOUND == static_cast<int>(log::LogErrc::kNamespaceNotFound));
static_assert(proto::LOG_STATUS_NAMESPACE_EXISTS == static_cast<int>(log::LogErrc::kNamespaceExists));
static_assert(proto::LOG_STATUS_TIMEOUT == static_cast<int>(log::LogErrc::kTimeout));
static_assert(proto::LOG_STATUS_BUSY == static_cast<int>(log::LogErrc::kBusy));
static_assert(proto::LOG_STATUS_OUTCOME_UNKNOWN == static_cast<int>(log::LogErrc::kOutcomeUnknown));

proto::LogStatusCode ToLogWireCode(const Status& st) {
  if (st.ok()) return proto::LOG_STATUS_OK;
  switch (st.domain()) {
    case ErrorDomain::kLog:
      if (st.code() >= proto::LOG_STATUS_LOG_NOT_FOUND && st.code() <= proto::LOG_STATUS_OUTCOME_UNKNOWN) {
        return static_cast<proto::LogStatusCode>(st.code());
      }
      return proto::LOG_STATUS_INTERNAL;
    case ErrorDomain::kCommon:
      if (st.Is(CommonErrc::kInvalidArgument)) return proto::LOG_STATUS_INVALID_ARGUMENT;
      if (st.Is(CommonErrc::kTimeout)) return proto::LOG_STATUS_TIMEOUT;
      if (st.Is(CommonErrc::kCorruption)) return proto::LOG_STATUS_CORRUPT;
      if (st.Is(CommonErrc::kUnavailable) || st.Is(CommonErrc::kIoError)) return proto::LOG_STATUS_UNAVAILABLE;
      return proto::LOG_STATUS_INTERNAL;
    case ErrorDomain::kNet:
    case ErrorDomain::kNode:
    case ErrorDomain::kSegment:
    case ErrorDomain::kMetadata:
      return proto::LOG_STATUS_UNAVAILABLE;
    default:
      return proto::LOG_STATUS_INTERNAL;
  }
}

std::string ToLogWireText(const Status& st) {
  if (st.ok()) return "";
  if (st.domain() == ErrorDomain::kLog && !st.message().empty()) return st.message();
  return st.ToString();
}

Status FromLogWire(proto::LogStatusCode code, const std::string& text) {
  if (code == proto::LOG_STATUS_OK) return Status::OK();
  if (code >= proto::LOG_STATUS_LOG_NOT_FOUND && code <= proto::LOG_STATUS_OUTCOME_UNKNOWN) {
    return Status::Error(static_cast<log::LogErrc>(code), text);
  }
  switch (code) {
    case proto::LOG_STATUS_BAD_REQUEST:
      return Status::Error(CommonErrc::kInvalidArgument, "bad request: " + text);
    case proto::LOG_STATUS_UNAVAILABLE:
      return Status::Error(CommonErrc::kUnavailable, text);
    case proto::LOG_STATUS_NO_SUCH_READER:
      return Status::Error(CommonErrc::kNotFound, text);
    case proto::LOG_STATUS_TOO_MANY_READERS:
      return Status::Error(log::LogErrc::kBusy, text);
    case proto::LOG_STATUS_INTERNAL:
      return Status::Error(CommonErrc::kInternal, text);
    default:
      return Status::Error(CommonErrc::kInternal,
                           "unknown log service status code " + std::to_string(static_cast<int>(code)) + ": " + text);
  }
}

void ToProto(const log::Dlsn& d, proto::LogDlsn* out) {
  out->set_segment_seq(d.segment_seq);
  out->set_entry(d.entry);
  out->set_slot(d.slot);
}

log::Dlsn FromProto(const proto::LogDlsn& d) { return log::Dlsn{d.segment_seq(), d.entry(), d.slot()}; }

void ToProto(const log::StartPosition& p, proto::LogStartPosition* out) {
  switch (p.kind) {
    case log::StartPosition::Kind::kDlsn:
      ToProto(p.dlsn, out->mutable_dlsn());
      return;
    case log::StartPosition::Kind::kTxid:
      out->set_txid(p.txid);
      return;
    case log::StartPosition::Kind::kEarliest:
      out->set_earliest(true);
      return;
    case log::StartPosition::Kind::kLatest:
      out->set_latest(true);
      return;
  }
}

log::StartPosition FromProto(const proto::LogStartPosition& p) {
  switch (p.kind_case()) {
    case proto::LogStartPosition::kDlsn:
      return log::StartPosition::At(FromProto(p.dlsn()));
    case proto::LogStartPosition::kTxid:
      return log::StartPosition::FromTxid(p.txid());
    case proto::LogStartPosition::kLatest:
      return log::StartPosition::Latest();
    case proto::LogStartPosition::kEarliest:
    case proto::LogStartPosition::KIND_NOT_SET:
      break;
  }
  return log::StartPosition::Earliest();
}

Result<log::StartPosition> ParseStartPosition(const std::string& text) {
  if (text == "earliest") return log::StartPosition::Earliest();
  if (text == "latest") return log::StartPosition::Latest();
  if (text.rfind("txid:", 0) == 0) {
    const std::string_view num = std::string_view(text).substr(5);
    int64_t txid = 0;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), txid);
    if (num.empty() || ec != std::errc() || p != num.data() + num.size() || txid < 0) {
      return Status::Error(CommonErrc::kInvalidArgument,
                           "bad start position '" + text + "': txid:N needs a non-negative integer");
    }
    return log::StartPosition::FromTxid(txid);
  }
  Result<log::Dlsn> d = log::Dlsn::Parse(text);
  if (!d.ok()) {
    return Status::Error(CommonErrc::kInvalidArgument, "bad start position '" + text +
                                                           "': expected earliest, latest, txid:N or a DLSN "
                                                           "SEGMENT/ENTRY/SLOT (e.g. 1/0/0)");
  }
  return log::StartPosition::At(*d);
}

std::string StartPositionToString(const log::StartPosition& p) {
  switch (p.kind) {
    case log::StartPosition::Kind::kDlsn:
      return p.dlsn.ToString();
    case log::StartPosition::Kind::kTxid:
      return "txid:" + std::to_string(p.txid);
    case log::StartPosition::Kind::kEarliest:
      return "earliest";
    case log::StartPosition::Kind::kLatest:
      return "latest";
  }
  return "?";
}

}  // namespace dlog::client
