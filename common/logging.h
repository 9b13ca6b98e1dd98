// Minimal leveled logging to stderr. One write(2) per line, so lines from
// different threads do not interleave.
//
//   DLOG_INFO << "listening on " << addr;
//
// Thread-safe. The level is process-wide (SetLogLevel), default kInfo; the
// DLOG_LOG_LEVEL environment variable (debug|info|warn|error) overrides it.
#pragma once

#include <sstream>

namespace dlog {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
bool LogEnabled(LogLevel level);

namespace internal {
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return os_; }

 private:
  LogLevel level_;
  std::ostringstream os_;
};
struct LogVoidify {
  void operator&(std::ostream&) {}
};
}  // namespace internal

}  // namespace dlog

#define DLOG_LOG(level)      \
  !::dlog::LogEnabled(level) \
      ? (void)0              \
      : ::dlog::internal::LogVoidify() & ::dlog::internal::LogMessage(level, __FILE__, __LINE__).stream()
#define DLOG_DEBUG DLOG_LOG(::dlog::LogLevel::kDebug)
#define DLOG_INFO DLOG_LOG(::dlog::LogLevel::kInfo)
#define DLOG_WARN DLOG_LOG(::dlog::LogLevel::kWarn)
#define DLOG_ERROR DLOG_LOG(::dlog::LogLevel::kError)
