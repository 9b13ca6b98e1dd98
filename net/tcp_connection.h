// TcpConnection: one framed TCP connection on one EventLoop (net/ internal).
// Used by TcpServer for accepted connections and by RpcClient for its outgoing
// connection. It implements the Connection interface of tcp_server.h.
//
// Input: reads go into reference-counted Chunks (ConnectionOptions::
// read_chunk_bytes) charged to a MemoryBudget; each complete frame is handed
// to FrameHandler::OnFrame with its payload as a Slice of the chunk (no copy).
// A chunk is allocated lazily when the socket is readable and dropped as soon
// as it holds no partial frame, so an idle connection holds no input memory.
// The bytes of a partial frame at a chunk's end move to the start of a fresh
// chunk; a frame larger than a chunk gets a chunk of its exact size, allocated
// only after its length passed the max_frame_bytes check. When the budget
// refuses, reading stops and is retried every budget_retry_ms; after
// idle_timeout_ms without progress the connection is closed.
//
// Output: frames are serialized into a pending ByteBuffer; one uv_write is in
// flight, from a second buffer, and the two are swapped when it completes, so
// the steady state allocates nothing. Above out_high_water_bytes of queued
// output, frame delivery and reading pause until the output drains below
// out_low_water_bytes (so queued output exceeds the high water mark by at
// most one frame).
//
// Close(): delivery stops; queued output is flushed, then the write side is
// shut down while input is read and discarded until the peer closes (a
// lingering close, so a peer still sending gets our last frames, e.g. an
// error reply, instead of a reset); all of it bounded by close_flush_timeout_ms.
//
// Lifetime: created as a shared_ptr; the connection keeps itself alive until
// its uv handles are closed, then calls FrameHandler::OnClose exactly once
// (unless Abort() detached the handler) and drops that self-reference. After
// closing starts every method is a no-op. All methods run on the loop thread.
#pragma once

#include <netinet/in.h>
#include <uv.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "common/buffer.h"
#include "common/status.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"

namespace dlog::net {

struct ConnectionOptions {
  uint32_t max_frame_bytes = 5u << 20;
  size_t read_chunk_bytes = 64u << 10;
  MemoryBudget* budget = nullptr;  // inbound chunks; may be null (unbounded)
  // Pause delivery and reading above high water; resume below low water.
  // Clients keep the default (never pause): their window bounds the output.
  size_t out_high_water_bytes = std::numeric_limits<size_t>::max();
  size_t out_low_water_bytes = 0;
  int64_t idle_timeout_ms = 60000;        // partial frame or budget stall this long: close
  int64_t close_flush_timeout_ms = 2000;  // Close(): queued output gets this long to flush
  // Close() flushes and lingers (servers: an error reply must reach the peer).
  // When false, Close() and the peer's EOF close at once (clients).
  bool flush_on_close = true;
  int64_t budget_retry_ms = 5;
  size_t out_keep_bytes = 256u << 10;  // output buffer capacity kept between writes
};

class TcpConnection final : public Connection {
 public:
  // Initialises the uv handles; returns null if libuv refuses.
  static std::shared_ptr<TcpConnection> Create(EventLoop* loop, uint64_t id, const ConnectionOptions& options,
                                               FrameHandler* handler);
  ~TcpConnection() override;

  uv_tcp_t* tcp() { return &tcp_; }
  // Server side, after uv_accept succeeded: calls OnOpen and starts reading.
  void StartAccepted();
  // Client side: connects; OnOpen on success, OnClose (without OnOpen) if the
  // connection cannot be made within timeout_ms. Frames sent before the
  // connection is made are queued and flushed once it is.
  void StartConnect(const sockaddr_in& addr, int64_t timeout_ms);
  // Closes at once, dropping queued output, without calling the handler again.
  void Abort();
  // Closes at once, dropping queued output; OnClose follows.
  void CloseNow(const Status& reason);

  bool opened() const { return opened_; }
  // Why the connection closed (OK for a local Close() or a clean EOF).
  const Status& close_reason() const { return close_reason_; }
  bool holds_input_chunk() const { return static_cast<bool>(chunk_); }

  // Connection:
  uint64_t id() const override { return id_; }
  const std::string& peer() const override { return peer_; }
  bool closed() const override { return closing_; }
  void SendFrame(const google::protobuf::MessageLite& header, std::string_view payload) override;
  void SendFrame(std::string_view header, std::string_view payload) override;
  void Close() override;
  size_t queued_output_bytes() const override { return out_.size() + writing_.size(); }

 private:
  TcpConnection(EventLoop* loop, uint64_t id, const ConnectionOptions& options, FrameHandler* handler);

  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void OnWrite(uv_write_t* req, int status);
  static void OnConnect(uv_connect_t* req, int status);
  static void OnShutdown(uv_shutdown_t* req, int status);
  static void OnDiscardAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnDiscardRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void OnTimer(uv_timer_t* t);
  static void OnHandleClosed(uv_handle_t* h);

  void Opened();
  void ProcessInput();
  bool MakeRoom();
  void AfterQueued();
  void StartWrite();
  void UpdateReading();
  void ArmTimer();
  void StartShutdown();
  void FinishClose();
  void Finalize();
  int64_t Now() const;

  EventLoop* loop_;
  const uint64_t id_;
  const ConnectionOptions opts_;
  FrameHandler* handler_;
  std::shared_ptr<Connection> self_;  // alive until both handles are closed
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_write_t write_req_;
  uv_connect_t connect_req_;
  uv_shutdown_t shutdown_req_;
  int open_handles_ = 0;
  std::string peer_;
  Status close_reason_;

  bool opened_ = false;
  bool connecting_ = false;
  bool closing_ = false;  // Close/CloseNow/Abort called, or the stream ended
  bool handles_closing_ = false;
  bool reading_ = false;
  bool output_paused_ = false;  // queued output above high water
  bool budget_wait_ = false;    // waiting for the budget to allow a chunk
  bool write_in_flight_ = false;
  bool eof_ = false;  // the peer finished sending
  bool shutdown_started_ = false;

  // Input: [begin_, end_) of chunk_ holds bytes not yet delivered.
  ChunkRef chunk_;
  size_t begin_ = 0;
  size_t end_ = 0;
  size_t need_total_ = 0;          // size of the partial frame at begin_ once known
  int64_t frame_progress_ms_ = 0;  // last frame delivered or buffer emptied
  int64_t budget_wait_since_ms_ = 0;
  int64_t connect_deadline_ms_ = 0;
  int64_t close_deadline_ms_ = 0;

  // Output.
  ByteBuffer out_;
  ByteBuffer writing_;
};

// "a.b.c.d:port" for an IPv4 or IPv6 socket address.
std::string SockAddrToString(const sockaddr_storage& sa);

}  // namespace dlog::net
