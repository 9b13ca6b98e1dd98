// The entry index: RocksDB under <data>/index, written without RocksDB's WAL
// (the journal is the log; the index records the journal position it covers
// in the same WriteBatch as the entries, and start-up replays from there).
//
// Key layout (docs/formats/journal.md, "Index"), integers in keys big-endian
// so iteration is ordered, values little-endian:
//   "V"                              -> u32 index format version (1)
//   "C"                              -> cookie text (cookie.h)
//   "P"                              -> journal position: u64 file, u64 offset
//   "E" seg:be64 entry:be64          -> u64 file, u64 offset, u32 record length
//   "S" seg:be64                     -> u8 version, u8 flags, i64 lac, i64 last entry
//   "F" file:be64 seg:be64           -> "" (segment has records in that journal file)
//   "L"                              -> text: the node lost a journal region of unknown
//                                       content (absent only if it never did)
//
// Index: the RocksDB handle and key codec (thread-safe, as RocksDB is).
// IndexBuilder: the in-memory mirror of what is indexed (segment states,
// per-file segment sets, position) and the code that turns journal records
// into WriteBatches. One thread at a time (replay, then the index thread).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "logstore/node/journal.h"
#include "logstore/node/journal_format.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace dlog::node {

inline constexpr uint32_t kIndexFormatVersion = 1;

struct EntryLocation {
  uint64_t file = 0;
  uint64_t offset = 0;
  uint32_t length = 0;  // header + payload
};

struct SegmentMeta {
  bool fenced = false;
  bool damaged = false;
  bool deleted = false;
  int64_t lac = -1;
  int64_t last_entry = -1;
  bool dirty = false;  // IndexBuilder: changed since the last Commit (not stored)
};

class Index {
 public:
  // Opens (or with `create`, creates) the RocksDB at `path`. Without
  // `create`, a missing database is kNotFound.
  static Result<std::unique_ptr<Index>> Open(const std::string& path, bool create);
  ~Index();  // closes without flushing (like a crash) unless Close(true) ran

  // Flushes the memtable first when `flush`; otherwise the memtable is lost.
  Status Close(bool flush);

  Status Write(rocksdb::WriteBatch* batch);  // WAL disabled
  Status Flush();                            // memtable -> SST, waits
  // kNotFound if absent.
  Result<EntryLocation> GetEntry(uint64_t segment, int64_t entry) const;
  Result<std::string> GetCookie() const;  // kNotFound if absent
  Status PutCookieAndFlush(const std::string& cookie);
  Result<uint32_t> GetFormatVersion() const;  // kNotFound if absent

  rocksdb::DB* db() const { return db_; }

  // Key and value codecs. The *To forms write into caller buffers of the
  // given sizes (the hot path allocates nothing).
  static constexpr size_t kEntryKeySize = 17, kSegmentKeySize = 9, kLocationSize = 20, kSegmentMetaSize = 18,
                          kPositionSize = 16;
  static void EntryKeyTo(uint64_t segment, int64_t entry, uint8_t* out);
  static void SegmentKeyTo(uint64_t segment, uint8_t* out);
  static void EncodeLocationTo(const EntryLocation& loc, uint8_t* out);
  static void EncodeSegmentMetaTo(const SegmentMeta& m, uint8_t* out);
  static void EncodePositionTo(const JournalPos& pos, uint8_t* out);
  static std::string EntryKey(uint64_t segment, int64_t entry);
  static std::string SegmentKey(uint64_t segment);
  static std::string FileSegmentKey(uint64_t file, uint64_t segment);
  static std::string EncodeLocation(const EntryLocation& loc);
  static bool DecodeLocation(std::string_view v, EntryLocation* loc);
  static std::string EncodeSegmentMeta(const SegmentMeta& m);
  static bool DecodeSegmentMeta(const std::string& v, SegmentMeta* m);
  static std::string EncodePosition(const JournalPos& pos);
  static bool DecodePosition(const std::string& v, JournalPos* pos);

 private:
  explicit Index(rocksdb::DB* db) : db_(db) {}
  rocksdb::DB* db_;
};

class IndexBuilder {
 public:
  explicit IndexBuilder(Index* index);
  ~IndexBuilder();

  // Reads position, segment states and file sets from the index.
  Status Load();

  // Adds a durable record (at `pos`, `length` bytes) to the pending batch.
  // `payload` is needed for DELETE only.
  void Apply(const RecordHeader& h, const uint8_t* payload, JournalPos pos, uint32_t length);
  // Marks a segment damaged (creating its state if unknown).
  void MarkDamaged(uint64_t segment);
  // Records (with the next Commit, for good) that a journal region of unknown
  // content was lost; `what` says where. Adds to an earlier record.
  void MarkLostRegion(const std::string& what);
  // Empty unless a lost region was ever recorded.
  const std::string& lost_region() const { return lost_region_; }
  // Writes the pending batch with position `end`. Clears the batch.
  Status Commit(JournalPos end);
  bool HasPending() const;

  // What Commit wrote last / what the index held at Load.
  const JournalPos& position() const { return position_; }
  const std::unordered_map<uint64_t, SegmentMeta>& segments() const { return segments_; }
  // Segments with ENTRY or FENCE records in `file` (empty if none).
  std::set<uint64_t> SegmentsInFile(uint64_t file) const;
  // Journal files (of `files`) below `below` whose segments are all deleted
  // (or that have none). Their 'F' keys are dropped from the pending batch.
  std::vector<uint64_t> CollectGarbageFiles(const std::vector<uint64_t>& files, uint64_t below);
  // True once if a DELETE was applied since the last call (GC is due).
  bool TakeDeletedFlag();

 private:
  SegmentMeta& Touch(uint64_t segment);
  void AddToFile(uint64_t file, uint64_t segment);

  Index* const index_;
  std::unique_ptr<rocksdb::WriteBatch> batch_;
  size_t pending_ = 0;
  JournalPos position_;
  std::unordered_map<uint64_t, SegmentMeta> segments_;
  std::vector<uint64_t> dirty_;
  std::map<uint64_t, std::set<uint64_t>> file_segments_;
  bool deleted_since_ = false;
  std::string lost_region_;
  std::vector<uint64_t> scratch_;
};

}  // namespace dlog::node
