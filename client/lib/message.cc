#include "dlog/message.h"

namespace dlog::client {
namespace {
const std::string kEmpty;
}

const std::string& Message::key() const { return key_ ? *key_ : kEmpty; }
const std::string& Message::topic() const { return topic_ ? *topic_ : kEmpty; }
const std::string& Message::producer_name() const { return producer_name_ ? *producer_name_ : kEmpty; }

const std::string* Message::property(std::string_view name) const {
  for (const auto& [k, v] : properties_) {
    if (k == name) return &v;
  }
  return nullptr;
}

}  // namespace dlog::client
