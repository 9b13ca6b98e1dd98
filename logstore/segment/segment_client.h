// SegmentClient: what every segment writer, reader and recovery of one
// process shares: the metadata store and layout, one NodeClient per storage
// node, the options and the probe.
//
// Threading: everything runs on ONE event loop, the metadata store's
// (store->loop()): the node clients are created on it, so node replies,
// metadata replies, timers and all segment state machines run on that one
// thread and need no locks. Public methods of writers/readers/recoveries are
// thread-safe: they post to that loop. Blocking (*Sync) calls must not be made
// on the loop.
//
// Node ids are the nodes' RPC addresses ("host:port"), as `dlogd logstore`
// registers them under Layout::NodesDir(); the client connects to the id.
//
// Lifetime: destroy (or Close) every writer and reader first, then close the
// store (what is still pending in it — e.g. an abandoned reader's open — fails
// with kClosed and runs its callback while this client still exists), then
// Close() this client (it closes the node clients: what is in flight fails
// with NetErrc::kClosed) and destroy it, then stop the loop.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "logstore/node/client.h"
#include "logstore/segment/probe.h"
#include "metadata/layout.h"
#include "metadata/metadata_store.h"
#include "net/event_loop.h"

namespace dlog::segment {

struct SegmentOptions {
  // Adds in flight per writer; an Add beyond it fails with kWindowFull.
  size_t writer_window = 4096;
  // Node request timeout (a node that does not answer an add in this time is
  // replaced by an ensemble change).
  int64_t node_request_timeout_ms = 5000;
  size_t node_window = 16384;  // per node client
  // An idle writer sends WriteLac this long after its LAC moved without an add
  // carrying it (0: on the loop's next turn; tailing readers see the last entry
  // about a millisecond sooner, at the cost of a WriteLac per idle gap).
  int64_t lac_flush_ms = 0;
  // Backoff before resending after TOO_MANY_REQUESTS (doubles up to 64x).
  int64_t too_many_backoff_ms = 2;
  // A read with no answer after this long is also sent to the next replica.
  int64_t speculative_read_ms = 100;
  // Retry delay for recovery reads/fences/rewrites and metadata retries.
  int64_t retry_backoff_ms = 20;
  // Ensemble change: delay before retrying when no replacement exists and a
  // write set would fall below Qa live nodes.
  int64_t no_spare_retry_ms = 200;
};

class SegmentClient {
 public:
  // `store` must outlive this client; its loop runs everything.
  SegmentClient(metadata::MetadataStore* store, metadata::Layout layout, SegmentOptions options = {});
  // Closes if Close() was not called. Not on the loop.
  ~SegmentClient();
  SegmentClient(const SegmentClient&) = delete;
  SegmentClient& operator=(const SegmentClient&) = delete;

  // Closes every node client. Not on the loop. Idempotent.
  void Close();

  net::EventLoop* loop() const { return store_->loop(); }
  metadata::MetadataStore* store() const { return store_; }
  const metadata::Layout& layout() const { return layout_; }
  const SegmentOptions& options() const { return options_; }
  SegmentProbe& probe() { return probe_; }

  // Loop thread only: the client for `node_id` (created on first use), or
  // null if the id is not a host:port or the client is closed.
  node::NodeClient* Node(const std::string& node_id);

 private:
  metadata::MetadataStore* const store_;
  const metadata::Layout layout_;
  const SegmentOptions options_;
  SegmentProbe probe_;
  bool closed_ = false;                                             // loop thread
  std::map<std::string, std::unique_ptr<node::NodeClient>> nodes_;  // loop thread
};

}  // namespace dlog::segment
