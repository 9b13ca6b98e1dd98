// Configuration of the client, producers, consumers and readers. Plain
// structs with defaults; validated when used (kInvalidConfiguration).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "dlog/message_id.h"

namespace dlog::client {

class Consumer;
class Message;

struct ClientConfig {
  // dlog://HOST:PORT[,HOST:PORT...]: brokers to ask for lookups and admin
  // calls (any of them answers). Hosts are IPv4 literals or "localhost".
  std::string service_url = "dlog://127.0.0.1:6650";
  // Bound of every operation that is not a send: connect + lookup +
  // registration of a producer or consumer (with its retries), admin calls,
  // seeks, closes.
  int64_t operation_timeout_ms = 30000;
  // I/O threads; exactly 1 is supported (one event loop per client; every
  // callback runs on it).
  int io_threads = 1;
  // One TCP connect + protocol handshake.
  int64_t connection_timeout_ms = 10000;
  // A connection idle this long gets a Ping; one silent for twice this long is closed.
  int64_t keepalive_interval_ms = 30000;
  // Backoff between reconnects and re-lookups: doubling from initial to max, with jitter.
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 2000;
  // Largest frame accepted from a broker.
  uint32_t max_frame_bytes = 5u << 20;
};

enum class CompressionType { kNone, kLz4, kZstd };

enum class RoutingMode {
  // Messages without a key go to one partition per batch, the next partition
  // for the next batch (every message, with batching off). Keyed messages go
  // to hash(key) % partitions (murmur3, stable across processes).
  kRoundRobin,
  // Messages without a key all go to one partition picked at creation.
  // Keyed messages as above.
  kSinglePartition,
};

struct ProducerConfig {
  // Empty: the broker assigns a unique name (kept across reconnects). The
  // name scopes deduplication: a restarted producer with the same name
  // continues after the highest sequence id the broker stored for it.
  std::string producer_name;
  bool batching_enabled = true;
  int batching_max_messages = 1000;
  uint32_t batching_max_bytes = 128u << 10;
  int64_t batching_max_delay_ms = 1;  // a batch waits at most this long for more messages
  CompressionType compression = CompressionType::kNone;
  RoutingMode routing_mode = RoutingMode::kRoundRobin;
  // Messages accepted but not yet acknowledged by the broker (all partitions).
  int max_pending_messages = 1000;
  // When max_pending_messages are pending: SendAsync blocks until there is
  // room (true), or fails with kProducerQueueIsFull (false). On the client's
  // callback thread it never blocks (it fails instead).
  bool block_if_queue_full = true;
  // A message not acknowledged within this fails with kTimeout (its outcome
  // is then unknown). 0: never; the producer retries across reconnects.
  int64_t send_timeout_ms = 30000;
};

enum class SubscriptionType { kExclusive, kShared, kFailover, kKeyShared };
enum class InitialPosition { kLatest, kEarliest };

struct ConsumerConfig {
  SubscriptionType subscription_type = SubscriptionType::kExclusive;
  std::string consumer_name;  // shown in stats; may be empty
  // Where a new subscription starts (an existing one resumes at its cursor).
  InitialPosition initial_position = InitialPosition::kLatest;
  // Messages prefetched per partition (the broker's permits). At least 1.
  int receiver_queue_size = 1000;
  // Bound of the prefetch summed over the partitions of a partitioned topic.
  int max_total_receiver_queue_size_across_partitions = 50000;
  // A received message not acked within this is redelivered. 0: off; else >= 1000.
  int64_t ack_timeout_ms = 0;
  // A negatively acked message is redelivered after this delay.
  int64_t negative_ack_redelivery_delay_ms = 1000;
  // Failover: lower is preferred for the active consumer.
  int32_t priority_level = 0;
  // Acks report success only once the broker persisted them (each ack waits
  // for an AckResponse). Off: an ack's callback runs once it is sent.
  bool ack_receipt_enabled = false;
  // Set: messages are pushed to this callback (on the client's thread)
  // instead of being queued for Receive. It must not block.
  std::function<void(Consumer&, const Message&)> message_listener;
  // Failover: called (on the client's thread) when this consumer becomes the
  // active consumer of `partition`, or stops being it.
  std::function<void(int32_t partition, bool active)> active_consumer_listener;
};

struct ReaderConfig {
  // Where to start: Earliest(), Latest(), or a message id. A message id
  // names one partition: the reader then reads that partition only.
  MessageId start_message_id = MessageId::Latest();
  // Whether start_message_id itself is read (ignored for the sentinels).
  bool start_message_id_inclusive = false;
  int receiver_queue_size = 1000;
  std::string reader_name;
};

}  // namespace dlog::client
