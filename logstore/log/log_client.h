// LogClient: everything a process needs to use log streams, from one
// metadata URL: an event loop, the metadata store, and a SegmentClient.
//
//   zk://HOST:PORT[,HOST:PORT...][/dlog]   a ZooKeeper cluster (tree under /dlog/<cluster>)
//
// or an already open store (dlogd standalone passes its embedded store).
// Namespaces are opened through Namespace::OpenSync(client->segments(), ...).
//
// Threading: Open/destructor block and must not run on the loop. Destroy
// every writer, reader and namespace first.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "logstore/segment/segment_client.h"
#include "metadata/layout.h"
#include "metadata/metadata_store.h"
#include "net/event_loop.h"

namespace dlog::log {

struct LogClientOptions {
  std::string metadata_url;      // zk://...
  std::string cluster = "dlog";  // the tree lives under /dlog/<cluster>
  std::chrono::milliseconds session_timeout{10'000};
  segment::SegmentOptions segment;
};

class LogClient {
 public:
  static Result<std::unique_ptr<LogClient>> Open(const LogClientOptions& options);
  // Over a store someone else owns (it must outlive this client).
  static Result<std::unique_ptr<LogClient>> Attach(metadata::MetadataStore* store, const std::string& cluster,
                                                   segment::SegmentOptions options = {});
  ~LogClient();
  LogClient(const LogClient&) = delete;
  LogClient& operator=(const LogClient&) = delete;

  segment::SegmentClient* segments() { return segments_.get(); }
  metadata::MetadataStore* store() { return store_; }
  const metadata::Layout& layout() const { return segments_->layout(); }

 private:
  LogClient() = default;
  std::unique_ptr<net::EventLoop> loop_;  // owned (Open) or null (Attach)
  std::unique_ptr<metadata::MetadataStore> owned_store_;
  metadata::MetadataStore* store_ = nullptr;
  std::unique_ptr<segment::SegmentClient> segments_;
};

}  // namespace dlog::log
