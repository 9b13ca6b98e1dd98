// CursorRecovery: opens a partition's cursors (PartitionCursors::Open). A
// state machine of its own: create the cursor log if missing, open its
// writer (lock wait; fences the previous owner), then either
//   - fast path: the CursorDb's meta record is clean, names the same log
//     incarnation, and its last record (seq, DLSN, payload CRC) is the
//     log's tail: subscriptions come from the meta record and the block
//     summaries from a scan of the stored blocks; or
//   - replay: the partition's RocksDB keys are deleted and every record of
//     the log is applied in order from the earliest (README "Recovery").
// Either way the meta record is rewritten as not clean before the open
// callback runs, so a crash afterwards forces a replay.
//
// Threading: runs on the partition's loop; log and RocksDB completions are
// posted there. Keeps itself alive (shared_ptr) until it calls back.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "broker/cursor/partition_cursors.h"
#include "logstore/log/log_reader.h"

namespace dlog::proto {
class CursorDbMeta;
class CursorLogRecord;
}  // namespace dlog::proto

namespace dlog::broker {

class CursorRecovery : public std::enable_shared_from_this<CursorRecovery> {
 public:
  static void Start(std::unique_ptr<PartitionCursors> pc, PartitionCursors::OpenCallback cb);

  CursorRecovery(std::unique_ptr<PartitionCursors> pc, PartitionCursors::OpenCallback cb);
  ~CursorRecovery();

 private:
  void CreateLog();
  void OpenWriter();
  void ReadMeta();
  void Decide(Status st, std::string value);
  void CheckTail(std::shared_ptr<proto::CursorDbMeta> meta);
  void FastPath(std::shared_ptr<proto::CursorDbMeta> meta);
  void Replay();
  void ReadMore();
  void ApplyAll(std::shared_ptr<std::vector<log::LogRecord>> recs, size_t i);
  void ApplyOne(const log::LogRecord& rec, std::function<void()> next);
  void ApplyChunk(std::shared_ptr<proto::CursorLogRecord> rec, std::function<void()> next);
  void DiscardSide();
  void Commit(std::function<void()> next);
  void MarkNotClean(std::function<void()> next);
  void Finish(Status st);
  // Runs `f` on the partition's loop if this recovery is still going.
  std::function<void()> OnLoop(std::function<void()> f);

  std::unique_ptr<PartitionCursors> pc_;
  PartitionCursors::OpenCallback cb_;
  net::EventLoop* loop_;
  std::unique_ptr<log::LogReader> reader_;
  int64_t tail_seq_ = -1;   // the log's last record seq (-1: empty)
  bool have_base_ = false;  // replay began at seq 0 or at a complete snapshot
  bool done_ = false;

  // The snapshot being read.
  struct SideSub {
    int32_t type = 0;
    int64_t mark_delete = 0;
    uint64_t id = 0;
    std::map<int64_t, BlockSummary> blocks;
  };
  int64_t side_id_ = -1;
  int32_t side_chunks_ = 0;
  bool side_valid_ = false;
  std::map<std::string, SideSub> side_;
  bool side_has_dedup_ = false;
  std::string side_dedup_;
};

}  // namespace dlog::broker
