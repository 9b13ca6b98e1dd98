#include "tests/metadata/zk_fixture.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace dlog::test {

namespace {
constexpr char kJava[] = "/usr/bin/java";
constexpr char kJar[] = "/usr/share/java/zookeeper.jar";
constexpr char kSlf4j[] = "/usr/share/java/slf4j-simple.jar";
}  // namespace

ZkServer::ZkServer(int tick_ms) : tick_ms_(tick_ms), port_(FreePort()) {
  std::filesystem::create_directories(dir_.Sub("data"));
  std::string cfg;
  cfg += "tickTime=" + std::to_string(tick_ms_) + "\n";
  cfg += "initLimit=10\nsyncLimit=5\n";
  cfg += "dataDir=" + dir_.Sub("data") + "\n";
  cfg += "clientPort=" + std::to_string(port_) + "\n";
  cfg += "clientPortAddress=127.0.0.1\n";
  cfg += "maxClientCnxns=0\n";
  cfg += "admin.enableServer=false\n";
  cfg += "4lw.commands.whitelist=srvr,ruok,mntr,stat\n";
  WriteFile(dir_.Sub("zoo.cfg"), cfg);
}

ZkServer::~ZkServer() {
  if (proc_) proc_->Kill9AndWait();
}

bool ZkServer::Available() { return access(kJava, X_OK) == 0 && access(kJar, R_OK) == 0; }

bool ZkServer::Start() {
  if (proc_ && proc_->Running()) return true;
  ProcessOptions o;
  o.argv = {kJava,
            "-Xms32m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
            "-cp",
            std::string(kJar) + ":" + kSlf4j,
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            dir_.Sub("zoo.cfg")};
  o.stdout_path = dir_.Sub("zk.out");
  o.stderr_path = dir_.Sub("zk.log");
  proc_ = std::make_unique<Process>(o);
  if (!proc_->Start()) return false;
  return WaitFor(
             [&] {
               if (!proc_->Running()) return true;
               return Srvr().find("Mode: standalone") != std::string::npos;
             },
             std::chrono::milliseconds(30000)) &&
         proc_->Running();
}

void ZkServer::Stop(bool hard) {
  if (!proc_) return;
  proc_->Signal(SIGCONT);
  proc_->Signal(hard ? SIGKILL : SIGTERM);
  if (!proc_->Wait(std::chrono::milliseconds(10000))) proc_->Kill9AndWait();
}

bool ZkServer::Restart(bool hard) {
  Stop(hard);
  return Start();
}

void ZkServer::Pause() {
  if (proc_) proc_->Signal(SIGSTOP);
}

void ZkServer::Resume() {
  if (proc_) proc_->Signal(SIGCONT);
}

bool ZkServer::Running() { return proc_ && proc_->Running(); }

std::string ZkServer::Srvr() {
  int fd = ConnectLoopback(port_);
  if (fd < 0) return "";
  timeval tv{2, 0};  // a paused server never answers
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  if (::write(fd, "srvr", 4) == 4) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string ZkServer::Log() const { return ReadFile(dir_.Sub("zk.log")); }

}  // namespace dlog::test
