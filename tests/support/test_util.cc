#include "tests/support/test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace dlog::test {

double TimeScale() {
  const char* env = std::getenv("DLOG_TEST_TIME_SCALE");
  if (env == nullptr) return 1.0;
  double v = std::atof(env);
  return v > 0 ? v : 1.0;
}

std::chrono::milliseconds Scaled(std::chrono::milliseconds ms) {
  return std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(ms.count()) * TimeScale()));
}

TempDir::TempDir() {
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/dlog-test-XXXXXX";
  char* p = mkdtemp(tmpl.data());
  if (p == nullptr) std::abort();
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) std::abort();
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + Scaled(timeout);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

long RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

std::string DlogdPath() {
  const char* env = std::getenv("DLOGD");
  if (env != nullptr) return env;
  return DLOGD_PATH;
}

int ConnectLoopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string HttpGet(uint16_t port, const std::string& path) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return "";
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "";
  }
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

Process::Process(ProcessOptions options) : options_(std::move(options)) {}

Process::~Process() { Kill9AndWait(); }

bool Process::Start() {
  std::vector<char*> argv;
  for (auto& a : options_.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    // Child: own process group, so a stray signal to the test's group misses it.
    setpgid(0, 0);
    int out = open(options_.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int err = open(options_.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out >= 0) dup2(out, 1);
    if (err >= 0) dup2(err, 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    for (const auto& [k, v] : options_.env) setenv(k.c_str(), v.c_str(), 1);
    if (options_.nofile_limit > 0) {
      rlimit rl{static_cast<rlim_t>(options_.nofile_limit), static_cast<rlim_t>(options_.nofile_limit)};
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  reaped_ = false;
  return true;
}

bool Process::Running() {
  if (reaped_) return false;
  int st;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = st;
    return false;
  }
  return true;
}

void Process::Signal(int sig) {
  if (Running()) kill(pid_, sig);
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  if (reaped_) return status_;
  auto deadline = std::chrono::steady_clock::now() + Scaled(timeout);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) return status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return std::nullopt;
}

void Process::Kill9AndWait() {
  if (reaped_) return;
  kill(pid_, SIGKILL);
  int st;
  waitpid(pid_, &st, 0);
  reaped_ = true;
  status_ = st;
}

std::optional<std::string> Process::WaitForOutput(const std::string& needle, std::chrono::milliseconds timeout) {
  std::optional<std::string> found;
  WaitFor(
      [&] {
        std::istringstream in(Stdout());
        std::string line;
        while (std::getline(in, line)) {
          if (line.find(needle) != std::string::npos) {
            found = line;
            return true;
          }
        }
        return !Running();
      },
      timeout);
  return found;
}

std::string Process::Stdout() const { return ReadFile(options_.stdout_path); }
std::string Process::Stderr() const { return ReadFile(options_.stderr_path); }

LogstoreNode::LogstoreNode(std::string dir, uint16_t port, std::vector<std::string> extra_args)
    : dir_(std::move(dir)), data_dir_(dir_ + "/data"), port_(port), extra_args_(std::move(extra_args)) {}

LogstoreNode::~LogstoreNode() { Kill9(); }

Process* LogstoreNode::StartRaw(bool format, long nofile_limit) {
  if (proc_) proc_->Kill9AndWait();
  ++starts_;
  ProcessOptions o;
  o.argv = {DlogdPath(), "logstore", "--data-dir", data_dir_, "--listen", address(), "--metrics-listen", "127.0.0.1:0"};
  if (format) o.argv.push_back("--format");
  for (const auto& a : extra_args_) o.argv.push_back(a);
  o.stdout_path = dir_ + "/stdout.log";
  o.stderr_path = dir_ + "/stderr.log";
  o.nofile_limit = nofile_limit;
  o.env = env_;
  WriteFile(o.stdout_path, "");  // so the ready line found is the new process's
  proc_ = std::make_unique<Process>(o);
  if (!proc_->Start()) return nullptr;
  return proc_.get();
}

bool LogstoreNode::Start(bool format, long nofile_limit) {
  Process* p = StartRaw(format, nofile_limit);
  if (p == nullptr) return false;
  auto line = p->WaitForOutput("dlogd logstore ready:", std::chrono::milliseconds(20000));
  if (!line) return false;
  auto pos = line->find("metrics=127.0.0.1:");
  if (pos != std::string::npos) metrics_port_ = static_cast<uint16_t>(std::atoi(line->c_str() + pos + 18));
  return true;
}

void LogstoreNode::Kill9() {
  if (proc_) proc_->Kill9AndWait();
}

int LogstoreNode::Stop() {
  if (!proc_) return -1;
  proc_->Signal(SIGTERM);
  auto st = proc_->Wait(std::chrono::milliseconds(20000));
  if (!st) {
    proc_->Kill9AndWait();
    return -1;
  }
  return *st;
}

bool LogstoreNode::Running() { return proc_ && proc_->Running(); }
pid_t LogstoreNode::pid() const { return proc_ ? proc_->pid() : -1; }
std::string LogstoreNode::Stderr() const { return ReadFile(dir_ + "/stderr.log"); }
std::string LogstoreNode::Stdout() const { return ReadFile(dir_ + "/stdout.log"); }

}  // namespace dlog::test
