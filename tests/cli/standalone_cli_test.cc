// `dlog log ...` against a real `dlogd standalone`: records come back in
// order with increasing DLSNs, stat counts them, truncation and deletion
// work, a restart keeps the data, user errors are one clear line and exit
// code 1 (2 for usage), and garbage on the service port harms nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "common/status.h"
#include "log_service.pb.h"
#include "protocol/frame.h"
#include "tests/cli/cli_test_util.h"
#include "tests/support/test_util.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;

// One `dlogd standalone` child process with fixed ports (kept across restarts).
class Standalone {
 public:
  explicit Standalone(std::string dir)
      : dir_(std::move(dir)),
        port_(FreePort()),
        node_port_(FreePort()),
        metrics_port_(FreePort()),
        broker_port_(FreePort()) {}

  bool Start(std::vector<std::string> extra, bool metrics) {
    ProcessOptions o;
    o.argv = {DlogdPath(),       "standalone",
              "--data-dir",      dir_ + "/data",
              "--listen",        service(),
              "--node-listen",   "127.0.0.1:" + std::to_string(node_port_),
              "--broker-listen", "127.0.0.1:" + std::to_string(broker_port_)};
    // Metrics only where a test looks at them: stopping the exposer takes a second.
    if (metrics)
      o.argv.push_back("--metrics-listen=127.0.0.1:" + std::to_string(metrics_port_));
    else
      o.argv.push_back("--metrics-listen=off");
    for (auto& a : extra) o.argv.push_back(a);
    o.stdout_path = dir_ + "/standalone.out";
    o.stderr_path = dir_ + "/standalone.err";
    WriteFile(o.stdout_path, "");
    proc_ = std::make_unique<Process>(o);
    if (!proc_->Start()) return false;
    return proc_->WaitForOutput("dlogd standalone ready", 15s).has_value();
  }

  // SIGTERM and wait; the exit status as from waitpid (or -1).
  int Stop() {
    proc_->Signal(SIGTERM);
    auto st = proc_->Wait(20s);
    return st ? *st : -1;
  }

  bool Running() { return proc_ && proc_->Running(); }
  uint16_t port() const { return port_; }
  uint16_t metrics_port() const { return metrics_port_; }
  std::string service() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string Stderr() const { return proc_ ? proc_->Stderr() : ""; }

 private:
  std::string dir_;
  uint16_t port_, node_port_, metrics_port_, broker_port_;
  std::unique_ptr<Process> proc_;
};

class StandaloneCliTest : public ::testing::Test {
 protected:
  // Starts `dlogd standalone` (again, on the same ports and data dir, after a Stop).
  void StartStandalone(std::vector<std::string> extra = {}, bool metrics = false) {
    if (!server_) server_ = std::make_unique<Standalone>(dir_.path());
    ASSERT_TRUE(server_->Start(extra, metrics)) << server_->Stderr();
  }

  void TearDown() override {
    if (server_ && server_->Running()) {
      const int st = server_->Stop();
      EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "standalone exit status " << st << "\n"
                                                         << server_->Stderr();
    }
  }

  // Runs `dlog --service <ours> ARGS` with `input` on stdin.
  CliResult Cli(std::vector<std::string> args, const std::string& input = "", bool with_service = true) {
    std::vector<std::string> argv;
    if (with_service) argv = {"--service", server_->service()};
    for (auto& a : args) argv.push_back(a);
    return RunCli(dir_, ++runs_, argv, input);
  }

  std::vector<TailLine> Tail(const std::string& log_name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"log", "tail", log_name};
    for (auto& a : extra) args.push_back(a);
    CliResult r = Cli(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return ParseTail(r.out);
  }

  // Writes lines; returns the last DLSN the CLI reports.
  std::string Write(const std::string& log_name, const std::vector<std::string>& lines) {
    std::string input;
    for (auto& l : lines) input += l + "\n";
    CliResult r = Cli({"log", "write", log_name}, input);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("wrote " + std::to_string(lines.size()) + " records to " + log_name), std::string::npos)
        << r.out;
    const size_t at = r.out.find("last DLSN ");
    return at == std::string::npos ? "" : Lines(r.out.substr(at + 10)).at(0);
  }

  TempDir dir_;
  std::unique_ptr<Standalone> server_;
  int runs_ = 0;
};

TEST_F(StandaloneCliTest, CreateWriteTailStatList) {
  StartStandalone();
  CliResult created = Cli({"log", "create", "demo"});
  ASSERT_EQ(created.code, 0) << created.err;

  const std::string last = Write("demo", Numbers(1, 5));
  auto recs = Tail("demo");
  ExpectInOrder(recs, Numbers(1, 5));
  ASSERT_EQ(recs.size(), 5u);
  EXPECT_EQ(recs.back().dlsn_text, last);

  CliResult stat = Cli({"log", "stat", "demo"});
  ASSERT_EQ(stat.code, 0) << stat.err;
  EXPECT_EQ(StatField(stat.out, "records"), "5") << stat.out;
  EXPECT_EQ(StatField(stat.out, "first dlsn"), recs.front().dlsn_text) << stat.out;
  EXPECT_EQ(StatField(stat.out, "last dlsn"), last) << stat.out;
  EXPECT_EQ(StatField(stat.out, "end of stream"), "no") << stat.out;

  // Empty lines are records too; a line may hold tabs.
  Write("demo", {"", "a\tb", "record-8"});
  recs = Tail("demo");
  ASSERT_EQ(recs.size(), 8u);
  EXPECT_EQ(recs[5].payload, "");
  EXPECT_EQ(recs[6].payload, "a\tb");
  EXPECT_LT(ParseDlsn(last), recs[5].dlsn);

  // -n and --from.
  auto two = Tail("demo", {"-n", "2"});
  ExpectInOrder(two, Numbers(1, 2));
  auto from4 = Tail("demo", {"--from", recs[3].dlsn_text});
  ASSERT_EQ(from4.size(), 5u);
  EXPECT_EQ(from4.front().payload, "record-4");
  EXPECT_TRUE(Tail("demo", {"--from", "latest"}).empty());

  ASSERT_EQ(Cli({"log", "create", "other"}).code, 0);
  CliResult list = Cli({"log", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(Lines(list.out), (std::vector<std::string>{"demo", "other"}));

  // Many records in several append requests.
  ASSERT_EQ(Cli({"log", "create", "many"}).code, 0);
  Write("many", Numbers(1, 2500));
  ExpectInOrder(Tail("many"), Numbers(1, 2500));
  EXPECT_EQ(StatField(Cli({"log", "stat", "many"}).out, "records"), "2500");
}

TEST_F(StandaloneCliTest, TailFollowsUntilInterrupted) {
  StartStandalone();
  ASSERT_EQ(Cli({"log", "create", "live"}).code, 0);
  Write("live", Numbers(1, 2));

  ProcessOptions o;
  o.argv = {CliPath(), "--service", server_->service(), "log", "tail", "live", "-f"};
  o.stdout_path = dir_.Sub("follow.out");
  o.stderr_path = dir_.Sub("follow.err");
  Process follow(o);
  ASSERT_TRUE(follow.Start());
  ASSERT_TRUE(follow.WaitForOutput("record-2", 10s)) << follow.Stderr();
  Write("live", Numbers(3, 4));
  ASSERT_TRUE(follow.WaitForOutput("record-4", 10s)) << follow.Stderr();
  EXPECT_TRUE(follow.Running());
  follow.Signal(SIGINT);
  auto st = follow.Wait(10s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << " " << follow.Stderr();
  EXPECT_EQ(follow.Stderr(), "");
  ExpectInOrder(ParseTail(follow.Stdout()), Numbers(1, 4));
}

TEST_F(StandaloneCliTest, TruncateAndDelete) {
  // The service closes an idle writer quickly, so each write below goes to a new segment.
  StartStandalone({"--writer-idle-timeout", "100ms"});
  ASSERT_EQ(Cli({"log", "create", "t"}).code, 0);
  Write("t", Numbers(1, 3));
  ASSERT_TRUE(WaitFor([&] { return StatField(Cli({"log", "stat", "t"}).out, "writer") == "none"; }, 10s));
  const std::string second = Write("t", Numbers(4, 6));
  ASSERT_TRUE(WaitFor([&] { return StatField(Cli({"log", "stat", "t"}).out, "writer") == "none"; }, 10s));
  const Dlsn second_last = ParseDlsn(second);
  ASSERT_GT(second_last.seq, 1) << second;
  auto all = Tail("t");
  ExpectInOrder(all, Numbers(1, 6));

  // Truncate before the second segment's first record: the first segment goes.
  const std::string cut = all[3].dlsn_text;
  CliResult tr = Cli({"log", "truncate", "t", cut});
  ASSERT_EQ(tr.code, 0) << tr.err;
  ExpectInOrder(Tail("t"), Numbers(4, 6));
  CliResult stat = Cli({"log", "stat", "t"});
  EXPECT_EQ(StatField(stat.out, "records"), "6") << stat.out;
  EXPECT_EQ(StatField(stat.out, "first dlsn"), cut) << stat.out;
  EXPECT_NE(StatField(stat.out, "segments").find("(1 truncated)"), std::string::npos) << stat.out;
  // Reading from inside the truncated part is a clear error.
  ExpectUserError(Cli({"log", "tail", "t", "--from", all[0].dlsn_text}), "truncated");

  // Delete, also right after a write (the service's own writer holds the lock).
  Write("t", Numbers(7, 7));
  CliResult del = Cli({"log", "delete", "t"});
  ASSERT_EQ(del.code, 0) << del.err;
  EXPECT_EQ(Cli({"log", "list"}).out, "");
  ExpectUserError(Cli({"log", "tail", "t"}), "log 't' not found");
  // The name can be used again.
  ASSERT_EQ(Cli({"log", "create", "t"}).code, 0);
  EXPECT_TRUE(Tail("t").empty());
}

TEST_F(StandaloneCliTest, RestartKeepsTheData) {
  StartStandalone();
  ASSERT_EQ(Cli({"log", "create", "keep"}).code, 0);
  const std::string before = Write("keep", Numbers(1, 4));
  ASSERT_EQ(server_->Stop(), 0) << server_->Stderr();

  StartStandalone();
  auto recs = Tail("keep");
  ExpectInOrder(recs, Numbers(1, 4));
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs.back().dlsn_text, before);
  CliResult stat = Cli({"log", "stat", "keep"});
  EXPECT_EQ(StatField(stat.out, "records"), "4") << stat.out;
  EXPECT_EQ(StatField(stat.out, "last dlsn"), before) << stat.out;

  const std::string after = Write("keep", Numbers(5, 6));
  EXPECT_LT(ParseDlsn(before), ParseDlsn(after));
  ExpectInOrder(Tail("keep"), Numbers(1, 6));
}

TEST_F(StandaloneCliTest, UserErrorsAreOneLineAndExitOne) {
  StartStandalone();
  ASSERT_EQ(Cli({"log", "create", "e"}).code, 0);
  ExpectUserError(Cli({"log", "create", "e"}), "already exists");
  ExpectUserError(Cli({"log", "stat", "nope"}), "log 'nope' not found");
  ExpectUserError(Cli({"log", "tail", "nope"}), "log 'nope' not found");
  ExpectUserError(Cli({"log", "delete", "nope"}), "log 'nope' not found");
  ExpectUserError(Cli({"log", "write", "nope"}, "x\n"), "log 'nope' not found");
  ExpectUserError(Cli({"log", "truncate", "e", "1/x/0"}), "bad DLSN");
  ExpectUserError(Cli({"log", "tail", "e", "--from", "yesterday"}), "bad start position");
  ExpectUserError(Cli({"--namespace", "elsewhere", "log", "list"}), "namespace 'elsewhere' not found");
  ExpectUserError(Cli({"log", "create", "bad\x01name"}), "");
  ExpectUserError(Cli({"log", "write", "e"}, std::string(2u << 20, 'x') + "\n"), "a record is at most");

  const uint16_t nobody = FreePort();
  ExpectUserError(Cli({"--service", "127.0.0.1:" + std::to_string(nobody), "log", "list"}, "", false),
                  "cannot connect");
  ExpectUserError(Cli({"--service", "localhost", "log", "list"}, "", false), "--service");

  // Usage errors exit 2.
  EXPECT_EQ(Cli({"log"}).code, 2);
  EXPECT_EQ(Cli({"log", "tail"}).code, 2);
  EXPECT_EQ(Cli({"log", "tail", "e", "--no-such-flag"}).code, 2);
  EXPECT_EQ(Cli({"--service", "a:1", "--metadata", "zk://b:2", "log", "list"}, "", false).code, 2);
  CliResult help = Cli({"log", "tail", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--follow"), std::string::npos) << help.out;
  EXPECT_TRUE(server_->Running());
}

// Sends `bytes`; returns what the service answers before closing (or within 2 s).
std::string SendAndRead(uint16_t port, const std::string& bytes) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return "<no connection>";
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    protocol::FrameView f;
    Status err;
    if (protocol::DecodeFrame(out, protocol::kDefaultMaxFrameBytes, &f, nullptr, &err) ==
        protocol::DecodeState::kFrame) {
      break;  // one reply is all we wait for
    }
  }
  close(fd);
  return out;
}

proto::LogResponse DecodeReply(const std::string& bytes) {
  proto::LogResponse r;
  protocol::FrameView f;
  Status err;
  if (protocol::DecodeFrame(bytes, protocol::kDefaultMaxFrameBytes, &f, nullptr, &err) ==
      protocol::DecodeState::kFrame) {
    EXPECT_TRUE(r.ParseFromArray(f.header.data(), static_cast<int>(f.header.size())));
  } else {
    ADD_FAILURE() << "no reply frame in " << bytes.size() << " bytes";
  }
  return r;
}

TEST_F(StandaloneCliTest, GarbageOnTheServicePortHarmsNothing) {
  StartStandalone({}, /*metrics=*/true);
  ASSERT_EQ(Cli({"log", "create", "g"}).code, 0);
  Write("g", Numbers(1, 3));

  std::mt19937 rng(42);
  for (int i = 0; i < 20; ++i) {
    std::string junk(1 + rng() % 5000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    SendAndRead(server_->port(), junk);
  }
  // A frame too large to accept, announced by its length alone.
  SendAndRead(server_->port(), std::string("\x7f\xff\xff\xff", 4) + std::string(64, 'x'));
  // A well-formed frame whose header is not a LogRequest: an error reply, then the connection closes.
  ByteBuffer frame;
  protocol::AppendFrame(&frame, std::string("\xff\xff\xff", 3), "");
  proto::LogResponse r =
      DecodeReply(SendAndRead(server_->port(), std::string(reinterpret_cast<const char*>(frame.data()), frame.size())));
  EXPECT_EQ(r.code(), proto::LOG_STATUS_BAD_REQUEST) << r.error_text();

  // Well-formed requests with bad contents get BAD_REQUEST and touch nothing.
  auto request = [&](const proto::LogRequest& q, const std::string& payload) {
    ByteBuffer b;
    protocol::AppendFrame(&b, q.SerializeAsString(), payload);
    return DecodeReply(SendAndRead(server_->port(), std::string(reinterpret_cast<const char*>(b.data()), b.size())));
  };
  proto::LogRequest q;
  q.set_request_id(7);
  q.mutable_append()->set_log("g");
  q.mutable_append()->add_record_sizes(100);  // but a 3-byte payload
  r = request(q, "abc");
  EXPECT_EQ(r.request_id(), 7u);
  EXPECT_EQ(r.code(), proto::LOG_STATUS_BAD_REQUEST) << r.error_text();
  q.Clear();
  q.set_request_id(8);
  r = request(q, "");  // no operation
  EXPECT_EQ(r.code(), proto::LOG_STATUS_BAD_REQUEST) << r.error_text();
  q.Clear();
  q.set_request_id(9);
  q.mutable_read()->set_reader_id(12345);
  q.mutable_read()->set_max_records(10);
  r = request(q, "");
  EXPECT_EQ(r.code(), proto::LOG_STATUS_NO_SUCH_READER) << r.error_text();
  q.Clear();
  q.set_request_id(10);
  q.mutable_read()->set_log("g");
  q.mutable_read()->set_max_records(0);
  r = request(q, "");
  EXPECT_EQ(r.code(), proto::LOG_STATUS_BAD_REQUEST) << r.error_text();

  ASSERT_TRUE(server_->Running()) << server_->Stderr();
  ExpectInOrder(Tail("g"), Numbers(1, 3));
  EXPECT_NE(HttpGet(server_->metrics_port(), "/metrics").find("dlog_log_service_bad_requests_total"),
            std::string::npos);
}

}  // namespace
}  // namespace dlog::test
