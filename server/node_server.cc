#include "server/node_server.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include "logstore/node/service.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"

namespace dlog::server {

Result<NodeServerOptions> NodeOptionsFromFlags(const LogstoreFlags& f) {
  NodeServerOptions o;
  auto listen = ParseHostPort(f.listen);
  if (!listen.ok()) return listen.status().WithContext("--listen");
  o.listen = *listen;
  std::string node_id = f.node_id.empty() ? listen->ToString() : f.node_id;
  if (f.node_id.empty() && listen->port == 0) {
    return Status::Error(CommonErrc::kInvalidArgument, "with --listen port 0, pass --node-id");
  }
  node::StoreOptions& so = o.store;
  so.data_dir = f.data_dir;
  so.node_id = node_id;
  so.cluster_id = f.cluster_id;
  so.format = f.format;
  struct SizeFlag {
    const std::string& text;
    uint64_t* out;
    const char* name;
  };
  uint64_t max_frame = 0, inbound = 0;
  for (const SizeFlag& s : {SizeFlag{f.journal_file_size, &so.journal_file_bytes, "--journal-file-size"},
                            SizeFlag{f.journal_max_batch, &so.journal_max_batch_bytes, "--journal-max-batch"},
                            SizeFlag{f.journal_queue_size, &so.journal_queue_max_bytes, "--journal-queue-size"},
                            SizeFlag{f.cache_size, &so.cache_bytes, "--cache-size"},
                            SizeFlag{f.max_frame_size, &max_frame, "--max-frame-size"},
                            SizeFlag{f.inbound_memory, &inbound, "--inbound-memory"}}) {
    auto v = ParseByteSize(s.text);
    if (!v.ok()) return v.status().WithContext(s.name);
    *s.out = *v;
  }
  if (max_frame < 1024 || max_frame > (1u << 30)) {
    return Status::Error(CommonErrc::kInvalidArgument, "--max-frame-size must be in [1KiB, 1GiB]");
  }
  o.max_frame_bytes = static_cast<uint32_t>(max_frame);
  o.inbound_budget_bytes = static_cast<int64_t>(inbound);
  auto wait = ParseDurationMicros(f.journal_max_wait);
  if (!wait.ok()) return wait.status().WithContext("--journal-max-wait");
  so.journal_max_wait_us = *wait;
  auto flush = ParseDurationMicros(f.index_flush_interval);
  if (!flush.ok()) return flush.status().WithContext("--index-flush-interval");
  so.index_flush_interval_ms = *flush / 1000;
  return o;
}

class NodeServer::Parts {
 public:
  Parts(std::unique_ptr<node::Store> s, const NodeServerOptions& o)
      : store(std::move(s)),
        loop("node-io"),
        service(&loop, store.get(), ServiceOptions(o)),
        server(&loop, ServerOptions(o), &service) {}

  static node::NodeServiceOptions ServiceOptions(const NodeServerOptions& o) {
    node::NodeServiceOptions so;
    so.limits.max_payload_bytes = o.max_frame_bytes;
    return so;
  }
  static net::ServerOptions ServerOptions(const NodeServerOptions& o) {
    net::ServerOptions so;
    so.listen = o.listen;
    so.max_frame_bytes = o.max_frame_bytes;
    so.inbound_budget_bytes = o.inbound_budget_bytes;
    return so;
  }

  std::unique_ptr<node::Store> store;
  net::EventLoop loop;
  node::NodeService service;
  net::TcpServer server;
  bool serving = false;
};

Result<std::unique_ptr<NodeServer>> NodeServer::Start(NodeServerOptions options) {
  std::unique_ptr<NodeServer> n(new NodeServer());
  n->options_ = std::move(options);
  n->options_.store.probe = &n->probe_;
  auto store = node::Store::Open(n->options_.store);
  if (!store.ok()) {
    n->stopped_ = true;
    return store.status();
  }
  n->parts_ = std::make_unique<Parts>(std::move(store).value(), n->options_);
  Parts& p = *n->parts_;
  p.loop.Start();
  p.service.Start();
  Status st = p.server.Start();
  if (!st.ok()) {
    IgnoreError(n->Stop());
    return st.WithContext("node listener " + n->options_.listen.ToString());
  }
  p.serving = true;
  return n;
}

NodeServer::~NodeServer() { IgnoreError(Stop()); }

Status NodeServer::Stop() {
  if (stopped_) return stop_status_;
  stopped_ = true;
  Parts& p = *parts_;
  p.server.Stop();
  stop_status_ = p.store->Close();
  p.service.Stop();
  p.loop.Stop();
  return stop_status_;
}

uint16_t NodeServer::port() const { return parts_->server.port(); }

std::string NodeServer::address() const { return options_.listen.host + ":" + std::to_string(port()); }

node::StoreInfo NodeServer::Info() const { return parts_->store->Info(); }

sigset_t SetUpProcess() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    IgnoreError(setrlimit(RLIMIT_NOFILE, &rl));
  }
  return sigs;
}

int WaitForTerminationSignal(const sigset_t& sigs) {
  int sig = 0;
  sigwait(&sigs, &sig);
  return sig;
}

}  // namespace dlog::server
