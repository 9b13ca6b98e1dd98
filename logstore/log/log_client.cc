#include "logstore/log/log_client.h"

#include "logstore/log/errors.h"
#include "metadata/zk_store.h"

namespace dlog::log {

namespace {
Status EnsureLayout(metadata::MetadataStore* store, const metadata::Layout& layout) {
  for (const std::string& d : layout.Directories()) {
    if (Status st = store->EnsurePathSync(d); !st.ok()) return st.WithContext("creating " + d);
  }
  return Status::OK();
}
}  // namespace

Result<std::unique_ptr<LogClient>> LogClient::Open(const LogClientOptions& options) {
  Result<std::string> connect = metadata::ParseZkUrl(options.metadata_url);
  if (!connect.ok()) return connect.status();
  Result<metadata::Layout> layout = metadata::Layout::Make(options.cluster);
  if (!layout.ok()) return layout.status();
  std::unique_ptr<LogClient> c(new LogClient());
  c->loop_ = std::make_unique<net::EventLoop>("log-client");
  c->loop_->Start();
  metadata::ZkStoreOptions zo;
  zo.connect = *connect;
  zo.session_timeout = options.session_timeout;
  auto zk = metadata::ZkStore::Open(zo, c->loop_.get());
  if (!zk.ok()) {
    c->loop_->Stop();
    return zk.status().WithContext("connecting to " + options.metadata_url);
  }
  c->owned_store_ = std::move(*zk);
  c->store_ = c->owned_store_.get();
  if (Status st = EnsureLayout(c->store_, *layout); !st.ok()) return st;
  c->segments_ = std::make_unique<segment::SegmentClient>(c->store_, *layout, options.segment);
  return c;
}

Result<std::unique_ptr<LogClient>> LogClient::Attach(metadata::MetadataStore* store, const std::string& cluster,
                                                     segment::SegmentOptions options) {
  Result<metadata::Layout> layout = metadata::Layout::Make(cluster);
  if (!layout.ok()) return layout.status();
  if (Status st = EnsureLayout(store, *layout); !st.ok()) return st;
  std::unique_ptr<LogClient> c(new LogClient());
  c->store_ = store;
  c->segments_ = std::make_unique<segment::SegmentClient>(store, *layout, options);
  return c;
}

LogClient::~LogClient() {
  // The store first: what it still holds (callbacks of requests left by
  // readers and writers already destroyed) fails with kClosed while the
  // segment client is alive, so nothing runs against a freed one.
  if (owned_store_) owned_store_->CloseSync();
  if (segments_) segments_->Close();
  segments_.reset();
  owned_store_.reset();
  if (loop_) loop_->Stop();
}

}  // namespace dlog::log
