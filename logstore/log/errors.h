// LogErrc: errors of log streams (logstore/log), domain kLog. Each names a
// condition a user can act on; the status message says which log and why.
#pragma once

#include "common/status.h"

namespace dlog::log {

enum class LogErrc : int {
  kLogNotFound = 1,         // no such log (or it was deleted while in use)
  kLogExists = 2,           // CreateLog of an existing log
  kLocked = 3,              // another writer holds the log's lock (the message names it)
  kTxidOutOfOrder = 4,      // a txid lower than the previous one; nothing was written
  kEndOfStream = 5,         // the log was marked ended: no more writes; readers are at the end
  kTruncated = 6,           // the position asked for was truncated
  kInvalidArgument = 7,     // bad name, record too large, bad settings, ...
  kLockLost = 8,            // the writer lost ownership (session expired, or lease ran out
                            // and another writer took over); pending writes: outcome unknown
  kFenced = 9,              // another writer fenced this one; pending writes: outcome unknown
  kClosed = 10,             // the writer/reader/namespace is closed; nothing was written
  kCorrupt = 11,            // an entry that is not a well-formed log entry
  kNamespaceNotFound = 12,  // no such namespace
  kNamespaceExists = 13,    // CreateNamespace of an existing one with other settings
  kTimeout = 14,            // a blocking call's time limit passed (nothing was lost)
  kBusy = 15,               // the writer's pending-bytes bound is reached; write later
  kOutcomeUnknown = 16,     // a write whose outcome the writer cannot know (it was closed
                            // or destroyed with the write in flight)
};

}  // namespace dlog::log

template <>
struct dlog::ErrcTraits<dlog::log::LogErrc> {
  static constexpr ErrorDomain kDomain = ErrorDomain::kLog;
  static const char* Name(int code);
};
