#include "server/broker_main.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "broker/topic_name.h"
#include "common/logging.h"
#include "server/metrics.h"
#include "server/node_server.h"

namespace dlog::server {

void AddBrokerOptions(CLI::App* app, BrokerFlags* f) {
  app->add_option("--metadata", f->metadata, "Metadata store: zk://HOST:PORT[,HOST:PORT...][/dlog]")->required();
  app->add_option("--cluster", f->cluster, "Cluster name (the tree under /dlog/<cluster>)")->capture_default_str();
  app->add_option("--listen", f->listen, "Address for clients (HOST:PORT)")->capture_default_str();
  app->add_option("--advertise", f->advertise, "Address clients are sent to for this broker (default: --listen)");
  app->add_option("--data-dir", f->data_dir, "Directory of the cursor store (RocksDB working state)")->required();
  app->add_option("--metrics-listen", f->metrics_listen, "Address for Prometheus /metrics (empty: off)");
  app->add_option("--metadata-session-timeout", f->session_timeout, "ZooKeeper session timeout")->capture_default_str();
  app->add_option("--ensemble-size", f->ensemble_size, "E of namespaces the broker creates")->capture_default_str();
  app->add_option("--write-quorum", f->write_quorum, "Qw of namespaces the broker creates")->capture_default_str();
  app->add_option("--ack-quorum", f->ack_quorum, "Qa of namespaces the broker creates")->capture_default_str();
  app->add_option("--auto-create-partitions", f->auto_create_partitions, "Partitions of a topic created on first use")
      ->capture_default_str();
  app->add_flag("--no-auto-create", f->no_auto_create, "Topics must be created before use");
  app->add_option("--max-frame-size", f->max_frame_size, "Largest accepted frame")->capture_default_str();
  app->add_option("--cursor-cache", f->cursor_cache, "Memory for cursor ack blocks (spills to RocksDB beyond)")
      ->capture_default_str();
  app->add_option("--max-unacked-per-consumer", f->max_unacked_per_consumer,
                  "A consumer with this many unacked messages gets no more until it acks (0: no limit)")
      ->capture_default_str();
  app->add_option("--acked-retention", f->acked_retention,
                  "Keep acked data this long before truncating it ('forever': never truncate)")
      ->capture_default_str();
  app->add_option("--backlog-check-interval", f->backlog_check_interval,
                  "How often backlog gauges are updated and acked segments truncated")
      ->capture_default_str();
}

Result<std::unique_ptr<BrokerServer>> BrokerServer::Start(log::LogClient* logs, BrokerServerOptions o) {
  std::unique_ptr<BrokerServer> s(new BrokerServer());
  if (o.advertise.empty()) {
    if (o.listen.port == 0) {
      return Status::Error(CommonErrc::kInvalidArgument, "the broker's listen port must be fixed (or --advertise set)");
    }
    o.advertise = o.listen.ToString();
  }
  s->advertise_ = o.advertise;
  broker::CursorDbOptions co;
  co.path = o.cursor_dir;
  co.cache_budget_bytes = o.cursor_cache_bytes;
  auto db = broker::CursorDb::Open(co);
  if (!db.ok()) return db.status().WithContext("opening the cursor store in " + o.cursor_dir);
  s->cursor_db_ = std::move(db).value();
  s->loop_ = std::make_unique<net::EventLoop>("broker");
  s->loop_->Start();
  o.broker.advertise = o.advertise;
  s->broker_ = std::make_unique<broker::Broker>(s->loop_.get(), logs, s->cursor_db_.get(), o.broker, &s->probe_);
  s->broker_->Start();
  net::ServerOptions so;
  so.listen = o.listen;
  so.max_frame_bytes = o.max_frame_bytes;
  s->server_ = std::make_unique<net::TcpServer>(s->loop_.get(), so, s->broker_.get());
  if (Status st = s->server_->Start(); !st.ok()) {
    s->Stop();
    return st.WithContext("broker listener " + o.listen.ToString());
  }
  return s;
}

BrokerServer::~BrokerServer() {
  Stop();
  broker_.reset();
  server_.reset();
  cursor_db_.reset();
  loop_.reset();
}

// The loop stops here but its object lives until the destructor: library
// callbacks still on their way (watches fired when the LogClient closes, a
// writer that could not close in time) post to a stopped loop, which drops
// them, instead of to freed memory. So: Stop, close the LogClient, destroy.
void BrokerServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (server_) server_->Stop();
  if (broker_) broker_->Stop();
  if (loop_) loop_->Stop();
}

uint16_t BrokerServer::port() const { return server_ ? server_->port() : 0; }

int RunBroker(const BrokerFlags& f) {
  auto fail = [](const Status& st) {
    std::fprintf(stderr, "dlogd broker: %s\n", st.ToString().c_str());
    return 1;
  };
  auto listen = ParseHostPort(f.listen);
  if (!listen.ok()) return fail(listen.status().WithContext("--listen"));
  std::optional<HostPort> metrics_listen;
  if (!f.metrics_listen.empty()) {
    auto m = ParseHostPort(f.metrics_listen);
    if (!m.ok()) return fail(m.status().WithContext("--metrics-listen"));
    metrics_listen = *m;
  }
  auto session = ParseDurationMicros(f.session_timeout);
  if (!session.ok()) return fail(session.status().WithContext("--metadata-session-timeout"));
  auto frame = ParseByteSize(f.max_frame_size);
  if (!frame.ok()) return fail(frame.status().WithContext("--max-frame-size"));
  auto cache = ParseByteSize(f.cursor_cache);
  if (!cache.ok()) return fail(cache.status().WithContext("--cursor-cache"));
  auto backlog = ParseDurationMicros(f.backlog_check_interval);
  if (!backlog.ok()) return fail(backlog.status().WithContext("--backlog-check-interval"));
  if (f.auto_create_partitions < 1 || f.auto_create_partitions > broker::kMaxPartitions) {
    return fail(Status::Error(CommonErrc::kInvalidArgument, "--auto-create-partitions must be 1..4096"));
  }
  BrokerServerOptions o;
  o.listen = *listen;
  o.advertise = f.advertise;
  o.cursor_dir = f.data_dir;
  o.cursor_cache_bytes = static_cast<int64_t>(*cache);
  o.max_frame_bytes = static_cast<uint32_t>(*frame);
  o.broker.namespace_defaults.ensemble_size = f.ensemble_size;
  o.broker.namespace_defaults.write_quorum = f.write_quorum;
  o.broker.namespace_defaults.ack_quorum = f.ack_quorum;
  if (Status st = o.broker.namespace_defaults.Validate(); !st.ok()) return fail(st);
  o.broker.auto_create_topics = !f.no_auto_create;
  o.broker.auto_create_partitions = f.auto_create_partitions;
  o.broker.max_message_size = std::min<uint32_t>(o.broker.max_message_size, o.max_frame_bytes - (64u << 10));
  o.broker.backlog_check_ms = *backlog / 1000;
  o.broker.max_unacked_per_consumer = f.max_unacked_per_consumer;
  if (f.acked_retention == "forever") {
    o.broker.acked_retention_ms = -1;
  } else {
    auto keep = ParseDurationMicros(f.acked_retention);
    if (!keep.ok()) return fail(keep.status().WithContext("--acked-retention"));
    o.broker.acked_retention_ms = *keep / 1000;
  }
  std::error_code ec;
  std::filesystem::create_directories(f.data_dir, ec);
  if (ec) return fail(Status::Error(CommonErrc::kIoError, "cannot create " + f.data_dir + ": " + ec.message()));

  const sigset_t sigs = SetUpProcess();
  log::LogClientOptions lo;
  lo.metadata_url = f.metadata;
  lo.cluster = f.cluster;
  lo.session_timeout = std::chrono::milliseconds(*session / 1000);
  auto logs = log::LogClient::Open(lo);
  if (!logs.ok()) return fail(logs.status().WithContext("connecting to " + f.metadata));
  auto server = BrokerServer::Start(logs->get(), o);
  if (!server.ok()) return fail(server.status());
  MetricsServer metrics;
  std::string metrics_addr = "off";
  if (metrics_listen) {
    metrics.AddBrokerProbe((*server)->probe());
    if (Status st = metrics.Start(*metrics_listen); !st.ok()) {
      (*server)->Stop();
      return fail(st);
    }
    metrics_addr = metrics_listen->host + ":" + std::to_string(metrics.port());
  }
  std::printf("dlogd broker ready: listen=%s:%u advertise=%s metrics=%s\n", listen->host.c_str(), (*server)->port(),
              (*server)->advertise().c_str(), metrics_addr.c_str());
  std::fflush(stdout);
  int sig = WaitForTerminationSignal(sigs);
  DLOG_INFO << "signal " << sig << ": shutting down";
  (*server)->Stop();
  logs->reset();  // before the broker's loop object goes (see BrokerServer::Stop)
  server->reset();
  DLOG_INFO << "stopped cleanly";
  return 0;
}

}  // namespace dlog::server
