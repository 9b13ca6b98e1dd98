// Store: the storage engine of one logstore node — journal with group commit,
// entry index in RocksDB, tail cache, per-segment state (fence, LAC, last
// entry, damaged, deleted), cookie, garbage collection. No networking: the
// NodeService (service.h) puts RPCs on top.
//
// Rules (DESIGN.md, "Storage node"; the contract):
//  - An add is acknowledged (its callback gets OK) only after its journal
//    record was written and fdatasync'ed.
//  - A fence sets the segment's fenced flag the moment it arrives (inside
//    ReadEntry/Fence, before it returns), so no plain add accepted after that
//    call can be acknowledged. The fencing read's callback runs only after the
//    fence record — and everything journaled before it — is durable and indexed.
//    A fence on an unknown segment creates it, durably fenced.
//  - After an fsync or write error the journal stops: every queued and later
//    request fails with NodeErrc::kUnhealthy; nothing after the error is acked.
//  - Corrupt data (CRC, header mismatch) is never returned: kIoError.
//  - A node that lost a journal region of unknown content (replay found
//    corruption whose segments cannot all be known; recorded durably) never
//    answers kNoSuchEntry, nor kNoSuchSegment for a segment not known to be
//    deleted: those become kIoError, so readers and recovery go to other
//    replicas (StoreInfo::lost_unknown_region).
//
// Threading: every public method may be called from any thread and never
// blocks on disk (Open/Close excepted). Callbacks run on the store's internal
// threads (journal, index, reader) or inline in the calling thread; they must
// not block and must not call back into the store synchronously with a lock
// held. Callbacks are small std::function objects: capture at most two
// pointers so they stay in std::function's inline buffer (no allocation).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "common/status.h"
#include "common/strong_id.h"
#include "logstore/node/env.h"
#include "logstore/node/probe.h"

namespace dlog::node {

struct StoreOptions {
  std::string data_dir;
  // Identity written into the cookie on format and checked on every start.
  std::string node_id;
  std::string cluster_id = "dlog";
  // Initialise a new, empty data dir. Open fails if the dir already holds a
  // cookie or any data ("already formatted"); without it, Open fails on a dir
  // with no cookie ("new or wiped").
  bool format = false;

  uint64_t journal_file_bytes = 64ull << 20;       // preallocated size of each journal file
  uint64_t journal_max_batch_bytes = 4ull << 20;   // bytes per writev+fdatasync batch
  int64_t journal_max_wait_us = 0;                 // extra wait to grow a batch (0: none)
  uint64_t journal_queue_max_bytes = 64ull << 20;  // admission bound: beyond it adds get kTooManyRequests
  uint64_t journal_queue_max_records = 65536;
  uint64_t cache_bytes = 64ull << 20;  // tail cache
  int read_threads = 2;
  uint64_t read_queue_max = 4096;           // beyond it reads get kTooManyRequests
  int64_t index_flush_interval_ms = 60000;  // index checkpoint (memtable flush) period; 0 = only on GC/close

  Env* env = nullptr;          // file layer; null = Env::Posix()
  NodeProbe* probe = nullptr;  // null = internal probe
};

struct SegmentState {
  bool exists = false;
  bool fenced = false;
  bool damaged = false;
  bool deleted = false;
  EntryId lac = kNoEntry;
  EntryId last_entry = kNoEntry;  // highest entry id durable on this node
  // The node (not this segment) lost a journal region of unknown content:
  // that the segment is unknown or an entry absent does not mean it is
  // missing (set by GetSegment).
  bool lost_unknown_region = false;
};

struct ReadResult {
  Status status;         // OK, kNoSuchEntry, kNoSuchSegment, kIoError, kTooManyRequests, kUnhealthy
  SegmentState segment;  // state when answered (lac, last entry, fenced)
  bool has_entry = false;
  uint32_t payload_crc32c = 0;  // the writer's CRC of payload
  Slice payload;
  bool from_cache = false;
};

struct StoreInfo {
  std::string node_id, instance_id, cluster_id;
  bool healthy = true;
  std::string unhealthy_reason;
  uint64_t journal_files = 0, journal_bytes = 0, segments = 0;
  std::vector<uint64_t> damaged_segments;
  uint64_t disk_free_bytes = 0;
  // The node lost a journal region of unknown content (corruption whose
  // segments cannot all be known; durable): it answers IO_ERROR where it
  // would answer NO_SUCH_ENTRY, or NO_SUCH_SEGMENT for a segment not known
  // to be deleted. `lost_region` says where.
  bool lost_unknown_region = false;
  std::string lost_region;
};

class Store {
 public:
  using AddCallback = std::function<void(const Status&)>;
  using ReadCallback = std::function<void(ReadResult&&)>;
  using DeleteCallback = std::function<void(const Status&, uint32_t deleted)>;
  // Called (on an internal thread) whenever a segment's LAC advances.
  using LacListener = std::function<void(SegmentId, EntryId lac)>;

  virtual ~Store() = default;

  // Checks the cookie, replays the journal from the index's position (torn
  // tail cut off and reported, mid-journal corruption marks segments damaged),
  // starts the journal, index and reader threads.
  static Result<std::unique_ptr<Store>> Open(StoreOptions options);

  // Clean shutdown: completes what is queued, flushes the index, stops threads.
  virtual Status Close() = 0;
  // Test hook: stops threads at once without flushing the index and without
  // completing queued requests (their callbacks get kUnhealthy) — a crash as
  // far as the index is concerned. The journal files are left as they are.
  virtual void CrashForTest() = 0;

  // Queues an add. Immediate rejections (kFenced unless `recovery`,
  // kNoSuchSegment for a deleted segment, kIoError for a damaged one,
  // kTooManyRequests, kUnhealthy, kBadRequest for a payload whose CRC32C is not
  // `payload_crc32c` or an entry id < 0) call `done` inline before returning.
  // `lac` is the writer's LAC carried on the add; it is applied once the entry
  // is durable.
  virtual void AddEntry(SegmentId segment, EntryId entry, EntryId lac, uint32_t payload_crc32c, Slice payload,
                        bool recovery, AddCallback done) = 0;

  // Reads one entry. With `fence`, fences first (see the rules above) and
  // answers after the fence is durable. A segment never seen and not fenced
  // gives kNoSuchSegment; an entry the node does not hold gives kNoSuchEntry
  // (with the segment state filled in). May call `done` inline.
  virtual void ReadEntry(SegmentId segment, EntryId entry, bool fence, ReadCallback done) = 0;

  // Memory-only lookups and updates; never block.
  virtual SegmentState GetSegment(SegmentId segment) const = 0;
  // Raises the segment's LAC to `lac` if higher (creating no segment: an
  // unknown segment gives kNoSuchSegment). Returns the LAC after.
  virtual Result<EntryId> WriteLac(SegmentId segment, EntryId lac) = 0;

  // Journals a delete; once durable, the segments' entries are gone, their
  // ids tombstoned (never resurrected), and journal files with no live entry
  // are deleted once the index position is past them.
  virtual void DeleteSegments(std::vector<SegmentId> segments, DeleteCallback done) = 0;

  virtual void SetLacListener(LacListener listener) = 0;
  virtual StoreInfo Info() const = 0;
  virtual NodeProbe* probe() = 0;
};

}  // namespace dlog::node
