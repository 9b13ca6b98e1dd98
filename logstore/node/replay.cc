#include "logstore/node/replay.h"

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>

#include "common/buffer.h"
#include "common/logging.h"

namespace dlog::node {

namespace {

constexpr size_t kCommitEvery = 4096;  // records per replay WriteBatch

struct LoadedFile {
  uint64_t id = 0;
  uint32_t seed = 0;  // JournalSeed of the file
  std::string path;
  std::vector<uint8_t> data;
};

Status Load(Env* env, const std::string& dir, const std::string& journal_salt, uint64_t id, LoadedFile* out) {
  out->id = id;
  out->seed = JournalSeed(journal_salt, id);
  out->path = JoinPath(dir, JournalFileName(id));
  DLOG_ASSIGN_OR_RETURN(auto f, env->OpenFile(out->path, OpenMode::kRead));
  DLOG_ASSIGN_OR_RETURN(uint64_t size, f->Size());
  out->data.resize(size);
  size_t got = 0;
  DLOG_RETURN_IF_ERROR(f->PRead(0, size, out->data.data(), &got));
  out->data.resize(got);
  return Status::OK();
}

// A valid record (header and payload check) at an 8-aligned offset >= from.
// `seed`: the file's JournalSeed (bytes sealed with any other never count).
std::optional<uint64_t> ScanForValid(const std::vector<uint8_t>& d, uint64_t from, uint32_t seed) {
  const uint64_t size = d.size();
  for (uint64_t p = AlignRecord(from); p + kRecordHeaderSize <= size; p += kRecordAlign) {
    if (GetLe<uint32_t>(d.data() + p) != kRecordMagic) continue;
    RecordHeader h;
    RecordError e = DecodeHeader(d.data() + p, size - p, size - p, seed, &h);
    if (e == RecordError::kUnknownVersion) return p;  // a newer writer's record: replay will refuse it
    if (e != RecordError::kOk) continue;
    if (CheckPayload(h, d.data() + p + kRecordHeaderSize) == RecordError::kOk) return p;
  }
  return std::nullopt;
}

// True if d[from, to) is all zeros (an empty range is).
bool AllZero(const std::vector<uint8_t>& d, uint64_t from, uint64_t to) {
  to = std::min<uint64_t>(to, d.size());
  for (uint64_t i = from; i < to; ++i) {
    if (d[i] != 0) return false;
  }
  return true;
}

// Overwrites [from, end of file) with zeros if any byte there is not zero.
Status ZeroTail(Env* env, const LoadedFile& lf, uint64_t from) {
  uint64_t first = lf.data.size();
  for (uint64_t i = from; i < lf.data.size(); ++i) {
    if (lf.data[i] != 0) {
      first = i;
      break;
    }
  }
  if (first >= lf.data.size()) return Status::OK();
  first = std::max(from, first & ~uint64_t{kRecordAlign - 1});
  DLOG_ASSIGN_OR_RETURN(auto f, env->OpenFile(lf.path, OpenMode::kReadWrite));
  DLOG_RETURN_IF_ERROR(f->WriteZeros(first, lf.data.size() - first));
  DLOG_RETURN_IF_ERROR(f->DataSync());
  DLOG_WARN << "journal replay: zeroed " << (lf.data.size() - first) << " bytes of " << lf.path << " from offset "
            << first;
  return Status::OK();
}

class Replayer {
 public:
  Replayer(Env* env, const std::string& dir, const std::string& journal_salt, std::vector<uint64_t> files,
           IndexBuilder* b)
      : env_(env), dir_(dir), journal_salt_(journal_salt), files_(std::move(files)), b_(b) {}

  Result<ReplayStats> Run() {
    std::sort(files_.begin(), files_.end());
    stats_.start = b_->position();
    stats_.end = stats_.start;
    std::erase_if(files_, [&](uint64_t f) { return f < stats_.start.file; });
    if (!files_.empty() && files_.front() != stats_.start.file && stats_.start.file != 0) {
      DLOG_WARN << "journal replay: the index position's file " << stats_.start.file
                << " is missing; replaying from file " << files_.front();
    }
    DLOG_INFO << "journal replay: from file " << stats_.start.file << " offset " << stats_.start.offset << " over "
              << files_.size() << " file(s)";
    uint64_t resume_offset = stats_.start.offset;
    size_t i = 0;
    bool stop = false;
    while (i < files_.size() && !stop) {
      LoadedFile lf;
      DLOG_RETURN_IF_ERROR(Load(env_, dir_, journal_salt_, files_[i], &lf));
      ++stats_.files;
      const uint64_t from = files_[i] == stats_.start.file ? resume_offset : resume_offset_for_next_;
      resume_offset_for_next_ = 0;
      size_t next_index = i + 1;
      DLOG_RETURN_IF_ERROR(ReplayFile(lf, from, i, &next_index, &stop));
      i = next_index;
    }
    DLOG_RETURN_IF_ERROR(b_->Commit(stats_.end));
    if (!stats_.lost_region.empty()) {
      DLOG_ERROR << "journal replay: LOST a journal region of unknown content (" << stats_.lost_region
                 << "); the segments and entries it held cannot be known, so from now on this node answers "
                    "IO_ERROR instead of NO_SUCH_ENTRY / NO_SUCH_SEGMENT (readers and recovery use other replicas)";
    }
    if (!stats_.damaged_segments.empty()) {
      std::ostringstream os;
      for (size_t k = 0; k < stats_.damaged_segments.size(); ++k) os << (k ? ", " : "") << stats_.damaged_segments[k];
      DLOG_ERROR << "journal replay: " << stats_.corrupt_records
                 << " corrupt record(s) in the middle of the journal; segments marked DAMAGED (their reads "
                    "fail with IO_ERROR until they are re-replicated): ["
                 << os.str() << "]";
    }
    DLOG_INFO << "journal replay: done: " << stats_.records << " records (" << stats_.entries << " entries, "
              << stats_.fences << " fences, " << stats_.deletes << " deletes) from " << stats_.files
              << " file(s), end at file " << stats_.end.file << " offset " << stats_.end.offset << ", "
              << stats_.torn_tails << " torn tail(s) cut, " << stats_.corrupt_records << " corrupt record(s)";
    return stats_;
  }

 private:
  // Replays `lf` from `off`. Sets *next_index to the file to continue with.
  Status ReplayFile(const LoadedFile& lf, uint64_t off, size_t index, size_t* next_index, bool* stop) {
    const auto& d = lf.data;
    const uint64_t size = d.size();
    bool whole_file_damaged = false;
    while (off < size) {
      RecordHeader h;
      RecordError e = DecodeHeader(d.data() + off, size - off, size - off, lf.seed, &h);
      if (e == RecordError::kOk) e = CheckPayload(h, d.data() + off + kRecordHeaderSize);
      if (e == RecordError::kOk) {
        DLOG_RETURN_IF_ERROR(Apply(h, d.data() + off + kRecordHeaderSize, JournalPos{lf.id, off}));
        off += RecordFootprint(h.payload_len);
        stats_.end = JournalPos{lf.id, off};
        continue;
      }
      if (e == RecordError::kUnknownVersion) {
        return Status::Error(CommonErrc::kCorruption,
                             "journal record at " + lf.path + " offset " + std::to_string(off) + " has version " +
                                 std::to_string(GetLe<uint16_t>(d.data() + off + 4)) +
                                 ", unknown to this dlog (knows " + std::to_string(kRecordVersion) +
                                 "): was the journal written by a newer dlog?");
      }
      if (e == RecordError::kZero) {
        // Normal end of data in this file, unless a valid record follows in it.
        auto p = ScanForValid(d, off + kRecordAlign, lf.seed);
        if (!p) break;
        ++stats_.corrupt_records;
        DLOG_ERROR << "journal replay: CORRUPTION: zeroed region at " << lf.path << " offset " << off
                   << " followed by a valid record at offset " << *p;
        whole_file_damaged = true;
        LoseRegion("journal file " + std::to_string(lf.id) + " offsets " + std::to_string(off) + ".." +
                   std::to_string(*p) + " (zeroed region)");
        off = *p;
        continue;
      }
      // A bad record: torn tail or corruption?
      const bool header_known = e == RecordError::kBadPayloadCrc || e == RecordError::kPastEnd;
      // The bad record's own extent, when its header checked.
      const uint64_t known_end = header_known ? off + RecordFootprint(h.payload_len) : off;
      uint64_t found_index = index;
      std::optional<uint64_t> found = ScanForValid(d, off + kRecordAlign, lf.seed);
      // Whether every byte skipped besides the bad record itself is zero (so
      // no record of an unknown segment can have been in it).
      bool gap_blank = header_known && known_end <= size && AllZero(d, known_end, found ? *found : size);
      if (!found) {
        for (size_t j = index + 1; j < files_.size() && !found; ++j) {
          LoadedFile lj;
          DLOG_RETURN_IF_ERROR(Load(env_, dir_, journal_salt_, files_[j], &lj));
          found = ScanForValid(lj.data, 0, lj.seed);
          if (found) found_index = j;
          gap_blank = gap_blank && AllZero(lj.data, 0, found ? *found : lj.data.size());
        }
      }
      if (!found) {
        ++stats_.torn_tails;
        DLOG_ERROR << "journal replay: TORN TAIL at " << lf.path << " offset " << off << " (" << RecordErrorName(e)
                   << "); no valid record follows anywhere: cutting it off (an "
                   << "unacknowledged write cut short by a crash)";
        DLOG_RETURN_IF_ERROR(ZeroTail(env_, lf, off));
        for (size_t j = index + 1; j < files_.size(); ++j) {
          LoadedFile lj;
          DLOG_RETURN_IF_ERROR(Load(env_, dir_, journal_salt_, files_[j], &lj));
          DLOG_RETURN_IF_ERROR(ZeroTail(env_, lj, 0));
        }
        *stop = true;
        break;
      }
      ++stats_.corrupt_records;
      DLOG_ERROR << "journal replay: CORRUPTION at " << lf.path << " offset " << off << " (" << RecordErrorName(e)
                 << "), valid records follow at file " << files_[found_index] << " offset " << *found << "; "
                 << (header_known ? "segment " + std::to_string(h.segment) + " is damaged"
                                  : std::string("every segment with records in this file is damaged"));
      if (header_known) {
        Damage(h.segment);
      } else {
        whole_file_damaged = true;
      }
      if (!gap_blank) {
        LoseRegion("journal file " + std::to_string(lf.id) + " offset " + std::to_string(off) + " (" +
                   RecordErrorName(e) + ") up to file " + std::to_string(files_[found_index]) + " offset " +
                   std::to_string(*found));
      }
      if (found_index == index) {
        off = *found;
        continue;
      }
      *next_index = found_index;
      resume_offset_for_next_ = *found;
      break;
    }
    if (whole_file_damaged) {
      for (uint64_t seg : b_->SegmentsInFile(lf.id)) Damage(seg);
      for (uint64_t seg : seen_in_file_) Damage(seg);
    }
    seen_in_file_.clear();
    if (b_->HasPending()) DLOG_RETURN_IF_ERROR(b_->Commit(stats_.end));
    return Status::OK();
  }

  Status Apply(const RecordHeader& h, const uint8_t* payload, JournalPos pos) {
    b_->Apply(h, payload, pos, static_cast<uint32_t>(kRecordHeaderSize + h.payload_len));
    ++stats_.records;
    if (h.type == RecordType::kEntry) ++stats_.entries;
    if (h.type == RecordType::kFence) ++stats_.fences;
    if (h.type == RecordType::kDelete) ++stats_.deletes;
    if (h.type != RecordType::kDelete) seen_in_file_.insert(h.segment);
    if (++since_commit_ >= kCommitEvery) {
      since_commit_ = 0;
      // stats_.end is still this record's start: the position never runs ahead of what is applied.
      return b_->Commit(pos);
    }
    return Status::OK();
  }

  void LoseRegion(const std::string& what) {
    DLOG_ERROR << "journal replay: the records in " << what
               << " cannot be read and their segments cannot be known: a journal region of unknown content is lost";
    stats_.lost_region += (stats_.lost_region.empty() ? "" : "; ") + what;
    b_->MarkLostRegion(what);
  }

  void Damage(uint64_t seg) {
    auto it = b_->segments().find(seg);
    if (it != b_->segments().end() && (it->second.deleted || it->second.damaged)) return;
    b_->MarkDamaged(seg);
    stats_.damaged_segments.push_back(seg);
  }

  Env* const env_;
  const std::string dir_;
  const std::string journal_salt_;
  std::vector<uint64_t> files_;
  IndexBuilder* const b_;
  ReplayStats stats_;
  std::set<uint64_t> seen_in_file_;
  uint64_t resume_offset_for_next_ = 0;
  size_t since_commit_ = 0;
};

}  // namespace

Result<ReplayStats> ReplayJournal(Env* env, const std::string& dir, const std::string& journal_salt,
                                  std::vector<uint64_t> files, IndexBuilder* builder) {
  return Replayer(env, dir, journal_salt, std::move(files), builder).Run();
}

}  // namespace dlog::node
