#include "logstore/node/index.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "common/buffer.h"
#include "common/failpoint.h"
#include "common/logging.h"

namespace dlog::node {

namespace {
const char kVersionKey[] = "V";
const char kCookieKey[] = "C";
const char kPositionKey[] = "P";
const char kLostRegionKey[] = "L";
constexpr size_t kLostRegionMaxText = 4096;
constexpr char kEntryPrefix = 'E';
constexpr char kSegmentPrefix = 'S';
constexpr char kFilePrefix = 'F';
constexpr uint8_t kSegmentMetaVersion = 1;
constexpr uint8_t kFlagFenced = 1, kFlagDamaged = 2, kFlagDeleted = 4;

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsNotFound()) return Status::Error(CommonErrc::kNotFound, what + ": " + s.ToString());
  if (s.IsCorruption()) return Status::Error(CommonErrc::kCorruption, what + ": " + s.ToString());
  return Status::Error(CommonErrc::kIoError, what + ": " + s.ToString());
}

std::string Key2(char prefix, uint64_t a, uint64_t b) {
  std::string k(17, '\0');
  k[0] = prefix;
  PutBe64(reinterpret_cast<uint8_t*>(k.data()) + 1, a);
  PutBe64(reinterpret_cast<uint8_t*>(k.data()) + 9, b);
  return k;
}
}  // namespace

// ---------------------------------------------------------------- Index

Result<std::unique_ptr<Index>> Index::Open(const std::string& path, bool create) {
  rocksdb::Options o;
  o.create_if_missing = create;
  o.error_if_exists = create;
  // The journal is the log: no WAL, and an unclean close must lose the
  // memtable exactly as a crash would (start-up replays the journal).
  o.avoid_flush_during_shutdown = true;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.keep_log_file_num = 2;
  o.max_background_jobs = 2;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &db);
  if (!s.ok()) {
    if (!create && s.IsInvalidArgument() && s.ToString().find("does not exist") != std::string::npos) {
      return Status::Error(CommonErrc::kNotFound, "index " + path + " does not exist: " + s.ToString());
    }
    return FromRocks(s, "opening index " + path);
  }
  std::unique_ptr<Index> idx(new Index(db));
  if (create) {
    uint8_t v[4];
    PutLe<uint32_t>(v, kIndexFormatVersion);
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    DLOG_RETURN_IF_ERROR(
        FromRocks(db->Put(wo, kVersionKey, rocksdb::Slice(reinterpret_cast<char*>(v), 4)), "index put"));
  }
  return idx;
}

Index::~Index() {
  if (db_ != nullptr) IgnoreError(Close(false));
}

Status Index::Close(bool flush) {
  if (db_ == nullptr) return Status::OK();
  Status st;
  if (flush) st = Flush();
  rocksdb::Status s = db_->Close();
  if (st.ok() && !s.ok()) st = FromRocks(s, "closing index");
  delete db_;
  db_ = nullptr;
  return st;
}

Status Index::Write(rocksdb::WriteBatch* batch) {
  if (DLOG_FAILPOINT("index.write")) return Status::Error(CommonErrc::kIoError, "index write: failpoint index.write");
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  return FromRocks(db_->Write(wo, batch), "index write");
}

Status Index::Flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return FromRocks(db_->Flush(fo), "index flush");
}

Result<EntryLocation> Index::GetEntry(uint64_t segment, int64_t entry) const {
  uint8_t key[kEntryKeySize];
  EntryKeyTo(segment, entry, key);
  rocksdb::PinnableSlice v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(),
                               rocksdb::Slice(reinterpret_cast<const char*>(key), sizeof(key)), &v);
  if (s.IsNotFound()) return Status::Error(CommonErrc::kNotFound, "no index entry");
  DLOG_RETURN_IF_ERROR(FromRocks(s, "index get"));
  EntryLocation loc;
  if (!DecodeLocation(std::string_view(v.data(), v.size()), &loc)) {
    return Status::Error(CommonErrc::kCorruption,
                         "bad index value for segment " + std::to_string(segment) + " entry " + std::to_string(entry));
  }
  return loc;
}

Result<std::string> Index::GetCookie() const {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kCookieKey, &v);
  if (s.IsNotFound()) return Status::Error(CommonErrc::kNotFound, "index has no cookie");
  DLOG_RETURN_IF_ERROR(FromRocks(s, "index get cookie"));
  return v;
}

Status Index::PutCookieAndFlush(const std::string& cookie) {
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  DLOG_RETURN_IF_ERROR(FromRocks(db_->Put(wo, kCookieKey, cookie), "index put cookie"));
  return Flush();
}

Result<uint32_t> Index::GetFormatVersion() const {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kVersionKey, &v);
  if (s.IsNotFound()) return Status::Error(CommonErrc::kNotFound, "index has no format version");
  DLOG_RETURN_IF_ERROR(FromRocks(s, "index get version"));
  if (v.size() != 4) return Status::Error(CommonErrc::kCorruption, "bad index format version value");
  return GetLe<uint32_t>(reinterpret_cast<const uint8_t*>(v.data()));
}

void Index::EntryKeyTo(uint64_t segment, int64_t entry, uint8_t* out) {
  out[0] = kEntryPrefix;
  PutBe64(out + 1, segment);
  PutBe64(out + 9, static_cast<uint64_t>(entry));
}

void Index::SegmentKeyTo(uint64_t segment, uint8_t* out) {
  out[0] = kSegmentPrefix;
  PutBe64(out + 1, segment);
}

void Index::EncodeLocationTo(const EntryLocation& loc, uint8_t* out) {
  PutLe<uint64_t>(out, loc.file);
  PutLe<uint64_t>(out + 8, loc.offset);
  PutLe<uint32_t>(out + 16, loc.length);
}

void Index::EncodeSegmentMetaTo(const SegmentMeta& m, uint8_t* out) {
  out[0] = kSegmentMetaVersion;
  out[1] = static_cast<uint8_t>((m.fenced ? kFlagFenced : 0) | (m.damaged ? kFlagDamaged : 0) |
                                (m.deleted ? kFlagDeleted : 0));
  PutLe<int64_t>(out + 2, m.lac);
  PutLe<int64_t>(out + 10, m.last_entry);
}

void Index::EncodePositionTo(const JournalPos& pos, uint8_t* out) {
  PutLe<uint64_t>(out, pos.file);
  PutLe<uint64_t>(out + 8, pos.offset);
}

namespace {
template <size_t N, typename F>
std::string ToString(F fill) {
  uint8_t buf[N];
  fill(buf);
  return std::string(reinterpret_cast<const char*>(buf), N);
}
}  // namespace

std::string Index::EntryKey(uint64_t segment, int64_t entry) {
  return ToString<kEntryKeySize>([&](uint8_t* b) { EntryKeyTo(segment, entry, b); });
}
std::string Index::SegmentKey(uint64_t segment) {
  return ToString<kSegmentKeySize>([&](uint8_t* b) { SegmentKeyTo(segment, b); });
}
std::string Index::FileSegmentKey(uint64_t file, uint64_t segment) { return Key2(kFilePrefix, file, segment); }
std::string Index::EncodeLocation(const EntryLocation& loc) {
  return ToString<kLocationSize>([&](uint8_t* b) { EncodeLocationTo(loc, b); });
}

bool Index::DecodeLocation(std::string_view v, EntryLocation* loc) {
  if (v.size() != 20) return false;
  auto* p = reinterpret_cast<const uint8_t*>(v.data());
  loc->file = GetLe<uint64_t>(p);
  loc->offset = GetLe<uint64_t>(p + 8);
  loc->length = GetLe<uint32_t>(p + 16);
  return true;
}

std::string Index::EncodeSegmentMeta(const SegmentMeta& m) {
  return ToString<kSegmentMetaSize>([&](uint8_t* b) { EncodeSegmentMetaTo(m, b); });
}

bool Index::DecodeSegmentMeta(const std::string& v, SegmentMeta* m) {
  if (v.size() != 18 || static_cast<uint8_t>(v[0]) != kSegmentMetaVersion) return false;
  auto* p = reinterpret_cast<const uint8_t*>(v.data());
  m->fenced = (p[1] & kFlagFenced) != 0;
  m->damaged = (p[1] & kFlagDamaged) != 0;
  m->deleted = (p[1] & kFlagDeleted) != 0;
  m->lac = GetLe<int64_t>(p + 2);
  m->last_entry = GetLe<int64_t>(p + 10);
  return true;
}

std::string Index::EncodePosition(const JournalPos& pos) {
  return ToString<kPositionSize>([&](uint8_t* b) { EncodePositionTo(pos, b); });
}

bool Index::DecodePosition(const std::string& v, JournalPos* pos) {
  if (v.size() != 16) return false;
  pos->file = GetLe<uint64_t>(reinterpret_cast<const uint8_t*>(v.data()));
  pos->offset = GetLe<uint64_t>(reinterpret_cast<const uint8_t*>(v.data()) + 8);
  return true;
}

// ---------------------------------------------------------------- IndexBuilder

IndexBuilder::IndexBuilder(Index* index) : index_(index), batch_(std::make_unique<rocksdb::WriteBatch>()) {}
IndexBuilder::~IndexBuilder() = default;

Status IndexBuilder::Load() {
  rocksdb::DB* db = index_->db();
  std::string v;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), kPositionKey, &v);
  if (s.ok()) {
    if (!Index::DecodePosition(v, &position_))
      return Status::Error(CommonErrc::kCorruption, "bad index position value");
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "index get position");
  }
  s = db->Get(rocksdb::ReadOptions(), kLostRegionKey, &lost_region_);
  if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "index get lost region");
  if (s.IsNotFound()) lost_region_.clear();
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(1, kSegmentPrefix)); it->Valid() && it->key()[0] == kSegmentPrefix; it->Next()) {
    if (it->key().size() != 9) return Status::Error(CommonErrc::kCorruption, "bad index segment key");
    const uint64_t seg = GetBe64(reinterpret_cast<const uint8_t*>(it->key().data()) + 1);
    SegmentMeta m;
    if (!Index::DecodeSegmentMeta(it->value().ToString(), &m)) {
      return Status::Error(CommonErrc::kCorruption, "bad index state of segment " + std::to_string(seg));
    }
    segments_[seg] = m;
  }
  DLOG_RETURN_IF_ERROR(FromRocks(it->status(), "index scan segments"));
  for (it->Seek(std::string(1, kFilePrefix)); it->Valid() && it->key()[0] == kFilePrefix; it->Next()) {
    if (it->key().size() != 17) return Status::Error(CommonErrc::kCorruption, "bad index file key");
    const auto* k = reinterpret_cast<const uint8_t*>(it->key().data());
    file_segments_[GetBe64(k + 1)].insert(GetBe64(k + 9));
  }
  return FromRocks(it->status(), "index scan files");
}

SegmentMeta& IndexBuilder::Touch(uint64_t segment) {
  SegmentMeta& m = segments_[segment];
  if (!m.dirty) {
    m.dirty = true;
    dirty_.push_back(segment);
  }
  return m;
}

void IndexBuilder::AddToFile(uint64_t file, uint64_t segment) {
  if (file_segments_[file].insert(segment).second) {
    batch_->Put(Index::FileSegmentKey(file, segment), rocksdb::Slice());
  }
}

void IndexBuilder::Apply(const RecordHeader& h, const uint8_t* payload, JournalPos pos, uint32_t length) {
  ++pending_;
  switch (h.type) {
    case RecordType::kEntry: {
      auto it = segments_.find(h.segment);
      if (it != segments_.end() && it->second.deleted) return;  // never resurrect a deleted segment
      SegmentMeta& m = Touch(h.segment);
      m.last_entry = std::max(m.last_entry, h.entry);
      m.lac = std::max(m.lac, h.lac);
      // Hot path: key and value built on the stack (17 and 20 bytes: past the small-string buffer).
      uint8_t key[Index::kEntryKeySize], val[Index::kLocationSize];
      Index::EntryKeyTo(h.segment, h.entry, key);
      Index::EncodeLocationTo(EntryLocation{pos.file, pos.offset, length}, val);
      batch_->Put(rocksdb::Slice(reinterpret_cast<const char*>(key), sizeof(key)),
                  rocksdb::Slice(reinterpret_cast<const char*>(val), sizeof(val)));
      AddToFile(pos.file, h.segment);
      return;
    }
    case RecordType::kFence: {
      auto it = segments_.find(h.segment);
      if (it != segments_.end() && it->second.deleted) return;
      Touch(h.segment).fenced = true;
      AddToFile(pos.file, h.segment);
      return;
    }
    case RecordType::kDelete: {
      if (!DecodeDeletePayload(payload, h.payload_len, &scratch_)) {
        DLOG_ERROR << "index: DELETE record at " << pos.file << ":" << pos.offset << " has a bad payload length "
                   << h.payload_len << "; ignored";
        return;
      }
      for (uint64_t seg : scratch_) {
        SegmentMeta& m = Touch(seg);
        m.deleted = true;
        std::string begin = Index::EntryKey(seg, 0);
        begin.resize(9);
        std::string end = begin + std::string(9, '\xff');
        batch_->DeleteRange(begin, end);
        for (auto& [file, set] : file_segments_) {
          if (set.erase(seg) > 0) batch_->Delete(Index::FileSegmentKey(file, seg));
        }
      }
      deleted_since_ = true;
      return;
    }
  }
}

void IndexBuilder::MarkDamaged(uint64_t segment) {
  Touch(segment).damaged = true;
  ++pending_;
}

void IndexBuilder::MarkLostRegion(const std::string& what) {
  if (lost_region_.size() < kLostRegionMaxText) {
    lost_region_ += (lost_region_.empty() ? "" : "; ") + what;
    if (lost_region_.size() > kLostRegionMaxText) lost_region_.resize(kLostRegionMaxText);
  }
  if (lost_region_.empty()) lost_region_ = "lost a journal region";
  batch_->Put(kLostRegionKey, lost_region_);
  ++pending_;
}

bool IndexBuilder::HasPending() const { return pending_ > 0 || !dirty_.empty(); }

Status IndexBuilder::Commit(JournalPos end) {
  for (uint64_t seg : dirty_) {
    SegmentMeta& m = segments_[seg];
    m.dirty = false;
    uint8_t key[Index::kSegmentKeySize], val[Index::kSegmentMetaSize];
    Index::SegmentKeyTo(seg, key);
    Index::EncodeSegmentMetaTo(m, val);
    batch_->Put(rocksdb::Slice(reinterpret_cast<const char*>(key), sizeof(key)),
                rocksdb::Slice(reinterpret_cast<const char*>(val), sizeof(val)));
  }
  dirty_.clear();
  uint8_t pos[Index::kPositionSize];
  Index::EncodePositionTo(end, pos);
  batch_->Put(kPositionKey, rocksdb::Slice(reinterpret_cast<const char*>(pos), sizeof(pos)));
  Status st = index_->Write(batch_.get());
  batch_->Clear();
  pending_ = 0;
  if (st.ok()) position_ = end;
  return st;
}

std::set<uint64_t> IndexBuilder::SegmentsInFile(uint64_t file) const {
  auto it = file_segments_.find(file);
  if (it == file_segments_.end()) return {};
  return it->second;
}

std::vector<uint64_t> IndexBuilder::CollectGarbageFiles(const std::vector<uint64_t>& files, uint64_t below) {
  // Files on disk, plus files the index still lists (removed before a crash).
  std::set<uint64_t> candidates(files.begin(), files.end());
  for (const auto& [f, set] : file_segments_) candidates.insert(f);
  std::vector<uint64_t> out;
  for (uint64_t f : candidates) {
    if (f >= below) continue;
    auto it = file_segments_.find(f);
    bool live = false;
    if (it != file_segments_.end()) {
      for (uint64_t seg : it->second) {
        auto s = segments_.find(seg);
        if (s == segments_.end() || !s->second.deleted) {
          live = true;
          break;
        }
      }
      if (!live) {
        for (uint64_t seg : it->second) batch_->Delete(Index::FileSegmentKey(f, seg));
        file_segments_.erase(it);
        ++pending_;
      }
    }
    if (!live) out.push_back(f);
  }
  return out;
}

bool IndexBuilder::TakeDeletedFlag() {
  bool r = deleted_since_;
  deleted_since_ = false;
  return r;
}

}  // namespace dlog::node
