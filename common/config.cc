#include "common/config.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>

namespace dlog {
namespace {

Status Bad(std::string_view what, std::string_view text) {
  return Status::Error(CommonErrc::kInvalidArgument, std::string(what) + ": '" + std::string(text) + "'");
}

bool ParseUint(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits "123abc" into ("123", "abc").
void SplitNumber(std::string_view s, std::string_view* num, std::string_view* unit) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  *num = s.substr(0, i);
  *unit = Trim(s.substr(i));
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  std::string_view num, unit;
  SplitNumber(Trim(text), &num, &unit);
  uint64_t v;
  if (!ParseUint(num, &v)) return Bad("not a byte size", text);
  uint64_t mult;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KiB" || unit == "K" || unit == "k")
    mult = 1ull << 10;
  else if (unit == "MiB" || unit == "M")
    mult = 1ull << 20;
  else if (unit == "GiB" || unit == "G")
    mult = 1ull << 30;
  else if (unit == "KB")
    mult = 1000;
  else if (unit == "MB")
    mult = 1000 * 1000;
  else if (unit == "GB")
    mult = 1000 * 1000 * 1000;
  else
    return Bad("unknown byte-size unit (use B, KiB, MiB, GiB, KB, MB, GB)", text);
  if (v != 0 && mult > UINT64_MAX / v) return Bad("byte size overflows", text);
  return v * mult;
}

Result<int64_t> ParseDurationMicros(std::string_view text) {
  std::string_view num, unit;
  SplitNumber(Trim(text), &num, &unit);
  uint64_t v;
  if (!ParseUint(num, &v)) return Bad("not a duration", text);
  uint64_t mult;
  if (unit == "us")
    mult = 1;
  else if (unit.empty() || unit == "ms")
    mult = 1000;
  else if (unit == "s")
    mult = 1000 * 1000;
  else if (unit == "m" || unit == "min")
    mult = 60ull * 1000 * 1000;
  else
    return Bad("unknown duration unit (use us, ms, s, m)", text);
  if (v != 0 && mult > static_cast<uint64_t>(INT64_MAX) / v) return Bad("duration overflows", text);
  return static_cast<int64_t>(v * mult);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  text = Trim(text);
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return Bad("expected HOST:PORT", text);
  HostPort hp;
  hp.host = std::string(text.substr(0, colon));
  in_addr addr;
  if (inet_pton(AF_INET, hp.host.c_str(), &addr) != 1) return Bad("host is not an IPv4 address", text);
  uint64_t port;
  if (!ParseUint(text.substr(colon + 1), &port) || port > 65535) return Bad("bad port", text);
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

}  // namespace dlog
