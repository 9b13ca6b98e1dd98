// Internal helpers of logstore/log: paths of one log, loading and decoding
// its records, and mapping metadata errors to LogErrc. Callbacks run on the
// store's loop.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/strong_id.h"
#include "logstore/log/errors.h"
#include "logstore/log/namespace.h"
#include "logstore/segment/segment_client.h"
#include "logstore/segment/segment_meta.h"
#include "metadata.pb.h"

namespace dlog::log {

struct LogPaths {
  std::string ns;
  std::string name;
  std::string path;      // namespaces/<ns>/<log>
  std::string lock_dir;  // .../lock

  static LogPaths Of(const metadata::Layout& layout, const std::string& ns, const std::string& name) {
    return LogPaths{ns, name, layout.Log(ns, name), layout.LogLockDir(ns, name)};
  }
  std::string Describe() const { return "log '" + name + "'"; }
};

struct VersionedLog {
  proto::LogMetadata meta;
  int32_t version = 0;
};

// kLogNotFound if absent.
void LoadLog(metadata::MetadataStore* store, const LogPaths& log, std::function<void(Result<VersionedLog>)> cb);

// Loads the segment records of `refs` (in order). A missing record is an
// error (kNoNode) unless skip_missing (a concurrent sweep deleted it).
void LoadSegments(segment::SegmentClient* client, std::vector<proto::LogSegmentRef> refs, bool skip_missing,
                  std::function<void(Result<std::vector<segment::VersionedMeta>>)> cb);

// Asks every node that may hold the segments to delete them (best effort:
// a node that is down keeps an orphan). Calls back when every node answered.
void DeleteSegmentData(segment::SegmentClient* client, const std::vector<proto::SegmentMetadata>& segments,
                       std::function<void()> done);

// kNoNode of the log -> kLogNotFound naming it; others unchanged.
Status MapLogError(const Status& st, const LogPaths& log);

// What writers, readers and sweeps of one namespace share.
struct NamespaceContext {
  segment::SegmentClient* client;
  std::string ns;
  NamespaceSettings settings;
};
using NsRef = std::shared_ptr<const NamespaceContext>;

void OpenLogWriter(NsRef ns, std::string log, WriterOptions options,
                   std::function<void(Result<std::unique_ptr<LogWriter>>)> cb);
void OpenLogReader(NsRef ns, std::string log, StartPosition start, ReaderOptions options,
                   std::function<void(Result<std::unique_ptr<LogReader>>)> cb);
// Retention marking, then deletion of segments past the grace period.
void SweepLog(NsRef ns, LogPaths log, std::function<void(Status)> cb);

// Record counters: a segment's record_count is -1 until it is CLOSED and its
// counters are known.
inline constexpr int64_t kCountersUnknown = -1;

}  // namespace dlog::log
