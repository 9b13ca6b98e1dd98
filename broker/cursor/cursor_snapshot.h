// CursorSnapshotter: writes one snapshot of a partition's cursors to its
// cursor log (README "Snapshots"): chunks of at most ~snapshot_chunk_bytes
// (the dedup snapshot alone in chunk 0 if there is one; then, per
// subscription in name order, pieces holding its mark_delete and its blocks
// in ascending order, read from the cache or, for blocks not resident, from
// RocksDB on the worker), then the commit. Records of other changes wait in
// PartitionCursors meanwhile. Once the commit is acknowledged the log is
// truncated before the first chunk.
//
// The blocks are read while acks go on, so a piece may hold acks made after
// the snapshot began; those acks' records follow the commit, and applying
// acks is idempotent, so replay still ends in the same state (README).
//
// Threading: the partition's loop. Owned by PartitionCursors.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "cursor.pb.h"
#include "logstore/log/dlsn.h"

namespace dlog::broker {

class PartitionCursors;
class SubscriptionCursor;

class CursorSnapshotter {
 public:
  explicit CursorSnapshotter(PartitionCursors* pc);
  ~CursorSnapshotter();
  void Start();

 private:
  void Next();
  void AddBlocks(SubscriptionCursor* sub, const std::vector<int64_t>& indexes, const std::vector<std::string>& stored);
  void StartPiece(SubscriptionCursor* sub);
  void EmitChunk();
  void Commit();
  void Finish(Status st);
  // Stops without a commit (not a failure).
  void Abandon(const std::string& why);

  PartitionCursors* pc_;
  int64_t id_ = 0;
  std::vector<std::string> names_;
  size_t name_i_ = 0;
  int64_t next_block_ = 0;
  bool piece_open_ = false;
  proto::CursorLogRecord chunk_;
  size_t chunk_bytes_ = 0;
  int32_t chunks_ = 0;
  bool have_first_ = false;
  log::Dlsn first_dlsn_;
  bool finished_ = false;
  bool abandoned_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dlog::broker
