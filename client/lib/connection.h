// BrokerConnection: the client's framed connection to one broker address,
// shared by every producer, consumer and request of the client that goes
// there.
//
// Session: TCP connect, then Connect{protocol_version}; ready once the
// broker answers Connected (WhenReady callbacks run then, or with the
// error). Requests carry ids from NewRequestId(); their answers (Success,
// Error, *Response, ProducerSuccess, AckResponse) complete them, or the
// request's timeout (kTimeout) or the connection's end (kNotConnected).
// Frames the broker pushes go to the producer or consumer registered under
// the id they name (Listener). The connection pings when idle for the
// keepalive interval and closes when silent for two.
//
// Lifetime: owned by the ClientImpl's pool (shared_ptr); it removes itself
// from the pool when its TCP connection has closed, after telling every
// listener and failing every request. Loop thread only.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker.pb.h"
#include "common/buffer.h"
#include "common/status.h"
#include "net/tcp_connection.h"
#include "net/tcp_server.h"

namespace dlog::client {

class ClientImpl;

class BrokerConnection final : public net::FrameHandler, public std::enable_shared_from_this<BrokerConnection> {
 public:
  using ResponseCallback = std::function<void(Result<proto::BaseCommand>)>;

  class Listener {
   public:
    // A pushed command for this producer or consumer (payload: Message batches).
    virtual void OnCommand(BrokerConnection* conn, const proto::BaseCommand& cmd, const Slice& payload) = 0;
    // The connection closed: the listener is already unregistered.
    virtual void OnConnectionClosed(BrokerConnection* conn, const Status& why) = 0;

   protected:
    ~Listener() = default;
  };

  BrokerConnection(ClientImpl* client, std::string address, const sockaddr_in& addr, uint64_t id);
  ~BrokerConnection() override;

  void Start();
  void WhenReady(std::function<void(Status)> cb);
  bool ready() const { return ready_; }
  bool closed() const { return closed_; }
  const std::string& address() const { return address_; }
  uint32_t max_message_size() const { return max_message_size_; }

  uint64_t NewRequestId() { return next_request_id_++; }
  uint64_t NewProducerId() { return next_producer_id_++; }
  uint64_t NewConsumerId() { return next_consumer_id_++; }

  // Sends `cmd` (whose request_id is `request_id`); `cb` gets the answer.
  void SendRequest(uint64_t request_id, const proto::BaseCommand& cmd, int64_t timeout_ms, ResponseCallback cb);
  // Sends a command that expects no answer (or whose answer goes to a listener).
  void SendCommand(const proto::BaseCommand& cmd, std::string_view payload = {});

  void AddProducer(uint64_t id, Listener* l) { producers_[id] = l; }
  void RemoveProducer(uint64_t id) { producers_.erase(id); }
  void AddConsumer(uint64_t id, Listener* l) { consumers_[id] = l; }
  void RemoveConsumer(uint64_t id) { consumers_.erase(id); }

  // Closes at once; listeners and requests are told (OnClose).
  void Close(const Status& why);
  // Client shutdown: closes without telling anyone.
  void Abort();

 private:
  struct Pending {
    ResponseCallback cb;
    uint64_t timer = 0;
  };

  // net::FrameHandler:
  void OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) override;
  void OnProtocolError(const net::ConnectionPtr& conn, const Status& error) override;
  void OnOpen(const net::ConnectionPtr& conn) override;
  void OnClose(const net::ConnectionPtr& conn) override;

  void Dispatch(proto::BaseCommand& cmd, const Slice& payload);
  void Complete(uint64_t request_id, Result<proto::BaseCommand> r);
  void ToProducer(uint64_t id, const proto::BaseCommand& cmd);
  void ToConsumer(uint64_t id, const proto::BaseCommand& cmd, const Slice& payload);
  void SetReady(const Status& st);
  void Keepalive();

  ClientImpl* const client_;
  const std::string address_;
  const sockaddr_in addr_;
  const uint64_t id_;
  std::shared_ptr<net::TcpConnection> tcp_;
  bool ready_ = false;
  bool closed_ = false;
  bool aborted_ = false;
  Status ready_status_;  // once known
  bool ready_known_ = false;
  Status close_reason_;  // an Error{request_id 0} from the broker, if any
  uint32_t max_message_size_ = 5u << 20;
  int64_t last_received_ms_ = 0;
  uint64_t next_request_id_ = 1;
  uint64_t next_producer_id_ = 1;
  uint64_t next_consumer_id_ = 1;
  uint64_t handshake_timer_ = 0;
  uint64_t keepalive_timer_ = 0;
  std::vector<std::function<void(Status)>> ready_waiters_;
  std::unordered_map<uint64_t, Pending> requests_;
  std::unordered_map<uint64_t, Listener*> producers_;
  std::unordered_map<uint64_t, Listener*> consumers_;
};

}  // namespace dlog::client
