// ClientImpl: the state behind a Client — its loop thread, timers, the
// pool of broker connections, lookups and admin requests with retries, and
// the registry of producers and consumers (which it closes on Close).
//
// Threading: everything except Create/Close/the public entry points runs on
// the loop thread. Retries: an operation that fails with a retryable error
// (IsRetryable) is tried again after a backoff (initial doubling to max,
// ±20% jitter) until its deadline; then it fails with the last error (as
// kTimeout, or kConnectError if no broker could be reached).
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker.pb.h"
#include "client/lib/connection.h"
#include "client/lib/timers.h"
#include "common/thread_annotations.h"
#include "dlog/client.h"
#include "net/event_loop.h"

namespace dlog::client {

class ProducerImpl;
class ConsumerImpl;

// "dlog://host:port[,host:port...]" -> "host:port" list (localhost -> 127.0.0.1).
Result<std::vector<std::string>> ParseServiceUrl(const std::string& url);
// "host:port" (IPv4 literal or localhost) -> socket address.
Result<sockaddr_in> ParseBrokerAddress(const std::string& address);
// Checks a topic name "tenant/namespace/topic".
Status ValidateTopic(const std::string& topic);

// For the callbacks of one attempt (epoch) of a PartitionProducer's or
// PartitionConsumer's connection: locks `owner` into *hold and returns its
// partition `idx` if that partition is still in attempt `epoch`; null if the
// owner is gone or a later attempt began.
template <class Owner>
auto CurrentAttempt(const std::weak_ptr<Owner>& owner, int32_t idx, uint64_t epoch, std::shared_ptr<Owner>* hold) {
  *hold = owner.lock();
  auto* part = *hold ? (*hold)->part(idx) : nullptr;
  return part != nullptr && part->epoch() == epoch ? part : nullptr;
}

class ClientImpl : public std::enable_shared_from_this<ClientImpl> {
 public:
  using ConnCallback = std::function<void(Result<std::shared_ptr<BrokerConnection>>)>;
  using ResponseCallback = BrokerConnection::ResponseCallback;
  // Fills a request command with the given request id.
  using FillRequest = std::function<void(proto::BaseCommand*, uint64_t request_id)>;

  static Result<std::shared_ptr<ClientImpl>> Create(ClientConfig config);
  ClientImpl(ClientConfig config, std::vector<std::string> brokers);
  ~ClientImpl();

  const ClientConfig& config() const { return config_; }
  net::EventLoop& loop() { return loop_; }
  Timers& timers() { return timers_; }
  bool InLoop() const { return loop_.InLoopThread(); }
  // Posts `task` to the loop; false (task not run) once the client is closed.
  bool Post(std::function<void()> task);
  // kIllegalState on the loop thread (a blocking call from a callback).
  Status CheckBlockingAllowed(const char* what) const;
  int64_t Deadline() const;      // now + operation timeout (MonoMillis)
  int64_t Backoff(int attempt);  // jittered backoff before attempt `attempt` (1, 2, ...)

  // --- loop thread ---
  bool closing() const { return closing_; }
  void GetConnection(const std::string& address, ConnCallback cb);
  // A connection to one of the service URL's brokers (the next one after a failure).
  void GetServiceConnection(ConnCallback cb);
  // The owner's address of (topic, partition): one attempt, no retries.
  void LookupOnce(const std::string& topic, int32_t partition, std::function<void(Result<std::string>)> cb);
  // LookupOnce, then GetConnection to the owner: one attempt each; `cb` gets
  // the connection or the first error. A `still_wanted` given is asked when
  // the lookup answers: if it says false, the chain stops there (no
  // connection, `cb` not called).
  void LookupAndConnect(const std::string& topic, int32_t partition, ConnCallback cb,
                        std::function<bool()> still_wanted = nullptr);
  // One request to any broker (partition < 0) or to the partition's owner,
  // retried until `deadline_ms`.
  void Request(const std::string& topic, int32_t partition, FillRequest fill, int64_t deadline_ms, ResponseCallback cb);
  void GetPartitions(const std::string& topic, int64_t deadline_ms, std::function<void(Result<int32_t>)> cb);
  void OnConnectionClosed(BrokerConnection* conn);

  void AddProducer(std::shared_ptr<ProducerImpl> p);
  void RemoveProducer(ProducerImpl* p);
  void AddConsumer(std::shared_ptr<ConsumerImpl> c);
  void RemoveConsumer(ConsumerImpl* c);

  // --- any thread but the loop's ---
  Status Close();

  // Admin calls (any thread; the callback runs on the loop).
  void CreateTopic(const std::string& topic, int32_t partitions, std::function<void(Status)> cb);
  void DeleteTopic(const std::string& topic, bool force, std::function<void(Status)> cb);
  void ListTopics(const std::string& ns, std::function<void(Result<std::vector<std::string>>)> cb);
  void TopicStatsOf(const std::string& topic, std::function<void(Result<TopicStats>)> cb);
  void ListSubscriptions(const std::string& topic, std::function<void(Result<std::vector<SubscriptionStats>>)> cb);
  void ResetCursor(const std::string& topic, const std::string& sub, const CursorTarget& target,
                   std::function<void(Status)> cb);
  void DeleteSubscription(const std::string& topic, const std::string& sub, std::function<void(Status)> cb);
  void PartitionCount(const std::string& topic, std::function<void(Result<int32_t>)> cb);
  void CreateProducer(const std::string& topic, ProducerConfig config, std::function<void(Result<Producer>)> cb);
  void Subscribe(const std::string& topic, const std::string& sub, ConsumerConfig config, bool durable,
                 ReaderConfig reader, std::function<void(Result<Consumer>)> cb);

 private:
  struct RetryState;
  void Attempt(std::shared_ptr<RetryState> st);
  // Posts one request to any broker (`topic` may be empty), retried until
  // the operation timeout; `cb` gets kAlreadyClosed at once if the client is closed.
  void AdminRequest(const std::string& topic, FillRequest fill, ResponseCallback cb);
  // Runs `per_partition(p, done)` for every partition of `topic`, then `cb`
  // with the first error.
  void ForEachPartition(const std::string& topic, int64_t deadline,
                        std::function<void(int32_t, std::function<void(Status)>)> per_partition,
                        std::function<void(Status)> cb);
  void ShutdownOnLoop();

  const ClientConfig config_;
  const std::vector<std::string> brokers_;
  net::EventLoop loop_;
  Timers timers_;
  Mutex close_mu_;
  bool closed_ DLOG_GUARDED_BY(close_mu_) = false;

  // Loop thread only.
  bool closing_ = false;
  size_t next_broker_ = 0;
  uint64_t next_conn_id_ = 1;
  std::unordered_map<std::string, std::shared_ptr<BrokerConnection>> pool_;
  std::vector<std::shared_ptr<ProducerImpl>> producers_;
  std::vector<std::shared_ptr<ConsumerImpl>> consumers_;
  std::mt19937_64 rng_;
};

// The connection of attempt `epoch` of partition `idx` of `owner` (a
// ProducerImpl or ConsumerImpl): LookupAndConnect, then
// `on_conn(part, connection or first error)` while that attempt is current;
// nothing once the owner is gone or a later attempt began.
template <class Owner, class OnConnection>
void ConnectAttempt(ClientImpl* client, const std::weak_ptr<Owner>& owner, int32_t idx, uint64_t epoch,
                    const std::string& topic, int32_t partition, OnConnection on_conn) {
  client->LookupAndConnect(
      topic, partition,
      [owner, idx, epoch, on_conn = std::move(on_conn)](Result<std::shared_ptr<BrokerConnection>> c) {
        std::shared_ptr<Owner> hold;
        if (auto* part = CurrentAttempt(owner, idx, epoch, &hold)) on_conn(part, std::move(c));
      },
      [owner, idx, epoch] {
        std::shared_ptr<Owner> hold;
        return CurrentAttempt(owner, idx, epoch, &hold) != nullptr;
      });
}

// Connect() on partition `idx` of `owner` after `delay_ms`, if attempt
// `epoch` is still current then.
template <class Owner>
void ReconnectLater(ClientImpl* client, const std::weak_ptr<Owner>& owner, int32_t idx, uint64_t epoch,
                    int64_t delay_ms) {
  client->timers().Schedule(delay_ms, [owner, idx, epoch] {
    std::shared_ptr<Owner> hold;
    if (auto* part = CurrentAttempt(owner, idx, epoch, &hold)) part->Connect();
  });
}

}  // namespace dlog::client
