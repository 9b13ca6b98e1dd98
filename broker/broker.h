// Broker: serves topics over the client protocol (protocol/proto/broker.proto).
// DESIGN "Broker"; the module README has the rules and their reasons.
//
//   net::EventLoop loop("broker"); loop.Start();
//   Broker broker(&loop, log_client, cursor_db, options, &probe);
//   broker.Start();                        // opens the admin thread, watches the session
//   net::TcpServer server(&loop, {listen}, &broker); server.Start();
//   ...
//   server.Stop(); broker.Stop(); loop.Stop();
//
// Threading: all state lives on `loop` (the TcpServer's). Log-library and
// cursor completions are posted to it; blocking library calls (topic admin)
// run on one admin thread with a bounded queue. Start/Stop: not on the loop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "broker/broker_probe.h"
#include "broker/cursor/cursor_db.h"
#include "broker/cursor/partition_cursors.h"
#include "broker/cursor/subscription_cursor.h"
#include "logstore/log/log_client.h"
#include "logstore/log/namespace.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"

namespace dlog::broker {

struct BrokerOptions {
  std::string advertise;  // host:port clients are sent to for partitions this broker owns
  std::string broker_id;  // shown as the owner of its partitions (default: advertise)
  // Settings of the log namespaces ("tenant.namespace") the broker creates.
  log::NamespaceSettings namespace_defaults;
  bool auto_create_topics = true;
  int32_t auto_create_partitions = 1;
  uint32_t max_message_size = (5u << 20) - (64u << 10);  // a Send payload (one batch)
  // How long a partition load waits for the previous owner's lock (its
  // session to expire) when the metadata names this broker's own address.
  int64_t load_lock_timeout_ms = 0;
  size_t cache_bytes_per_partition = 4u << 20;
  size_t max_pending_bytes_per_partition = 32u << 20;  // produce in flight
  size_t dispatch_batch = 256;                         // records examined per dispatch round
  size_t max_replay_records = 5000;                    // redeliveries + Key_Shared held records per subscription
  // Messages; a consumer with this many unacked gets nothing more until it
  // acks (as Pulsar's maxUnackedMessagesPerConsumer). 0: no limit.
  int64_t max_unacked_per_consumer = 50000;
  int64_t dedup_snapshot_records = 1000;
  int64_t dedup_snapshot_ms = 10000;
  // A producer name not connected for this long is forgotten by dedup (as
  // Pulsar's producer inactivity timeout): its retries after that are new
  // messages. Bounds the dedup state by the producers of the last hours.
  int64_t dedup_inactivity_ms = 6 * 3600 * 1000;
  int64_t backlog_check_ms = 10000;  // backlog gauges; truncation of acked segments
  // Acked data (segments wholly behind every durable subscription's persisted
  // mark-delete position) is kept this long, then truncated (Pulsar's
  // retention time). 0: truncated at once; < 0: kept forever.
  int64_t acked_retention_ms = 0;
  size_t admin_queue = 1024;
  PartitionCursorsOptions cursors;
};

class Broker final : public net::FrameHandler {
 public:
  // `logs`, `cursor_db` and `probe` outlive the broker.
  Broker(net::EventLoop* loop, log::LogClient* logs, CursorDb* cursor_db, BrokerOptions options, BrokerProbe* probe);
  ~Broker() override;
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  void Start();
  // Closes every partition (producers and consumers are told), waiting up to
  // `timeout_ms` for writers to close. After TcpServer::Stop. Idempotent.
  void Stop(int64_t timeout_ms = 10000);

  void OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) override;
  void OnProtocolError(const net::ConnectionPtr& conn, const Status& error) override;
  void OnOpen(const net::ConnectionPtr& conn) override;
  void OnClose(const net::ConnectionPtr& conn) override;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace dlog::broker
