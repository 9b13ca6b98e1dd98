#include "logstore/node/cookie.h"

#include <cinttypes>
#include <cstdio>
#include <random>
#include <sstream>

#include "common/clock.h"
#include "common/crc32c.h"
#include "logstore/node/journal_format.h"

namespace dlog::node {

std::string Cookie::Describe() const {
  return "node " + node_id + ", cluster " + cluster_id + ", instance " + instance_id;
}

Cookie NewCookie(const std::string& node_id, const std::string& cluster_id) {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(MonoNanos()));
  auto random_hex = [&rng] {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%016" PRIx64 "%016" PRIx64, rng(), rng());
    return std::string(buf);
  };
  Cookie c;
  c.node_id = node_id;
  c.cluster_id = cluster_id;
  c.instance_id = random_hex();
  c.journal_salt = random_hex();
  c.format_time_ms = WallMillis();
  return c;
}

std::string EncodeCookie(const Cookie& c) {
  std::string body = "dlog-cookie " + std::to_string(kCookieVersion) + "\n";
  body += "node_id=" + c.node_id + "\n";
  body += "cluster_id=" + c.cluster_id + "\n";
  body += "instance_id=" + c.instance_id + "\n";
  body += "journal_salt=" + c.journal_salt + "\n";
  body += "format_time_ms=" + std::to_string(c.format_time_ms) + "\n";
  char crc[32];
  std::snprintf(crc, sizeof(crc), "crc32c=%08x\n", crc32c::Value(body.data(), body.size()));
  return body + crc;
}

Result<Cookie> DecodeCookie(const std::string& text) {
  const size_t crc_at = text.rfind("crc32c=");
  if (crc_at == std::string::npos || (crc_at > 0 && text[crc_at - 1] != '\n')) {
    return Status::Error(CommonErrc::kCorruption, "cookie has no crc32c line");
  }
  unsigned stored = 0;
  if (std::sscanf(text.c_str() + crc_at, "crc32c=%8x", &stored) != 1) {
    return Status::Error(CommonErrc::kCorruption, "cookie crc32c line is malformed");
  }
  if (stored != crc32c::Value(text.data(), crc_at)) {
    return Status::Error(CommonErrc::kCorruption, "cookie CRC mismatch (the file is damaged)");
  }
  std::istringstream in(text.substr(0, crc_at));
  std::string line;
  if (!std::getline(in, line) || line.rfind("dlog-cookie ", 0) != 0) {
    return Status::Error(CommonErrc::kCorruption, "not a dlog cookie");
  }
  if (line != "dlog-cookie " + std::to_string(kCookieVersion)) {
    return Status::Error(CommonErrc::kInvalidArgument,
                         "cookie version '" + line.substr(12) + "' is unknown to this dlog (knows " +
                             std::to_string(kCookieVersion) + "); was the dir formatted by a newer dlog?");
  }
  Cookie c;
  bool has_node = false, has_cluster = false, has_instance = false, has_salt = false;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) return Status::Error(CommonErrc::kCorruption, "cookie line without '='");
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "node_id") {
      c.node_id = value;
      has_node = true;
    } else if (key == "cluster_id") {
      c.cluster_id = value;
      has_cluster = true;
    } else if (key == "instance_id") {
      c.instance_id = value;
      has_instance = true;
    } else if (key == "journal_salt") {
      c.journal_salt = value;
      has_salt = true;
    } else if (key == "format_time_ms") {
      c.format_time_ms = std::strtoll(value.c_str(), nullptr, 10);
    }  // unknown keys of the same version are ignored
  }
  if (!has_node || !has_cluster || !has_instance || !has_salt) {
    return Status::Error(CommonErrc::kCorruption, "cookie lacks node_id, cluster_id, instance_id or journal_salt");
  }
  return c;
}

Status WriteCookieFile(Env* env, const std::string& path, const Cookie& c) {
  const std::string tmp = path + ".tmp";
  const std::string text = EncodeCookie(c);
  {
    DLOG_ASSIGN_OR_RETURN(auto f, env->OpenFile(tmp, OpenMode::kCreateOrTrunc));
    DLOG_RETURN_IF_ERROR(f->PWrite(0, text.data(), text.size()));
    DLOG_RETURN_IF_ERROR(f->Sync());
  }
  DLOG_RETURN_IF_ERROR(env->RenameFile(tmp, path));
  const size_t slash = path.rfind('/');
  return env->SyncDir(slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash)));
}

Result<Cookie> ReadCookieFile(Env* env, const std::string& path) {
  DLOG_ASSIGN_OR_RETURN(auto f, env->OpenFile(path, OpenMode::kRead));
  DLOG_ASSIGN_OR_RETURN(uint64_t size, f->Size());
  if (size > 64 * 1024) return Status::Error(CommonErrc::kCorruption, path + " is too large for a cookie");
  std::string text(size, '\0');
  DLOG_RETURN_IF_ERROR(f->PReadExact(0, size, reinterpret_cast<uint8_t*>(text.data())));
  auto c = DecodeCookie(text);
  if (!c.ok()) return c.status().WithContext(path);
  return c;
}

Result<uint32_t> ReadJournalSeed(Env* env, const std::string& data_dir, uint64_t file_id) {
  DLOG_ASSIGN_OR_RETURN(Cookie c, ReadCookieFile(env, JoinPath(data_dir, kCookieFileName)));
  return JournalSeed(c.journal_salt, file_id);
}

}  // namespace dlog::node
