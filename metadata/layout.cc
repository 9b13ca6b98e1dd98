#include "metadata/layout.h"

#include "metadata/metadata_store.h"

namespace dlog::metadata {

namespace {

bool PlainChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string EscapeName(std::string_view name) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (PlainChar(c)) {
      out += c;
    } else {
      auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  // "." and ".." are not valid path components: escape their dots.
  if (out == ".") return "%2E";
  if (out == "..") return "%2E%2E";
  return out;
}

Result<std::string> UnescapeName(std::string_view component) {
  std::string out;
  for (size_t i = 0; i < component.size(); ++i) {
    char c = component[i];
    if (c != '%') {
      if (!PlainChar(c)) {
        return Status::Error(MetaErrc::kInvalidArgument, "bad escaped name '" + std::string(component) + "'");
      }
      out += c;
      continue;
    }
    if (i + 2 >= component.size()) {
      return Status::Error(MetaErrc::kInvalidArgument, "truncated escape in '" + std::string(component) + "'");
    }
    int hi = HexValue(component[i + 1]);
    int lo = HexValue(component[i + 2]);
    if (hi < 0 || lo < 0) {
      return Status::Error(MetaErrc::kInvalidArgument, "bad escape in '" + std::string(component) + "'");
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

Result<Layout> Layout::Make(std::string_view cluster) {
  bool ok = !cluster.empty() && cluster != "." && cluster != "..";
  for (char c : cluster) ok = ok && PlainChar(c);
  if (!ok) return Status::Error(MetaErrc::kInvalidArgument, "bad cluster name '" + std::string(cluster) + "'");
  return Layout("/dlog/" + std::string(cluster));
}

std::string Layout::NodesDir() const { return root_ + "/nodes"; }
std::string Layout::Node(std::string_view node_id) const { return NodesDir() + "/" + EscapeName(node_id); }
std::string Layout::CookiesDir() const { return root_ + "/cookies"; }
std::string Layout::Cookie(std::string_view node_id) const { return CookiesDir() + "/" + EscapeName(node_id); }
std::string Layout::SegmentsDir() const { return root_ + "/segments"; }
std::string Layout::SegmentBucket(SegmentId id) const {
  return SegmentsDir() + "/" + std::to_string(id.value() / kSegmentBucketSize);
}
std::string Layout::Segment(SegmentId id) const { return SegmentBucket(id) + "/" + std::to_string(id.value()); }

std::optional<SegmentId> Layout::ParseSegment(std::string_view path) const {
  std::string prefix = SegmentsDir() + "/";
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view rest = path.substr(prefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto parse = [](std::string_view s) -> std::optional<uint64_t> {
    if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    unsigned __int128 v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > UINT64_MAX) return std::nullopt;
    return static_cast<uint64_t>(v);
  };
  auto bucket = parse(rest.substr(0, slash));
  auto id = parse(rest.substr(slash + 1));
  if (!bucket || !id || *id / kSegmentBucketSize != *bucket) return std::nullopt;
  return SegmentId(*id);
}

std::string Layout::CountersDir() const { return root_ + "/counters"; }
std::string Layout::SegmentIdCounter() const { return CountersDir() + "/segment-id"; }
std::string Layout::NamespacesDir() const { return root_ + "/namespaces"; }
std::string Layout::Namespace(std::string_view ns) const { return NamespacesDir() + "/" + EscapeName(ns); }
std::string Layout::Log(std::string_view ns, std::string_view log_name) const {
  return Namespace(ns) + "/" + EscapeName(log_name);
}
std::string Layout::LogLockDir(std::string_view ns, std::string_view log_name) const {
  return Log(ns, log_name) + "/lock";
}
std::string Layout::BrokersDir() const { return root_ + "/brokers"; }
std::string Layout::Broker(std::string_view broker_id) const { return BrokersDir() + "/" + EscapeName(broker_id); }
std::string Layout::TopicsDir() const { return root_ + "/topics"; }
std::string Layout::Topic(std::string_view topic) const { return TopicsDir() + "/" + EscapeName(topic); }
std::string Layout::OwnershipDir() const { return root_ + "/ownership"; }
std::string Layout::Ownership(std::string_view partition) const { return OwnershipDir() + "/" + EscapeName(partition); }

std::vector<std::string> Layout::Directories() const {
  return {"/dlog",       root_,           NodesDir(),   CookiesDir(), SegmentsDir(),
          CountersDir(), NamespacesDir(), BrokersDir(), TopicsDir(),  OwnershipDir()};
}

}  // namespace dlog::metadata
