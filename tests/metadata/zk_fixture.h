// ZkServer: a throwaway ZooKeeper server for tests, from Debian's package
// (/usr/share/java/zookeeper.jar), as TOOLCHAIN.md §3 describes: a child of
// the test (fork/exec, reaped with waitpid, killed by its PID only), on
// 127.0.0.1 and a free port, admin server off, data dir in a temp dir, short
// tickTime (sessions are clamped to [2, 20] × tickTime).
//
// Restart() keeps the port and the data dir, so sessions survive a quick
// restart (a forced connection loss). Thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tests/support/test_util.h"

namespace dlog::test {

class ZkServer {
 public:
  explicit ZkServer(int tick_ms = 200);
  ~ZkServer();
  ZkServer(const ZkServer&) = delete;
  ZkServer& operator=(const ZkServer&) = delete;

  // True if java and the ZooKeeper jar are installed.
  static bool Available();

  // Starts the server and waits until it answers `srvr` with "Mode: standalone".
  bool Start();
  // SIGTERM (SIGKILL if `hard`), then waits for the exit.
  void Stop(bool hard = false);
  // Stop then Start on the same port and data dir.
  bool Restart(bool hard = true);
  // SIGSTOP / SIGCONT: a server that stops answering without closing sockets.
  void Pause();
  void Resume();
  bool Running();
  // The `srvr` answer, or "" if the server does not answer.
  std::string Srvr();

  uint16_t port() const { return port_; }
  std::string connect() const { return "127.0.0.1:" + std::to_string(port_); }
  int tick_ms() const { return tick_ms_; }
  const std::string& dir() const { return dir_.path(); }
  std::string Log() const;

 private:
  int tick_ms_;
  TempDir dir_;
  uint16_t port_;
  std::unique_ptr<Process> proc_;
};

}  // namespace dlog::test
