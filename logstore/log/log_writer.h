// LogWriter: the single writer of a log stream (DESIGN "Log streams").
//
// Opening takes the log's lock (an ephemeral sequential node named after the
// session's GUID; the lowest sequence holds it; with lock_timeout_ms > 0 the
// writer waits for earlier holders to go), then recovers every segment of the
// log that is not CLOSED (fencing any earlier writer), storing each recovered
// segment's counters (record count, max txid) from its last entry's header.
// The max txid becomes this writer's floor.
//
// Writes: Write(record[, txid]) buffers the record into the current entry and
// calls back with its DLSN once the entry is durable (acknowledged by Qa
// nodes). Entries are flushed when full (max_entry_bytes), when fewer than
// max_entries_in_flight are pending (so a lone write goes at once and load
// batches itself, like group commit), or after flush_delay_us. Callbacks run
// in write order. A txid lower than the previous fails at once with
// kTxidOutOfOrder (nothing written); without a txid the record gets the
// previous txid (the floor).
//
// Rolling: when the segment reaches the namespace's roll_bytes, roll_ms or
// roll_entries, the writer seals it (waits for its pending entries) and, in
// ONE Multi, sets it CLOSED with its counters, creates the next segment's
// OPEN record and lists it in the log's metadata, checking the writer's lock
// node. Only then does the first add go to the new segment. Writes arriving
// meanwhile wait in the buffer (bounded by max_pending_bytes: kBusy beyond).
//
// Lease: before sending an entry the writer checks that its metadata session
// was heard from within ⅔ of the session timeout (LastContactNanos); if not,
// it holds entries back until contact returns. Session expiry: kLockLost.
//
// Errors for a write: kTxidOutOfOrder, kInvalidArgument (too large), kBusy,
// kClosed, kEndOfStream (not written); kFenced, kLockLost, kOutcomeUnknown
// (may or may not be in the log).
//
// Threading: thread-safe; callbacks on the segment client's loop; *Sync not
// on it. Destroying the writer without Close abandons it: pending writes fail
// with kOutcomeUnknown, the lock is released, the segment stays OPEN (the
// next writer recovers it).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/buffer.h"
#include "common/status.h"
#include "logstore/log/dlsn.h"
#include "logstore/log/errors.h"

namespace dlog::log {

struct WriterOptions {
  std::string owner_id;  // shown to a writer told kLocked (default: "pid@host")
  std::string address;   // where the owner serves, if anywhere
  // Wait this long for the lock if another writer holds it (0: fail at once with kLocked).
  int64_t lock_timeout_ms = 0;
  size_t max_entry_bytes = 512u << 10;
  size_t max_entries_in_flight = 32;
  // 0: a partly filled entry goes as soon as fewer than max_entries_in_flight
  // are pending (lowest latency; load still batches itself). > 0: it also
  // waits up to this long for more records while other entries are in flight.
  int64_t flush_delay_us = 0;
  size_t max_pending_bytes = 64u << 20;
  int64_t sweep_interval_ms = 60'000;  // retention / truncation sweep of this log (0: never)
};

struct WriteResult {
  Dlsn dlsn;
  int64_t seq = 0;  // the record's sequence number: records before it in the log
};

struct WriterStats {
  int64_t records = 0;
  int64_t entries = 0;
  int64_t segments_rolled = 0;
};

class LogWriter {
 public:
  using WriteCallback = std::function<void(Result<WriteResult>)>;
  using DoneCallback = std::function<void(Status)>;

  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  const std::string& log_name() const;

  void Write(Slice record, WriteCallback cb);
  void Write(Slice record, int64_t txid, WriteCallback cb);
  Result<WriteResult> WriteSync(Slice record, std::optional<int64_t> txid = std::nullopt);
  // Sends the buffered records and waits until every earlier write is done.
  // The status is the first failure among them, if any.
  void Flush(DoneCallback cb);
  Status FlushSync();
  // Flushes, closes the segment and marks the log ended (LogMetadata
  // end_of_stream, in the same Multi), then releases the lock. Later writes
  // fail with kEndOfStream; readers get kEndOfStream after the last record;
  // no writer can open the log again.
  void MarkEndOfStream(DoneCallback cb);
  Status MarkEndOfStreamSync();
  // Flushes, closes the current segment (CLOSED with its counters) and
  // releases the lock. Later writes fail with kClosed.
  void Close(DoneCallback cb);
  Status CloseSync();

  // Thread-safe snapshots.
  int64_t last_txid() const;
  int64_t next_seq() const;
  WriterStats stats() const;
  // OK while the writer can write; else why not (kFenced, kLockLost, ...).
  Status health() const;

  class Impl;
  explicit LogWriter(std::shared_ptr<Impl> impl);

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace dlog::log
