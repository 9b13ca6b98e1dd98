// LogReader: reads a log's records in order from a start position, across
// segments (of any writer), and tails it: at the end of what is written it
// long-polls the current segment's nodes and watches for the next segment.
// It moves to the next segment only once the current one is CLOSED (and its
// last entry read). Read-ahead is bounded (read_ahead_entries in flight or
// buffered).
//
// Start positions: a DLSN (the first record at or after it), a txid (the
// first record with txid >= it), the earliest record, or the latest (the next
// record written after the reader opened).
//
// Errors: kTruncated (the position is in a truncated segment: the message
// says where the log now starts), kEndOfStream (every record was read and the
// log is ended), kLogNotFound (deleted), kCorrupt, kTimeout (ReadNextSync
// only: nothing arrived in time; reading may go on).
//
// Threading: thread-safe; one ReadNext at a time; callbacks on the segment
// client's loop; *Sync not on it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/buffer.h"
#include "common/status.h"
#include "logstore/log/dlsn.h"
#include "logstore/log/errors.h"

namespace dlog::log {

struct LogRecord {
  Dlsn dlsn;
  int64_t seq = 0;
  int64_t txid = 0;
  Slice payload;
};

struct StartPosition {
  enum class Kind { kDlsn, kTxid, kEarliest, kLatest };
  Kind kind = Kind::kEarliest;
  Dlsn dlsn;
  int64_t txid = 0;

  static StartPosition At(Dlsn d) { return {Kind::kDlsn, d, 0}; }
  static StartPosition FromTxid(int64_t t) { return {Kind::kTxid, {}, t}; }
  static StartPosition Earliest() { return {Kind::kEarliest, {}, 0}; }
  static StartPosition Latest() { return {Kind::kLatest, {}, 0}; }
};

struct ReaderOptions {
  size_t read_ahead_entries = 16;
  uint32_t long_poll_ms = 1000;    // per long-poll request to a node
  int64_t metadata_poll_ms = 200;  // re-read the log's metadata this often while waiting for a segment
};

class LogReader {
 public:
  using ReadCallback = std::function<void(Result<std::vector<LogRecord>>)>;

  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // Calls back with 1..max_records records once at least one is available
  // (waiting as long as it takes), or with an error.
  void ReadNext(size_t max_records, ReadCallback cb);
  // Like ReadNext, but gives up after timeout_ms with kTimeout.
  Result<std::vector<LogRecord>> ReadNextSync(size_t max_records, int64_t timeout_ms);

  // The position of the next record to deliver. Thread-safe.
  Dlsn position() const;

  class Impl;
  explicit LogReader(std::shared_ptr<Impl> impl);

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace dlog::log
