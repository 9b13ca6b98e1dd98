// StatLogSync: a log's description for `dlog log stat` and the log
// service's GetLogInfo: its segments and owner from metadata, how many
// records it holds, and its first and last DLSN (found by reading: metadata
// knows a closed segment's last entry but not the slot of its last record).
//
// Threading: blocks; call it from any thread but the log library's loop.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"
#include "log_service.pb.h"
#include "logstore/log/dlsn.h"
#include "logstore/log/namespace.h"

namespace dlog::client {

// What the caller knows because it holds the log's writer (the log service
// does): the OPEN segment's records are invisible in metadata.
struct WriterHint {
  int64_t next_seq = 0;                // LogWriter::next_seq()
  std::optional<log::Dlsn> last_dlsn;  // the last record it got acknowledged, if any
};

// The parts of a LogStat that metadata alone gives (segments, owner,
// counters of CLOSED segments; record_count as far as CLOSED segments say).
void FillLogStat(const log::LogInfo& info, proto::LogStat* out);

// Errors: those of Namespace::GetLogInfoSync (kLogNotFound, ...). Failing
// reads only leave first/last DLSN out. `read_timeout_ms` bounds each read.
Result<proto::LogStat> StatLogSync(log::Namespace* ns, const std::string& log, const std::optional<WriterHint>& hint,
                                   int64_t read_timeout_ms = 500);

}  // namespace dlog::client
