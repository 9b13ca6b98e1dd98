#include "broker/topic_name.h"

namespace dlog::broker {
namespace {

Status Bad(std::string msg) { return Status::Error(CommonErrc::kInvalidArgument, std::move(msg)); }

bool Allowed(char c, std::string_view extra) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         extra.find(c) != std::string_view::npos;
}

Status CheckPart(std::string_view part, const char* what, size_t max, std::string_view extra) {
  if (part.empty()) return Bad(std::string(what) + " name is empty");
  if (part.size() > max) {
    return Bad(std::string(what) + " name is " + std::to_string(part.size()) + " bytes; at most " +
               std::to_string(max));
  }
  if (part[0] == '.') return Bad(std::string(what) + " name '" + std::string(part) + "' starts with '.'");
  for (char c : part) {
    if (!Allowed(c, extra)) {
      return Bad(std::string(what) + " name '" + std::string(part) + "' has a character outside [A-Za-z0-9_-" +
                 std::string(extra) + "]");
    }
  }
  return Status::OK();
}

}  // namespace

Result<TopicName> TopicName::Parse(std::string_view text) {
  const size_t a = text.find('/');
  const size_t b = a == std::string_view::npos ? a : text.find('/', a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos || text.find('/', b + 1) != std::string_view::npos) {
    return Bad("topic '" + std::string(text.substr(0, 300)) + "' is not tenant/namespace/topic");
  }
  TopicName t{std::string(text.substr(0, a)), std::string(text.substr(a + 1, b - a - 1)),
              std::string(text.substr(b + 1))};
  DLOG_RETURN_IF_ERROR(CheckPart(t.tenant, "tenant", 64, ""));
  DLOG_RETURN_IF_ERROR(CheckPart(t.ns, "namespace", 64, "."));
  DLOG_RETURN_IF_ERROR(CheckPart(t.topic, "topic", 128, ".:="));
  return t;
}

Result<std::string> LogNamespaceOf(std::string_view tn) {
  const size_t a = tn.find('/');
  if (a == std::string_view::npos || tn.find('/', a + 1) != std::string_view::npos) {
    return Bad("namespace '" + std::string(tn.substr(0, 300)) + "' is not tenant/namespace");
  }
  DLOG_RETURN_IF_ERROR(CheckPart(tn.substr(0, a), "tenant", 64, ""));
  DLOG_RETURN_IF_ERROR(CheckPart(tn.substr(a + 1), "namespace", 64, "."));
  return std::string(tn.substr(0, a)) + "." + std::string(tn.substr(a + 1));
}

}  // namespace dlog::broker
