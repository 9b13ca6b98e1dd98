// Bad input against a running node: every kind of garbage gets an error reply
// or a closed connection, before any large allocation; a healthy client keeps
// being served throughout; the node's memory stays bounded.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include "common/buffer.h"
#include "common/crc32c.h"
#include "node.pb.h"
#include "protocol/frame.h"
#include "protocol/node_errors.h"
#include "tests/support/node_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;

int Connect(uint16_t port) { return ConnectLoopback(port); }

bool SendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads until the peer closes or `timeout` passes. Returns all bytes read and
// whether the connection was closed by the peer.
std::pair<std::string, bool> ReadUntilClose(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + Scaled(timeout);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return {out, true};
    out.append(buf, static_cast<size_t>(n));
  }
  return {out, false};
}

// Decodes the first frame of `bytes` as a NodeResponse.
std::optional<proto::NodeResponse> FirstResponse(const std::string& bytes) {
  protocol::FrameView f;
  Status err;
  if (protocol::DecodeFrame(bytes, 1 << 20, &f, nullptr, &err) != protocol::DecodeState::kFrame) return std::nullopt;
  proto::NodeResponse r;
  if (!r.ParseFromArray(f.header.data(), static_cast<int>(f.header.size()))) return std::nullopt;
  return r;
}

std::string Be32(uint32_t v) {
  std::string s(4, '\0');
  PutBe32(reinterpret_cast<uint8_t*>(s.data()), v);
  return s;
}

std::string FrameOf(const google::protobuf::MessageLite& m, const std::string& payload = "") {
  ByteBuffer b;
  protocol::AppendFrame(&b, m.SerializeAsString(), payload);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

class BadInputTest : public ::testing::Test {
 protected:
  void StartNode(long nofile_limit = 0) {
    node_ = std::make_unique<LogstoreNode>(dir_.path(), FreePort());
    ASSERT_TRUE(node_->Start(true, nofile_limit)) << node_->Stderr();
    healthy_ = std::make_unique<NodeClientHarness>(node_->address());
  }

  // A healthy client writes and reads back one entry; true if both worked.
  bool HealthyRoundTrip() {
    const SegmentId seg(77);
    int64_t e = next_entry_++;
    std::string payload = PayloadFor(seg, EntryId(e));
    Status st = healthy_->client().AddEntrySync(seg, EntryId(e), EntryId(e - 1), Slice::CopyOf(payload));
    if (!st.ok()) {
      ADD_FAILURE() << "healthy add failed: " << st.ToString();
      return false;
    }
    auto r = healthy_->client().ReadEntrySync(seg, EntryId(e));
    if (!r.ok() || r->payload.view() != payload) {
      ADD_FAILURE() << "healthy read failed: " << r.status().ToString();
      return false;
    }
    return true;
  }

  // Sends `bytes` on a fresh connection and expects a BAD_REQUEST reply and/or a close.
  void ExpectRejected(const std::string& what, const std::string& bytes, bool expect_reply = true) {
    int fd = Connect(node_->port());
    ASSERT_GE(fd, 0);
    SendAll(fd, bytes);
    auto [reply, closed] = ReadUntilClose(fd, 3000ms);
    close(fd);
    EXPECT_TRUE(closed) << what << ": connection not closed";
    if (expect_reply) {
      auto r = FirstResponse(reply);
      ASSERT_TRUE(r.has_value()) << what << ": no error reply before close";
      EXPECT_EQ(r->code(), proto::BAD_REQUEST) << what;
      EXPECT_FALSE(r->error_text().empty()) << what;
    }
    EXPECT_TRUE(HealthyRoundTrip()) << "after " << what;
  }

  TempDir dir_;
  std::unique_ptr<LogstoreNode> node_;
  std::unique_ptr<NodeClientHarness> healthy_;
  int64_t next_entry_ = 0;
};

TEST_F(BadInputTest, MalformedFramesGetAnErrorAndACloseOnlyForThatConnection) {
  StartNode();
  ASSERT_TRUE(HealthyRoundTrip());
  const long rss_before = RssKiB(node_->pid());

  ExpectRejected("length 0", Be32(0) + std::string(8, '\0'));
  ExpectRejected("length 2^31", Be32(1u << 31) + std::string(64, 'x'));
  ExpectRejected("length max+1", Be32((5u << 20) + 1) + std::string(64, 'x'));
  ExpectRejected("length 0xffffffff", Be32(0xffffffffu) + std::string(64, 'x'));
  {
    proto::NodeRequest req;
    req.set_request_id(5);
    req.mutable_node_info();
    std::string frame = FrameOf(req);
    frame[5] ^= 0x01;  // corrupt the CRC
    ExpectRejected("bad crc", frame);
  }
  ExpectRejected("http request", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  ExpectRejected("tls client hello",
                 std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(500, '\x42'));
  {
    std::mt19937 rng(99);
    for (int i = 0; i < 20; ++i) {
      std::string junk(1 + rng() % 300, '\0');
      for (auto& ch : junk) ch = static_cast<char>(rng());
      // Random bytes: either rejected at once or, if they happen to declare a
      // small frame and wait for more, closed when we close. Either way the node survives.
      int fd = Connect(node_->port());
      ASSERT_GE(fd, 0);
      SendAll(fd, junk);
      ReadUntilClose(fd, 100ms);
      close(fd);
    }
    EXPECT_TRUE(HealthyRoundTrip()) << "after random bytes";
  }
  {
    // Truncated frame, then close.
    proto::NodeRequest req;
    req.set_request_id(9);
    req.mutable_add_entry()->set_segment_id(1);
    std::string frame = FrameOf(req, std::string(1000, 'p'));
    int fd = Connect(node_->port());
    SendAll(fd, frame.substr(0, frame.size() / 2));
    close(fd);
    EXPECT_TRUE(HealthyRoundTrip()) << "after a truncated frame";
  }
  {
    // Unknown command: a well-formed frame whose request has no known op.
    // That is a bad request, not a broken stream: an error reply with the
    // request's id, and the connection stays usable.
    proto::NodeRequest unknown;
    unknown.set_request_id(4242);
    proto::NodeRequest info;
    info.set_request_id(4243);
    info.mutable_node_info();
    int fd = Connect(node_->port());
    SendAll(fd, FrameOf(unknown) + FrameOf(info));
    auto [reply, closed] = ReadUntilClose(fd, 500ms);
    EXPECT_FALSE(closed);
    close(fd);
    auto r = FirstResponse(reply);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->request_id(), 4242u);
    EXPECT_EQ(r->code(), proto::BAD_REQUEST);
    EXPECT_NE(r->error_text().find("unknown command"), std::string::npos) << r->error_text();
    protocol::FrameView f;
    Status err;
    ASSERT_EQ(protocol::DecodeFrame(reply, 1 << 20, &f, nullptr, &err), protocol::DecodeState::kFrame);
    auto second = FirstResponse(reply.substr(f.frame_bytes));
    ASSERT_TRUE(second.has_value()) << "no reply to the request after the unknown one";
    EXPECT_EQ(second->request_id(), 4243u);
    EXPECT_EQ(second->code(), proto::OK);
  }
  {
    // A header that is not a NodeRequest at all (CRC is right): protocol violation.
    ByteBuffer b;
    protocol::AppendFrame(&b, std::string("\xff\xff\xff\xff\xff", 5), "");
    ExpectRejected("garbage header", std::string(reinterpret_cast<const char*>(b.data()), b.size()));
  }
  // Nothing stored was touched: the healthy segment still reads back whole.
  for (int64_t e = 0; e < next_entry_; ++e) {
    auto r = healthy_->client().ReadEntrySync(SegmentId(77), EntryId(e));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->payload.view(), PayloadFor(SegmentId(77), EntryId(e)));
  }
  const long rss_after = RssKiB(node_->pid());
  EXPECT_LT(rss_after - rss_before, 64 * 1024) << "RSS grew from " << rss_before << " to " << rss_after << " KiB";
}

TEST_F(BadInputTest, ManyPartialLargeFramesStayWithinTheMemoryBudget) {
  StartNode();
  const long rss_before = RssKiB(node_->pid());
  // 200 connections each declare a 5 MiB frame and send 64 KiB of it: 1 GB if
  // the node allocated every declared frame, bounded by the inbound budget if not.
  std::vector<int> fds;
  for (int i = 0; i < 200; ++i) {
    int fd = Connect(node_->port());
    ASSERT_GE(fd, 0);
    SendAll(fd, Be32(5u << 20) + std::string(64 * 1024, 'q'));
    fds.push_back(fd);
  }
  EXPECT_TRUE(HealthyRoundTrip());
  const long rss_during = RssKiB(node_->pid());
  for (int fd : fds) close(fd);
  EXPECT_TRUE(HealthyRoundTrip());
  EXPECT_LT(rss_during - rss_before, 400 * 1024) << "RSS grew from " << rss_before << " to " << rss_during << " KiB";
}

TEST_F(BadInputTest, ThousandIdleConnectionsAndEmfileDoNotKillTheAcceptLoop) {
  // Our own limit must allow 1,000 sockets.
  rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = rl.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  ASSERT_GE(rl.rlim_cur, 2100u);
  // The node gets 512 descriptors, so it runs out (EMFILE) while we connect.
  StartNode(/*nofile_limit=*/512);
  ASSERT_TRUE(HealthyRoundTrip());
  std::vector<int> fds;
  for (int i = 0; i < 1000; ++i) {
    int fd = Connect(node_->port());
    if (fd >= 0) fds.push_back(fd);
  }
  // The healthy client's existing connection is still served while the node is out of descriptors.
  EXPECT_TRUE(HealthyRoundTrip());
  for (int fd : fds) close(fd);
  EXPECT_TRUE(node_->Running());
  // Once the idle ones are gone, new connections are accepted again.
  ASSERT_TRUE(WaitFor(
      [&] {
        NodeClientHarness fresh(node_->address(), 16, 1000);
        return fresh.client().NodeInfoSync().ok();
      },
      10000ms));
  EXPECT_TRUE(HealthyRoundTrip());
}

}  // namespace
}  // namespace dlog::test
