// Reader: reads a topic from a chosen position without a stored
// subscription (a non-durable consumer: no acks, nothing kept on the broker
// after it closes).
//
// A thin, copyable handle. Threading and callbacks as for Consumer.
#pragma once

#include <functional>
#include <memory>

#include "dlog/consumer.h"

namespace dlog::client {

class Reader {
 public:
  using ReadCallback = std::function<void(Result<Message>)>;
  using ResultCallback = std::function<void(Status)>;

  Reader() = default;

  const std::string& topic() const;
  // The next message; timeout_ms < 0 waits forever (kTimeout otherwise).
  Result<Message> ReadNext(int64_t timeout_ms = -1);
  void ReadNextAsync(ReadCallback callback);
  // Whether a message after the last one read exists now (asks the brokers
  // for the partitions' last message ids unless one is already prefetched).
  Result<bool> HasMessageAvailable();
  void HasMessageAvailableAsync(std::function<void(Result<bool>)> callback);
  Status Seek(const MessageId& id);
  Status SeekToTime(int64_t publish_time_ms);
  Status Close();
  void CloseAsync(ResultCallback callback);

  explicit operator bool() const { return static_cast<bool>(consumer_); }

 private:
  friend class Client;
  explicit Reader(Consumer consumer) : consumer_(std::move(consumer)) {}
  Consumer consumer_;
};

}  // namespace dlog::client
