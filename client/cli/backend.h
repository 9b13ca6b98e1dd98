// The `dlog` CLI's two ways to reach logs, behind one interface:
//   --service HOST:PORT   the log service of `dlogd standalone` (service_backend.cc)
//   --metadata zk://...   a cluster, directly through the log library (direct_backend.cc)
//
// Threading: one thread (the CLI's main thread) calls a backend; every call blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "log_service.pb.h"
#include "logstore/log/dlsn.h"
#include "logstore/log/log_reader.h"
#include "logstore/log/log_writer.h"

namespace dlog::cli {

// A reader positioned in a log. Destroy it before its backend.
class LogTail {
 public:
  virtual ~LogTail() = default;
  // 1..max records, or none if nothing arrived within wait_ms. Errors:
  // kEndOfStream (all read, the log is ended), kTruncated, kLogNotFound, ...
  virtual Result<std::vector<log::LogRecord>> Next(size_t max_records, int64_t wait_ms) = 0;
};

struct AppendOutcome {
  std::vector<log::WriteResult> written;  // in order: a prefix of the records given
  Status status;                          // why the rest was not (known to be) written
};

class LogBackend {
 public:
  virtual ~LogBackend() = default;
  virtual Status CreateLog(const std::string& log_name) = 0;
  virtual Status DeleteLog(const std::string& log_name) = 0;
  virtual Result<std::vector<std::string>> ListLogs() = 0;  // sorted
  virtual Result<proto::LogStat> Stat(const std::string& log_name) = 0;
  virtual Status Truncate(const std::string& log_name, log::Dlsn dlsn) = 0;
  // Appends `records` in order (txids: none, or one per record).
  virtual AppendOutcome Append(const std::string& log_name, const std::vector<std::string>& records,
                               const std::vector<int64_t>& txids) = 0;
  // After the last Append: the direct backend closes its writer (releasing the log's lock).
  virtual Status FinishWrites() = 0;
  virtual Result<std::unique_ptr<LogTail>> OpenTail(const std::string& log_name, log::StartPosition start) = 0;
};

// Talks to the log service at `address`; nothing connects before the first call.
std::unique_ptr<LogBackend> MakeServiceBackend(const HostPort& address, const std::string& ns);
// Connects to the metadata store at `url` (zk://HOST:PORT[,...][/dlog]) and opens namespace `ns`.
Result<std::unique_ptr<LogBackend>> MakeDirectBackend(const std::string& url, const std::string& ns);

}  // namespace dlog::cli
