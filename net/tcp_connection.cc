#include "net/tcp_connection.h"

#include <arpa/inet.h>
#include <google/protobuf/message_lite.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "common/check.h"
#include "common/clock.h"
#include "common/logging.h"
#include "net/errors.h"
#include "protocol/frame.h"

namespace dlog::net {

namespace {

// At most one such log line per second, process-wide.
bool LogAllowed(std::atomic<int64_t>* last_ms) {
  const int64_t now = MonoMillis();
  int64_t last = last_ms->load(std::memory_order_relaxed);
  if (now - last < 1000) return false;
  return last_ms->compare_exchange_strong(last, now, std::memory_order_relaxed);
}

std::atomic<int64_t> g_protocol_error_log_ms{-1000000};
std::atomic<int64_t> g_budget_log_ms{-1000000};

std::string UvError(const char* what, int rc) { return std::string(what) + ": " + uv_strerror(rc); }

}  // namespace

std::string SockAddrToString(const sockaddr_storage& sa) {
  char ip[INET6_ADDRSTRLEN] = {0};
  if (sa.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&sa);
    uv_ip4_name(a, ip, sizeof(ip));
    return std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (sa.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&sa);
    uv_ip6_name(a, ip, sizeof(ip));
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  return "?";
}

std::shared_ptr<TcpConnection> TcpConnection::Create(EventLoop* loop, uint64_t id, const ConnectionOptions& options,
                                                     FrameHandler* handler) {
  std::shared_ptr<TcpConnection> c(new TcpConnection(loop, id, options, handler));
  int rc = uv_tcp_init(loop->uv(), &c->tcp_);
  if (rc != 0) {
    DLOG_WARN << "uv_tcp_init: " << uv_strerror(rc);
    return nullptr;
  }
  c->tcp_.data = c.get();
  ++c->open_handles_;
  rc = uv_timer_init(loop->uv(), &c->timer_);
  DLOG_CHECK(rc == 0) << "uv_timer_init: " << uv_strerror(rc);
  c->timer_.data = c.get();
  ++c->open_handles_;
  c->self_ = c;
  return c;
}

TcpConnection::TcpConnection(EventLoop* loop, uint64_t id, const ConnectionOptions& options, FrameHandler* handler)
    : loop_(loop), id_(id), opts_(options), handler_(handler) {
  std::memset(&tcp_, 0, sizeof(tcp_));
  std::memset(&timer_, 0, sizeof(timer_));
  write_req_.data = this;
  connect_req_.data = this;
  shutdown_req_.data = this;
}

TcpConnection::~TcpConnection() = default;

int64_t TcpConnection::Now() const { return static_cast<int64_t>(uv_now(loop_->uv())); }

void TcpConnection::StartAccepted() { Opened(); }

void TcpConnection::Opened() {
  opened_ = true;
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage sa;
  int len = sizeof(sa);
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&sa), &len) == 0) peer_ = SockAddrToString(sa);
  frame_progress_ms_ = Now();
  if (handler_ != nullptr) handler_->OnOpen(self_);
  if (closing_) return;
  StartWrite();
  UpdateReading();
}

void TcpConnection::StartConnect(const sockaddr_in& addr, int64_t timeout_ms) {
  sockaddr_storage sa;
  std::memset(&sa, 0, sizeof(sa));
  std::memcpy(&sa, &addr, sizeof(addr));
  peer_ = SockAddrToString(sa);
  connecting_ = true;
  int rc = uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&addr), &TcpConnection::OnConnect);
  if (rc != 0) {
    connecting_ = false;
    CloseNow(Status::Error(NetErrc::kConnectFailed, "connect to " + peer_ + ": " + uv_strerror(rc)));
    return;
  }
  connect_deadline_ms_ = Now() + std::max<int64_t>(timeout_ms, 1);
  ArmTimer();
}

void TcpConnection::OnConnect(uv_connect_t* req, int status) {
  auto* c = static_cast<TcpConnection*>(req->data);
  c->connecting_ = false;
  if (status < 0) {
    Status st = Status::Error(NetErrc::kConnectFailed, "connect to " + c->peer_ + ": " + uv_strerror(status));
    if (!c->handles_closing_) {
      c->CloseNow(st);
    } else if (c->close_reason_.ok() && status != UV_ECANCELED) {
      c->close_reason_ = st;
    }
    return;
  }
  if (c->closing_) return;
  c->Opened();
}

void TcpConnection::Abort() {
  handler_ = nullptr;
  CloseNow(Status::Error(NetErrc::kClosed, "connection aborted"));
}

void TcpConnection::CloseNow(const Status& reason) {
  if (close_reason_.ok()) close_reason_ = reason;
  closing_ = true;
  FinishClose();
}

void TcpConnection::Close() {
  if (closing_) return;
  closing_ = true;
  if (!opened_ || handles_closing_ || !opts_.flush_on_close) {
    FinishClose();
    return;
  }
  close_deadline_ms_ = Now() + opts_.close_flush_timeout_ms;
  // Keep reading, but discard: a peer still sending is not reset before it read our last frames.
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  uv_read_stop(stream);
  reading_ = false;
  if (!eof_) {
    if (uv_read_start(stream, &TcpConnection::OnDiscardAlloc, &TcpConnection::OnDiscardRead) == 0) reading_ = true;
  }
  if (!write_in_flight_ && out_.empty()) {
    StartShutdown();
  } else {
    StartWrite();
  }
  ArmTimer();
}

void TcpConnection::StartShutdown() {
  if (shutdown_started_ || handles_closing_) return;
  shutdown_started_ = true;
  int rc = uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &TcpConnection::OnShutdown);
  if (rc != 0) FinishClose();
}

void TcpConnection::OnShutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<TcpConnection*>(req->data);
  if (c->handles_closing_) return;
  // Done once the peer closed too; otherwise the discarding read or the deadline ends it.
  if (status < 0 || c->eof_ || !c->reading_) c->FinishClose();
}

void TcpConnection::OnDiscardAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  static thread_local char discard[16 << 10];
  buf->base = discard;
  buf->len = sizeof(discard);
}

void TcpConnection::OnDiscardRead(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto* c = static_cast<TcpConnection*>(s->data);
  if (nread >= 0) return;
  c->eof_ = true;
  uv_read_stop(s);
  c->reading_ = false;
  if (c->shutdown_started_ || nread != UV_EOF) c->FinishClose();  // else: after the flush
}

void TcpConnection::FinishClose() {
  if (handles_closing_) return;
  handles_closing_ = true;
  closing_ = true;
  reading_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &TcpConnection::OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &TcpConnection::OnHandleClosed);
}

void TcpConnection::OnHandleClosed(uv_handle_t* h) {
  auto* c = static_cast<TcpConnection*>(h->data);
  if (--c->open_handles_ == 0) c->Finalize();
}

void TcpConnection::Finalize() {
  chunk_.reset();
  begin_ = end_ = need_total_ = 0;
  std::shared_ptr<Connection> self = std::move(self_);
  FrameHandler* h = std::exchange(handler_, nullptr);
  if (h != nullptr) h->OnClose(self);
  // `self` may hold the last reference: nothing touches `this` after here.
}

// ---- input ----

void TcpConnection::OnAlloc(uv_handle_t* h, size_t /*suggested*/, uv_buf_t* buf) {
  auto* c = static_cast<TcpConnection*>(h->data);
  buf->base = nullptr;
  buf->len = 0;
  if (!c->chunk_) {
    Chunk* ch = Chunk::TryAllocate(c->opts_.read_chunk_bytes, c->opts_.budget);
    if (ch == nullptr) return;  // read_cb gets UV_ENOBUFS
    c->chunk_ = ChunkRef(ch);
    c->begin_ = c->end_ = 0;
  }
  const size_t room = c->chunk_->capacity() - c->end_;
  if (room == 0) return;  // cannot happen (MakeRoom ran); UV_ENOBUFS recovers anyway
  buf->base = reinterpret_cast<char*>(c->chunk_->data() + c->end_);
  buf->len = room;
}

void TcpConnection::OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* /*buf*/) {
  auto* c = static_cast<TcpConnection*>(s->data);
  if (nread > 0) {
    if (c->begin_ == c->end_) c->frame_progress_ms_ = c->Now();  // a new frame starts
    c->end_ += static_cast<size_t>(nread);
    c->budget_wait_since_ms_ = 0;
    c->ProcessInput();
    return;
  }
  if (nread == 0) return;  // EAGAIN
  if (nread == UV_ENOBUFS) {
    c->budget_wait_ = true;
    if (c->budget_wait_since_ms_ == 0) c->budget_wait_since_ms_ = std::max<int64_t>(c->Now(), 1);
    if (LogAllowed(&g_budget_log_ms)) {
      DLOG_WARN << "connection " << c->id_ << " from " << c->peer_
                << ": inbound memory budget exhausted; reading paused";
    }
    c->UpdateReading();
    c->ArmTimer();
    return;
  }
  if (nread == UV_EOF) {
    // The peer finished sending; a partial frame is dropped. Flush and close.
    c->eof_ = true;
    if (c->close_reason_.ok()) c->close_reason_ = Status::Error(NetErrc::kConnectionLost, "closed by the peer");
    c->Close();
    return;
  }
  c->CloseNow(Status::Error(NetErrc::kConnectionLost, UvError("read", static_cast<int>(nread))));
}

void TcpConnection::ProcessInput() {
  if (!chunk_ || closing_) return;
  bool delivered = false;
  while (!closing_ && !output_paused_ && begin_ < end_) {
    protocol::FrameView f;
    size_t need = 0;
    Status err;
    std::string_view in(reinterpret_cast<const char*>(chunk_->data() + begin_), end_ - begin_);
    const protocol::DecodeState st = protocol::DecodeFrame(in, opts_.max_frame_bytes, &f, &need, &err);
    if (st == protocol::DecodeState::kFrame) {
      Slice payload(chunk_, reinterpret_cast<const uint8_t*>(f.payload.data()), f.payload.size());
      begin_ += f.frame_bytes;
      need_total_ = 0;
      delivered = true;
      if (handler_ != nullptr) handler_->OnFrame(self_, f.header, std::move(payload));
      continue;
    }
    if (st == protocol::DecodeState::kError) {
      if (LogAllowed(&g_protocol_error_log_ms)) {
        DLOG_WARN << "connection " << id_ << " from " << peer_ << ": protocol error: " << err.ToString()
                  << "; closing it";
      }
      chunk_.reset();
      begin_ = end_ = need_total_ = 0;
      if (close_reason_.ok()) close_reason_ = err;
      if (handler_ != nullptr) handler_->OnProtocolError(self_, err);
      Close();  // flushes what the handler queued
      return;
    }
    need_total_ = need;
    break;
  }
  if (closing_) return;
  if (delivered) frame_progress_ms_ = Now();
  if (begin_ == end_) {
    // Nothing buffered: drop the chunk (its slices keep it alive as long as needed).
    chunk_.reset();
    begin_ = end_ = need_total_ = 0;
    return;
  }
  if (!output_paused_ && !MakeRoom()) {
    budget_wait_ = true;
    if (budget_wait_since_ms_ == 0) budget_wait_since_ms_ = std::max<int64_t>(Now(), 1);
    UpdateReading();
  }
  ArmTimer();
}

bool TcpConnection::MakeRoom() {
  if (!chunk_) {
    // A fresh chunk is allocated lazily in OnAlloc; only check the budget has room.
    if (opts_.budget == nullptr) return true;
    const auto charge = static_cast<int64_t>(opts_.read_chunk_bytes + sizeof(Chunk));
    if (!opts_.budget->TryReserve(charge)) return false;
    opts_.budget->Release(charge);
    return true;
  }
  // The partial frame at begin_ needs `need` bytes from begin_ (4 until its length is known).
  const size_t need = need_total_ > 0 ? need_total_ : 4;
  if (end_ < chunk_->capacity()) return true;  // room to read more into this chunk
  // The chunk is full. A big frame's buffer grows with the bytes that actually
  // arrived (doubling, up to the frame's size) rather than being allocated
  // whole from its declared length: a peer that declares 5 MiB and sends
  // 64 KiB holds ~128 KiB, so slow or stalled big frames cannot drain the
  // shared budget and starve other connections.
  const size_t buffered = end_ - begin_;
  const size_t cap = std::max(opts_.read_chunk_bytes, std::min(need, 2 * buffered));
  Chunk* c = Chunk::TryAllocate(cap, opts_.budget);
  if (c == nullptr) return false;
  const size_t n = end_ - begin_;
  std::memcpy(c->data(), chunk_->data() + begin_, n);
  chunk_ = ChunkRef(c);
  begin_ = 0;
  end_ = n;
  return true;
}

void TcpConnection::UpdateReading() {
  if (handles_closing_ || closing_) return;  // Close() manages reading from then on
  const bool want = opened_ && !output_paused_ && !budget_wait_;
  if (want == reading_) return;
  if (want) {
    int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &TcpConnection::OnAlloc, &TcpConnection::OnRead);
    if (rc != 0) {
      CloseNow(Status::Error(NetErrc::kConnectionLost, UvError("uv_read_start", rc)));
      return;
    }
    reading_ = true;
  } else {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
  }
}

// ---- timer: connect timeout, close flush deadline, budget retry, partial frame timeout ----

void TcpConnection::ArmTimer() {
  if (handles_closing_) return;
  const int64_t now = Now();
  int64_t due = std::numeric_limits<int64_t>::max();
  if (connecting_) due = std::min(due, connect_deadline_ms_);
  if (closing_) due = std::min(due, close_deadline_ms_);
  if (budget_wait_) due = std::min(due, now + opts_.budget_retry_ms);
  if (!closing_ && !output_paused_ && chunk_ && begin_ < end_) {
    due = std::min(due, frame_progress_ms_ + opts_.idle_timeout_ms);
  }
  if (due == std::numeric_limits<int64_t>::max()) return;  // a pending timer finds nothing to do and stops
  const auto delay = static_cast<uint64_t>(std::max<int64_t>(due - now, 0));
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&timer_)) && uv_timer_get_due_in(&timer_) <= delay) return;
  uv_timer_start(&timer_, &TcpConnection::OnTimer, delay, 0);
}

void TcpConnection::OnTimer(uv_timer_t* t) {
  auto* c = static_cast<TcpConnection*>(t->data);
  if (c->handles_closing_) return;
  const int64_t now = c->Now();
  if (c->connecting_ && now >= c->connect_deadline_ms_) {
    c->CloseNow(Status::Error(NetErrc::kConnectFailed, "connect to " + c->peer_ + " timed out"));
    return;
  }
  if (c->closing_) {
    if (now >= c->close_deadline_ms_) {
      c->FinishClose();  // the output did not flush, or the peer did not close, in time
    } else {
      c->ArmTimer();
    }
    return;
  }
  if (c->budget_wait_) {
    if (c->MakeRoom()) {
      c->budget_wait_ = false;
      c->UpdateReading();
    } else if (now - c->budget_wait_since_ms_ >= c->opts_.idle_timeout_ms) {
      c->CloseNow(Status::Error(NetErrc::kConnectionLost,
                                "no inbound memory for " + std::to_string(c->opts_.idle_timeout_ms) + " ms"));
      return;
    }
  }
  if (!c->output_paused_ && c->chunk_ && c->begin_ < c->end_ &&
      now - c->frame_progress_ms_ >= c->opts_.idle_timeout_ms) {
    if (LogAllowed(&g_protocol_error_log_ms)) {
      DLOG_WARN << "connection " << c->id_ << " from " << c->peer_ << ": partial frame held for "
                << (now - c->frame_progress_ms_) << " ms; closing it";
    }
    c->CloseNow(Status::Error(NetErrc::kTimeout, "partial frame held too long"));
    return;
  }
  c->ArmTimer();
}

// ---- output ----

void TcpConnection::SendFrame(const google::protobuf::MessageLite& header, std::string_view payload) {
  if (closing_) return;
  const size_t hlen = header.ByteSizeLong();
  const size_t total = protocol::kFramePrefixBytes + hlen + payload.size();
  DLOG_CHECK(total - 4 <= std::numeric_limits<uint32_t>::max()) << "frame of " << total << " bytes";
  uint8_t* p = out_.Reserve(total);
  uint8_t* h = p + protocol::kFramePrefixBytes;
  header.SerializeWithCachedSizesToArray(h);
  uint8_t* body = h + hlen;
  if (!payload.empty()) std::memcpy(body, payload.data(), payload.size());
  protocol::EncodeFramePrefix(p, std::string_view(reinterpret_cast<const char*>(h), hlen),
                              std::string_view(reinterpret_cast<const char*>(body), payload.size()));
  out_.Commit(total);
  AfterQueued();
}

void TcpConnection::SendFrame(std::string_view header, std::string_view payload) {
  if (closing_) return;
  DLOG_CHECK(protocol::kMinFrameLength + header.size() + payload.size() <= std::numeric_limits<uint32_t>::max())
      << "frame too large";
  protocol::AppendFrame(&out_, header, payload);
  AfterQueued();
}

void TcpConnection::AfterQueued() {
  if (!output_paused_ && queued_output_bytes() > opts_.out_high_water_bytes) {
    output_paused_ = true;
    UpdateReading();
  }
  StartWrite();
}

void TcpConnection::StartWrite() {
  if (!opened_ || write_in_flight_ || out_.empty() || handles_closing_) return;
  out_.swap(writing_);  // writing_ was empty; out_ gets its capacity back
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(writing_.data()), static_cast<unsigned>(writing_.size()));
  int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1, &TcpConnection::OnWrite);
  if (rc != 0) {
    writing_.Clear();
    CloseNow(Status::Error(NetErrc::kConnectionLost, UvError("write", rc)));
    return;
  }
  write_in_flight_ = true;
}

void TcpConnection::OnWrite(uv_write_t* req, int status) {
  auto* c = static_cast<TcpConnection*>(req->data);
  c->write_in_flight_ = false;
  c->writing_.Clear();
  c->writing_.ShrinkTo(c->opts_.out_keep_bytes);
  if (status < 0) {
    if (!c->handles_closing_) c->CloseNow(Status::Error(NetErrc::kConnectionLost, UvError("write", status)));
    return;
  }
  if (c->handles_closing_) return;
  c->StartWrite();
  if (c->closing_) {
    if (!c->write_in_flight_) c->StartShutdown();
    return;
  }
  if (c->output_paused_ && c->queued_output_bytes() <= c->opts_.out_low_water_bytes) {
    c->output_paused_ = false;
    c->frame_progress_ms_ = c->Now();
    c->ProcessInput();  // frames buffered while paused
    c->UpdateReading();
    c->ArmTimer();
  }
}

}  // namespace dlog::net
