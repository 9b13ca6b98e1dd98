#include "common/logging.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/check.h"

namespace dlog {
namespace {

LogLevel InitialLevel() {
  const char* env = std::getenv("DLOG_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  if (std::strcmp(env, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(env, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(env, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& Level() {
  static std::atomic<int> level{static_cast<int>(InitialLevel())};
  return level;
}

const char* Basename(const char* file) {
  const char* slash = std::strrchr(file, '/');
  return slash ? slash + 1 : file;
}

void WriteLine(const std::string& line) {
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void Prefix(std::ostream& os, const char* tag, const char* file, int line) {
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  localtime_r(&tv.tv_sec, &t);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%06ld %s ", t.tm_hour, t.tm_min, t.tm_sec,
                static_cast<long>(tv.tv_usec), tag);
  os << buf << Basename(file) << ':' << line << "] ";
}

}  // namespace

void SetLogLevel(LogLevel level) { Level().store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(Level().load()); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= Level().load(std::memory_order_relaxed); }

namespace internal {

LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  static const char* kTags[] = {"D", "I", "W", "E"};
  Prefix(os_, kTags[static_cast<int>(level_)], file, line);
}

LogMessage::~LogMessage() {
  os_ << '\n';
  WriteLine(os_.str());
}

CheckFailure::CheckFailure(const char* file, int line, const char* expr) {
  Prefix(os_, "F", file, line);
  os_ << "check failed: " << expr << ' ';
}

CheckFailure::~CheckFailure() {
  os_ << '\n';
  WriteLine(os_.str());
  std::abort();
}

}  // namespace internal
}  // namespace dlog
