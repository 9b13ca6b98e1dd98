#include "logstore/segment/segment_client.h"

#include "common/check.h"
#include "common/config.h"

namespace dlog::segment {

SegmentClient::SegmentClient(metadata::MetadataStore* store, metadata::Layout layout, SegmentOptions options)
    : store_(store), layout_(std::move(layout)), options_(options) {}

SegmentClient::~SegmentClient() { Close(); }

void SegmentClient::Close() {
  DLOG_CHECK(!loop()->InLoopThread()) << "SegmentClient::Close on its loop";
  std::map<std::string, std::unique_ptr<node::NodeClient>> nodes;
  loop()->RunSync([&] {
    closed_ = true;
    nodes.swap(nodes_);
  });
  // NodeClient::Close must not run on the loop; it fails what is in flight
  // (callbacks run on the loop, which still runs).
  for (auto& [id, c] : nodes) c->Close();
  // Let the kClosed callbacks run before the clients go away.
  loop()->RunSync([] {});
  nodes.clear();
}

node::NodeClient* SegmentClient::Node(const std::string& node_id) {
  if (closed_) return nullptr;
  auto it = nodes_.find(node_id);
  if (it != nodes_.end()) return it->second.get();
  auto hp = ParseHostPort(node_id);
  if (!hp.ok()) return nullptr;
  node::NodeClientOptions o;
  o.address = *hp;
  o.window = options_.node_window;
  o.request_timeout_ms = options_.node_request_timeout_ms;
  o.connect_timeout_ms = std::min<int64_t>(3000, options_.node_request_timeout_ms);
  auto c = std::make_unique<node::NodeClient>(loop(), o);
  node::NodeClient* raw = c.get();
  nodes_.emplace(node_id, std::move(c));
  return raw;
}

}  // namespace dlog::segment
