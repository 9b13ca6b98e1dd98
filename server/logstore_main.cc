#include "server/logstore_main.h"

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <memory>

#include "common/logging.h"
#include "logstore/node/service.h"
#include "logstore/node/store.h"
#include "metadata/layout.h"
#include "metadata/zk_store.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"
#include "server/metrics.h"
#include "server/node_registration.h"

namespace dlog::server {
namespace {

void RaiseFileLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    IgnoreError(setrlimit(RLIMIT_NOFILE, &rl));
  }
}

}  // namespace

void AddLogstoreOptions(CLI::App* app, LogstoreFlags* f) {
  app->add_option("--data-dir", f->data_dir, "Data directory (journal/, index/, COOKIE)")->required();
  app->add_option("--listen", f->listen, "Address for node RPCs (127.0.0.1:PORT)")->capture_default_str();
  app->add_option("--metrics-listen", f->metrics_listen, "Address for Prometheus /metrics (empty: off)");
  app->add_option("--node-id", f->node_id, "Node id recorded in the cookie (default: the listen address)");
  app->add_option("--cluster-id", f->cluster_id, "Cluster id recorded in the cookie")->capture_default_str();
  app->add_flag("--format", f->format,
                "Initialise a brand-new, empty data dir (refused if it already holds a node's data)");
  app->add_option("--journal-file-size", f->journal_file_size, "Preallocated size of each journal file")
      ->capture_default_str();
  app->add_option("--journal-max-batch", f->journal_max_batch, "Most bytes per journal write+fdatasync")
      ->capture_default_str();
  app->add_option("--journal-max-wait", f->journal_max_wait, "Extra wait to grow a journal batch (e.g. 100us)")
      ->capture_default_str();
  app->add_option("--journal-queue-size", f->journal_queue_size,
                  "Bytes queued for the journal before adds get TOO_MANY_REQUESTS")
      ->capture_default_str();
  app->add_option("--cache-size", f->cache_size, "Tail cache size")->capture_default_str();
  app->add_option("--max-frame-size", f->max_frame_size, "Largest accepted frame")->capture_default_str();
  app->add_option("--inbound-memory", f->inbound_memory, "Memory budget for all connections' inbound frames")
      ->capture_default_str();
  app->add_option("--index-flush-interval", f->index_flush_interval, "Index checkpoint period")->capture_default_str();
  app->add_option("--metadata", f->metadata,
                  "Metadata store: zk://HOST:PORT[,HOST:PORT...][/dlog]. The node checks its cookie there and "
                  "registers itself (tree under /dlog/<cluster id>)");
  app->add_option("--metadata-session-timeout", f->metadata_session_timeout, "ZooKeeper session timeout")
      ->capture_default_str();
}

int RunLogstore(const LogstoreFlags& f) {
  auto fail = [](const Status& st) {
    std::fprintf(stderr, "dlogd logstore: %s\n", st.ToString().c_str());
    return 1;
  };
  auto listen = ParseHostPort(f.listen);
  if (!listen.ok()) return fail(listen.status().WithContext("--listen"));
  std::string node_id = f.node_id.empty() ? listen->ToString() : f.node_id;
  if (f.node_id.empty() && listen->port == 0) {
    return fail(Status::Error(CommonErrc::kInvalidArgument, "with --listen port 0, pass --node-id"));
  }

  node::StoreOptions so;
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
    if (!v.ok()) return fail(v.status().WithContext(s.name));
    *s.out = *v;
  }
  if (max_frame < 1024 || max_frame > (1u << 30)) {
    return fail(Status::Error(CommonErrc::kInvalidArgument, "--max-frame-size must be in [1KiB, 1GiB]"));
  }
  auto wait = ParseDurationMicros(f.journal_max_wait);
  if (!wait.ok()) return fail(wait.status().WithContext("--journal-max-wait"));
  so.journal_max_wait_us = *wait;
  auto flush = ParseDurationMicros(f.index_flush_interval);
  if (!flush.ok()) return fail(flush.status().WithContext("--index-flush-interval"));
  so.index_flush_interval_ms = *flush / 1000;

  // Signals are taken synchronously by this thread (sigwait); every thread
  // started from here on inherits the blocked mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit();

  node::NodeProbe probe;
  so.probe = &probe;
  auto store = node::Store::Open(so);
  if (!store.ok()) return fail(store.status());

  MetricsServer metrics;
  std::string metrics_addr = "off";
  if (!f.metrics_listen.empty()) {
    auto m = ParseHostPort(f.metrics_listen);
    if (!m.ok()) return fail(m.status().WithContext("--metrics-listen"));
    metrics.AddNodeProbe(&probe);
    Status st = metrics.Start(*m);
    if (!st.ok()) return fail(st);
    metrics_addr = m->host + ":" + std::to_string(metrics.port());
  }

  net::EventLoop loop("node-io");
  loop.Start();
  node::NodeServiceOptions svc_opts;
  svc_opts.limits.max_payload_bytes = static_cast<uint32_t>(max_frame);
  node::NodeService service(&loop, store->get(), svc_opts);
  service.Start();
  net::ServerOptions srv_opts;
  srv_opts.listen = *listen;
  srv_opts.max_frame_bytes = static_cast<uint32_t>(max_frame);
  srv_opts.inbound_budget_bytes = static_cast<int64_t>(inbound);
  net::TcpServer server(&loop, srv_opts, &service);
  Status st = server.Start();
  if (!st.ok()) {
    service.Stop();
    IgnoreError((*store)->Close());
    loop.Stop();
    return fail(st);
  }

  // Metadata: the cookie check and the node's registration, once it serves.
  net::EventLoop meta_loop("metadata");
  std::unique_ptr<metadata::ZkStore> meta;
  std::unique_ptr<NodeRegistration> registration;
  auto stop_all = [&] {
    registration.reset();
    if (meta) meta->CloseSync();
    meta.reset();
    meta_loop.Stop();
    server.Stop();
    Status closed = (*store)->Close();
    service.Stop();
    loop.Stop();
    return closed;
  };
  if (!f.metadata.empty()) {
    auto connect = ParseZkUrl(f.metadata);
    auto layout = metadata::Layout::Make(f.cluster_id);
    auto timeout = ParseDurationMicros(f.metadata_session_timeout);
    Status bad = !connect.ok()   ? connect.status().WithContext("--metadata")
                 : !layout.ok()  ? layout.status().WithContext("--cluster-id")
                 : !timeout.ok() ? timeout.status().WithContext("--metadata-session-timeout")
                                 : Status::OK();
    if (!bad.ok()) {
      IgnoreError(stop_all());
      return fail(bad);
    }
    meta_loop.Start();
    metadata::ZkStoreOptions zo;
    zo.connect = *connect;
    zo.session_timeout = std::chrono::milliseconds(*timeout / 1000);
    auto opened = metadata::ZkStore::Open(zo, &meta_loop);
    if (!opened.ok()) {
      IgnoreError(stop_all());
      return fail(opened.status().WithContext("connecting to metadata " + f.metadata));
    }
    meta = std::move(opened).value();
    node::StoreInfo info = (*store)->Info();
    NodeIdentity id{info.node_id, info.instance_id, info.cluster_id, listen->host + ":" + std::to_string(server.port()),
                    metrics_addr == "off" ? "" : metrics_addr};
    auto reg = NodeRegistration::Start(meta.get(), *layout, id, 2 * meta->SessionTimeout() + std::chrono::seconds(1));
    if (!reg.ok()) {
      IgnoreError(stop_all());
      return fail(reg.status());
    }
    registration = std::move(reg).value();
  }

  std::printf("dlogd logstore ready: node=%s listen=%s:%u metrics=%s data=%s\n", node_id.c_str(), listen->host.c_str(),
              server.port(), metrics_addr.c_str(), f.data_dir.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  DLOG_INFO << "signal " << sig << ": shutting down";
  Status close = stop_all();
  if (!close.ok()) return fail(close.WithContext("closing the store"));
  DLOG_INFO << "stopped cleanly";
  return 0;
}

}  // namespace dlog::server
