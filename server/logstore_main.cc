#include "server/logstore_main.h"

#include <cstdio>
#include <memory>
#include <optional>

#include "common/logging.h"
#include "metadata/layout.h"
#include "metadata/zk_store.h"
#include "net/event_loop.h"
#include "server/metrics.h"
#include "server/node_registration.h"
#include "server/node_server.h"

namespace dlog::server {

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
  auto opts = NodeOptionsFromFlags(f);
  if (!opts.ok()) return fail(opts.status());
  std::optional<HostPort> metrics_listen;
  if (!f.metrics_listen.empty()) {
    auto m = ParseHostPort(f.metrics_listen);
    if (!m.ok()) return fail(m.status().WithContext("--metrics-listen"));
    metrics_listen = *m;
  }

  const sigset_t sigs = SetUpProcess();
  auto started = NodeServer::Start(*opts);
  if (!started.ok()) return fail(started.status());
  std::unique_ptr<NodeServer> node = std::move(started).value();

  MetricsServer metrics;
  std::string metrics_addr = "off";
  if (metrics_listen) {
    metrics.AddNodeProbe(node->probe());
    Status st = metrics.Start(*metrics_listen);
    if (!st.ok()) {
      IgnoreError(node->Stop());
      return fail(st);
    }
    metrics_addr = metrics_listen->host + ":" + std::to_string(metrics.port());
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
    return node->Stop();
  };
  if (!f.metadata.empty()) {
    auto connect = metadata::ParseZkUrl(f.metadata);
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
    node::StoreInfo info = node->Info();
    NodeIdentity id{info.node_id, info.instance_id, info.cluster_id, node->address(),
                    metrics_addr == "off" ? "" : metrics_addr};
    auto reg = NodeRegistration::Start(meta.get(), *layout, id, 2 * meta->SessionTimeout() + std::chrono::seconds(1));
    if (!reg.ok()) {
      IgnoreError(stop_all());
      return fail(reg.status());
    }
    registration = std::move(reg).value();
  }

  std::printf("dlogd logstore ready: node=%s listen=%s metrics=%s data=%s\n", node->node_id().c_str(),
              node->address().c_str(), metrics_addr.c_str(), f.data_dir.c_str());
  std::fflush(stdout);

  int sig = WaitForTerminationSignal(sigs);
  DLOG_INFO << "signal " << sig << ": shutting down";
  Status close = stop_all();
  if (!close.ok()) return fail(close.WithContext("closing the store"));
  DLOG_INFO << "stopped cleanly";
  return 0;
}

}  // namespace dlog::server
