#include "logstore/log/errors.h"

const char* dlog::ErrcTraits<dlog::log::LogErrc>::Name(int code) {
  using dlog::log::LogErrc;
  switch (static_cast<LogErrc>(code)) {
    case LogErrc::kLogNotFound:
      return "LOG_NOT_FOUND";
    case LogErrc::kLogExists:
      return "LOG_EXISTS";
    case LogErrc::kLocked:
      return "LOCKED";
    case LogErrc::kTxidOutOfOrder:
      return "TXID_OUT_OF_ORDER";
    case LogErrc::kEndOfStream:
      return "END_OF_STREAM";
    case LogErrc::kTruncated:
      return "TRUNCATED";
    case LogErrc::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case LogErrc::kLockLost:
      return "LOCK_LOST";
    case LogErrc::kFenced:
      return "FENCED";
    case LogErrc::kClosed:
      return "CLOSED";
    case LogErrc::kCorrupt:
      return "CORRUPT";
    case LogErrc::kNamespaceNotFound:
      return "NAMESPACE_NOT_FOUND";
    case LogErrc::kNamespaceExists:
      return "NAMESPACE_EXISTS";
    case LogErrc::kTimeout:
      return "TIMEOUT";
    case LogErrc::kBusy:
      return "BUSY";
    case LogErrc::kOutcomeUnknown:
      return "OUTCOME_UNKNOWN";
  }
  return "UNKNOWN";
}
