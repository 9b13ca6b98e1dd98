// NodeClient: an asynchronous client for one logstore node, with a bounded
// in-flight window, request ids, per-request timeouts and reconnects.
//
// Threading: every method is thread-safe. Callbacks run on the client's
// EventLoop thread; they may call the client again (e.g. to keep a window
// full). A call made on the loop thread sends at once; from another thread it
// is posted. The *Sync wrappers block the caller and must not be called on
// the loop thread.
//
// Errors a callback can get: a NodeErrc from the node (protocol/node_errors.h)
// or a NetErrc: kWindowFull (not sent), kConnectFailed (not sent), kTimeout
// and kConnectionLost (sent: outcome unknown), kClosed.
//
// Lifetime: Close() fails what is in flight with kClosed and must be called
// (from any thread but the loop's) before destruction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "common/config.h"
#include "common/status.h"
#include "common/strong_id.h"
#include "net/event_loop.h"
#include "node.pb.h"

namespace dlog::node {

struct NodeClientOptions {
  HostPort address;
  size_t window = 1024;                // requests in flight at most
  int64_t request_timeout_ms = 10000;  // long-poll reads add their poll timeout to this
  int64_t connect_timeout_ms = 3000;
  uint32_t max_frame_bytes = 5u << 20;
};

struct EntryReply {
  EntryId lac = kNoEntry;
  EntryId last_entry = kNoEntry;
  bool fenced = false;
  bool has_entry = false;
  Slice payload;  // checked against the node-sent CRC32C before the callback (mismatch -> kIoError)
};

struct LacReply {
  EntryId lac = kNoEntry;
  EntryId last_entry = kNoEntry;
  bool fenced = false;
};

class NodeClient {
 public:
  using AddCallback = std::function<void(const Status&)>;
  using ReadCallback = std::function<void(const Status&, EntryReply&&)>;
  using LacCallback = std::function<void(const Status&, LacReply)>;
  using DoneCallback = std::function<void(const Status&)>;
  using InfoCallback = std::function<void(const Status&, proto::NodeInfoResponse)>;

  NodeClient(net::EventLoop* loop, NodeClientOptions options);
  ~NodeClient();
  NodeClient(const NodeClient&) = delete;
  NodeClient& operator=(const NodeClient&) = delete;

  // `payload` is sent as is; its CRC32C is computed here.
  void AddEntry(SegmentId segment, EntryId entry, EntryId lac, Slice payload, bool recovery, AddCallback cb);
  void ReadEntry(SegmentId segment, EntryId entry, bool fence, uint32_t long_poll_timeout_ms, ReadCallback cb);
  void ReadLac(SegmentId segment, LacCallback cb);
  void WriteLac(SegmentId segment, EntryId lac, LacCallback cb);
  void DeleteSegments(std::vector<SegmentId> segments, DoneCallback cb);
  void NodeInfo(InfoCallback cb);

  Status AddEntrySync(SegmentId segment, EntryId entry, EntryId lac, Slice payload, bool recovery = false);
  Result<EntryReply> ReadEntrySync(SegmentId segment, EntryId entry, bool fence = false,
                                   uint32_t long_poll_timeout_ms = 0);
  Result<LacReply> ReadLacSync(SegmentId segment);
  Result<LacReply> WriteLacSync(SegmentId segment, EntryId lac);
  Status DeleteSegmentsSync(std::vector<SegmentId> segments);
  Result<proto::NodeInfoResponse> NodeInfoSync();

  void Close();
  size_t in_flight() const;
  const HostPort& address() const;
  // Replies that matched no request in flight (late, after a timeout) and were dropped.
  uint64_t dropped_replies() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace dlog::node
