#include "logstore/log/dlsn.h"

#include <charconv>

#include "logstore/log/errors.h"

namespace dlog::log {

std::string Dlsn::ToString() const {
  return std::to_string(segment_seq) + "/" + std::to_string(entry) + "/" + std::to_string(slot);
}

Result<Dlsn> Dlsn::Parse(std::string_view text) {
  auto bad = [&] {
    return Status::Error(LogErrc::kInvalidArgument,
                         "bad DLSN '" + std::string(text) + "': expected SEGMENT/ENTRY/SLOT, e.g. 1/0/0");
  };
  int64_t parts[3];
  std::string_view rest = text;
  for (int i = 0; i < 3; ++i) {
    const size_t cut = i < 2 ? rest.find('/') : rest.size();
    if (cut == std::string_view::npos || cut == 0) return bad();
    std::string_view num = rest.substr(0, cut);
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), parts[i]);
    if (ec != std::errc() || p != num.data() + num.size() || parts[i] < 0) return bad();
    rest = i < 2 ? rest.substr(cut + 1) : std::string_view();
  }
  if (parts[2] > INT32_MAX) return bad();
  return Dlsn{parts[0], parts[1], static_cast<int32_t>(parts[2])};
}

}  // namespace dlog::log
