// Producer: publishes messages to every partition of one topic.
//
// A thin, copyable handle: copies share one producer. Created by
// Client::CreateProducer; closed by Close() or when the client closes
// (dropping the last handle does not close it; Client::Close does).
//
// Delivery: each partition keeps a window of pending batches (sent, not yet
// acknowledged). When a partition moves to another broker or a connection
// drops, the producer looks the partition up again (backoff 100 ms doubling
// to 2 s, with jitter), re-registers under the same name and re-sends every
// pending batch with its original sequence ids; the broker drops duplicates.
// A message therefore fails only on its send timeout (kTimeout: outcome
// unknown), on close (kAlreadyClosed), or when the broker refuses it for
// good (kMessageTooLarge, kBadRequest). Callbacks of one partition run in
// send order.
//
// Threading: every method is thread-safe. Callbacks run on the client's
// event loop thread: they must not block, and the blocking calls (Send,
// Flush, Close) fail with kIllegalState there. SendAsync blocks while the
// pending queue is full if block_if_queue_full is set (except on that thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dlog/error.h"
#include "dlog/message.h"

namespace dlog::client {

class ProducerImpl;

class Producer {
 public:
  using SendCallback = std::function<void(Result<MessageId>)>;
  using ResultCallback = std::function<void(Status)>;

  // An unusable handle (every call fails with kIllegalState).
  Producer() = default;

  const std::string& topic() const;
  // The configured name, or the broker-assigned name of partition 0.
  std::string producer_name() const;
  int32_t partitions() const;

  // Sends and waits for the broker's acknowledgement. Errors: kTimeout,
  // kAlreadyClosed, kProducerQueueIsFull, kMessageTooLarge, kBadRequest,
  // kIllegalState (on the callback thread).
  Result<MessageId> Send(Message message);
  // Queues `message` (batched per the config); `callback` runs once with
  // the message id or the error — on the loop thread, or at once on the
  // calling thread if the message is refused before it is queued
  // (kProducerQueueIsFull, kAlreadyClosed).
  void SendAsync(Message message, SendCallback callback);

  // Sends every batched message now and waits until all messages sent
  // before the call have ended (acknowledged or failed: their own
  // callbacks say which). kAlreadyClosed if the producer is closed.
  Status Flush();
  void FlushAsync(ResultCallback callback);

  // Flushes, waits for pending messages (up to the send timeout), and
  // unregisters from the brokers. Sends after Close fail with kAlreadyClosed.
  Status Close();
  void CloseAsync(ResultCallback callback);

  // The highest sequence id acknowledged so far over the partitions (-1: none).
  int64_t last_sequence_id() const;
  // Messages accepted and not yet acknowledged or failed.
  int pending_messages() const;
  bool is_connected() const;  // every partition is registered with its broker

  explicit operator bool() const { return impl_ != nullptr; }

 private:
  friend class ClientImpl;
  explicit Producer(std::shared_ptr<ProducerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<ProducerImpl> impl_;
};

}  // namespace dlog::client
