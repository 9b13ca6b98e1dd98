// Internal: sets the fields of received messages (Message's friend).
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "dlog/message.h"

namespace dlog::client {

class MessageAccess {
 public:
  static void SetSharedPayload(Message* m, Slice payload) {
    m->shared_payload_ = std::move(payload);
    m->owned_payload_.clear();
    m->shared_ = true;
  }
  static void SetKey(Message* m, std::string key) { m->key_ = std::move(key); }
  static Message::Properties& properties(Message* m) { return m->properties_; }
  static void SetId(Message* m, const MessageId& id) { m->id_ = id; }
  static void SetReceived(Message* m, int64_t publish_time_ms, int32_t redelivery_count, int64_t sequence_id,
                          std::shared_ptr<const std::string> topic, std::shared_ptr<const std::string> producer) {
    m->publish_time_ms_ = publish_time_ms;
    m->redelivery_count_ = redelivery_count;
    m->sequence_id_ = sequence_id;
    m->topic_ = std::move(topic);
    m->producer_name_ = std::move(producer);
  }
  static const std::optional<std::string>& key(const Message& m) { return m.key_; }
};

}  // namespace dlog::client
