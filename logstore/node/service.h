// NodeService: the node's RPC front end. It decodes NodeRequest frames from
// a TcpServer, validates them, hands them to the Store, and sends one
// NodeResponse per request (with the request's id).
//
// Threading: OnFrame / OnProtocolError / OnClose run on the service's loop.
// Store callbacks arrive on store threads (or inline); they only push a
// pooled Pending record onto a mutex-protected completion list and wake the
// loop with uv_async, so replies are always built and sent on the loop thread
// and the steady state allocates nothing per request.
//
// Long-poll reads: a ReadEntry with long_poll_timeout_ms > 0 for an entry above
// the node's LAC waits (on the loop, bounded by max_long_poll_waiters; beyond
// it the read is answered at once) until the store reports that the LAC reached
// the entry, or until the timeout, when it is answered with NO_SUCH_ENTRY and
// the current LAC.
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/thread_annotations.h"
#include "logstore/node/store.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"
#include "node.pb.h"
#include "protocol/node_request.h"

namespace dlog::node {

struct NodeServiceOptions {
  protocol::NodeRequestLimits limits;
  size_t max_long_poll_waiters = 10000;
};

class NodeService : public net::FrameHandler {
 public:
  // `loop` must be the loop the TcpServer runs on; `store` outlives the service.
  NodeService(net::EventLoop* loop, Store* store, NodeServiceOptions options);
  ~NodeService() override;

  // Registers the uv handles on the loop and the store's LAC listener. Any thread but the loop's.
  void Start();
  // Drops parked long-polls, sends what the store completed, closes the handles.
  // Any thread but the loop's. Shutdown order: TcpServer::Stop, Store::Close
  // (which completes everything queued), then this.
  void Stop();

  void OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) override;
  void OnProtocolError(const net::ConnectionPtr& conn, const Status& error) override;
  void OnOpen(const net::ConnectionPtr& conn) override;
  void OnClose(const net::ConnectionPtr& conn) override;

 private:
  enum class Kind : uint8_t { kAdd, kRead, kDelete };
  struct Pending {
    net::ConnectionPtr conn;
    uint64_t request_id = 0;
    int64_t start_ns = 0;
    Kind kind = Kind::kAdd;
    SegmentId segment;
    EntryId entry;
    Status status;
    ReadResult read;
    uint32_t deleted = 0;
    int64_t poll_deadline_ns = 0;  // long-poll waiters only
  };
  struct LacEvent {
    SegmentId segment;
    EntryId lac;
  };

  Pending* Acquire(const net::ConnectionPtr& conn, uint64_t request_id, Kind kind);
  void Release(Pending* p);
  // Any thread: queue a finished request for the loop.
  void Complete(Pending* p);

  void HandleAdd(const net::ConnectionPtr& conn, const proto::NodeRequest& req, Slice payload, int64_t start_ns);
  void HandleRead(const net::ConnectionPtr& conn, const proto::NodeRequest& req);
  void StartRead(Pending* p, bool fence);
  void HandleDelete(const net::ConnectionPtr& conn, const proto::NodeRequest& req);
  void ReplyError(const net::ConnectionPtr& conn, uint64_t request_id, const Status& st);
  void SendPending(Pending* p);

  static void OnAsync(uv_async_t* h);
  static void OnPollTimer(uv_timer_t* h);
  void DrainCompletions();
  void WakeLongPolls(SegmentId segment, EntryId lac);
  void ExpireLongPolls(bool all);

  net::EventLoop* const loop_;
  Store* const store_;
  const NodeServiceOptions options_;
  NodeProbe* const probe_;

  // Loop thread only.
  uv_async_t* async_ = nullptr;
  uv_timer_t* poll_timer_ = nullptr;
  proto::NodeRequest request_;    // reused for every frame
  proto::NodeResponse response_;  // reused for every reply
  std::vector<std::unique_ptr<Pending>> pool_;
  std::vector<Pending*> free_;
  std::unordered_map<SegmentId, std::vector<Pending*>> long_polls_;
  size_t long_poll_count_ = 0;
  std::vector<Pending*> drained_;
  std::vector<LacEvent> drained_lac_;

  Mutex mu_;
  std::vector<Pending*> completed_ DLOG_GUARDED_BY(mu_);
  std::vector<LacEvent> lac_events_ DLOG_GUARDED_BY(mu_);
  bool stopped_ DLOG_GUARDED_BY(mu_) = false;
  std::atomic<bool> has_long_polls_{false};  // written on the loop, read by store threads
};

}  // namespace dlog::node
