// Cookie: the identity of a data dir (node id, cluster id, instance id,
// format time), written when the dir is formatted and checked at every start
// so a wiped or swapped data dir (or a part of one) is refused: a node that
// forgot what it acknowledged must never answer "no such entry".
//
// Three copies: <data>/COOKIE, <data>/journal/COOKIE and the index key "C".
// Text format (docs/formats/journal.md, "Cookie"):
//
//   dlog-cookie 1
//   node_id=<id>
//   cluster_id=<id>
//   instance_id=<32 hex digits>
//   format_time_ms=<ms since epoch>
//   crc32c=<8 hex digits over every byte above>
//
// Pure code plus file helpers over Env; thread-compatible.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "logstore/node/env.h"

namespace dlog::node {

inline constexpr int kCookieVersion = 1;
inline constexpr char kCookieFileName[] = "COOKIE";

struct Cookie {
  std::string node_id;
  std::string cluster_id;
  std::string instance_id;  // random 128-bit, hex
  int64_t format_time_ms = 0;

  // Same identity (node, cluster, instance).
  bool SameIdentity(const Cookie& o) const {
    return node_id == o.node_id && cluster_id == o.cluster_id && instance_id == o.instance_id;
  }
  // "node A, cluster C, instance U"
  std::string Describe() const;
};

// A new cookie with a random instance id and the current time.
Cookie NewCookie(const std::string& node_id, const std::string& cluster_id);

std::string EncodeCookie(const Cookie& c);
// kCorruption for a bad CRC or syntax; kInvalidArgument for an unknown version.
Result<Cookie> DecodeCookie(const std::string& text);

// Writes `c` to `path` durably (temp file, fdatasync, rename, fsync of the dir).
Status WriteCookieFile(Env* env, const std::string& path, const Cookie& c);
// kNotFound if there is no such file.
Result<Cookie> ReadCookieFile(Env* env, const std::string& path);

}  // namespace dlog::node
