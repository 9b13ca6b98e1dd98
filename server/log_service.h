// LogService: the log service's front end (protocol/proto/log_service.proto,
// docs/formats/log-service.md). It decodes LogRequest frames from a
// TcpServer, validates them (protocol/log_request.h), and serves them with
// the log library (logstore/log) over one LogClient:
//
// - Namespaces are opened on first use and kept.
// - Append: one LogWriter per log it writes, opened on first append (taking
//   the log's lock), shared by every connection, and closed after
//   `writer_idle_ms` without appends, before a DeleteLog of the log through
//   the service, and at Stop. A writer that fails (fenced, lock lost) is
//   dropped; the next append opens a new one.
// - Read: server-side readers, at most `max_readers_per_connection` per
//   connection, closed with it. A read answers as soon as records are
//   buffered, else waits up to wait_ms (long poll) and answers with none.
//   Each reader has at most one LogReader::ReadNext in flight; what it
//   returns beyond a reply's bounds stays buffered for the next read.
// - Create, delete, list, stat and truncate run on `admin_threads` worker
//   threads with the library's blocking calls (a bounded queue; BUSY beyond).
//
// Bounds: requests in flight per connection (BUSY beyond), readers per
// connection (TOO_MANY_READERS), records per ReadNext, bytes per reply; the
// TcpServer bounds frames and inbound memory (an Append's records are
// slices of its inbound chunk until written).
//
// Threading: frames, timers and all state run on the service's loop (not
// the log library's). Library callbacks only post to that loop. Start/Stop
// must not run on it. Lifetime: create, Start, then TcpServer::Start;
// shutdown: TcpServer::Stop, LogService::Stop (closes writers, waits for
// them), stop the loop, destroy this, then the LogClient.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "logstore/log/log_client.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"
#include "protocol/log_request.h"
#include "server/log_service_probe.h"

namespace dlog::server {

struct LogServiceOptions {
  protocol::LogRequestLimits limits;
  size_t max_readers_per_connection = 16;
  size_t max_requests_per_connection = 1024;  // in flight, waiting reads included
  int64_t writer_idle_ms = 30000;
  size_t read_batch_records = 1000;        // per LogReader::ReadNext
  size_t max_read_reply_bytes = 4u << 20;  // record bytes per Read reply (at least one record)
  int admin_threads = 2;
  size_t admin_queue = 256;
  int64_t stat_read_timeout_ms = 500;
  int64_t stop_timeout_ms = 10000;  // Stop waits this long for writers to close
  std::string owner_id;             // WriterOptions::owner_id of its writers
  std::string address;              // WriterOptions::address (where it serves)
};

class LogService final : public net::FrameHandler {
 public:
  // `loop` is the TcpServer's loop; `client` and `probe` outlive this service.
  LogService(net::EventLoop* loop, log::LogClient* client, LogServiceOptions options, LogServiceProbe* probe);
  ~LogService() override;
  LogService(const LogService&) = delete;
  LogService& operator=(const LogService&) = delete;

  // Starts the timers and admin threads. Any thread but the loop's.
  void Start();
  // Stops the admin threads, closes every writer (waiting up to
  // stop_timeout_ms) and drops readers and namespaces. Any thread but the
  // loop's; after TcpServer::Stop. Idempotent.
  void Stop();

  void OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) override;
  void OnProtocolError(const net::ConnectionPtr& conn, const Status& error) override;
  void OnOpen(const net::ConnectionPtr& conn) override;
  void OnClose(const net::ConnectionPtr& conn) override;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlog::server
