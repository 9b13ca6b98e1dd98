// Namespace: a named set of logs sharing settings (E/Qw/Qa of new segments,
// rolling, retention). DESIGN "Log streams". The role of DistributedLog's
// Namespace: create, delete, list and describe logs; open writers and
// readers; truncate; apply retention.
//
//   auto ns = Namespace::OpenSync(&segments, "default");
//   ns.value()->CreateLogSync("events");
//   auto w = ns.value()->OpenWriterSync("events", {});
//   Result<WriteResult> r = w.value()->WriteSync(Slice::CopyOf("hello"));
//   auto rd = ns.value()->OpenReaderSync("events", StartPosition::Earliest());
//   Result<std::vector<LogRecord>> recs = rd.value()->ReadNextSync(100, 1000);
//
// Metadata (metadata/layout.h): namespaces/<ns> holds NamespaceMetadata; each
// log is a child namespaces/<ns>/<log> holding LogMetadata, with the writer
// lock under it (lock/<session guid>-<seq>, ephemeral sequential).
//
// Truncation and retention (DESIGN order): Truncate(dlsn) marks every closed
// segment wholly before dlsn truncated (LogSegmentRef.truncated_at_ms and
// truncated_before_seq, one CAS): readers there get kTruncated at once.
// Sweep then, for each marked segment whose grace period has passed, deletes
// its metadata (the log's list and the segment record, one Multi) and only
// then asks its nodes to DeleteSegments, freeing disk. Retention by age and
// size marks segments the same way; writers sweep their own log now and then
// (WriterOptions::sweep_interval_ms), `dlogd standalone` sweeps every log.
//
// Threading: every method is thread-safe; callbacks run on the segment
// client's loop (the metadata store's). *Sync wrappers block and must not be
// called on that loop. The SegmentClient must outlive the namespace and every
// writer and reader opened from it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "logstore/log/dlsn.h"
#include "logstore/log/errors.h"
#include "logstore/log/log_reader.h"
#include "logstore/log/log_writer.h"
#include "logstore/segment/segment_client.h"
#include "metadata.pb.h"

namespace dlog::log {

struct NamespaceSettings {
  int ensemble_size = 1;             // E
  int write_quorum = 1;              // Qw
  int ack_quorum = 1;                // Qa
  int64_t roll_bytes = 256ll << 20;  // roll a segment at this many payload bytes (0: never)
  int64_t roll_ms = 0;               // ... or at this age (0: never)
  int64_t roll_entries = 0;          // ... or this many entries (0: never)
  int64_t retention_ms = 0;          // 0: keep forever
  int64_t retention_bytes = 0;       // 0: no limit
  int64_t truncation_grace_ms = 60'000;

  proto::NamespaceMetadata ToProto() const;
  static NamespaceSettings FromProto(const proto::NamespaceMetadata& m);
  Status Validate() const;
};

struct SegmentInfo {
  int64_t seq = 0;
  SegmentId id;
  proto::SegmentMetadata meta;  // state, last entry, counters (when CLOSED)
  int64_t truncated_at_ms = 0;  // 0: live
};

struct LogInfo {
  std::string name;
  proto::LogMetadata meta;
  int32_t version = 0;
  std::vector<SegmentInfo> segments;        // live and truncated-but-not-deleted, ascending seq
  std::optional<proto::OwnerRecord> owner;  // the writer holding the lock, if any
};

// Validates a log or namespace name: 1..255 bytes of printable ASCII
// without spaces, no leading '.', not "lock".
Status ValidateLogName(std::string_view name);

class Namespace {
 public:
  // Opens an existing namespace (kNamespaceNotFound otherwise).
  static void Open(segment::SegmentClient* client, std::string name,
                   std::function<void(Result<std::unique_ptr<Namespace>>)> cb);
  static Result<std::unique_ptr<Namespace>> OpenSync(segment::SegmentClient* client, std::string name);
  // Creates it with `settings` (kNamespaceExists if it exists with other
  // settings; OK if with the same), then opens it.
  static Result<std::unique_ptr<Namespace>> CreateSync(segment::SegmentClient* client, std::string name,
                                                       const NamespaceSettings& settings);
  // Opens it, creating it with `settings` if missing (existing settings win).
  static Result<std::unique_ptr<Namespace>> OpenOrCreateSync(segment::SegmentClient* client, std::string name,
                                                             const NamespaceSettings& settings);
  static Result<std::vector<std::string>> ListNamespacesSync(segment::SegmentClient* client);

  ~Namespace();
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;

  const std::string& name() const;
  const NamespaceSettings& settings() const;
  segment::SegmentClient* client() const;

  void CreateLog(std::string log, std::function<void(Status)> cb);
  Status CreateLogSync(const std::string& log);
  // Deletes a log: kLocked while a writer holds it. Its segments' metadata
  // goes with it; their nodes are then asked to delete the data.
  void DeleteLog(std::string log, std::function<void(Status)> cb);
  Status DeleteLogSync(const std::string& log);
  void ListLogs(std::function<void(Result<std::vector<std::string>>)> cb);
  Result<std::vector<std::string>> ListLogsSync();
  void GetLogInfo(std::string log, std::function<void(Result<LogInfo>)> cb);
  Result<LogInfo> GetLogInfoSync(const std::string& log);

  void OpenWriter(std::string log, WriterOptions options, std::function<void(Result<std::unique_ptr<LogWriter>>)> cb);
  Result<std::unique_ptr<LogWriter>> OpenWriterSync(const std::string& log, WriterOptions options = {});
  void OpenReader(std::string log, StartPosition start, ReaderOptions options,
                  std::function<void(Result<std::unique_ptr<LogReader>>)> cb);
  Result<std::unique_ptr<LogReader>> OpenReaderSync(const std::string& log, StartPosition start,
                                                    ReaderOptions options = {});

  // Marks every CLOSED segment that lies wholly before `dlsn` truncated
  // (records from dlsn's segment on stay). The segment being written is never
  // truncated. Then sweeps (deleting what is past the grace period).
  void Truncate(std::string log, Dlsn dlsn, std::function<void(Status)> cb);
  Status TruncateSync(const std::string& log, Dlsn dlsn);
  // Applies retention (age, size) and deletes truncated segments whose grace
  // period has passed: metadata first, then the nodes' data.
  void Sweep(std::string log, std::function<void(Status)> cb);
  Status SweepSync(const std::string& log);

  class Impl;

 private:
  explicit Namespace(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace dlog::log
