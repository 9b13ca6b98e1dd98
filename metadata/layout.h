// The metadata tree (DESIGN "Metadata"), as path helpers. Under one cluster
// root /dlog/<cluster>:
//
//   nodes/<node id>                      NodeRegistration, ephemeral
//   cookies/<node id>                    NodeCookie, persistent (the data dir a node id has)
//   segments/<id / 10000>/<id>           SegmentMetadata (bucketed: no znode
//                                        gets more than 10000 children)
//   counters/segment-id                  IdCounter for segment ids
//   namespaces/<escaped ns>              NamespaceMetadata; its children are its logs
//   namespaces/<escaped ns>/<escaped log>          LogMetadata
//   namespaces/<escaped ns>/<escaped log>/lock/<guid>-<seq>  OwnerRecord, ephemeral sequential
//   brokers/<escaped broker id>          broker registration, ephemeral
//   topics/<escaped tenant/namespace/topic>   topic metadata
//   ownership/<escaped partition name>   ownership (the partition log's lock)
//
// A name with characters outside [A-Za-z0-9._-] (log names carry '/') is
// escaped into one path component with %XX (uppercase hex), so the tree keeps
// one node per log or topic. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/strong_id.h"

namespace dlog::metadata {

inline constexpr uint64_t kSegmentBucketSize = 10000;

// Escapes `name` into one path component ("" and names that would escape to
// "." or ".." are rejected by Layout, not here).
std::string EscapeName(std::string_view name);
// Inverse of EscapeName; kInvalidArgument on a malformed escape.
Result<std::string> UnescapeName(std::string_view component);

class Layout {
 public:
  // `cluster`: [A-Za-z0-9._-]+, not "." or "..". kInvalidArgument otherwise.
  static Result<Layout> Make(std::string_view cluster);

  const std::string& root() const { return root_; }  // /dlog/<cluster>

  std::string NodesDir() const;
  std::string Node(std::string_view node_id) const;
  std::string CookiesDir() const;
  std::string Cookie(std::string_view node_id) const;
  std::string SegmentsDir() const;
  std::string SegmentBucket(SegmentId id) const;
  std::string Segment(SegmentId id) const;
  // The segment id of a path made by Segment(), or nullopt.
  std::optional<SegmentId> ParseSegment(std::string_view path) const;
  std::string CountersDir() const;
  std::string SegmentIdCounter() const;
  std::string NamespacesDir() const;
  std::string Namespace(std::string_view ns) const;
  std::string Log(std::string_view ns, std::string_view log_name) const;
  std::string LogLockDir(std::string_view ns, std::string_view log_name) const;
  std::string BrokersDir() const;
  std::string Broker(std::string_view broker_id) const;
  std::string TopicsDir() const;
  std::string Topic(std::string_view topic) const;
  std::string OwnershipDir() const;
  std::string Ownership(std::string_view partition) const;

  // Every fixed directory, parents first (for EnsurePathSync at start-up).
  std::vector<std::string> Directories() const;

 private:
  explicit Layout(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace dlog::metadata
