#include "net/tcp_server.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/crc32c.h"
#include "common/thread_annotations.h"
#include "net/errors.h"
#include "net/event_loop.h"
#include "protocol/frame.h"
#include "tests/net/net_test_util.h"

namespace dlog::net {
namespace {

using testing::EncodeFrame;
using testing::RawClient;
using testing::WaitFor;

enum class Reply { kEcho, kAck, kNone };

class TestHandler : public FrameHandler {
 public:
  // All callbacks run on the loop thread.
  void OnFrame(const ConnectionPtr& conn, std::string_view header, Slice payload) override {
    frames++;
    payload_bytes += payload.size();
    switch (reply.load()) {
      case Reply::kEcho:
        conn->SendFrame(header, payload.view());
        break;
      case Reply::kAck:
        conn->SendFrame(std::string_view("ack"), std::string_view());
        break;
      case Reply::kNone:
        break;
    }
    size_t q = conn->queued_output_bytes();
    if (q > max_queued.load()) max_queued = q;
    if (hold.load()) held.push_back(std::move(payload));
  }
  void OnProtocolError(const ConnectionPtr& conn, const Status& error) override {
    protocol_errors++;
    {
      MutexLock l(&mu);
      last_error = error;
    }
    conn->SendFrame(std::string_view("protocol-error"), error.message());
  }
  void OnOpen(const ConnectionPtr& conn) override {
    opens++;
    conns.push_back(conn);
  }
  void OnClose(const ConnectionPtr& conn) override {
    closes++;
    if (conn->closed()) closed_flag_seen++;
  }

  Status LastError() {
    MutexLock l(&mu);
    return last_error;
  }

  std::atomic<Reply> reply{Reply::kEcho};
  std::atomic<bool> hold{false};
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> payload_bytes{0};
  std::atomic<int> protocol_errors{0};
  std::atomic<int> opens{0};
  std::atomic<int> closes{0};
  std::atomic<int> closed_flag_seen{0};
  std::atomic<size_t> max_queued{0};
  std::vector<Slice> held;           // loop thread only
  std::vector<ConnectionPtr> conns;  // loop thread only
  Mutex mu;
  Status last_error DLOG_GUARDED_BY(mu);
};

class TcpServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions opts = {}) {
    loop_.Start();
    opts.listen = HostPort{"127.0.0.1", 0};
    options_ = opts;
    server_ = std::make_unique<TcpServer>(&loop_, opts, &handler_);
    Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    EXPECT_EQ(handler_.opens.load(), handler_.closes.load()) << "OnClose exactly once per opened connection";
    if (server_) {
      EXPECT_EQ(server_->connection_count(), 0u);
      loop_.RunSync([&] {
        handler_.held.clear();
        handler_.conns.clear();
      });
      EXPECT_EQ(server_->inbound_budget()->used(), 0);
    }
    server_.reset();
    loop_.Stop();
  }

  // Sends one frame and expects its echo.
  void ExpectEcho(RawClient& c, const std::string& header, const std::string& payload) {
    ASSERT_TRUE(c.SendFrame(header, payload));
    std::string h, p;
    ASSERT_TRUE(c.ReadFrame(&h, &p));
    EXPECT_EQ(h, header);
    EXPECT_EQ(p, payload);
  }

  EventLoop loop_{"server-loop"};
  TestHandler handler_;
  ServerOptions options_;
  std::unique_ptr<TcpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(TcpServerTest, EchoesManyPipelinedFrames) {
  StartServer();
  RawClient c(port_);
  ASSERT_TRUE(c.ok());
  constexpr int kFrames = 2000;
  std::string all;
  for (int i = 0; i < kFrames; ++i)
    all += EncodeFrame("h" + std::to_string(i), std::string(i % 300, char('a' + i % 26)));
  std::thread writer([&] { ASSERT_TRUE(c.SendAll(all)); });
  for (int i = 0; i < kFrames; ++i) {
    std::string h, p;
    ASSERT_TRUE(c.ReadFrame(&h, &p)) << "frame " << i;
    ASSERT_EQ(h, "h" + std::to_string(i));
    ASSERT_EQ(p, std::string(i % 300, char('a' + i % 26)));
  }
  writer.join();
  EXPECT_EQ(handler_.frames.load(), static_cast<uint64_t>(kFrames));
  EXPECT_EQ(server_->connection_count(), 1u);
}

TEST_F(TcpServerTest, EchoesABigFrameNearTheLimit) {
  ServerOptions o;
  o.max_frame_bytes = 1u << 20;
  o.read_chunk_bytes = 16u << 10;  // the frame needs a chunk of its own
  StartServer(o);
  RawClient c(port_);
  ASSERT_TRUE(c.ok());
  const std::string header = "big";
  std::string payload(o.max_frame_bytes - protocol::kMinFrameLength - header.size(), '\0');
  std::mt19937 rng(7);
  for (auto& ch : payload) ch = static_cast<char>(rng());
  ExpectEcho(c, header, payload);
  ExpectEcho(c, "small", "after the big one");
  // One byte more than the limit is a protocol error.
  ASSERT_TRUE(c.SendFrame(header, payload + "x"));
  std::string h, p;
  ASSERT_TRUE(c.ReadFrame(&h, &p));
  EXPECT_EQ(h, "protocol-error");
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_TRUE(handler_.LastError().Is(protocol::ProtocolErrc::kFrameTooLarge)) << handler_.LastError().ToString();
}

TEST_F(TcpServerTest, FramesSplitByteByByte) {
  ServerOptions o;
  o.read_chunk_bytes = 64;  // partial frames cross chunk boundaries all the time
  StartServer(o);
  RawClient c(port_);
  ASSERT_TRUE(c.ok());
  std::string all;
  for (int i = 0; i < 20; ++i) all += EncodeFrame("hdr" + std::to_string(i), std::string(i * 7, 'p'));
  for (char ch : all) {
    ASSERT_TRUE(c.SendAll(std::string_view(&ch, 1)));
  }
  for (int i = 0; i < 20; ++i) {
    std::string h, p;
    ASSERT_TRUE(c.ReadFrame(&h, &p));
    EXPECT_EQ(h, "hdr" + std::to_string(i));
    EXPECT_EQ(p, std::string(i * 7, 'p'));
  }
}

TEST_F(TcpServerTest, PayloadIsASliceOfTheInputChunk) {
  StartServer();
  handler_.hold = true;
  handler_.reply = Reply::kAck;
  RawClient c(port_);
  ASSERT_TRUE(c.SendAll(EncodeFrame("a", "first payload") + EncodeFrame("b", "second payload")));
  std::string h, p;
  ASSERT_TRUE(c.ReadFrame(&h, &p));
  ASSERT_TRUE(c.ReadFrame(&h, &p));
  bool same_chunk = false;
  std::string first, second;
  loop_.RunSync([&] {
    ASSERT_EQ(handler_.held.size(), 2u);
    same_chunk = handler_.held[0].chunk().get() == handler_.held[1].chunk().get();
    first = handler_.held[0].ToString();
    second = handler_.held[1].ToString();
  });
  EXPECT_TRUE(same_chunk);  // both frames arrived in one read: no copy, one chunk
  EXPECT_EQ(first, "first payload");
  EXPECT_EQ(second, "second payload");
  EXPECT_GT(server_->inbound_budget()->used(), 0);
  loop_.RunSync([&] { handler_.held.clear(); });
  EXPECT_EQ(server_->inbound_budget()->used(), 0);  // idle: the connection holds no chunk
}

std::string FrameWithLength(uint32_t length, size_t extra) {
  std::string s(4 + extra, '\0');
  PutBe32(reinterpret_cast<uint8_t*>(s.data()), length);
  return s;
}

std::string BadCrcFrame() {
  std::string f = EncodeFrame("header", "payload");
  f[5] ^= 0x40;
  return f;
}

std::string HeaderLengthBeyondFrame() {
  // length 12: crc + header length + 4 bytes; header length claims 100.
  std::string s(16, '\0');
  auto* p = reinterpret_cast<uint8_t*>(s.data());
  PutBe32(p, 12);
  PutBe32(p + 8, 100);
  PutBe32(p + 4, crc32c::Value(p + 8, 8));
  return s;
}

std::string RandomBytes() {
  std::mt19937 rng(12345);
  std::string s(256, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  s[0] = static_cast<char>(0x7f);  // a length far beyond the limit
  return s;
}

std::string TlsClientHello() {
  const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                                 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a};
  return std::string(reinterpret_cast<const char*>(hello), sizeof(hello));
}

struct BadInput {
  const char* name;
  std::string bytes;
  protocol::ProtocolErrc expected;
};

TEST_F(TcpServerTest, ProtocolErrorsCloseOnlyThatConnection) {
  ServerOptions o;
  o.max_frame_bytes = 1u << 20;
  StartServer(o);
  const std::vector<BadInput> inputs = {
      {"length 0", FrameWithLength(0, 8), protocol::ProtocolErrc::kFrameTooSmall},
      {"length 7", FrameWithLength(7, 7), protocol::ProtocolErrc::kFrameTooSmall},
      {"length max+1", FrameWithLength(o.max_frame_bytes + 1, 16), protocol::ProtocolErrc::kFrameTooLarge},
      {"length 2^31", FrameWithLength(1u << 31, 16), protocol::ProtocolErrc::kFrameTooLarge},
      {"length 2^32-1", FrameWithLength(0xffffffffu, 16), protocol::ProtocolErrc::kFrameTooLarge},
      {"bad crc", BadCrcFrame(), protocol::ProtocolErrc::kBadChecksum},
      {"header length > frame", HeaderLengthBeyondFrame(), protocol::ProtocolErrc::kBadHeaderLength},
      {"random bytes", RandomBytes(), protocol::ProtocolErrc::kFrameTooLarge},
      {"HTTP GET", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", protocol::ProtocolErrc::kFrameTooLarge},
      {"TLS ClientHello", TlsClientHello(), protocol::ProtocolErrc::kFrameTooLarge},
  };
  RawClient healthy(port_);
  ASSERT_TRUE(healthy.ok());
  ExpectEcho(healthy, "hello", "before");
  int errors = 0;
  for (const auto& in : inputs) {
    SCOPED_TRACE(in.name);
    RawClient bad(port_);
    ASSERT_TRUE(bad.ok());
    // A valid frame first: the stream is good until the garbage.
    ExpectEcho(bad, "ok", "fine");
    ASSERT_TRUE(bad.SendAll(in.bytes));
    std::string h, p;
    ASSERT_TRUE(bad.ReadFrame(&h, &p)) << "the error reply is flushed before the close";
    EXPECT_EQ(h, "protocol-error");
    EXPECT_TRUE(bad.WaitClosed());
    ++errors;
    EXPECT_TRUE(WaitFor([&] { return handler_.protocol_errors.load() == errors; }));
    EXPECT_TRUE(handler_.LastError().Is(in.expected)) << handler_.LastError().ToString();
    ExpectEcho(healthy, "still", std::string("served after ") + in.name);
  }
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 1; }));
}

TEST_F(TcpServerTest, TruncatedFrameThenCloseCleansUp) {
  StartServer();
  {
    RawClient c(port_);
    ASSERT_TRUE(c.ok());
    std::string f = EncodeFrame("header", std::string(1000, 'x'));
    ASSERT_TRUE(c.SendAll(std::string_view(f).substr(0, 100)));
    ASSERT_TRUE(WaitFor([&] { return server_->inbound_budget()->used() > 0; }));
  }
  ASSERT_TRUE(WaitFor([&] { return handler_.closes.load() == 1; }));
  EXPECT_EQ(server_->connection_count(), 0u);
  EXPECT_EQ(server_->inbound_budget()->used(), 0);
  EXPECT_EQ(handler_.frames.load(), 0u);
}

TEST_F(TcpServerTest, PartialFrameHeldTooLongIsClosed) {
  ServerOptions o;
  o.idle_timeout_ms = 200;
  StartServer(o);
  RawClient c(port_);
  ASSERT_TRUE(c.ok());
  ExpectEcho(c, "a", "b");
  std::string f = EncodeFrame("header", "payload");
  ASSERT_TRUE(c.SendAll(std::string_view(f).substr(0, 5)));
  EXPECT_TRUE(c.WaitClosed(3000));
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
}

TEST_F(TcpServerTest, BudgetBoundsInboundMemoryAndTheConnectionRecovers) {
  ServerOptions o;
  o.read_chunk_bytes = 16u << 10;
  o.inbound_budget_bytes = 320u << 10;
  o.max_frame_bytes = 128u << 10;
  StartServer(o);
  handler_.hold = true;
  handler_.reply = Reply::kAck;
  RawClient c(port_, 20000);
  ASSERT_TRUE(c.ok());
  constexpr int kFrames = 40;
  const std::string payload(100u << 10, 'z');
  std::atomic<bool> sent_all{false};
  std::thread writer([&] {
    std::string f = EncodeFrame("big", payload);
    for (int i = 0; i < kFrames; ++i) {
      if (!c.SendAll(f)) return;
    }
    sent_all = true;
  });
  MemoryBudget* budget = server_->inbound_budget();
  int64_t max_used = 0;
  // Let the server run into the budget with everything held.
  ASSERT_TRUE(WaitFor([&] {
    max_used = std::max(max_used, budget->used());
    return handler_.frames.load() >= 2 && budget->used() > budget->limit() - int64_t{o.max_frame_bytes};
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const uint64_t frames_when_full = handler_.frames.load();
  EXPECT_LT(frames_when_full, static_cast<uint64_t>(kFrames));
  // Release what is held, a little at a time, until every frame got through.
  ASSERT_TRUE(WaitFor(
      [&] {
        max_used = std::max(max_used, budget->used());
        loop_.RunSync([&] { handler_.held.clear(); });
        return handler_.frames.load() == kFrames;
      },
      20000));
  writer.join();
  EXPECT_TRUE(sent_all.load());
  EXPECT_LE(max_used, budget->limit());
  for (int i = 0; i < kFrames; ++i) {
    std::string h, p;
    ASSERT_TRUE(c.ReadFrame(&h, &p));
    ASSERT_EQ(h, "ack");
  }
  handler_.hold = false;
  handler_.reply = Reply::kEcho;
  ExpectEcho(c, "after", "the flood");
  EXPECT_EQ(server_->connection_count(), 1u);
}

TEST_F(TcpServerTest, ConnectionsBeyondTheLimitAreClosed) {
  ServerOptions o;
  o.max_connections = 3;
  StartServer(o);
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<RawClient>(port_));
    ASSERT_TRUE(clients.back()->ok());
    ExpectEcho(*clients.back(), "c", std::to_string(i));
  }
  RawClient extra(port_);
  ASSERT_TRUE(extra.ok());  // the handshake completes in the kernel; then the server closes it
  EXPECT_TRUE(extra.WaitClosed());
  EXPECT_EQ(server_->connection_count(), 3u);
  EXPECT_EQ(handler_.opens.load(), 3);
  clients.pop_back();
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 2; }));
  RawClient again(port_);
  ASSERT_TRUE(again.ok());
  ExpectEcho(again, "c", "room again");
}

TEST_F(TcpServerTest, ManyIdleConnectionsHoldNoMemoryAndAHealthyClientIsServed) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  if (rl.rlim_cur < 700) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << rl.rlim_max << " is too low";
  StartServer();
  constexpr int kIdle = 300;
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < kIdle; ++i) {
    idle.push_back(std::make_unique<RawClient>(port_));
    ASSERT_TRUE(idle.back()->ok()) << i;
  }
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == kIdle; }));
  EXPECT_EQ(server_->inbound_budget()->used(), 0);
  RawClient healthy(port_);
  ASSERT_TRUE(healthy.ok());
  for (int i = 0; i < 10; ++i) ExpectEcho(healthy, "healthy", std::to_string(i));
  idle.clear();
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 1; }));
}

TEST_F(TcpServerTest, OutputBackPressurePausesReading) {
  ServerOptions o;
  o.out_high_water_bytes = 256u << 10;
  o.out_low_water_bytes = 64u << 10;
  StartServer(o);
  RawClient c(port_, 1000);
  ASSERT_TRUE(c.ok());
  // Small socket buffers so the kernel does not absorb everything.
  int small = 32 << 10;
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  const std::string payload(16u << 10, 'q');
  const std::string frame = EncodeFrame("echo-me", payload);
  // Send until the server stops taking bytes (a send times out), never reading.
  int sent = 0;
  while (sent < 4000 && c.SendAll(frame)) ++sent;
  EXPECT_LT(sent, 4000) << "the server never stopped reading";
  const size_t max_queued = handler_.max_queued.load();
  EXPECT_GE(max_queued, o.out_high_water_bytes) << "the high water mark was never reached";
  EXPECT_LE(max_queued, o.out_high_water_bytes + frame.size());
  size_t queued_now = 0;
  loop_.RunSync([&] { queued_now = handler_.conns.at(0)->queued_output_bytes(); });
  EXPECT_LE(queued_now, o.out_high_water_bytes + frame.size());
  // Now drain: reading resumes and every frame sent is echoed.
  const uint64_t frames_before = handler_.frames.load();
  EXPECT_LT(frames_before, static_cast<uint64_t>(sent));
  c.Close();
}

TEST_F(TcpServerTest, ReadingResumesOnceThePeerDrainsItsReplies) {
  ServerOptions o;
  o.out_high_water_bytes = 128u << 10;
  o.out_low_water_bytes = 32u << 10;
  StartServer(o);
  RawClient c(port_, 10000);
  ASSERT_TRUE(c.ok());
  constexpr int kFrames = 400;
  const std::string payload(8u << 10, 'r');
  std::thread writer([&] {
    const std::string frame = EncodeFrame("e", payload);
    for (int i = 0; i < kFrames; ++i) ASSERT_TRUE(c.SendAll(frame));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the server pause
  for (int i = 0; i < kFrames; ++i) {
    std::string h, p;
    ASSERT_TRUE(c.ReadFrame(&h, &p)) << i;
    ASSERT_EQ(p.size(), payload.size());
  }
  writer.join();
  EXPECT_LE(handler_.max_queued.load(), o.out_high_water_bytes + payload.size() + 64);
}

TEST_F(TcpServerTest, ConnectionMethodsAfterCloseAreNoOps) {
  StartServer();
  {
    RawClient c(port_);
    ExpectEcho(c, "x", "y");
  }
  ASSERT_TRUE(WaitFor([&] { return handler_.closes.load() == 1; }));
  EXPECT_EQ(handler_.closed_flag_seen.load(), 1);
  loop_.RunSync([&] {
    ASSERT_EQ(handler_.conns.size(), 1u);
    ConnectionPtr conn = handler_.conns[0];
    EXPECT_TRUE(conn->closed());
    conn->SendFrame(std::string_view("late"), std::string_view("reply"));
    conn->Close();
    EXPECT_EQ(conn->queued_output_bytes(), 0u);
    EXPECT_FALSE(conn->peer().empty());
    EXPECT_GT(conn->id(), 0u);
  });
  EXPECT_EQ(handler_.closes.load(), 1);
}

TEST_F(TcpServerTest, CloseFlushesQueuedOutput) {
  StartServer();
  RawClient c(port_);
  ExpectEcho(c, "x", "y");
  loop_.RunSync([&] {
    ConnectionPtr conn = handler_.conns.at(0);
    conn->SendFrame(std::string_view("goodbye"), std::string_view(std::string(100000, 'g')));
    conn->Close();
    EXPECT_TRUE(conn->closed());
  });
  std::string h, p;
  ASSERT_TRUE(c.ReadFrame(&h, &p));
  EXPECT_EQ(h, "goodbye");
  EXPECT_EQ(p.size(), 100000u);
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(TcpServerTest, StopClosesLiveConnections) {
  StartServer();
  RawClient a(port_), b(port_);
  ExpectEcho(a, "a", "1");
  ExpectEcho(b, "b", "2");
  server_->Stop();
  EXPECT_EQ(server_->connection_count(), 0u);
  EXPECT_EQ(handler_.closes.load(), 2);
  EXPECT_TRUE(a.WaitClosed());
  EXPECT_TRUE(b.WaitClosed());
  RawClient refused(port_);
  EXPECT_FALSE(refused.ok());
}

TEST_F(TcpServerTest, ARestartedServerRebindsItsPortAtOnce) {
  StartServer();
  {
    RawClient c(port_);
    ExpectEcho(c, "x", "y");
  }
  server_->Stop();
  ServerOptions o = options_;
  o.listen.port = port_;
  TcpServer again(&loop_, o, &handler_);
  Status st = again.Start();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(again.port(), port_);
  RawClient c(port_);
  ExpectEcho(c, "again", "served");
  c.Close();
  again.Stop();
}

TEST_F(TcpServerTest, ListeningOnABusyPortFails) {
  StartServer();
  ServerOptions o = options_;
  o.listen.port = port_;
  TestHandler other;
  TcpServer second(&loop_, o, &other);
  Status st = second.Start();
  EXPECT_FALSE(st.ok());
  second.Stop();
}

int64_t ProcessCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

TEST_F(TcpServerTest, OutOfDescriptorsPausesTheListenerWithoutSpinning) {
  StartServer();
  // libuv keeps a spare descriptor to shed connections on EMFILE. Take it
  // away (as another thread grabbing it would): libuv then reports EMFILE to
  // the server, and would call it again in a tight loop.
  loop_.RunSync([&] {
    uv_loop_t* l = loop_.uv();
    if (l->emfile_fd >= 0) {
      ::close(l->emfile_fd);
      l->emfile_fd = -1;
    }
  });
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit low = old;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> fds;
  for (;;) {
    int fd = ::dup(0);
    if (fd < 0) break;
    fds.push_back(fd);
  }
  ::close(fds.back());
  fds.pop_back();
  auto a = std::make_unique<RawClient>(port_);  // takes the last descriptor
  const bool a_ok = a->ok();
  const int64_t cpu0 = ProcessCpuMs();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int64_t cpu = ProcessCpuMs() - cpu0;
  const int opens_while_exhausted = handler_.opens.load();
  for (int fd : fds) ::close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_TRUE(a_ok);
  EXPECT_LT(cpu, 150) << "the loop spun on accept errors";
  EXPECT_EQ(opens_while_exhausted, 0);
  // Descriptors are back: the pending connection is accepted and served.
  ExpectEcho(*a, "after", "emfile");
  RawClient b(port_);
  ASSERT_TRUE(b.ok());
  ExpectEcho(b, "new", "connection");
  EXPECT_EQ(handler_.opens.load(), 2);
}

}  // namespace
}  // namespace dlog::net
