// RpcClient: the reusable request/response core of a client for one server
// address (the node client is built on it).
//
// It owns one framed TCP connection (TcpConnection), made lazily on the first
// request and again on the first request after a loss. It hands out request
// ids (increasing from 1) and tracks what is in flight in a ring of slots
// indexed by id modulo a power-of-two capacity >= the window; an id whose slot
// is still taken by an older request is skipped, so ids increase but may have
// gaps. It does not know the message types: the user serializes its header
// with the id it was given, and decodes replies itself, claiming the request
// by id. Per-slot data (the user's callback) lives in the user's own array,
// indexed by the same slot number, so a request allocates nothing here.
//
// Failures (each request ends exactly once: Claim, or OnRequestFailed):
//   kWindowFull     the window is full; Reserve refuses (not sent)
//   kClosed         Shutdown() was called (or the loop stopped)
//   kConnectFailed  the connection could not be made (not sent). After a
//                   failed attempt, requests within the reconnect backoff
//                   fail at once; the backoff doubles up to a maximum and
//                   resets once a connection is made.
//   kTimeout        no reply by the request's deadline (outcome unknown);
//                   a periodic timer checks deadlines while requests are in flight
//   kConnectionLost the connection closed with the request sent (outcome unknown)
// A reply for an id that is not in flight (e.g. after its timeout) is dropped
// and counted.
//
// Threading: every method except the counters runs on the loop thread, and so
// do the Handler callbacks. Handler callbacks may call back into the client.
// Inbound memory: the connection reads without a budget; what it holds is
// bounded by the window (at most `window` replies of max_frame_bytes each).
#pragma once

#include <netinet/in.h>
#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"

namespace dlog::net {

class TcpConnection;

struct RpcClientOptions {
  HostPort address;
  size_t window = 1024;
  int64_t connect_timeout_ms = 3000;
  uint32_t max_frame_bytes = 5u << 20;
  size_t read_chunk_bytes = 64u << 10;
  int64_t tick_ms = 10;  // resolution of request deadlines
  int64_t reconnect_backoff_min_ms = 50;
  int64_t reconnect_backoff_max_ms = 1000;
};

class RpcClient final : private FrameHandler, private EventLoop::Resource {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A reply frame arrived. Decode it, then Claim() the request id it names.
    virtual void OnReplyFrame(std::string_view header, Slice payload) = 0;
    // Request `id` (in slot `slot`) ended without a reply; `status` is a NetErrc.
    virtual void OnRequestFailed(uint64_t id, size_t slot, const Status& status) = 0;
  };

  // Touches no uv handle: may be constructed on any thread.
  RpcClient(EventLoop* loop, RpcClientOptions options, Handler* handler);
  // Shutdown() must have run (on the loop thread), or the loop has stopped.
  ~RpcClient() override;
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Reserves the next request id and its slot, connecting if needed. Errors:
  // kClosed, kWindowFull, kConnectFailed (bad address, or within the backoff).
  // A successful Reserve must be followed by Send with the same id.
  Status Reserve(uint64_t* id, size_t* slot);
  // Queues the frame of reserved request `id` (its header carries the id) and
  // starts its deadline.
  void Send(uint64_t id, size_t slot, const google::protobuf::MessageLite& header, std::string_view payload,
            int64_t timeout_ms);
  // A reply for `id` arrived: ends the request and returns its slot. False if
  // `id` is not in flight (the reply is dropped and counted).
  bool Claim(uint64_t id, size_t* slot);
  // Closes the connection (e.g. the peer sent a reply that does not parse):
  // what is in flight fails with kConnectionLost.
  void DropConnection(const Status& why);
  // Fails everything with `why` (kClosed) and closes the handles. Idempotent.
  void Shutdown(const Status& why);

  // Any thread.
  size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  uint64_t dropped_replies() const { return dropped_replies_.load(std::memory_order_relaxed); }
  uint64_t connects() const { return connects_.load(std::memory_order_relaxed); }
  size_t capacity() const { return slots_.size(); }
  const RpcClientOptions& options() const { return opts_; }

 private:
  struct Slot {
    uint64_t id = 0;
    int64_t deadline_ms = 0;
    int64_t timeout_ms = 0;
    bool busy = false;
  };

  // FrameHandler:
  void OnFrame(const ConnectionPtr& conn, std::string_view header, Slice payload) override;
  void OnProtocolError(const ConnectionPtr& conn, const Status& error) override;
  void OnOpen(const ConnectionPtr& conn) override;
  void OnClose(const ConnectionPtr& conn) override;
  // EventLoop::Resource:
  void OnLoopStop() override;

  Status Connect();
  void Free(size_t slot);
  void FailAll(const Status& status);
  void CheckDeadlines();
  int64_t Now() const;

  EventLoop* const loop_;
  const RpcClientOptions opts_;
  Handler* const handler_;
  sockaddr_in addr_{};
  bool addr_ok_ = false;

  // Loop thread only.
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  uint64_t next_id_ = 1;
  uint64_t conn_seq_ = 0;
  std::shared_ptr<TcpConnection> conn_;
  bool registered_ = false;
  bool closed_ = false;
  uv_timer_t* tick_ = nullptr;
  int64_t backoff_ms_ = 0;
  int64_t backoff_until_ms_ = 0;
  Status last_connect_error_;

  std::atomic<size_t> in_flight_{0};
  std::atomic<uint64_t> dropped_replies_{0};
  std::atomic<uint64_t> connects_{0};
};

}  // namespace dlog::net
