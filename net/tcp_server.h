// TcpServer: accepts TCP connections on one EventLoop and turns each byte
// stream into frames (protocol/frame.h) for a FrameHandler.
//
// Inbound memory: a connection reads into reference-counted chunks charged to
// one MemoryBudget shared by all connections; a frame's payload is a Slice of
// its chunk. A frame's length is checked against max_frame_bytes before any
// buffer for it is allocated; a frame larger than a chunk gets a buffer of its
// own that grows (doubling) with the bytes that actually arrived, never from
// the declared length alone, charged to the budget; when the budget is exhausted, the connection
// stops reading until memory is freed (and is closed if it cannot make
// progress for idle_timeout_ms). A protocol error (bad length, bad CRC)
// reports OnProtocolError, flushes what the handler queued, and closes that
// one connection. EMFILE/ENFILE on accept is logged (rate-limited) and the
// listener keeps accepting (it pauses, without closing, while descriptors
// are exhausted). Beyond max_connections, new connections are closed at once.
// Slices of inbound chunks may outlive the server (net/README.md).
//
// Output: SendFrame appends to the connection's output buffer; one uv_write is
// in flight per connection. When queued output passes out_high_water_bytes the
// connection stops reading (back-pressure) until it drains below
// out_low_water_bytes.
//
// Threading: everything runs on the loop thread. Connection methods must be
// called on the loop thread; a shared_ptr<Connection> may be held by other
// threads (to post work back), and remains safe to call after close (calls
// become no-ops).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/buffer.h"
#include "common/config.h"
#include "common/status.h"
#include "net/event_loop.h"

namespace google::protobuf {
class MessageLite;
}

namespace dlog::net {

struct ServerOptions {
  HostPort listen;  // port 0: pick a free one (see TcpServer::port)
  uint32_t max_frame_bytes = 5u << 20;
  size_t max_connections = 4096;
  int64_t inbound_budget_bytes = 256ll << 20;  // all connections' inbound chunks
  size_t read_chunk_bytes = 64u << 10;
  size_t out_high_water_bytes = 8u << 20;
  size_t out_low_water_bytes = 1u << 20;
  int64_t idle_timeout_ms = 60000;  // a connection holding a partial frame this long is closed
};

class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;

class FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  // A complete, CRC-checked frame. `payload` keeps its bytes alive.
  virtual void OnFrame(const ConnectionPtr& conn, std::string_view header, Slice payload) = 0;
  // The byte stream is broken (`error` says how); the connection closes after
  // this returns and after flushing what was queued (e.g. an error reply).
  virtual void OnProtocolError(const ConnectionPtr& conn, const Status& error) = 0;
  virtual void OnOpen(const ConnectionPtr&) {}
  virtual void OnClose(const ConnectionPtr&) {}
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  virtual ~Connection() = default;
  virtual uint64_t id() const = 0;
  virtual const std::string& peer() const = 0;
  virtual bool closed() const = 0;
  // Queues a frame: `header` serialized straight into the output buffer.
  virtual void SendFrame(const google::protobuf::MessageLite& header, std::string_view payload) = 0;
  virtual void SendFrame(std::string_view header, std::string_view payload) = 0;
  // Closes after queued output is flushed (bounded by a short timeout).
  virtual void Close() = 0;
  virtual size_t queued_output_bytes() const = 0;
};

class TcpServer {
 public:
  TcpServer(EventLoop* loop, ServerOptions options, FrameHandler* handler);
  ~TcpServer();  // Stop() must have been called
  // Binds and listens (runs on the loop thread; may be called from any
  // thread). The loop must be running (CommonErrc::kUnavailable otherwise);
  // kInvalidArgument for a bad address, kIoError if bind/listen fail.
  Status Start();
  // Closes the listener and every connection (without flushing); waits until
  // their handles are closed and OnClose ran. Not on the loop thread. Idempotent.
  void Stop();
  // The bound port (after Start).
  uint16_t port() const;
  size_t connection_count() const;
  MemoryBudget* inbound_budget();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlog::net
