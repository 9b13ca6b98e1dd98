#include "client/log_stat.h"

#include <algorithm>

#include "client/log_wire.h"
#include "logstore/log/errors.h"

namespace dlog::client {

void FillLogStat(const log::LogInfo& info, proto::LogStat* out) {
  out->set_name(info.name);
  out->set_incarnation(info.meta.incarnation());
  out->set_end_of_stream(info.meta.end_of_stream());
  out->set_truncated_before_seq(info.meta.truncated_before_seq());
  out->set_ctime_ms(info.meta.ctime_ms());
  if (info.owner) {
    out->set_owner_id(info.owner->owner_id());
    out->set_owner_address(info.owner->address());
    out->set_owner_since_ms(info.owner->acquired_at_ms());
  }
  int64_t records = 0;
  int64_t live_bytes = 0;
  bool exact = true;
  for (const log::SegmentInfo& s : info.segments) {
    proto::SegmentStat* st = out->add_segments();
    st->set_seq(s.seq);
    st->set_segment_id(s.id.value());
    st->set_state(s.meta.state());
    st->set_truncated(s.truncated_at_ms > 0 || s.meta.truncated());
    st->set_truncated_at_ms(s.truncated_at_ms);
    st->set_ctime_ms(s.meta.ctime_ms());
    if (s.meta.fragments_size() > 0) {
      for (const std::string& n : s.meta.fragments(s.meta.fragments_size() - 1).ensemble()) st->add_ensemble(n);
    }
    if (s.meta.state() == proto::SEGMENT_CLOSED) {
      st->set_entries(s.meta.last_entry_id() + 1);
      st->set_records(s.meta.record_count());
      st->set_bytes(static_cast<int64_t>(s.meta.length()));
      st->set_first_record_seq(s.meta.first_record_seq());
      st->set_max_txid(s.meta.max_txid());
      records = std::max(records, s.meta.first_record_seq() + s.meta.record_count());
      if (!st->truncated()) live_bytes += static_cast<int64_t>(s.meta.length());
    } else {
      st->set_entries(-1);
      st->set_records(-1);
      st->set_bytes(-1);
      exact = false;
    }
  }
  out->set_record_count(records);
  out->set_record_count_exact(exact);
  out->set_live_bytes(live_bytes);
}

namespace {

// The first record a reader at `start` gets within the timeout, if any.
std::optional<log::LogRecord> FirstRecordAt(log::Namespace* ns, const std::string& log, log::StartPosition start,
                                            int64_t timeout_ms) {
  auto reader = ns->OpenReaderSync(log, start);
  if (!reader.ok()) return std::nullopt;
  auto recs = (*reader)->ReadNextSync(1, timeout_ms);
  if (!recs.ok() || recs->empty()) return std::nullopt;
  return std::move(recs->front());
}

// The DLSN of the record with sequence number `last_seq`, which lies in
// entry `entry` of segment `seq`.
std::optional<log::Dlsn> FindRecord(log::Namespace* ns, const std::string& log, int64_t seq, int64_t entry,
                                    int64_t last_seq, int64_t timeout_ms) {
  auto reader = ns->OpenReaderSync(log, log::StartPosition::At(log::Dlsn{seq, entry, 0}));
  if (!reader.ok()) return std::nullopt;
  // An entry holds at most a few thousand records; a few reads suffice.
  for (int i = 0; i < 64; ++i) {
    auto recs = (*reader)->ReadNextSync(1024, timeout_ms);
    if (!recs.ok() || recs->empty()) return std::nullopt;
    for (const log::LogRecord& r : *recs) {
      if (r.seq == last_seq) return r.dlsn;
      if (r.seq > last_seq) return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

Result<proto::LogStat> StatLogSync(log::Namespace* ns, const std::string& log, const std::optional<WriterHint>& hint,
                                   int64_t read_timeout_ms) {
  Result<log::LogInfo> info = ns->GetLogInfoSync(log);
  if (!info.ok()) return info.status();
  proto::LogStat stat;
  FillLogStat(*info, &stat);
  if (hint) {
    // The writer's counter covers its OPEN segment too.
    stat.set_record_count(std::max(stat.record_count(), hint->next_seq));
    stat.set_record_count_exact(true);
  }

  if (stat.record_count() > 0 || !stat.record_count_exact()) {
    if (auto first = FirstRecordAt(ns, log, log::StartPosition::Earliest(), read_timeout_ms)) {
      ToProto(first->dlsn, stat.mutable_first_dlsn());
    }
  }

  if (hint && hint->last_dlsn) {
    ToProto(*hint->last_dlsn, stat.mutable_last_dlsn());
  } else {
    // The last CLOSED segment with records, provided nothing after it can
    // hold records we cannot see (with a hint and no write yet, the writer's
    // OPEN segment is empty: recovery closed everything before it).
    for (auto it = info->segments.rbegin(); it != info->segments.rend(); ++it) {
      const proto::SegmentMetadata& m = it->meta;
      if (m.state() != proto::SEGMENT_CLOSED) {
        if (hint) continue;
        break;
      }
      if (m.record_count() <= 0 || m.last_entry_id() < 0) continue;
      if (it->truncated_at_ms > 0 || m.truncated()) break;
      if (auto d = FindRecord(ns, log, it->seq, m.last_entry_id(), m.first_record_seq() + m.record_count() - 1,
                              read_timeout_ms)) {
        ToProto(*d, stat.mutable_last_dlsn());
      }
      break;
    }
  }
  return stat;
}

}  // namespace dlog::client
