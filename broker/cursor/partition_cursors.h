// PartitionCursors: every subscription cursor of one partition, persisted
// through the partition's cursor log (DESIGN "Broker" / "Cursors"; the
// module's README has the format and the recovery rules).
//
// The truth is the cursor log `<topic>-partition-<i>~cursors` (the caller
// names it), written by this object's LogWriter: opening takes the log's
// lock (waiting up to lock_timeout_ms), which fences the previous owner. An
// ack, create, delete, reset or dedup snapshot is persisted once its record
// is acknowledged. The working state lives in the CursorDb (RocksDB + the
// shared block cache); on open it is used only if it was closed cleanly at
// exactly the log's tail, else rebuilt by replaying the log.
//
// Snapshots: every snapshot_every_deltas records or snapshot_interval_ms
// (checked as records are written) the state is written as chunks (each at
// most ~256 KiB) ended by a commit; records made meanwhile wait in memory
// (at most max_queued_deltas, beyond: kBusy) so none lands between chunks.
// Once the commit is acknowledged the log is truncated before the first
// chunk (Namespace::Truncate: only whole CLOSED segments go, so the
// namespace should roll the cursor log's segments, e.g. by roll_bytes).
//
// Threading: every method runs on `loop` (the broker's loop, not the log
// library's); every callback runs there. The log library's and RocksDB's
// completions are posted to it.
//
// Lifetime: the CursorDb and the Namespace (and its SegmentClient) must
// outlive this object. Close() flushes, writes the clean state and releases
// the lock. Destroying without Close abandons: callbacks still pending are
// dropped (never run), the lock goes with the writer.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "broker/cursor/cursor_db.h"
#include "broker/cursor/subscription_cursor.h"
#include "common/status.h"
#include "logstore/log/dlsn.h"
#include "logstore/log/log_writer.h"
#include "logstore/log/namespace.h"
#include "net/event_loop.h"

namespace dlog::proto {
class CursorLogRecord;
}

namespace dlog::broker {

class CursorSnapshotter;
class CursorRecovery;

struct PartitionCursorsOptions {
  int64_t snapshot_every_deltas = 10'000;  // records since the last snapshot (0: never by count)
  int64_t snapshot_interval_ms = 60'000;   // ... or age of the last one (0: never by time)
  int64_t lock_timeout_ms = 30'000;        // wait this long for the cursor log's lock
  size_t max_queued_deltas = 10'000;       // records waiting for a snapshot to end; beyond: kBusy
  size_t max_pending_ops = 10'000;         // calls waiting for blocks to load; beyond: kBusy
  size_t snapshot_chunk_bytes = 256u << 10;
  size_t max_delta_bytes = 64u << 10;  // a bigger ack is split into several records
  std::string owner_id;                // shown to a writer told kLocked
};

// Counters (dlog_broker_cursor_*_total).
struct PartitionCursorsStats {
  int64_t records_written = 0;
  int64_t snapshots = 0;  // committed
  int64_t truncations = 0;
  int64_t replayed_records = 0;  // at open
  bool opened_from_db = false;   // the RocksDB fast path was taken at open
};

class PartitionCursors {
 public:
  using OpenCallback = std::function<void(Result<std::unique_ptr<PartitionCursors>>)>;

  // Opens (creating it if missing) the cursor log `cursor_log` of `ns`,
  // takes its lock (fencing the previous owner; kLocked after
  // lock_timeout_ms), recovers the state and calls back on `loop`.
  // Errors: the log library's (kLocked, kLockLost, ...), kCorruption (a
  // record that does not parse, a version we don't know), kIoError.
  static void Open(CursorDb* db, log::Namespace* ns, std::string cursor_log, net::EventLoop* loop,
                   PartitionCursorsOptions options, OpenCallback cb);

  ~PartitionCursors();
  PartitionCursors(const PartitionCursors&) = delete;
  PartitionCursors& operator=(const PartitionCursors&) = delete;

  const std::string& cursor_log() const { return log_name_; }
  std::vector<std::string> SubscriptionNames() const;  // sorted
  // Null if absent (or being deleted).
  SubscriptionCursor* Find(const std::string& name);
  // kAlreadyExists if it exists. Persisted before cb.
  void CreateSubscription(std::string name, int32_t type, int64_t mark_delete,
                          std::function<void(Result<SubscriptionCursor*>)> cb);
  // kNotFound if absent. Find() returns null at once; the object lives until cb.
  void DeleteSubscription(std::string name, std::function<void(Status)> cb);
  // The last recovered or saved dedup snapshot, or null.
  const std::string* dedup_snapshot() const { return has_dedup_ ? &dedup_ : nullptr; }
  // Persists the broker's dedup snapshot (opaque, at most 768 KiB).
  void SaveDedupSnapshot(std::string bytes, std::function<void(Status)> cb);
  // OK while acks can be persisted; else why not (kFenced, kLockLost,
  // kClosed, kIoError).
  Status health() const;
  // Waits for what is pending (and a snapshot being written), writes the
  // clean state to RocksDB, closes the writer (releasing the lock). Later
  // calls fail with kClosed.
  void Close(std::function<void(Status)> cb);

  PartitionCursorsStats stats() const { return stats_; }
  // The DLSN of the last record of the cursor log this state reflects.
  log::Dlsn last_dlsn() const { return last_dlsn_; }

 private:
  friend class SubscriptionCursor;
  friend class CursorRecovery;
  friend class CursorSnapshotter;

  PartitionCursors(CursorDb* db, log::Namespace* ns, std::string log_name, net::EventLoop* loop,
                   PartitionCursorsOptions options);

  using Op = std::function<void(std::function<void()> next)>;
  // Runs state changes one at a time, in call order.
  void Enqueue(Op op);
  void RunOps();
  Status Admit() const;
  // health() without the closed check: ops queued before Close still run.
  Status WriteHealth() const;

  void SubmitAcks(SubscriptionCursor* sub, std::shared_ptr<AckSet> set, std::function<void(Status)> cb);
  void SubmitReset(SubscriptionCursor* sub, int64_t mark_delete, std::function<void(Status)> cb);

  // Writes a record (queued while a snapshot is being written unless
  // `snapshot`); cb on the loop with its outcome.
  void WriteRecord(const proto::CursorLogRecord& rec, std::function<void(Status)> cb, bool snapshot = false);
  void WriteRecords(std::vector<std::string> payloads, std::function<void(Status)> cb);
  void Send(std::string payload, std::function<void(Result<log::WriteResult>)> cb);
  void OnWritten(const Result<log::WriteResult>& r, uint32_t crc);
  void MaybeSnapshot();
  void SnapshotDone(Status st, bool committed);
  void Fail(Status st);

  SubscriptionCursor* NewSub(const std::string& name, int32_t type, int64_t mark_delete, uint64_t id = 0);
  // The meta record: clean (at Close) or not (from open on).
  std::string EncodeMeta(bool clean) const;

  CursorDb* db_;
  BlockCache* cache_;
  log::Namespace* ns_;
  const std::string log_name_;
  const std::string partition_key_;  // "<namespace>/<log>"
  net::EventLoop* loop_;
  PartitionCursorsOptions options_;
  std::unique_ptr<log::LogWriter> writer_;

  std::map<std::string, std::unique_ptr<SubscriptionCursor>> subs_;
  std::vector<std::unique_ptr<SubscriptionCursor>> deleting_;
  uint64_t next_sub_id_ = 1;
  bool has_dedup_ = false;
  std::string dedup_;

  std::deque<Op> ops_;
  bool op_running_ = false;

  // The last record of the log (acknowledged): what the state reflects.
  int64_t last_seq_ = -1;
  uint64_t log_incarnation_ = 0;
  log::Dlsn last_dlsn_;
  uint32_t last_crc_ = 0;

  int64_t records_since_snapshot_ = 0;
  int64_t last_snapshot_ms_ = 0;
  bool snapshotting_ = false;
  std::unique_ptr<CursorSnapshotter> snapshotter_;
  std::deque<std::pair<std::string, std::function<void(Result<log::WriteResult>)>>> queued_;
  std::function<void()> after_snapshot_;  // Close waiting for the snapshot

  int64_t writes_in_flight_ = 0;
  Status failed_;
  bool closed_ = false;
  PartitionCursorsStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dlog::broker
