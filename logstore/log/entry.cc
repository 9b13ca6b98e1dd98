#include "logstore/log/entry.h"

#include <string>

#include "logstore/log/errors.h"

namespace dlog::log {

void EntryBuilder::Reset(int64_t first_record_seq) {
  buf_.Clear();
  uint8_t* h = buf_.Reserve(kEntryHeaderSize);
  std::memset(h, 0, kEntryHeaderSize);
  buf_.Commit(kEntryHeaderSize);
  count_ = 0;
  first_seq_ = first_record_seq;
  max_txid_ = 0;
}

void EntryBuilder::Add(int64_t txid, const void* data, size_t size) {
  if (buf_.empty()) Reset(first_seq_);
  uint8_t* p = buf_.Reserve(kRecordHeaderSize + size);
  PutLe<uint32_t>(p, static_cast<uint32_t>(size));
  PutLe<int64_t>(p + 4, txid);
  if (size > 0) std::memcpy(p + kRecordHeaderSize, data, size);
  buf_.Commit(kRecordHeaderSize + size);
  max_txid_ = count_ == 0 ? txid : std::max(max_txid_, txid);
  ++count_;
}

namespace {
void PutHeader(uint8_t* h, uint8_t flags, uint32_t count, int64_t first_seq, int64_t max_txid) {
  h[0] = kEntryVersion;
  h[1] = flags;
  h[2] = 0;
  h[3] = 0;
  PutLe<uint32_t>(h + 4, count);
  PutLe<int64_t>(h + 8, first_seq);
  PutLe<int64_t>(h + 16, max_txid);
}
}  // namespace

Slice EntryBuilder::Take(uint8_t flags) {
  if (buf_.empty()) Reset(first_seq_);
  PutHeader(buf_.data(), flags, count_, first_seq_, max_txid_);
  Slice out = Slice::CopyOf(std::string_view(reinterpret_cast<const char*>(buf_.data()), buf_.size()));
  buf_.Clear();
  first_seq_ += count_;
  count_ = 0;
  return out;
}

Slice MakeEndOfStreamEntry(int64_t next_record_seq, int64_t max_txid) {
  uint8_t h[kEntryHeaderSize];
  PutHeader(h, kEntryFlagEndOfStream, 0, next_record_seq, max_txid);
  return Slice::CopyOf(std::string_view(reinterpret_cast<const char*>(h), sizeof h));
}

Result<EntryHeader> DecodeEntryHeader(const Slice& entry) {
  if (entry.size() < kEntryHeaderSize) {
    return Status::Error(LogErrc::kCorrupt,
                         "entry of " + std::to_string(entry.size()) + " bytes is shorter than a log entry header");
  }
  const uint8_t* h = entry.data();
  if (h[0] != kEntryVersion) {
    return Status::Error(LogErrc::kCorrupt, "entry format version " + std::to_string(h[0]) + " is unknown");
  }
  EntryHeader out;
  out.flags = h[1];
  out.record_count = GetLe<uint32_t>(h + 4);
  out.first_record_seq = GetLe<int64_t>(h + 8);
  out.max_txid = GetLe<int64_t>(h + 16);
  if ((out.flags & ~kEntryFlagEndOfStream) != 0 || h[2] != 0 || h[3] != 0) {
    return Status::Error(LogErrc::kCorrupt, "entry header has unknown flags");
  }
  if (out.first_record_seq < 0) return Status::Error(LogErrc::kCorrupt, "entry header has a negative sequence");
  if (out.end_of_stream() && out.record_count != 0) {
    return Status::Error(LogErrc::kCorrupt, "END_OF_STREAM entry with records");
  }
  // Every record takes at least its header: a count the bytes can't hold is corrupt.
  if (out.record_count > (entry.size() - kEntryHeaderSize) / kRecordHeaderSize) {
    return Status::Error(LogErrc::kCorrupt, "entry claims " + std::to_string(out.record_count) + " records in " +
                                                std::to_string(entry.size()) + " bytes");
  }
  return out;
}

Result<EntryHeader> DecodeEntry(const Slice& entry, std::vector<EntryRecord>* records) {
  Result<EntryHeader> h = DecodeEntryHeader(entry);
  if (!h.ok()) return h;
  records->clear();
  records->reserve(h->record_count);
  size_t off = kEntryHeaderSize;
  for (uint32_t i = 0; i < h->record_count; ++i) {
    if (entry.size() - off < kRecordHeaderSize) {
      return Status::Error(LogErrc::kCorrupt, "record " + std::to_string(i) + " header runs past the entry's end");
    }
    const uint32_t size = GetLe<uint32_t>(entry.data() + off);
    const int64_t txid = GetLe<int64_t>(entry.data() + off + 4);
    off += kRecordHeaderSize;
    if (size > entry.size() - off) {
      return Status::Error(LogErrc::kCorrupt, "record " + std::to_string(i) + " of " + std::to_string(size) +
                                                  " bytes runs past the entry's end");
    }
    records->push_back(EntryRecord{txid, entry.Sub(off, size)});
    off += size;
  }
  if (off != entry.size()) {
    return Status::Error(LogErrc::kCorrupt,
                         std::to_string(entry.size() - off) + " bytes after the entry's last record");
  }
  return h;
}

}  // namespace dlog::log
