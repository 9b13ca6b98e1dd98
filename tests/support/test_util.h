// Test support: temp dirs, free ports, child processes, time scaling.
// Every server a test starts listens on 127.0.0.1, is a child of the test
// (fork/exec, reaped with waitpid), and is killed by its PID only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dlog::test {

// Multiplier for test timeouts: DLOG_TEST_TIME_SCALE (default 1; ×3 under sanitizers).
double TimeScale();
std::chrono::milliseconds Scaled(std::chrono::milliseconds ms);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A port that was free a moment ago (bind to 0 and close: a small race).
uint16_t FreePort();

// Polls `cond` every few ms until true or `timeout` (scaled) passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& data);
// Resident set size of `pid` in KiB (from /proc), or -1.
long RssKiB(pid_t pid);

struct ProcessOptions {
  std::vector<std::string> argv;  // argv[0] is the binary path
  std::string stdout_path;        // where the child's stdout goes
  std::string stderr_path;
  std::map<std::string, std::string> env;  // added to the environment
  long nofile_limit = 0;                   // if > 0, RLIMIT_NOFILE (soft and hard) for the child
};

class Process {
 public:
  explicit Process(ProcessOptions options);
  ~Process();  // SIGKILL + reap if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  bool Start();
  pid_t pid() const { return pid_; }
  bool Running();
  // Sends `sig` to our child (by PID); no-op if it has exited.
  void Signal(int sig);
  // Waits for exit; returns the exit status as from waitpid, or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  void Kill9AndWait();
  // Polls the child's stdout for a line containing `needle`; returns it.
  std::optional<std::string> WaitForOutput(const std::string& needle, std::chrono::milliseconds timeout);
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  ProcessOptions options_;
  pid_t pid_ = -1;
  bool reaped_ = true;
  int status_ = 0;
};

// A `dlogd logstore` child process.
class LogstoreNode {
 public:
  // `dir` holds data/, stdout and stderr files. `port` fixed for restarts.
  LogstoreNode(std::string dir, uint16_t port, std::vector<std::string> extra_args = {});
  ~LogstoreNode();

  // Starts the node (with --format the first time, unless format=false) and waits for its ready line.
  bool Start(bool format, long nofile_limit = 0);
  // Starts without waiting for readiness; returns the process for exit checks.
  Process* StartRaw(bool format, long nofile_limit = 0);
  void Kill9();
  // SIGTERM and wait for a clean exit; returns the exit status.
  int Stop();
  bool Running();
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  uint16_t metrics_port() const { return metrics_port_; }
  const std::string& data_dir() const { return data_dir_; }
  pid_t pid() const;
  std::string Stderr() const;
  std::string Stdout() const;
  int starts() const { return starts_; }
  // Environment variables added for the next Start (e.g. DLOG_FAILPOINTS).
  void set_env(std::map<std::string, std::string> env) { env_ = std::move(env); }

 private:
  std::string dir_;
  std::string data_dir_;
  uint16_t port_;
  uint16_t metrics_port_ = 0;
  std::vector<std::string> extra_args_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<Process> proc_;
  int starts_ = 0;
};

std::string DlogdPath();

// A blocking TCP connection to 127.0.0.1:port; the fd, or -1.
int ConnectLoopback(uint16_t port);

// A plain HTTP/1.0 GET on 127.0.0.1:port; the whole response (headers and body), or "".
std::string HttpGet(uint16_t port, const std::string& path);

}  // namespace dlog::test
