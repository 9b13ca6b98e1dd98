// Message: what a producer sends and a consumer or reader receives.
//
// To send: Message::Create("payload").SetKey("k").SetProperty("a", "b"). The
// payload, key and properties are the user's; the library takes them by move.
// Received messages also carry their MessageId, publish time, redelivery
// count, topic and partition, and the producer's name and sequence id. A
// received payload is a view into the reference-counted batch it came in
// (no copy per message); a Message keeps that batch alive.
//
// A value type; copies share the received batch. Not synchronised: one
// thread at a time per Message object.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/buffer.h"
#include "dlog/message_id.h"

namespace dlog::client {

class Message {
 public:
  using Properties = std::vector<std::pair<std::string, std::string>>;

  Message() = default;
  static Message Create(std::string payload) {
    Message m;
    m.owned_payload_ = std::move(payload);
    return m;
  }

  // --- what the sender sets ---
  Message& SetPayload(std::string payload) {
    owned_payload_ = std::move(payload);
    shared_payload_ = Slice();
    shared_ = false;
    return *this;
  }
  // The partition key: keyed messages go to partition hash(key) % N and are
  // ordered per key on Key_Shared subscriptions.
  Message& SetKey(std::string key) {
    key_ = std::move(key);
    return *this;
  }
  Message& SetProperty(std::string name, std::string value) {
    properties_.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  Message& SetProperties(Properties properties) {
    properties_ = std::move(properties);
    return *this;
  }
  // Application time of the event (ms since the epoch; 0: none).
  Message& SetEventTime(int64_t ms) {
    event_time_ms_ = ms;
    return *this;
  }

  std::string_view payload() const { return shared_ ? shared_payload_.view() : std::string_view(owned_payload_); }
  size_t size() const { return payload().size(); }
  bool has_key() const { return key_.has_value(); }
  const std::string& key() const;  // empty if none
  const Properties& properties() const { return properties_; }
  // The value of property `name`, or null.
  const std::string* property(std::string_view name) const;
  int64_t event_time_ms() const { return event_time_ms_; }

  // --- set on received messages (and on nothing else) ---
  const MessageId& id() const { return id_; }
  int64_t publish_time_ms() const { return publish_time_ms_; }
  // How many times the broker delivered it before (0 on the first delivery).
  int32_t redelivery_count() const { return redelivery_count_; }
  const std::string& topic() const;
  int32_t partition() const { return id_.partition(); }
  const std::string& producer_name() const;
  int64_t sequence_id() const { return sequence_id_; }

  // Moves the payload out (a copy for received messages).
  std::string ReleasePayload() && { return shared_ ? std::string(shared_payload_.view()) : std::move(owned_payload_); }

 private:
  friend class MessageAccess;

  std::string owned_payload_;
  Slice shared_payload_;  // received: a view into the batch
  bool shared_ = false;
  std::optional<std::string> key_;
  Properties properties_;
  int64_t event_time_ms_ = 0;

  MessageId id_;
  int64_t publish_time_ms_ = 0;
  int32_t redelivery_count_ = 0;
  int64_t sequence_id_ = -1;
  std::shared_ptr<const std::string> topic_;          // shared by the messages of a batch
  std::shared_ptr<const std::string> producer_name_;  // shared by the messages of a batch
};

}  // namespace dlog::client
