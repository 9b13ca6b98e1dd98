#include "client/lib/connection.h"

#include "client/lib/client_impl.h"
#include "client/lib/errors.h"
#include "common/clock.h"
#include "common/logging.h"

namespace dlog::client {

BrokerConnection::BrokerConnection(ClientImpl* client, std::string address, const sockaddr_in& addr, uint64_t id)
    : client_(client), address_(std::move(address)), addr_(addr), id_(id) {}

BrokerConnection::~BrokerConnection() = default;

void BrokerConnection::Start() {
  net::ConnectionOptions co;
  co.max_frame_bytes = client_->config().max_frame_bytes;
  co.flush_on_close = false;
  // Keepalive watches silence; the connection's own idle timer only bounds partial frames.
  co.idle_timeout_ms = std::max<int64_t>(client_->config().keepalive_interval_ms * 2, 10000);
  tcp_ = net::TcpConnection::Create(&client_->loop(), id_, co, this);
  if (!tcp_) {
    closed_ = true;
    SetReady(Err(ClientErrc::kConnectError, "cannot create a socket for " + address_));
    return;
  }
  last_received_ms_ = MonoMillis();
  tcp_->StartConnect(addr_, client_->config().connection_timeout_ms);
  proto::BaseCommand cmd;
  auto* c = cmd.mutable_connect();
  c->set_client_version("dlog-cpp-client 1");
  c->set_protocol_version(proto::BROKER_PROTOCOL_V1);
  tcp_->SendFrame(cmd, {});
  std::weak_ptr<BrokerConnection> weak = shared_from_this();
  handshake_timer_ = client_->timers().Schedule(client_->config().connection_timeout_ms, [weak] {
    auto self = weak.lock();
    if (!self || self->ready_known_) return;
    self->handshake_timer_ = 0;
    self->Close(Err(ClientErrc::kConnectError, "no answer to Connect from " + self->address_ + " within " +
                                                   std::to_string(self->client_->config().connection_timeout_ms) +
                                                   " ms"));
  });
}

void BrokerConnection::WhenReady(std::function<void(Status)> cb) {
  if (ready_known_) {
    cb(ready_status_);
    return;
  }
  ready_waiters_.push_back(std::move(cb));
}

void BrokerConnection::SetReady(const Status& st) {
  if (ready_known_) return;
  ready_known_ = true;
  ready_status_ = st;
  ready_ = st.ok();
  if (handshake_timer_ != 0) client_->timers().Cancel(std::exchange(handshake_timer_, 0));
  if (ready_) Keepalive();
  auto waiters = std::move(ready_waiters_);
  ready_waiters_.clear();
  for (auto& w : waiters) w(st);
}

void BrokerConnection::Keepalive() {
  if (closed_) return;
  const int64_t interval = std::max<int64_t>(client_->config().keepalive_interval_ms, 100);
  const int64_t silent = MonoMillis() - last_received_ms_;
  if (silent >= 2 * interval) {
    Close(Err(ClientErrc::kConnectError,
              "broker " + address_ + " silent for " + std::to_string(silent) + " ms (keepalive)"));
    return;
  }
  if (silent >= interval) {
    proto::BaseCommand ping;
    ping.mutable_ping();
    SendCommand(ping);
  }
  std::weak_ptr<BrokerConnection> weak = shared_from_this();
  keepalive_timer_ = client_->timers().Schedule(interval, [weak] {
    if (auto self = weak.lock()) self->Keepalive();
  });
}

void BrokerConnection::SendRequest(uint64_t request_id, const proto::BaseCommand& cmd, int64_t timeout_ms,
                                   ResponseCallback cb) {
  if (closed_ || !tcp_) {
    cb(Err(ClientErrc::kNotConnected, "connection to " + address_ + " is closed"));
    return;
  }
  std::weak_ptr<BrokerConnection> weak = shared_from_this();
  Pending p;
  p.cb = std::move(cb);
  p.timer = client_->timers().Schedule(timeout_ms, [weak, request_id, timeout_ms] {
    auto self = weak.lock();
    if (!self) return;
    auto it = self->requests_.find(request_id);
    if (it == self->requests_.end()) return;
    ResponseCallback c = std::move(it->second.cb);
    self->requests_.erase(it);
    c(Err(ClientErrc::kTimeout,
          "no answer from broker " + self->address_ + " within " + std::to_string(timeout_ms) + " ms"));
  });
  requests_.emplace(request_id, std::move(p));
  tcp_->SendFrame(cmd, {});
}

void BrokerConnection::SendCommand(const proto::BaseCommand& cmd, std::string_view payload) {
  if (closed_ || !tcp_) return;
  tcp_->SendFrame(cmd, payload);
}

void BrokerConnection::Close(const Status& why) {
  if (closed_ || !tcp_) return;
  if (close_reason_.ok()) close_reason_ = why;
  tcp_->CloseNow(why);  // OnClose follows
}

void BrokerConnection::Abort() {
  aborted_ = true;
  closed_ = true;
  if (tcp_) tcp_->Abort();
  tcp_.reset();
  requests_.clear();
  producers_.clear();
  consumers_.clear();
  ready_waiters_.clear();
}

void BrokerConnection::OnOpen(const net::ConnectionPtr&) { last_received_ms_ = MonoMillis(); }

void BrokerConnection::OnProtocolError(const net::ConnectionPtr&, const Status& error) {
  DLOG_WARN << "frames from broker " << address_ << " are broken: " << error.ToString();
  if (close_reason_.ok()) close_reason_ = Err(ClientErrc::kProtocolError, error.message());
}

void BrokerConnection::OnFrame(const net::ConnectionPtr&, std::string_view header, Slice payload) {
  if (closed_) return;
  last_received_ms_ = MonoMillis();
  proto::BaseCommand cmd;
  if (!cmd.ParseFromArray(header.data(), static_cast<int>(header.size()))) {
    Close(Err(ClientErrc::kProtocolError, "a command from broker " + address_ + " does not parse"));
    return;
  }
  Dispatch(cmd, payload);
}

void BrokerConnection::Dispatch(proto::BaseCommand& cmd, const Slice& payload) {
  using C = proto::BaseCommand;
  switch (cmd.command_case()) {
    case C::kConnected:
      if (cmd.connected().max_message_size() > 0) max_message_size_ = cmd.connected().max_message_size();
      SetReady(Status::OK());
      return;
    case C::kPing: {
      proto::BaseCommand pong;
      pong.mutable_pong();
      SendCommand(pong);
      return;
    }
    case C::kPong:
      return;
    case C::kError: {
      const auto& e = cmd.error();
      Status st = FromServerError(e.error(), e.message());
      if (e.request_id() == 0) {
        // The broker is closing the connection (or refused the Connect).
        close_reason_ = st;
        if (!ready_known_) SetReady(st);
        return;
      }
      Complete(e.request_id(), st);
      return;
    }
    case C::kSuccess:
      Complete(cmd.success().request_id(), std::move(cmd));
      return;
    case C::kLookupResponse:
      Complete(cmd.lookup_response().request_id(), std::move(cmd));
      return;
    case C::kPartitionedMetadataResponse:
      Complete(cmd.partitioned_metadata_response().request_id(), std::move(cmd));
      return;
    case C::kListTopicsResponse:
      Complete(cmd.list_topics_response().request_id(), std::move(cmd));
      return;
    case C::kTopicStatsResponse:
      Complete(cmd.topic_stats_response().request_id(), std::move(cmd));
      return;
    case C::kListSubscriptionsResponse:
      Complete(cmd.list_subscriptions_response().request_id(), std::move(cmd));
      return;
    case C::kProducerSuccess:
      Complete(cmd.producer_success().request_id(), std::move(cmd));
      return;
    case C::kGetLastMessageIdResponse:
      Complete(cmd.get_last_message_id_response().request_id(), std::move(cmd));
      return;
    case C::kAckResponse: {
      const uint64_t rid = cmd.ack_response().request_id();
      if (rid == 0) return;
      Status st = FromServerError(cmd.ack_response().error(), cmd.ack_response().message());
      if (st.ok()) {
        Complete(rid, std::move(cmd));
      } else {
        Complete(rid, st);
      }
      return;
    }
    case C::kSendReceipt:
      ToProducer(cmd.send_receipt().producer_id(), cmd);
      return;
    case C::kSendError:
      ToProducer(cmd.send_error().producer_id(), cmd);
      return;
    case C::kCloseProducer:
      ToProducer(cmd.close_producer().producer_id(), cmd);
      return;
    case C::kMessage:
      ToConsumer(cmd.message().consumer_id(), cmd, payload);
      return;
    case C::kCloseConsumer:
      ToConsumer(cmd.close_consumer().consumer_id(), cmd, payload);
      return;
    case C::kActiveConsumerChange:
      ToConsumer(cmd.active_consumer_change().consumer_id(), cmd, payload);
      return;
    default:
      DLOG_WARN << "broker " << address_ << " sent an unexpected command " << static_cast<int>(cmd.command_case());
      return;
  }
}

void BrokerConnection::Complete(uint64_t request_id, Result<proto::BaseCommand> r) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return;  // timed out already
  Pending p = std::move(it->second);
  requests_.erase(it);
  if (p.timer != 0) client_->timers().Cancel(p.timer);
  p.cb(std::move(r));
}

void BrokerConnection::ToProducer(uint64_t id, const proto::BaseCommand& cmd) {
  auto it = producers_.find(id);
  if (it != producers_.end()) it->second->OnCommand(this, cmd, Slice());
}

void BrokerConnection::ToConsumer(uint64_t id, const proto::BaseCommand& cmd, const Slice& payload) {
  auto it = consumers_.find(id);
  if (it != consumers_.end()) it->second->OnCommand(this, cmd, payload);
}

void BrokerConnection::OnClose(const net::ConnectionPtr&) {
  if (aborted_) return;
  auto self = shared_from_this();  // the pool may drop its reference below
  closed_ = true;
  ready_ = false;
  if (handshake_timer_ != 0) client_->timers().Cancel(std::exchange(handshake_timer_, 0));
  if (keepalive_timer_ != 0) client_->timers().Cancel(std::exchange(keepalive_timer_, 0));
  Status why = close_reason_;
  if (why.ok()) {
    const Status& tcp_reason = tcp_ ? tcp_->close_reason() : Status::OK();
    const bool opened = tcp_ && tcp_->opened();
    if (!opened) {
      why = Err(ClientErrc::kConnectError, "cannot connect to broker " + address_ +
                                               (tcp_reason.ok() ? std::string() : " (" + tcp_reason.message() + ")"));
    } else {
      why = Err(ClientErrc::kNotConnected, "connection to broker " + address_ + " closed" +
                                               (tcp_reason.ok() ? std::string() : ": " + tcp_reason.message()));
    }
  }
  client_->OnConnectionClosed(this);
  SetReady(why);
  auto requests = std::move(requests_);
  requests_.clear();
  for (auto& [rid, p] : requests) {
    if (p.timer != 0) client_->timers().Cancel(p.timer);
    // A request that was sent: its outcome is unknown; retried by the caller if it is idempotent.
    p.cb(IsRetryable(why) ? why : Err(ClientErrc::kNotConnected, why.message()));
  }
  auto producers = std::move(producers_);
  producers_.clear();
  for (auto& [pid, l] : producers) l->OnConnectionClosed(this, why);
  auto consumers = std::move(consumers_);
  consumers_.clear();
  for (auto& [cid, l] : consumers) l->OnConnectionClosed(this, why);
  tcp_.reset();
}

}  // namespace dlog::client
