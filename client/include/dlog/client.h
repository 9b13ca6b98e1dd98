// Client: the entry point of the dlog client library (Apache Pulsar's C++
// client is the model). It owns one event loop thread, the connections to
// the brokers (one per broker address, shared by every producer and
// consumer of the client), and the producers, consumers and readers made
// from it.
//
//   auto client = dlog::client::Client::Create({.service_url = "dlog://127.0.0.1:6650"});
//   auto producer = (*client)->CreateProducer("public/default/orders");
//   producer->Send(dlog::client::Message::Create("hello"));
//
// Topics are "tenant/namespace/topic" with N >= 1 partitions; producers and
// consumers cover every partition.
//
// Threading: every method is thread-safe. Each blocking call is built on
// its async twin; async callbacks run on the client's event loop thread and
// must not block (a blocking call made there fails with kIllegalState).
// Close() (also run by the destructor) closes every producer, consumer and
// reader of the client and joins the loop thread: not from a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dlog/config.h"
#include "dlog/consumer.h"
#include "dlog/error.h"
#include "dlog/message.h"
#include "dlog/message_id.h"
#include "dlog/producer.h"
#include "dlog/reader.h"

namespace dlog::client {

class ClientImpl;

struct SubscriptionStats {
  std::string name;
  SubscriptionType type = SubscriptionType::kExclusive;
  int32_t partition = 0;
  int64_t backlog_messages = 0;  // records (batches) after the mark-delete position not acked
  int64_t mark_delete_seq = 0;
  int64_t ack_holes = 0;
  int32_t consumers = 0;
  int64_t msg_out = 0;
  int64_t redeliveries = 0;
  int64_t backlog_age_ms = 0;
};

struct PartitionStats {
  int32_t partition = 0;
  std::string owner;  // broker address
  int64_t records = 0;
  int64_t msg_in = 0;
  int64_t bytes_in = 0;
  int32_t producers = 0;
  std::vector<SubscriptionStats> subscriptions;
};

struct TopicStats {
  std::string topic;
  int32_t partitions = 0;
  std::vector<PartitionStats> partition_stats;
};

// Where ResetCursor moves a subscription.
struct CursorTarget {
  enum class Kind { kEarliest, kLatest, kMessageId, kPublishTime };
  Kind kind = Kind::kEarliest;
  MessageId message_id;         // kMessageId: its partition only
  int64_t publish_time_ms = 0;  // kPublishTime: every partition

  static CursorTarget Earliest() { return {}; }
  static CursorTarget Latest() { return {Kind::kLatest, {}, 0}; }
  static CursorTarget At(const MessageId& id) { return {Kind::kMessageId, id, 0}; }
  static CursorTarget AtTime(int64_t ms) { return {Kind::kPublishTime, {}, ms}; }
};

class Client {
 public:
  using ResultCallback = std::function<void(Status)>;

  // Validates the config and starts the loop thread; connects lazily.
  // kInvalidConfiguration for a bad service URL or value.
  static Result<std::unique_ptr<Client>> Create(ClientConfig config);
  ~Client();  // Close()
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // A producer registered on every partition of `topic`. Errors:
  // kTopicNotFound, kProducerBusy (a live producer has that name),
  // kTimeout / kConnectError (no owner reachable within the operation
  // timeout), kInvalidConfiguration, kAlreadyClosed.
  Result<Producer> CreateProducer(const std::string& topic, ProducerConfig config = {});
  void CreateProducerAsync(const std::string& topic, ProducerConfig config,
                           std::function<void(Result<Producer>)> callback);

  // A consumer of `subscription` (created at config.initial_position if
  // new) on every partition. Errors as above, plus kConsumerBusy (Exclusive
  // subscription taken, or another type).
  Result<Consumer> Subscribe(const std::string& topic, const std::string& subscription, ConsumerConfig config = {});
  void SubscribeAsync(const std::string& topic, const std::string& subscription, ConsumerConfig config,
                      std::function<void(Result<Consumer>)> callback);

  Result<Reader> CreateReader(const std::string& topic, ReaderConfig config = {});
  void CreateReaderAsync(const std::string& topic, ReaderConfig config, std::function<void(Result<Reader>)> callback);

  // --- topics and subscriptions (admin) ---
  Result<int32_t> GetPartitionCount(const std::string& topic);
  void GetPartitionCountAsync(const std::string& topic, std::function<void(Result<int32_t>)> callback);
  // kTopicExists, kInvalidTopicName, kNamespaceNotFound, kBadRequest.
  Status CreateTopic(const std::string& topic, int32_t partitions);
  void CreateTopicAsync(const std::string& topic, int32_t partitions, ResultCallback callback);
  // Without `force`, a topic with subscriptions is not deleted (kNotAllowed).
  Status DeleteTopic(const std::string& topic, bool force = false);
  void DeleteTopicAsync(const std::string& topic, bool force, ResultCallback callback);
  // The topics of "tenant/namespace", sorted.
  Result<std::vector<std::string>> ListTopics(const std::string& namespace_name);
  void ListTopicsAsync(const std::string& namespace_name,
                       std::function<void(Result<std::vector<std::string>>)> callback);
  Result<TopicStats> GetTopicStats(const std::string& topic);
  void GetTopicStatsAsync(const std::string& topic, std::function<void(Result<TopicStats>)> callback);
  // Every partition's subscriptions (asked of each partition's owner).
  Result<std::vector<SubscriptionStats>> ListSubscriptions(const std::string& topic);
  void ListSubscriptionsAsync(const std::string& topic,
                              std::function<void(Result<std::vector<SubscriptionStats>>)> callback);
  // Moves `subscription`'s cursor on every partition (on the id's partition
  // only for CursorTarget::At).
  Status ResetCursor(const std::string& topic, const std::string& subscription, const CursorTarget& target);
  void ResetCursorAsync(const std::string& topic, const std::string& subscription, const CursorTarget& target,
                        ResultCallback callback);
  // Deletes `subscription` on every partition.
  Status DeleteSubscription(const std::string& topic, const std::string& subscription);
  void DeleteSubscriptionAsync(const std::string& topic, const std::string& subscription, ResultCallback callback);

  // Closes every producer, consumer and reader (flushing producers), the
  // connections, and joins the loop thread. Idempotent. Not on the loop thread.
  Status Close();

  const ClientConfig& config() const;

 private:
  explicit Client(std::shared_ptr<ClientImpl> impl);
  std::shared_ptr<ClientImpl> impl_;
};

}  // namespace dlog::client
