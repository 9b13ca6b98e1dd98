#include "net/rpc_client.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <utility>

#include "common/check.h"
#include "common/logging.h"
#include "net/errors.h"
#include "net/tcp_connection.h"

namespace dlog::net {

RpcClient::RpcClient(EventLoop* loop, RpcClientOptions options, Handler* handler)
    : loop_(loop), opts_(std::move(options)), handler_(handler) {
  const size_t window = std::max<size_t>(opts_.window, 1);
  slots_.resize(std::bit_ceil(window));
  mask_ = slots_.size() - 1;
  addr_ok_ = uv_ip4_addr(opts_.address.host.c_str(), opts_.address.port, &addr_) == 0;
}

RpcClient::~RpcClient() { DLOG_CHECK(tick_ == nullptr && !conn_) << "RpcClient destroyed before Shutdown()"; }

int64_t RpcClient::Now() const { return static_cast<int64_t>(uv_now(loop_->uv())); }

Status RpcClient::Reserve(uint64_t* id, size_t* slot) {
  if (closed_) return Status::Error(NetErrc::kClosed, "client closed");
  if (in_flight() >= opts_.window) {
    return Status::Error(NetErrc::kWindowFull, std::to_string(in_flight()) + " requests in flight to " +
                                                   opts_.address.ToString() + " (window " +
                                                   std::to_string(opts_.window) + ")");
  }
  if (!registered_) {
    loop_->AddResource(this);
    registered_ = true;
  }
  if (!conn_) DLOG_RETURN_IF_ERROR(Connect());
  if (tick_ == nullptr) {
    tick_ = new uv_timer_t;
    int rc = uv_timer_init(loop_->uv(), tick_);
    DLOG_CHECK(rc == 0) << "uv_timer_init: " << uv_strerror(rc);
    tick_->data = this;
  }
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(tick_))) {
    const auto period = static_cast<uint64_t>(std::max<int64_t>(opts_.tick_ms, 1));
    uv_timer_start(
        tick_, [](uv_timer_t* t) { static_cast<RpcClient*>(t->data)->CheckDeadlines(); }, period, period);
  }
  // in_flight < window <= capacity, so a free slot exists; usually the next one.
  uint64_t i = next_id_;
  while (slots_[i & mask_].busy) ++i;
  next_id_ = i + 1;
  Slot& s = slots_[i & mask_];
  s.id = i;
  s.busy = true;
  s.deadline_ms = std::numeric_limits<int64_t>::max();
  s.timeout_ms = 0;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  *id = i;
  *slot = i & mask_;
  return Status::OK();
}

void RpcClient::Send(uint64_t id, size_t slot, const google::protobuf::MessageLite& header, std::string_view payload,
                     int64_t timeout_ms) {
  Slot& s = slots_[slot];
  DLOG_CHECK(s.busy && s.id == id) << "Send of request " << id << " that was not reserved";
  s.timeout_ms = timeout_ms;
  s.deadline_ms = Now() + timeout_ms;
  conn_->SendFrame(header, payload);
}

bool RpcClient::Claim(uint64_t id, size_t* slot) {
  const size_t i = id & mask_;
  if (id == 0 || !slots_[i].busy || slots_[i].id != id) {
    dropped_replies_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Free(i);
  *slot = i;
  return true;
}

void RpcClient::Free(size_t slot) {
  slots_[slot].busy = false;
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

Status RpcClient::Connect() {
  if (!addr_ok_) {
    return Status::Error(NetErrc::kConnectFailed,
                         "bad address " + opts_.address.ToString() + " (an IPv4 literal and a port are expected)");
  }
  const int64_t now = Now();
  if (now < backoff_until_ms_) {
    return Status::Error(NetErrc::kConnectFailed, "not connected to " + opts_.address.ToString() + " (" +
                                                      last_connect_error_.message() + "); next attempt in " +
                                                      std::to_string(backoff_until_ms_ - now) + " ms");
  }
  ConnectionOptions co;
  co.max_frame_bytes = opts_.max_frame_bytes;
  co.read_chunk_bytes = opts_.read_chunk_bytes;
  co.flush_on_close = false;
  auto conn = TcpConnection::Create(loop_, ++conn_seq_, co, this);
  if (!conn) return Status::Error(NetErrc::kConnectFailed, "cannot create a socket");
  conn_ = std::move(conn);
  conn_->StartConnect(addr_, opts_.connect_timeout_ms);  // failures arrive through OnClose
  return Status::OK();
}

void RpcClient::OnOpen(const ConnectionPtr& conn) {
  if (conn.get() != conn_.get()) return;
  backoff_ms_ = 0;
  backoff_until_ms_ = 0;
  connects_.fetch_add(1, std::memory_order_relaxed);
}

void RpcClient::OnFrame(const ConnectionPtr& conn, std::string_view header, Slice payload) {
  if (conn.get() != conn_.get() || closed_) return;
  handler_->OnReplyFrame(header, std::move(payload));
}

void RpcClient::OnProtocolError(const ConnectionPtr& conn, const Status& error) {
  DLOG_WARN << "reply stream from " << opts_.address.ToString() << " is broken: " << error.ToString();
  // OnClose fails what is in flight.
  if (conn.get() == conn_.get()) conn_->CloseNow(error);
}

void RpcClient::OnClose(const ConnectionPtr& conn) {
  if (conn.get() != conn_.get()) return;
  auto* tc = conn_.get();
  const bool was_open = tc->opened();
  const Status reason = tc->close_reason();
  conn_.reset();
  if (closed_) return;
  const std::string why = reason.ok() ? std::string("closed") : reason.message();
  if (was_open) {
    backoff_ms_ = 0;
    backoff_until_ms_ = 0;
    FailAll(Status::Error(NetErrc::kConnectionLost, "connection to " + opts_.address.ToString() + " lost: " + why));
  } else {
    backoff_ms_ =
        backoff_ms_ == 0 ? opts_.reconnect_backoff_min_ms : std::min(backoff_ms_ * 2, opts_.reconnect_backoff_max_ms);
    backoff_until_ms_ = Now() + backoff_ms_;
    last_connect_error_ = Status::Error(NetErrc::kConnectFailed, why);
    FailAll(Status::Error(NetErrc::kConnectFailed, why));
  }
}

void RpcClient::DropConnection(const Status& why) {
  if (conn_) conn_->CloseNow(why);
}

void RpcClient::OnLoopStop() {
  registered_ = false;
  Shutdown(Status::Error(NetErrc::kClosed, "event loop stopped"));
}

void RpcClient::Shutdown(const Status& why) {
  if (closed_) return;
  closed_ = true;
  if (registered_) {
    loop_->RemoveResource(this);
    registered_ = false;
  }
  if (conn_) {
    conn_->Abort();  // no more handler calls from it
    conn_.reset();
  }
  if (tick_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(tick_, nullptr)),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
  FailAll(why);
}

void RpcClient::FailAll(const Status& status) {
  if (in_flight() == 0) return;
  // In id order (oldest first). Callbacks may issue new requests: those are
  // not in this list, and a reused slot is recognised by its id.
  std::vector<std::pair<uint64_t, size_t>> victims;
  victims.reserve(in_flight());
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].busy) victims.emplace_back(slots_[i].id, i);
  }
  std::sort(victims.begin(), victims.end());
  for (const auto& [id, slot] : victims) {
    if (!slots_[slot].busy || slots_[slot].id != id) continue;
    Free(slot);
    handler_->OnRequestFailed(id, slot, status);
  }
}

void RpcClient::CheckDeadlines() {
  if (in_flight() == 0) {
    if (tick_ != nullptr) uv_timer_stop(tick_);
    return;
  }
  const int64_t now = Now();
  std::vector<std::pair<uint64_t, size_t>> expired;  // stays empty (no allocation) unless something expired
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].busy && slots_[i].deadline_ms <= now) expired.emplace_back(slots_[i].id, i);
  }
  if (expired.empty()) return;
  std::sort(expired.begin(), expired.end());
  for (const auto& [id, slot] : expired) {
    if (!slots_[slot].busy || slots_[slot].id != id) continue;
    const int64_t timeout = slots_[slot].timeout_ms;
    Free(slot);
    handler_->OnRequestFailed(id, slot,
                              Status::Error(NetErrc::kTimeout, "no reply from " + opts_.address.ToString() +
                                                                   " within " + std::to_string(timeout) + " ms"));
  }
}

}  // namespace dlog::net
