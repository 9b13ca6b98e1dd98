// Consumer: receives the messages of one subscription on every partition of
// a topic.
//
// A thin, copyable handle: copies share one consumer. Created by
// Client::Subscribe; closed by Close(), Unsubscribe() or when the client
// closes.
//
// Flow: each partition prefetches up to receiver_queue_size messages (the
// broker sends no more than the permits granted; permits are topped up once
// half of them were consumed). Messages of one partition arrive in log
// order. When a partition's connection breaks, the consumer drops what it
// prefetched from it (the broker redelivers what was not acked),
// re-subscribes with backoff and resumes from the subscription's cursor.
//
// Acks: individual (any subscription) or cumulative (Exclusive and
// Failover only: kNotAllowed otherwise). Unacked messages are redelivered
// after a negative ack (after the nack delay), after the ack timeout (if
// set), or when the consumer closes. At-least-once: a message can arrive
// again until its ack is persisted.
//
// Threading: every method is thread-safe. Callbacks (async results,
// message listener) run on the client's event loop thread and must not
// block; the blocking calls fail with kIllegalState there.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dlog/error.h"
#include "dlog/message.h"

namespace dlog::client {

class ConsumerImpl;

class Consumer {
 public:
  using ReceiveCallback = std::function<void(Result<Message>)>;
  using ResultCallback = std::function<void(Status)>;

  Consumer() = default;

  const std::string& topic() const;
  const std::string& subscription() const;
  int32_t partitions() const;

  // Waits for the next message; timeout_ms < 0 waits forever. Errors:
  // kTimeout, kAlreadyClosed, kIllegalState (callback thread, or a message
  // listener is configured).
  Result<Message> Receive(int64_t timeout_ms = -1);
  // `callback` runs once with the next message (or kAlreadyClosed): at once
  // on the calling thread if a message is already queued, else on the loop.
  void ReceiveAsync(ReceiveCallback callback);

  // Acknowledges one message. With ack_receipt_enabled the result says
  // whether the broker persisted it; otherwise OK once sent.
  Status Acknowledge(const MessageId& id);
  Status Acknowledge(const Message& message) { return Acknowledge(message.id()); }
  void AcknowledgeAsync(const MessageId& id, ResultCallback callback);
  // Acknowledges every message of the id's partition up to and including
  // `id`. kNotAllowed on Shared and Key_Shared subscriptions.
  Status AcknowledgeCumulative(const MessageId& id);
  void AcknowledgeCumulativeAsync(const MessageId& id, ResultCallback callback);
  // Asks for redelivery of the message after the nack delay.
  void NegativeAcknowledge(const MessageId& id);
  void NegativeAcknowledge(const Message& message) { NegativeAcknowledge(message.id()); }
  // Asks the broker to redeliver every unacked message of this consumer.
  void RedeliverUnacknowledgedMessages();

  // Moves the subscription's cursor: a message id moves that id's partition
  // (Earliest()/Latest() move all); a publish time moves every partition to
  // the first message published at or after it. Prefetched messages are dropped.
  // kNotConnected while a target partition is reconnecting (retry).
  Status Seek(const MessageId& id);
  void SeekAsync(const MessageId& id, ResultCallback callback);
  Status SeekToTime(int64_t publish_time_ms);
  void SeekToTimeAsync(int64_t publish_time_ms, ResultCallback callback);

  // The id of the last message stored in each partition the consumer reads,
  // in partition order (Earliest() for an empty partition). kNotConnected
  // while a partition is reconnecting.
  Result<std::vector<MessageId>> GetLastMessageIds();
  void GetLastMessageIdsAsync(std::function<void(Result<std::vector<MessageId>>)> callback);

  // Deletes the subscription (fails with kConsumerBusy if other consumers
  // are attached) and closes this consumer.
  Status Unsubscribe();
  void UnsubscribeAsync(ResultCallback callback);
  // Closes; pending receives fail with kAlreadyClosed; unacked messages go
  // back to the subscription.
  Status Close();
  void CloseAsync(ResultCallback callback);

  bool is_connected() const;
  explicit operator bool() const { return impl_ != nullptr; }

 private:
  friend class ClientImpl;
  friend class ConsumerImpl;
  friend class Reader;
  explicit Consumer(std::shared_ptr<ConsumerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<ConsumerImpl> impl_;
};

}  // namespace dlog::client
