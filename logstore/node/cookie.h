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
//   journal_salt=<32 hex digits>
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
  std::string instance_id;  // random 128-bit, hex; reported (NodeInfo, metadata)
  // Random 128-bit, hex; salts every journal header CRC (JournalSeed). It is
  // never reported, so bytes a client sends cannot form a record that replay
  // would accept, and records of another node or an earlier dir never validate.
  std::string journal_salt;
  int64_t format_time_ms = 0;

  // Same identity (node, cluster, instance).
  bool SameIdentity(const Cookie& o) const {
    return node_id == o.node_id && cluster_id == o.cluster_id && instance_id == o.instance_id &&
           journal_salt == o.journal_salt;
  }
  // "node A, cluster C, instance U"
  std::string Describe() const;
};

// A new cookie with a random instance id and journal salt and the current time.
Cookie NewCookie(const std::string& node_id, const std::string& cluster_id);

std::string EncodeCookie(const Cookie& c);
// kCorruption for a bad CRC or syntax; kInvalidArgument for an unknown version.
Result<Cookie> DecodeCookie(const std::string& text);

// Writes `c` to `path` durably (temp file, fdatasync, rename, fsync of the dir).
Status WriteCookieFile(Env* env, const std::string& path, const Cookie& c);
// kNotFound if there is no such file.
Result<Cookie> ReadCookieFile(Env* env, const std::string& path);

// The header-CRC seed of journal file `file_id` (JournalSeed,
// journal_format.h), from the journal salt in `data_dir`'s root COOKIE. For
// tools and tests that read journal files.
Result<uint32_t> ReadJournalSeed(Env* env, const std::string& data_dir, uint64_t file_id);

}  // namespace dlog::node
