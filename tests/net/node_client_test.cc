// NodeClient against a fake node: a TcpServer with a handler that answers
// NodeRequests from memory (or holds them, or misbehaves on purpose).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "common/crc32c.h"
#include "common/thread_annotations.h"
#include "logstore/node/client.h"
#include "net/errors.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"
#include "protocol/node_errors.h"
#include "tests/net/net_test_util.h"

// Counts heap allocations made on threads that opt in (the client's loop
// thread). TSan brings its own operator new, so it is not counted there.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DLOG_NO_ALLOC_COUNT 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define DLOG_NO_ALLOC_COUNT 1
#endif

namespace {
thread_local bool t_count_allocs = false;
std::atomic<uint64_t> g_allocs{0};
}  // namespace

#ifndef DLOG_NO_ALLOC_COUNT
void* operator new(size_t n) {
  if (t_count_allocs) g_allocs.fetch_add(1, std::memory_order_relaxed);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#endif

namespace dlog::node {
namespace {

using net::NetErrc;
using net::testing::WaitFor;

class FakeNode : public net::FrameHandler {
 public:
  enum class Mode { kAnswer, kHold, kCloseOnRequest, kGarbageHeader };
  struct Held {
    net::ConnectionPtr conn;
    proto::NodeRequest req;
    std::string payload;
  };

  // Loop thread.
  void OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) override {
    proto::NodeRequest req;
    if (!req.ParseFromArray(header.data(), static_cast<int>(header.size()))) {
      bad_headers++;
      conn->Close();
      return;
    }
    requests++;
    {
      MutexLock l(&mu);
      ids.push_back(req.request_id());
    }
    switch (mode.load()) {
      case Mode::kAnswer:
        Answer(conn, req, payload.view());
        break;
      case Mode::kHold:
        held.push_back(Held{conn, req, payload.ToString()});
        break;
      case Mode::kCloseOnRequest:
        conn->Close();
        break;
      case Mode::kGarbageHeader:
        conn->SendFrame(std::string_view("\xff\xff\xff\xff"), std::string_view());
        break;
    }
  }
  void OnProtocolError(const net::ConnectionPtr&, const Status&) override { protocol_errors++; }
  void OnOpen(const net::ConnectionPtr& conn) override {
    opens++;
    conns.push_back(conn);
  }
  void OnClose(const net::ConnectionPtr&) override { closes++; }

  void Answer(const net::ConnectionPtr& conn, const proto::NodeRequest& req, std::string_view payload) {
    proto::NodeResponse r;
    r.set_request_id(req.request_id());
    std::string out;
    if (fail_code.load() != proto::OK) {
      r.set_code(fail_code.load());
      r.set_error_text("injected failure");
      conn->SendFrame(r, {});
      return;
    }
    switch (req.op_case()) {
      case proto::NodeRequest::kAddEntry: {
        const auto& a = req.add_entry();
        if (crc32c::Value(payload.data(), payload.size()) != a.payload_crc32c()) {
          r.set_code(proto::BAD_REQUEST);
          r.set_error_text("payload checksum mismatch");
          break;
        }
        entries[{a.segment_id(), a.entry_id()}] = std::string(payload);
        auto* ar = r.mutable_add_entry();
        ar->set_segment_id(a.segment_id());
        ar->set_entry_id(a.entry_id());
        break;
      }
      case proto::NodeRequest::kReadEntry: {
        const auto& q = req.read_entry();
        auto* rr = r.mutable_read_entry();
        rr->set_segment_id(q.segment_id());
        rr->set_entry_id(q.entry_id());
        rr->set_lac(Lac(q.segment_id()));
        rr->set_last_entry_id(-1);
        rr->set_fenced(q.fence());
        auto it = entries.find({q.segment_id(), q.entry_id()});
        if (it == entries.end()) {
          r.set_code(proto::NO_SUCH_ENTRY);
          r.set_error_text("no such entry");
          break;
        }
        out = it->second;
        rr->set_has_entry(true);
        uint32_t crc = crc32c::Value(out.data(), out.size());
        if (corrupt_crc.load()) crc ^= 1;
        rr->set_payload_crc32c(crc);
        break;
      }
      case proto::NodeRequest::kReadLac: {
        auto* l = r.mutable_read_lac();
        l->set_segment_id(req.read_lac().segment_id());
        l->set_lac(Lac(req.read_lac().segment_id()));
        l->set_last_entry_id(7);
        l->set_fenced(true);
        break;
      }
      case proto::NodeRequest::kWriteLac: {
        int64_t& lac = lacs[req.write_lac().segment_id()];
        lac = std::max(lac, req.write_lac().lac());
        auto* w = r.mutable_write_lac();
        w->set_segment_id(req.write_lac().segment_id());
        w->set_lac(lac);
        break;
      }
      case proto::NodeRequest::kDeleteSegments: {
        uint32_t n = 0;
        for (uint64_t s : req.delete_segments().segment_ids()) n += lacs.erase(s) ? 1 : 0;
        r.mutable_delete_segments()->set_deleted(n);
        break;
      }
      case proto::NodeRequest::kNodeInfo: {
        auto* i = r.mutable_node_info();
        i->set_node_id("fake-node");
        i->set_protocol_version(proto::NODE_PROTOCOL_V1);
        i->set_healthy(true);
        break;
      }
      case proto::NodeRequest::OP_NOT_SET:
        r.set_code(proto::BAD_REQUEST);
        r.set_error_text("no op");
        break;
    }
    conn->SendFrame(r, out);
  }

  int64_t Lac(uint64_t segment) {
    auto it = lacs.find(segment);
    return it == lacs.end() ? -1 : it->second;
  }

  std::vector<uint64_t> Ids() {
    MutexLock l(&mu);
    return ids;
  }

  std::atomic<Mode> mode{Mode::kAnswer};
  std::atomic<proto::NodeStatusCode> fail_code{proto::OK};
  std::atomic<bool> corrupt_crc{false};
  std::atomic<int> requests{0};
  std::atomic<int> bad_headers{0};
  std::atomic<int> protocol_errors{0};
  std::atomic<int> opens{0};
  std::atomic<int> closes{0};
  // Loop thread only:
  std::map<std::pair<uint64_t, int64_t>, std::string> entries;
  std::map<uint64_t, int64_t> lacs;
  std::vector<Held> held;
  std::vector<net::ConnectionPtr> conns;
  Mutex mu;
  std::vector<uint64_t> ids DLOG_GUARDED_BY(mu);
};

// Collects callback results (from the client's loop thread).
struct Results {
  void Add(int tag, const Status& st, int64_t value = 0) {
    MutexLock l(&mu);
    items.push_back({tag, st, value});
  }
  size_t size() {
    MutexLock l(&mu);
    return items.size();
  }
  struct Item {
    int tag;
    Status status;
    int64_t value;
  };
  std::vector<Item> Get() {
    MutexLock l(&mu);
    return items;
  }
  Mutex mu;
  std::vector<Item> items DLOG_GUARDED_BY(mu);
};

class NodeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_loop_.Start();
    client_loop_.Start();
    net::ServerOptions so;
    so.listen = HostPort{"127.0.0.1", 0};
    server_ = std::make_unique<net::TcpServer>(&server_loop_, so, &node_);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (client_) client_->Close();
    client_.reset();
    server_loop_.RunSync([&] {
      node_.held.clear();
      node_.conns.clear();
    });
    server_->Stop();
    server_.reset();
    client_loop_.Stop();
    server_loop_.Stop();
  }

  NodeClientOptions Options() {
    NodeClientOptions o;
    o.address = HostPort{"127.0.0.1", server_->port()};
    return o;
  }
  void MakeClient(NodeClientOptions o) { client_ = std::make_unique<NodeClient>(&client_loop_, std::move(o)); }
  void MakeClient() { MakeClient(Options()); }

  size_t HeldCount() {
    size_t n = 0;
    server_loop_.RunSync([&] { n = node_.held.size(); });
    return n;
  }

  net::EventLoop server_loop_{"fake-node"};
  net::EventLoop client_loop_{"node-client"};
  FakeNode node_;
  std::unique_ptr<net::TcpServer> server_;
  std::unique_ptr<NodeClient> client_;
};

TEST_F(NodeClientTest, SyncWrappersRoundTrip) {
  MakeClient();
  const std::string data = "entry bytes \x01\x02\x03";
  ASSERT_TRUE(client_->AddEntrySync(SegmentId(5), EntryId(0), kNoEntry, Slice::CopyOf(data)).ok());
  ASSERT_TRUE(client_->AddEntrySync(SegmentId(5), EntryId(1), EntryId(0), Slice::CopyOf("second"), true).ok());
  auto r = client_->ReadEntrySync(SegmentId(5), EntryId(0));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->has_entry);
  EXPECT_EQ(r->payload.ToString(), data);
  auto missing = client_->ReadEntrySync(SegmentId(5), EntryId(9));
  EXPECT_TRUE(missing.status().Is(NodeErrc::kNoSuchEntry)) << missing.status().ToString();

  auto w = client_->WriteLacSync(SegmentId(5), EntryId(1));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->lac, EntryId(1));
  auto l = client_->ReadLacSync(SegmentId(5));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->lac, EntryId(1));
  EXPECT_EQ(l->last_entry, EntryId(7));
  EXPECT_TRUE(l->fenced);
  EXPECT_TRUE(client_->DeleteSegmentsSync({SegmentId(5), SegmentId(6)}).ok());
  auto info = client_->NodeInfoSync();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->node_id(), "fake-node");
  EXPECT_EQ(info->protocol_version(), proto::NODE_PROTOCOL_V1);
  EXPECT_EQ(client_->in_flight(), 0u);
  EXPECT_EQ(client_->address().port, server_->port());
  // Request ids start at 1 and increase.
  const auto ids = node_.Ids();
  ASSERT_EQ(ids.size(), 8u);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], i + 1);
  EXPECT_EQ(node_.opens.load(), 1);  // one connection for everything
}

TEST_F(NodeClientTest, NodeErrorsBecomeNodeErrc) {
  MakeClient();
  node_.fail_code = proto::FENCED;
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("x"));
  EXPECT_TRUE(st.Is(NodeErrc::kFenced)) << st.ToString();
  EXPECT_EQ(st.message(), "injected failure");
  node_.fail_code = static_cast<proto::NodeStatusCode>(99);
  st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("x"));
  EXPECT_TRUE(st.Is(NodeErrc::kBadRequest)) << st.ToString();
  node_.fail_code = proto::OK;
  EXPECT_TRUE(client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("x")).ok());
}

TEST_F(NodeClientTest, OutOfOrderRepliesMatchTheirRequests) {
  MakeClient();
  node_.mode = FakeNode::Mode::kHold;
  Results res;
  constexpr int kN = 10;
  for (int i = 0; i < kN; ++i) {
    client_->ReadLac(SegmentId(100 + i), [&res, i](const Status& st, LacReply r) { res.Add(i, st, r.lac.value()); });
  }
  ASSERT_TRUE(WaitFor([&] { return HeldCount() == kN; }));
  EXPECT_EQ(client_->in_flight(), static_cast<size_t>(kN));
  // Answer in reverse order; each segment's LAC is its own number.
  server_loop_.RunSync([&] {
    for (int i = kN - 1; i >= 0; --i) {
      auto& h = node_.held[i];
      node_.lacs[h.req.read_lac().segment_id()] = static_cast<int64_t>(h.req.read_lac().segment_id()) * 10;
      node_.Answer(h.conn, h.req, {});
    }
    node_.held.clear();
  });
  ASSERT_TRUE(WaitFor([&] { return res.size() == kN; }));
  const auto items = res.Get();
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(items[i].tag, kN - 1 - i);  // completion order follows the replies
    EXPECT_TRUE(items[i].status.ok());
    EXPECT_EQ(items[i].value, (100 + items[i].tag) * 10);
  }
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(NodeClientTest, WindowFullFailsAtOnce) {
  NodeClientOptions o = Options();
  o.window = 4;
  MakeClient(o);
  node_.mode = FakeNode::Mode::kHold;
  Results res;
  for (int i = 0; i < 4; ++i) {
    client_->AddEntry(SegmentId(1), EntryId(i), kNoEntry, Slice::CopyOf("p"), false,
                      [&res, i](const Status& st) { res.Add(i, st); });
  }
  ASSERT_TRUE(WaitFor([&] { return HeldCount() == 4; }));
  client_->AddEntry(SegmentId(1), EntryId(4), kNoEntry, Slice::CopyOf("p"), false,
                    [&res](const Status& st) { res.Add(4, st); });
  ASSERT_TRUE(WaitFor([&] { return res.size() == 1; }));
  auto items = res.Get();
  EXPECT_EQ(items[0].tag, 4);
  EXPECT_TRUE(items[0].status.Is(NetErrc::kWindowFull)) << items[0].status.ToString();
  EXPECT_FALSE(net::OutcomeUnknown(NetErrc::kWindowFull));
  EXPECT_EQ(HeldCount(), 4u);  // not sent
  server_loop_.RunSync([&] {
    for (auto& h : node_.held) node_.Answer(h.conn, h.req, h.payload);
    node_.held.clear();
  });
  ASSERT_TRUE(WaitFor([&] { return res.size() == 5; }));
  for (const auto& it : res.Get()) {
    if (it.tag != 4) EXPECT_TRUE(it.status.ok()) << it.status.ToString();
  }
  node_.mode = FakeNode::Mode::kAnswer;
  EXPECT_TRUE(client_->AddEntrySync(SegmentId(1), EntryId(4), kNoEntry, Slice::CopyOf("p")).ok());
}

TEST_F(NodeClientTest, TimeoutThenTheLateReplyIsDropped) {
  NodeClientOptions o = Options();
  o.request_timeout_ms = 200;
  MakeClient(o);
  node_.mode = FakeNode::Mode::kHold;
  const auto start = std::chrono::steady_clock::now();
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("late"));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(st.Is(NetErrc::kTimeout)) << st.ToString();
  EXPECT_TRUE(net::OutcomeUnknown(NetErrc::kTimeout));
  EXPECT_GE(took, std::chrono::milliseconds(190));
  EXPECT_EQ(client_->in_flight(), 0u);
  ASSERT_EQ(HeldCount(), 1u);
  server_loop_.RunSync([&] {
    for (auto& h : node_.held) node_.Answer(h.conn, h.req, h.payload);
    node_.held.clear();
  });
  ASSERT_TRUE(WaitFor([&] { return client_->dropped_replies() == 1; }));
  node_.mode = FakeNode::Mode::kAnswer;
  EXPECT_TRUE(client_->AddEntrySync(SegmentId(1), EntryId(1), kNoEntry, Slice::CopyOf("ok")).ok());
  EXPECT_EQ(node_.opens.load(), 1);  // the connection survived the timeout
}

TEST_F(NodeClientTest, LongPollReadsGetTheirPollTimeoutOnTop) {
  NodeClientOptions o = Options();
  o.request_timeout_ms = 100;
  MakeClient(o);
  ASSERT_TRUE(client_->AddEntrySync(SegmentId(3), EntryId(0), kNoEntry, Slice::CopyOf("tail")).ok());
  node_.mode = FakeNode::Mode::kHold;
  Results res;
  client_->ReadEntry(SegmentId(3), EntryId(0), false, 400,
                     [&res](const Status& st, EntryReply&& r) { res.Add(0, st, r.has_entry ? 1 : 0); });
  ASSERT_TRUE(WaitFor([&] { return HeldCount() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(250));  // past request_timeout_ms alone
  EXPECT_EQ(res.size(), 0u);
  server_loop_.RunSync([&] {
    for (auto& h : node_.held) node_.Answer(h.conn, h.req, {});
    node_.held.clear();
  });
  ASSERT_TRUE(WaitFor([&] { return res.size() == 1; }));
  auto items = res.Get();
  EXPECT_TRUE(items[0].status.ok()) << items[0].status.ToString();
  EXPECT_EQ(items[0].value, 1);
}

TEST_F(NodeClientTest, ConnectionLossFailsInFlightAndTheNextCallReconnects) {
  MakeClient();
  ASSERT_TRUE(client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a")).ok());
  node_.mode = FakeNode::Mode::kHold;
  Results res;
  for (int i = 0; i < 3; ++i) {
    client_->AddEntry(SegmentId(1), EntryId(1 + i), kNoEntry, Slice::CopyOf("b"), false,
                      [&res, i](const Status& st) { res.Add(i, st); });
  }
  ASSERT_TRUE(WaitFor([&] { return HeldCount() == 3; }));
  server_loop_.RunSync([&] {
    for (auto& c : node_.conns) c->Close();
    node_.held.clear();
  });
  ASSERT_TRUE(WaitFor([&] { return res.size() == 3; }));
  for (const auto& it : res.Get()) {
    EXPECT_TRUE(it.status.Is(NetErrc::kConnectionLost)) << it.status.ToString();
  }
  EXPECT_EQ(client_->in_flight(), 0u);
  node_.mode = FakeNode::Mode::kAnswer;
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(1), kNoEntry, Slice::CopyOf("b"));
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(node_.opens.load(), 2);
}

TEST_F(NodeClientTest, ServerClosingOnARequestIsAConnectionLoss) {
  MakeClient();
  node_.mode = FakeNode::Mode::kCloseOnRequest;
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a"));
  EXPECT_TRUE(st.Is(NetErrc::kConnectionLost)) << st.ToString();
  EXPECT_TRUE(net::OutcomeUnknown(NetErrc::kConnectionLost));
  node_.mode = FakeNode::Mode::kAnswer;
  EXPECT_TRUE(client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a")).ok());
}

TEST_F(NodeClientTest, AnUnparseableReplyDropsTheConnection) {
  MakeClient();
  node_.mode = FakeNode::Mode::kGarbageHeader;
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a"));
  EXPECT_TRUE(st.Is(NetErrc::kConnectionLost)) << st.ToString();
  node_.mode = FakeNode::Mode::kAnswer;
  EXPECT_TRUE(client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a")).ok());
  EXPECT_EQ(node_.opens.load(), 2);
}

TEST_F(NodeClientTest, ABrokenReplyStreamFailsInFlightAtOnce) {
  // A "node" that answers every request with an HTTP error line.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  std::thread bad_node([lfd] {
    int c = ::accept(lfd, nullptr, nullptr);
    if (c < 0) return;
    char buf[256];
    if (::recv(c, buf, sizeof(buf), 0) > 0) {
      const char reply[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
      IgnoreError(::send(c, reply, sizeof(reply) - 1, MSG_NOSIGNAL));
    }
    ::recv(c, buf, sizeof(buf), 0);  // until the client closes
    ::close(c);
  });
  NodeClientOptions o;
  o.address = HostPort{"127.0.0.1", ntohs(a.sin_port)};
  o.request_timeout_ms = 10000;
  MakeClient(o);
  const auto start = std::chrono::steady_clock::now();
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a"));
  EXPECT_TRUE(st.Is(NetErrc::kConnectionLost)) << st.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  bad_node.join();
  ::close(lfd);
}

TEST_F(NodeClientTest, ServerNotListeningIsConnectFailed) {
  // A port that was just in use and is now closed.
  uint16_t port = 0;
  {
    net::EventLoop loop("probe");
    loop.Start();
    FakeNode other;
    net::ServerOptions so;
    so.listen = HostPort{"127.0.0.1", 0};
    net::TcpServer s(&loop, so, &other);
    ASSERT_TRUE(s.Start().ok());
    port = s.port();
    s.Stop();
    loop.Stop();
  }
  NodeClientOptions o;
  o.address = HostPort{"127.0.0.1", port};
  MakeClient(o);
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a"));
  EXPECT_TRUE(st.Is(NetErrc::kConnectFailed)) << st.ToString();
  EXPECT_FALSE(net::OutcomeUnknown(NetErrc::kConnectFailed));
  // Within the reconnect backoff the next call fails at once, also as "not sent".
  auto r = client_->ReadLacSync(SegmentId(1));
  EXPECT_TRUE(r.status().Is(NetErrc::kConnectFailed)) << r.status().ToString();
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(NodeClientTest, BadAddressIsConnectFailed) {
  NodeClientOptions o;
  o.address = HostPort{"not-an-ip", 1};
  MakeClient(o);
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a"));
  EXPECT_TRUE(st.Is(NetErrc::kConnectFailed)) << st.ToString();
}

TEST_F(NodeClientTest, ChecksumMismatchOnReadIsIoError) {
  MakeClient();
  ASSERT_TRUE(client_->AddEntrySync(SegmentId(2), EntryId(0), kNoEntry, Slice::CopyOf("precious")).ok());
  node_.corrupt_crc = true;
  Results res;
  std::atomic<bool> got_bytes{false};
  client_->ReadEntry(SegmentId(2), EntryId(0), false, 0, [&](const Status& st, EntryReply&& r) {
    if (!r.payload.empty() || r.has_entry) got_bytes = true;
    res.Add(0, st);
  });
  ASSERT_TRUE(WaitFor([&] { return res.size() == 1; }));
  const auto items = res.Get();
  EXPECT_TRUE(items[0].status.Is(NodeErrc::kIoError)) << items[0].status.ToString();
  EXPECT_FALSE(got_bytes.load()) << "bad bytes must never reach the caller";
  node_.corrupt_crc = false;
  auto ok = client_->ReadEntrySync(SegmentId(2), EntryId(0));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->payload.ToString(), "precious");
}

TEST_F(NodeClientTest, CloseFailsInFlightWithClosed) {
  MakeClient();
  node_.mode = FakeNode::Mode::kHold;
  Results res;
  for (int i = 0; i < 3; ++i) {
    client_->ReadEntry(SegmentId(1), EntryId(i), false, 0,
                       [&res, i](const Status& st, EntryReply&&) { res.Add(i, st); });
  }
  ASSERT_TRUE(WaitFor([&] { return HeldCount() == 3; }));
  client_->Close();
  ASSERT_EQ(res.size(), 3u);  // Close waited for the failures
  for (const auto& it : res.Get()) EXPECT_TRUE(it.status.Is(NetErrc::kClosed)) << it.status.ToString();
  EXPECT_EQ(client_->in_flight(), 0u);
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a"));
  EXPECT_TRUE(st.Is(NetErrc::kClosed)) << st.ToString();
  client_->Close();  // idempotent
  EXPECT_TRUE(WaitFor([&] { return node_.closes.load() == 1; }));
}

TEST_F(NodeClientTest, OversizedPayloadIsRefusedBeforeSending) {
  NodeClientOptions o = Options();
  o.max_frame_bytes = 64u << 10;
  MakeClient(o);
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf(std::string(64u << 10, 'x')));
  EXPECT_TRUE(st.Is(NodeErrc::kBadRequest)) << st.ToString();
  EXPECT_EQ(node_.requests.load(), 0);
}

TEST_F(NodeClientTest, ClientsOnAStoppedLoopFailWithClosed) {
  MakeClient();
  ASSERT_TRUE(client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a")).ok());
  client_loop_.Stop();  // the loop stops under the client
  Status st = client_->AddEntrySync(SegmentId(1), EntryId(1), kNoEntry, Slice::CopyOf("a"));
  EXPECT_TRUE(st.Is(NetErrc::kClosed)) << st.ToString();
  client_->Close();
}

// The pattern benchmarks use: keep the window full by issuing the next
// request from each completion callback, on the loop thread.
struct Pump {
  NodeClient* client = nullptr;
  int total = 0;
  int issued = 0;  // loop thread
  size_t max_in_flight = 0;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::string payload = std::string(100, 'w');

  void Issue() {
    const int n = issued++;
    client->AddEntry(SegmentId(9), EntryId(n), kNoEntry, Slice::Unowned(payload.data(), payload.size()), false,
                     [this](const Status& st) { Done(st); });
    max_in_flight = std::max(max_in_flight, client->in_flight());
  }
  void Done(const Status& st) {
    if (st.ok()) {
      ok++;
    } else {
      failed++;
    }
    if (issued < total) Issue();
  }
};

TEST_F(NodeClientTest, WindowKeptFullFromCompletionCallbacks) {
  NodeClientOptions o = Options();
  o.window = 16;
  MakeClient(o);
  Pump pump;
  pump.client = client_.get();
  pump.total = 20000;
  client_loop_.RunSync([&] {
    for (int i = 0; i < 16; ++i) pump.Issue();
  });
  ASSERT_TRUE(WaitFor([&] { return pump.ok.load() + pump.failed.load() == pump.total; }, 30000));
  EXPECT_EQ(pump.failed.load(), 0);
  size_t max_in_flight = 0;
  client_loop_.RunSync([&] { max_in_flight = pump.max_in_flight; });
  EXPECT_LE(max_in_flight, 16u);
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(NodeClientTest, SteadyStateRequestsAllocateLittleOnTheLoopThread) {
#ifdef DLOG_NO_ALLOC_COUNT
  GTEST_SKIP() << "allocations are not counted under this sanitizer";
#endif
  NodeClientOptions o = Options();
  o.window = 16;
  MakeClient(o);
  Pump pump;
  pump.client = client_.get();
  pump.total = 2000;  // warm-up: buffers reach their steady size
  client_loop_.RunSync([&] {
    for (int i = 0; i < 16; ++i) pump.Issue();
  });
  ASSERT_TRUE(WaitFor([&] { return pump.ok.load() == pump.total; }, 30000));
  constexpr int kMeasured = 5000;
  client_loop_.RunSync([&] {
    g_allocs = 0;
    t_count_allocs = true;
    pump.total += kMeasured;
    for (int i = 0; i < 16; ++i) pump.Issue();
  });
  ASSERT_TRUE(WaitFor([&] { return pump.ok.load() == pump.total; }, 30000));
  uint64_t allocs = 0;
  client_loop_.RunSync([&] {
    t_count_allocs = false;
    allocs = g_allocs.load();
  });
  const double per_request = static_cast<double>(allocs) / kMeasured;
  std::printf("heap allocations per request on the client loop thread: %.3f\n", per_request);
  // What remains is the input chunk per socket read (a read carries one or more replies).
  EXPECT_LE(per_request, 1.05);
}

TEST_F(NodeClientTest, CallsFromManyThreads) {
  MakeClient();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string p = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (client_->AddEntrySync(SegmentId(t), EntryId(i), kNoEntry, Slice::CopyOf(p)).ok()) ok++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  auto r = client_->ReadEntrySync(SegmentId(2), EntryId(17));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->payload.ToString(), "t2-17");
}

TEST_F(NodeClientTest, DestroyingTheClientFromItsOwnCallback) {
  MakeClient();
  ASSERT_TRUE(client_->AddEntrySync(SegmentId(1), EntryId(0), kNoEntry, Slice::CopyOf("a")).ok());
  std::atomic<bool> done{false};
  NodeClient* raw = client_.release();
  raw->ReadLac(SegmentId(1), [&, raw](const Status& st, LacReply) {
    EXPECT_TRUE(st.ok());
    delete raw;  // Close() and destruction on the loop thread, inside a callback
    done = true;
  });
  ASSERT_TRUE(WaitFor([&] { return done.load(); }));
}

}  // namespace
}  // namespace dlog::node
