#include "server/standalone_main.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "common/logging.h"
#include "common/thread_annotations.h"
#include "logstore/log/errors.h"
#include "logstore/log/log_client.h"
#include "logstore/log/namespace.h"
#include "metadata/embedded_store.h"
#include "metadata/layout.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"
#include "server/broker_main.h"
#include "server/log_service.h"
#include "server/metrics.h"
#include "server/node_registration.h"
#include "server/node_server.h"

namespace dlog::server {
namespace {

constexpr const char* kCluster = "dlog";
constexpr const char* kDefaultNamespace = "default";

// Sweeps every log of every namespace now and then (retention, deletion of
// truncated segments past their grace period), on its own thread: the
// library's blocking calls must not run on a loop.
class Sweeper {
 public:
  Sweeper(log::LogClient* client, int64_t interval_ms) : client_(client), interval_ms_(interval_ms) {
    if (interval_ms_ > 0) thread_ = std::thread([this] { Run(); });
  }
  ~Sweeper() { Stop(); }

  void Stop() {
    {
      MutexLock l(&mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    for (;;) {
      {
        MutexLock l(&mu_);
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(interval_ms_);
        while (!stop_ && std::chrono::steady_clock::now() < until) {
          IgnoreError(cv_.WaitFor(&mu_, until - std::chrono::steady_clock::now()));
        }
        if (stop_) return;
      }
      SweepAll();
    }
  }

  bool Stopping() {
    MutexLock l(&mu_);
    return stop_;
  }

  void SweepAll() {
    auto namespaces = log::Namespace::ListNamespacesSync(client_->segments());
    if (!namespaces.ok()) {
      DLOG_WARN << "sweep: listing namespaces: " << namespaces.status().ToString();
      return;
    }
    for (const std::string& name : *namespaces) {
      auto ns = log::Namespace::OpenSync(client_->segments(), name);
      if (!ns.ok()) continue;  // deleted meanwhile
      auto logs = (*ns)->ListLogsSync();
      if (!logs.ok()) continue;
      for (const std::string& l : *logs) {
        if (Stopping()) return;
        Status st = (*ns)->SweepSync(l);
        if (!st.ok() && !st.Is(log::LogErrc::kLogNotFound)) {
          DLOG_WARN << "sweep of log '" << l << "' in namespace '" << name << "': " << st.ToString();
        }
      }
    }
  }

  log::LogClient* const client_;
  const int64_t interval_ms_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ DLOG_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The node's data dir is formatted on the first run only: when it does not
// exist yet or is empty. A dir that holds anything is opened as is (and
// refused by the node if its cookie is missing or foreign).
Result<bool> NeedsFormat(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::Error(CommonErrc::kIoError, "cannot create " + dir + ": " + ec.message());
    return true;
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::Error(CommonErrc::kInvalidArgument, dir + " exists and is not a directory");
  }
  return std::filesystem::is_empty(dir, ec) && !ec;
}

std::string OwnerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return "dlogd-standalone-" + std::to_string(getpid()) + "@" + host;
}

}  // namespace

void AddStandaloneOptions(CLI::App* app, StandaloneFlags* f) {
  app->add_option("--data-dir", f->data_dir, "Data directory (metadata/ and logstore/ live here)")->required();
  app->add_option("--listen", f->listen, "Address of the log service (what `dlog --service` talks to)")
      ->capture_default_str();
  app->add_option("--broker-listen", f->broker_listen,
                  "Address of the broker (what clients and `dlog produce/consume` talk to; 'off': none)")
      ->capture_default_str();
  app->add_option("--node-listen", f->node_listen,
                  "Address of the logstore node; it is also the node's id, so keep it across restarts")
      ->capture_default_str();
  app->add_option("--metrics-listen", f->metrics_listen, "Address for Prometheus /metrics ('off': none)")
      ->capture_default_str();
  app->add_option("--sweep-interval", f->sweep_interval,
                  "How often every log is swept (retention, deletion of truncated segments); 0: never")
      ->capture_default_str();
  app->add_option("--writer-idle-timeout", f->writer_idle_timeout,
                  "The log service closes a log's writer after this long without appends")
      ->capture_default_str();
  app->add_option("--max-frame-size", f->max_frame_size, "Largest accepted frame (service and node)")
      ->capture_default_str();
  app->add_option("--journal-file-size", f->journal_file_size, "Preallocated size of each journal file")
      ->capture_default_str();
  app->add_option("--cache-size", f->cache_size, "The node's tail cache size")->capture_default_str();
}

int RunStandalone(const StandaloneFlags& f) {
  auto fail = [](const Status& st) {
    std::fprintf(stderr, "dlogd standalone: %s\n", st.ToString().c_str());
    return 1;
  };
  namespace fs = std::filesystem;
  const std::string meta_dir = (fs::path(f.data_dir) / "metadata").string();
  const std::string node_dir = (fs::path(f.data_dir) / "logstore").string();

  // Flags first: nothing starts on a bad one.
  auto listen = ParseHostPort(f.listen);
  if (!listen.ok()) return fail(listen.status().WithContext("--listen"));
  std::optional<HostPort> metrics_listen;
  if (!f.metrics_listen.empty() && f.metrics_listen != "off") {
    auto m = ParseHostPort(f.metrics_listen);
    if (!m.ok()) return fail(m.status().WithContext("--metrics-listen"));
    metrics_listen = *m;
  }
  std::optional<HostPort> broker_listen;
  if (!f.broker_listen.empty() && f.broker_listen != "off") {
    auto b = ParseHostPort(f.broker_listen);
    if (!b.ok()) return fail(b.status().WithContext("--broker-listen"));
    if (b->port == 0) {
      return fail(
          Status::Error(CommonErrc::kInvalidArgument, "--broker-listen needs a fixed port (clients are sent to it)"));
    }
    broker_listen = *b;
  }
  auto sweep = ParseDurationMicros(f.sweep_interval);
  if (!sweep.ok()) return fail(sweep.status().WithContext("--sweep-interval"));
  auto idle = ParseDurationMicros(f.writer_idle_timeout);
  if (!idle.ok()) return fail(idle.status().WithContext("--writer-idle-timeout"));
  auto node_listen = ParseHostPort(f.node_listen);
  if (!node_listen.ok()) return fail(node_listen.status().WithContext("--node-listen"));
  if (node_listen->port == 0) {
    return fail(Status::Error(CommonErrc::kInvalidArgument,
                              "--node-listen needs a fixed port: it is the node's id in the data dir"));
  }
  LogstoreFlags lf;
  lf.data_dir = node_dir;
  lf.listen = f.node_listen;
  lf.cluster_id = kCluster;
  lf.max_frame_size = f.max_frame_size;
  lf.journal_file_size = f.journal_file_size;
  lf.cache_size = f.cache_size;
  auto node_opts = NodeOptionsFromFlags(lf);
  if (!node_opts.ok()) return fail(node_opts.status());
  std::error_code ec;
  fs::create_directories(meta_dir, ec);
  if (ec) return fail(Status::Error(CommonErrc::kIoError, "cannot create " + meta_dir + ": " + ec.message()));
  auto format = NeedsFormat(node_dir);
  if (!format.ok()) return fail(format.status());
  node_opts->store.format = *format;

  const sigset_t sigs = SetUpProcess();

  // The storage node.
  auto started = NodeServer::Start(*node_opts);
  if (!started.ok()) return fail(started.status().WithContext("starting the logstore node in " + node_dir));
  std::unique_ptr<NodeServer> node = std::move(started).value();
  if (*format) DLOG_INFO << "formatted a new logstore node in " << node_dir;

  // Metadata, the node's registration, the log library.
  net::EventLoop meta_loop("metadata");
  meta_loop.Start();
  std::unique_ptr<metadata::EmbeddedStore> store;
  std::unique_ptr<NodeRegistration> registration;
  std::unique_ptr<log::LogClient> client;
  auto stop_lower = [&] {
    registration.reset();
    // The store is closed before the log client goes: operations a closed
    // reader left in flight (a segment refresh) then end while the segment
    // client they point to still exists.
    if (store) store->CloseSync();
    client.reset();
    store.reset();
    meta_loop.Stop();
    return node->Stop();
  };
  auto fail_lower = [&](const Status& st) {
    IgnoreError(stop_lower());
    return fail(st);
  };
  metadata::EmbeddedStoreOptions eo;
  eo.dir = meta_dir;
  eo.sync = true;
  auto opened = metadata::EmbeddedStore::Open(eo, &meta_loop);
  if (!opened.ok()) return fail_lower(opened.status().WithContext("opening the metadata store in " + meta_dir));
  store = std::move(opened).value();
  auto layout = metadata::Layout::Make(kCluster);
  if (!layout.ok()) return fail_lower(layout.status());
  node::StoreInfo info = node->Info();
  NodeIdentity id{info.node_id, info.instance_id, info.cluster_id, node->address(), ""};
  if (metrics_listen) id.metrics_address = metrics_listen->ToString();
  auto reg = NodeRegistration::Start(store.get(), *layout, id, std::chrono::milliseconds(0));
  if (!reg.ok()) return fail_lower(reg.status());
  registration = std::move(reg).value();
  auto attached = log::LogClient::Attach(store.get(), kCluster);
  if (!attached.ok()) return fail_lower(attached.status());
  client = std::move(attached).value();
  {
    log::NamespaceSettings settings;
    settings.ensemble_size = settings.write_quorum = settings.ack_quorum = 1;
    auto ns = log::Namespace::OpenOrCreateSync(client->segments(), kDefaultNamespace, settings);
    if (!ns.ok()) return fail_lower(ns.status().WithContext("namespace '" + std::string(kDefaultNamespace) + "'"));
  }

  // The log service.
  LogServiceProbe service_probe;
  net::EventLoop service_loop("log-service");
  service_loop.Start();
  LogServiceOptions so;
  so.writer_idle_ms = *idle / 1000;
  so.owner_id = OwnerId();
  so.address = listen->ToString();
  so.limits.max_payload_bytes = node_opts->max_frame_bytes;
  // A read reply's records plus their metadata must fit in the client's frame.
  so.max_read_reply_bytes = std::min<size_t>(so.max_read_reply_bytes, node_opts->max_frame_bytes / 4 * 3);
  LogService service(&service_loop, client.get(), so, &service_probe);
  service.Start();
  net::ServerOptions srv;
  srv.listen = *listen;
  srv.max_frame_bytes = node_opts->max_frame_bytes;
  net::TcpServer server(&service_loop, srv, &service);
  auto stop_service = [&] {
    server.Stop();
    service.Stop();
    service_loop.Stop();
  };
  if (Status st = server.Start(); !st.ok()) {
    stop_service();
    return fail_lower(st.WithContext("log service listener " + listen->ToString()));
  }

  // The broker (topics in namespaces it creates with E=Qw=Qa=1).
  std::unique_ptr<BrokerServer> broker;
  if (broker_listen) {
    BrokerServerOptions bo;
    bo.listen = *broker_listen;
    bo.cursor_dir = (fs::path(f.data_dir) / "cursors").string();
    bo.max_frame_bytes = node_opts->max_frame_bytes;
    bo.broker.namespace_defaults.ensemble_size = 1;
    bo.broker.namespace_defaults.write_quorum = 1;
    bo.broker.namespace_defaults.ack_quorum = 1;
    bo.broker.broker_id = OwnerId();
    bo.broker.max_message_size =
        std::min<uint32_t>(bo.broker.max_message_size, node_opts->max_frame_bytes - (64u << 10));
    auto started_broker = BrokerServer::Start(client.get(), bo);
    if (!started_broker.ok()) {
      stop_service();
      return fail_lower(started_broker.status());
    }
    broker = std::move(started_broker).value();
  }
  // Stopped before the log service, destroyed after the LogClient closed
  // (BrokerServer's shutdown order).
  auto stop_broker = [&] {
    if (broker) broker->Stop();
  };

  MetricsServer metrics;
  std::string metrics_addr = "off";
  if (metrics_listen) {
    if (broker) metrics.AddBrokerProbe(broker->probe());
    metrics.AddNodeProbe(node->probe());
    metrics.AddLogServiceProbe(&service_probe);
    if (Status st = metrics.Start(*metrics_listen); !st.ok()) {
      stop_broker();
      stop_service();
      return fail_lower(st);
    }
    metrics_addr = metrics_listen->host + ":" + std::to_string(metrics.port());
  }

  Sweeper sweeper(client.get(), *sweep / 1000);

  const std::string broker_addr = broker ? broker->advertise() : std::string("off");
  std::printf("dlogd standalone ready: listen=%s:%u broker=%s node=%s metrics=%s data=%s\n", listen->host.c_str(),
              server.port(), broker_addr.c_str(), node->address().c_str(), metrics_addr.c_str(), f.data_dir.c_str());
  std::fflush(stdout);

  int sig = WaitForTerminationSignal(sigs);
  DLOG_INFO << "signal " << sig << ": shutting down";
  sweeper.Stop();
  stop_broker();
  stop_service();
  Status close = stop_lower();
  broker.reset();
  if (!close.ok()) return fail(close.WithContext("closing the logstore node"));
  DLOG_INFO << "stopped cleanly";
  return 0;
}

}  // namespace dlog::server
