// NodeService over a real Store, driven with frames on a fake connection:
// the probe counters the store already keeps are not counted again by the
// service (each fence, FENCED or TOO_MANY_REQUESTS answer counts once).
#include "logstore/node/service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "net/event_loop.h"
#include "store_test_util.h"

namespace dlog::node {
namespace {

using testing::AddSync;
using testing::MustOpen;
using testing::SmallOptions;
using testing::TempDir;

class FakeConnection final : public net::Connection {
 public:
  uint64_t id() const override { return 1; }
  const std::string& peer() const override { return peer_; }
  bool closed() const override { return false; }
  void SendFrame(const google::protobuf::MessageLite& header, std::string_view payload) override {
    SendFrame(header.SerializeAsString(), payload);
  }
  void SendFrame(std::string_view header, std::string_view) override {
    proto::NodeResponse r;
    ASSERT_TRUE(r.ParseFromArray(header.data(), static_cast<int>(header.size())));
    std::lock_guard<std::mutex> l(mu_);
    replies_.push_back(std::move(r));
  }
  void Close() override {}
  size_t queued_output_bytes() const override { return 0; }

  size_t replies() {
    std::lock_guard<std::mutex> l(mu_);
    return replies_.size();
  }
  proto::NodeResponse reply(size_t i) {
    std::lock_guard<std::mutex> l(mu_);
    return replies_.at(i);
  }

 private:
  std::string peer_ = "fake";
  std::mutex mu_;
  std::vector<proto::NodeResponse> replies_;
};

TEST(NodeServiceTest, ProbeCountersAreCountedOnce) {
  TempDir dir;
  auto store = MustOpen(SmallOptions(dir.data(), true));
  ASSERT_TRUE(store);
  ASSERT_TRUE(AddSync(store.get(), 1, 0, "a").ok());
  net::EventLoop loop("svc-test");
  loop.Start();
  NodeService svc(&loop, store.get(), NodeServiceOptions());
  svc.Start();
  auto conn = std::make_shared<FakeConnection>();
  auto send = [&](const proto::NodeRequest& req, const std::string& payload) {
    const std::string header = req.SerializeAsString();
    loop.RunSync([&] { svc.OnFrame(conn, header, Slice::CopyOf(payload)); });
  };
  auto wait_replies = [&](size_t n) {
    for (int i = 0; i < 5000 && conn->replies() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_EQ(conn->replies(), n);
  };

  // A fencing read.
  proto::NodeRequest fence;
  fence.set_request_id(1);
  fence.mutable_read_entry()->set_segment_id(1);
  fence.mutable_read_entry()->set_entry_id(0);
  fence.mutable_read_entry()->set_fence(true);
  send(fence, "");
  wait_replies(1);
  EXPECT_EQ(conn->reply(0).code(), ToWireCode(Status::OK()));
  EXPECT_EQ(store->probe()->fences_total.load(), 1u) << "one fencing read counted twice";

  // A plain add to the fenced segment.
  proto::NodeRequest add;
  add.set_request_id(2);
  auto* a = add.mutable_add_entry();
  a->set_segment_id(1);
  a->set_entry_id(1);
  a->set_lac(-1);
  a->set_payload_crc32c(crc32c::Value("b", 1));
  send(add, "b");
  wait_replies(2);
  EXPECT_EQ(conn->reply(1).code(), ToWireCode(Status::Error(NodeErrc::kFenced, "")));
  EXPECT_EQ(store->probe()->rejected_fenced_total.load(), 1u) << "one FENCED answer counted twice";

  // NodeInfo: nothing lost.
  proto::NodeRequest info;
  info.set_request_id(3);
  info.mutable_node_info();
  send(info, "");
  wait_replies(3);
  EXPECT_EQ(conn->reply(2).code(), ToWireCode(Status::OK()));
  EXPECT_FALSE(conn->reply(2).node_info().lost_unknown_region());

  // ReadLac on a deleted segment: NO_SUCH_SEGMENT, not its stale state.
  ASSERT_TRUE(testing::DeleteSync(store.get(), {SegmentId(1)}).ok());
  proto::NodeRequest lac;
  lac.set_request_id(4);
  lac.mutable_read_lac()->set_segment_id(1);
  send(lac, "");
  wait_replies(4);
  EXPECT_EQ(conn->reply(3).code(), ToWireCode(Status::Error(NodeErrc::kNoSuchSegment, "")));

  ASSERT_TRUE(store->Close().ok());
  svc.Stop();
  loop.Stop();
}

}  // namespace
}  // namespace dlog::node
