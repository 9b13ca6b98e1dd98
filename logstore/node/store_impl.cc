#include "logstore/node/store_impl.h"

#include <algorithm>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/logging.h"
#include "protocol/node_errors.h"

namespace dlog::node {

namespace {
// How long a reader waits for the index to catch up with an acknowledged entry.
constexpr int64_t kIndexWaitMs = 10000;
constexpr int kBatchesInFlight = 4;

Status NodeError(NodeErrc c, std::string msg) { return Status::Error(c, std::move(msg)); }
std::string SegName(uint64_t s) { return "segment " + std::to_string(s); }
}  // namespace

Result<std::unique_ptr<Store>> Store::Open(StoreOptions options) {
  auto s = std::make_unique<StoreImpl>(std::move(options));
  DLOG_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Store>(std::move(s));
}

StoreImpl::StoreImpl(StoreOptions options) : opt_(std::move(options)) {
  env_ = opt_.env != nullptr ? opt_.env : Env::Posix();
  probe_ = opt_.probe != nullptr ? opt_.probe : &own_probe_;
  journal_dir_ = JoinPath(opt_.data_dir, "journal");
  index_dir_ = JoinPath(opt_.data_dir, "index");
}

StoreImpl::~StoreImpl() {
  bool running;
  {
    MutexLock l(&mu_);
    running = state_ == State::kRunning;
  }
  if (running) {
    Status st = Close();
    if (!st.ok()) DLOG_ERROR << "store: close in destructor: " << st.ToString();
  } else {
    StopAll(false);
  }
}

// ---------------------------------------------------------------- Open

Status StoreImpl::CheckOptions() {
  auto bad = [](std::string m) { return Status::Error(CommonErrc::kInvalidArgument, std::move(m)); };
  if (opt_.data_dir.empty()) return bad("StoreOptions.data_dir is empty");
  if (opt_.node_id.empty()) return bad("StoreOptions.node_id is empty");
  for (const std::string* s : {&opt_.node_id, &opt_.cluster_id}) {
    if (s->find_first_of("\n\r") != std::string::npos) return bad("node and cluster ids may not contain newlines");
  }
  if (opt_.journal_file_bytes < 64 * 1024 || opt_.journal_file_bytes % kRecordAlign != 0) {
    return bad("journal_file_bytes must be a multiple of 8 and at least 64 KiB");
  }
  if (opt_.journal_max_batch_bytes == 0) return bad("journal_max_batch_bytes must be > 0");
  if (opt_.journal_queue_max_records == 0 || opt_.journal_queue_max_bytes == 0) {
    return bad("journal queue bounds must be > 0");
  }
  if (opt_.read_threads < 1) return bad("read_threads must be >= 1");
  return Status::OK();
}

Status StoreImpl::Init() {
  DLOG_RETURN_IF_ERROR(CheckOptions());
  probe_->healthy.store(1);
  if (opt_.format) {
    DLOG_RETURN_IF_ERROR(Format());
  } else {
    DLOG_RETURN_IF_ERROR(CheckCookies());
  }
  auto version = index_->GetFormatVersion();
  if (!version.ok()) return version.status().WithContext("index " + index_dir_);
  if (*version != kIndexFormatVersion) {
    return Status::Error(CommonErrc::kInvalidArgument, "index " + index_dir_ + " has format version " +
                                                           std::to_string(*version) + ", this dlog knows " +
                                                           std::to_string(kIndexFormatVersion));
  }
  DLOG_RETURN_IF_ERROR(Replay());

  // Build the in-memory segment table from what the index now holds.
  {
    MutexLock l(&mu_);
    for (const auto& [id, m] : builder_->segments()) {
      SegEntry& s = segments_[id];
      s.fenced = m.fenced;
      s.fence_indexed = m.fenced;
      s.damaged = m.damaged;
      s.deleted = m.deleted;
      s.lac = m.lac;
      s.last_entry = m.last_entry;
    }
  }
  auto names = env_->ListDir(journal_dir_);
  if (!names.ok()) return names.status();
  uint64_t max_id = builder_->position().file;
  for (const auto& n : *names) {
    uint64_t id;
    if (ParseJournalFileName(n, &id)) max_id = std::max(max_id, id);
  }

  cache_ = std::make_unique<TailCache>(opt_.cache_bytes);
  files_ = std::make_unique<JournalFileCache>(env_, journal_dir_, cookie_.journal_salt);
  IndexerOptions io;
  io.journal_dir = journal_dir_;
  io.flush_interval_ms = opt_.index_flush_interval_ms;
  io.env = env_;
  indexer_ = std::make_unique<Indexer>(io, index_.get(), std::move(builder_), static_cast<IndexerHost*>(this));
  JournalOptions jo;
  jo.dir = journal_dir_;
  jo.file_bytes = opt_.journal_file_bytes;
  jo.max_batch_bytes = opt_.journal_max_batch_bytes;
  jo.max_wait_us = opt_.journal_max_wait_us;
  jo.queue_max_bytes = opt_.journal_queue_max_bytes;
  jo.queue_max_records = opt_.journal_queue_max_records;
  jo.batches_in_flight = kBatchesInFlight;
  jo.first_file_id = max_id + 1;
  jo.journal_salt = cookie_.journal_salt;
  jo.env = env_;
  jo.probe = probe_;
  journal_ = std::make_unique<Journal>(jo, static_cast<JournalSink*>(this));
  readers_ =
      std::make_unique<ReaderPool>(opt_.read_threads, opt_.read_queue_max, [this](ReadTask& t) { ExecuteRead(t); });
  indexer_->Start();
  Status st = journal_->Start();
  if (!st.ok()) {
    StopAll(false);
    return st;
  }
  size_t known;
  {
    MutexLock l(&mu_);
    state_ = State::kRunning;
    known = segments_.size();
  }
  DLOG_INFO << "store: open: " << opt_.data_dir << " (" << cookie_.Describe() << "), " << known << " segment(s) known";
  return Status::OK();
}

Status StoreImpl::Format() {
  const std::string root_cookie = JoinPath(opt_.data_dir, kCookieFileName);
  auto non_empty = [&](const std::string& dir) {
    if (!env_->Exists(dir)) return false;
    auto names = env_->ListDir(dir);
    return !names.ok() || !names->empty();
  };
  if (env_->Exists(root_cookie) || non_empty(journal_dir_) || non_empty(index_dir_)) {
    return Status::Error(CommonErrc::kInvalidArgument,
                         "data dir " + opt_.data_dir +
                             " is already formatted (it has a cookie or data); refusing to format it again. "
                             "Start without --format to use it, or remove it by hand if it is really to be wiped");
  }
  DLOG_RETURN_IF_ERROR(env_->CreateDir(opt_.data_dir));
  DLOG_RETURN_IF_ERROR(env_->CreateDir(journal_dir_));
  cookie_ = NewCookie(opt_.node_id, opt_.cluster_id);
  DLOG_RETURN_IF_ERROR(WriteCookieFile(env_, JoinPath(journal_dir_, kCookieFileName), cookie_));
  DLOG_ASSIGN_OR_RETURN(index_, Index::Open(index_dir_, /*create=*/true));
  DLOG_RETURN_IF_ERROR(index_->PutCookieAndFlush(EncodeCookie(cookie_)));
  DLOG_RETURN_IF_ERROR(env_->SyncDir(opt_.data_dir));
  // The root cookie last: it is what makes the dir "formatted".
  DLOG_RETURN_IF_ERROR(WriteCookieFile(env_, root_cookie, cookie_));
  DLOG_INFO << "store: formatted " << opt_.data_dir << ": " << cookie_.Describe();
  return Status::OK();
}

Status StoreImpl::CheckCookies() {
  const std::string& dir = opt_.data_dir;
  auto corrupt = [](std::string m) { return Status::Error(CommonErrc::kCorruption, std::move(m)); };
  auto root = ReadCookieFile(env_, JoinPath(dir, kCookieFileName));
  if (!root.ok()) {
    if (root.status().Is(CommonErrc::kNotFound)) {
      return corrupt("data dir " + dir +
                     " has no cookie: it is new or was wiped; a node that forgot what it acknowledged must not "
                     "serve (start with --format only for a brand-new node)");
    }
    return root.status().WithContext("data dir " + dir + ": cannot read its cookie");
  }
  cookie_ = *root;
  if (cookie_.node_id != opt_.node_id) {
    return Status::Error(CommonErrc::kInvalidArgument, "data dir " + dir + " belongs to node " + cookie_.node_id +
                                                           " (instance " + cookie_.instance_id + "), this node is " +
                                                           opt_.node_id);
  }
  if (cookie_.cluster_id != opt_.cluster_id) {
    return Status::Error(CommonErrc::kInvalidArgument, "data dir " + dir + " belongs to cluster " + cookie_.cluster_id +
                                                           " (instance " + cookie_.instance_id +
                                                           "), this node is in cluster " + opt_.cluster_id);
  }
  // The journal's copy.
  const std::string jpath = JoinPath(journal_dir_, kCookieFileName);
  auto jc = ReadCookieFile(env_, jpath);
  if (!jc.ok()) {
    if (jc.status().Is(CommonErrc::kNotFound)) {
      return corrupt("journal " + journal_dir_ + " has no cookie (" + jpath +
                     " missing): the journal was wiped or swapped; the data dir's cookie says " + cookie_.Describe());
    }
    return jc.status().WithContext("journal cookie");
  }
  if (!jc->SameIdentity(cookie_)) {
    return corrupt("journal was swapped: its cookie " + jpath + " (" + jc->Describe() +
                   ") differs from the data dir's (" + cookie_.Describe() + ")");
  }
  // The index's copy.
  if (!env_->Exists(JoinPath(index_dir_, "CURRENT"))) {
    return corrupt("index " + index_dir_ + " is missing or empty: the index was wiped; the data dir's cookie says " +
                   cookie_.Describe());
  }
  auto idx = Index::Open(index_dir_, /*create=*/false);
  if (!idx.ok()) {
    if (idx.status().Is(CommonErrc::kNotFound)) {
      return corrupt("index " + index_dir_ + " does not exist: the index was wiped; the data dir's cookie says " +
                     cookie_.Describe());
    }
    return idx.status();
  }
  index_ = std::move(idx).value();
  auto ic = index_->GetCookie();
  if (!ic.ok()) {
    if (ic.status().Is(CommonErrc::kNotFound)) {
      return corrupt("index was wiped or swapped: " + index_dir_ + " has no cookie; the data dir's cookie says " +
                     cookie_.Describe());
    }
    return ic.status();
  }
  auto icd = DecodeCookie(*ic);
  if (!icd.ok()) return icd.status().WithContext("index " + index_dir_ + " cookie");
  if (!icd->SameIdentity(cookie_)) {
    return corrupt("index was wiped or swapped: its cookie (" + icd->Describe() + ") differs from the data dir's (" +
                   cookie_.Describe() + ")");
  }
  return Status::OK();
}

Status StoreImpl::Replay() {
  builder_ = std::make_unique<IndexBuilder>(index_.get());
  DLOG_RETURN_IF_ERROR(builder_->Load());
  DLOG_ASSIGN_OR_RETURN(auto names, env_->ListDir(journal_dir_));
  std::vector<uint64_t> files;
  for (const auto& n : names) {
    uint64_t id;
    if (ParseJournalFileName(n, &id)) files.push_back(id);
  }
  DLOG_ASSIGN_OR_RETURN(replay_stats_, ReplayJournal(env_, journal_dir_, cookie_.journal_salt, files, builder_.get()));
  DLOG_RETURN_IF_ERROR(index_->Flush());
  lost_region_ = builder_->lost_region();
  if (!lost_region_.empty()) {
    DLOG_ERROR << "store: this node LOST a journal region of unknown content (" << lost_region_
               << "); it answers IO_ERROR instead of NO_SUCH_ENTRY / NO_SUCH_SEGMENT for good";
  }
  return Status::OK();
}

Status StoreImpl::FlushIndexForTest() {
  uint64_t seq;
  {
    MutexLock l(&mu_);
    seq = durable_seq_;
  }
  if (!indexer_->WaitIndexed(seq, kIndexWaitMs)) {
    return Status::Error(CommonErrc::kTimeout, "index did not catch up with the journal");
  }
  return indexer_->FlushNow();
}

// ---------------------------------------------------------------- shutdown

void StoreImpl::StopAll(bool clean) {
  MutexLock cl(&close_mu_);
  if (journal_) journal_->Stop(clean);
  if (indexer_) indexer_->Stop(clean);
  if (readers_) {
    readers_->Stop(clean, [this](ReadTask& t) {
      ReadResult r;
      r.status = NodeError(NodeErrc::kUnhealthy, "store stopped");
      Answer(t.done, std::move(r));
    });
  }
  if (files_) files_->Clear();
}

Status StoreImpl::Close() {
  {
    MutexLock l(&mu_);
    if (state_ != State::kRunning) return Status::OK();
    state_ = State::kStopped;
  }
  StopAll(true);
  Status st = index_ ? index_->Close(/*flush=*/true) : Status::OK();
  DLOG_INFO << "store: closed " << opt_.data_dir;
  return st;
}

void StoreImpl::CrashForTest() {
  {
    MutexLock l(&mu_);
    state_ = State::kStopped;
  }
  StopAll(false);
  if (index_) IgnoreError(index_->Close(/*flush=*/false));
  DLOG_INFO << "store: crashed (test) " << opt_.data_dir;
}

// ---------------------------------------------------------------- health

void StoreImpl::SetUnhealthy(const std::string& reason) {
  {
    MutexLock l(&mu_);
    if (!healthy_) return;
    healthy_ = false;
    unhealthy_reason_ = reason;
  }
  probe_->healthy.store(0);
  DLOG_ERROR << "store: node is UNHEALTHY: " << reason;
}

void StoreImpl::OnJournalFailed(const Status& error) { SetUnhealthy("journal failed: " + error.ToString()); }
void StoreImpl::OnIndexFailed(const Status& error) { SetUnhealthy("index failed: " + error.ToString()); }

Status StoreImpl::Admission() const {
  if (!healthy_) return NodeError(NodeErrc::kUnhealthy, "node is unhealthy: " + unhealthy_reason_);
  if (state_ != State::kRunning) return NodeError(NodeErrc::kUnhealthy, "store is not running");
  return Status::OK();
}

Status StoreImpl::NotHeld(NodeErrc code, const std::string& msg) const {
  if (lost_region_.empty()) return NodeError(code, msg);
  return NodeError(NodeErrc::kIoError,
                   "this node lost a journal region of unknown content and cannot say the entry is missing (" + msg +
                       "); read another replica");
}

SegmentState StoreImpl::ToState(const SegEntry* s) {
  SegmentState st;
  if (s == nullptr) return st;
  st.exists = true;
  st.fenced = s->fenced;
  st.damaged = s->damaged;
  st.deleted = s->deleted;
  st.lac = EntryId(s->lac);
  st.last_entry = EntryId(s->last_entry);
  return st;
}

// ---------------------------------------------------------------- adds

void StoreImpl::AddEntry(SegmentId segment, EntryId entry, EntryId lac, uint32_t payload_crc32c, Slice payload,
                         bool recovery, AddCallback done) {
  const uint64_t seg = segment.value();
  if (entry.value() < 0) {
    probe_->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
    done(NodeError(NodeErrc::kBadRequest, "entry id " + std::to_string(entry.value()) + " < 0"));
    return;
  }
  if (crc32c::Value(payload.data(), payload.size()) != payload_crc32c) {
    probe_->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
    done(NodeError(NodeErrc::kBadRequest,
                   "payload CRC32C mismatch for " + SegName(seg) + " entry " + std::to_string(entry.value())));
    return;
  }
  JournalRecord rec;
  rec.header.type = RecordType::kEntry;
  rec.header.segment = seg;
  rec.header.entry = entry.value();
  rec.header.lac = lac.value();
  rec.header.payload_crc = payload_crc32c;
  rec.header.flags = recovery ? kRecordFlagRecovery : 0;
  rec.payload = std::move(payload);
  rec.done = std::move(done);
  Status st;
  {
    MutexLock l(&mu_);
    st = Admission();
    auto it = segments_.find(seg);
    if (st.ok() && it != segments_.end()) {
      const SegEntry& s = it->second;
      if (s.deleted) {
        st = NodeError(NodeErrc::kNoSuchSegment, SegName(seg) + " was deleted");
      } else if (s.damaged) {
        st = NodeError(NodeErrc::kIoError, SegName(seg) + " is damaged on this node");
      } else if (s.fenced && !recovery) {
        st = NodeError(NodeErrc::kFenced, SegName(seg) + " is fenced");
      }
    }
    if (st.ok()) st = journal_->Enqueue(rec);
    if (st.ok() && it == segments_.end()) segments_.emplace(seg, SegEntry{});
  }
  if (!st.ok()) {
    if (st.Is(NodeErrc::kFenced)) probe_->rejected_fenced_total.fetch_add(1, std::memory_order_relaxed);
    if (st.Is(NodeErrc::kTooManyRequests)) probe_->rejected_too_many_total.fetch_add(1, std::memory_order_relaxed);
    if (st.Is(NodeErrc::kBadRequest)) probe_->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
    rec.done(st);
  }
}

void StoreImpl::OnDurable(JournalBatch* batch) {
  // Cache first: an entry is readable from memory the moment it is acknowledged.
  for (JournalRecord& r : batch->records) {
    if (r.header.type == RecordType::kEntry) {
      cache_->Insert(r.header.segment, r.header.entry, r.header.payload_crc, r.payload);
    }
  }
  lac_changes_.clear();
  {
    MutexLock l(&mu_);
    for (const JournalRecord& r : batch->records) {
      if (r.header.type != RecordType::kEntry) continue;
      auto it = segments_.find(r.header.segment);
      if (it == segments_.end()) continue;
      SegEntry& s = it->second;
      s.last_entry = std::max(s.last_entry, r.header.entry);
      if (r.header.lac > s.lac) {
        s.lac = r.header.lac;
        lac_changes_.emplace_back(r.header.segment, s.lac);
      }
    }
    durable_seq_ = batch->seq;
  }
  uint64_t adds = 0, bytes = 0;
  for (const JournalRecord& r : batch->records) {
    if (r.header.type != RecordType::kEntry) continue;
    ++adds;
    bytes += r.payload.size();
  }
  // Metrics and LAC listeners before the acks, so whoever sees an ack also sees them.
  probe_->adds_total.fetch_add(adds, std::memory_order_relaxed);
  probe_->add_bytes_total.fetch_add(bytes, std::memory_order_relaxed);
  NotifyLac(lac_changes_);
  for (JournalRecord& r : batch->records) {
    if (r.header.type == RecordType::kFence) continue;             // answered once indexed
    if (r.header.type == RecordType::kEntry) r.payload = Slice();  // the index needs no payload: free it now
    if (r.done) {
      auto done = std::move(r.done);
      r.done = nullptr;
      done(Status::OK());
    }
  }
  indexer_->Submit(batch);
}

void StoreImpl::OnIndexed(JournalBatch* batch) {
  for (JournalRecord& r : batch->records) {
    if (r.done) {
      auto done = std::move(r.done);
      r.done = nullptr;
      done(Status::OK());
    }
  }
  journal_->Recycle(batch);
}

void StoreImpl::OnBatchDropped(JournalBatch* batch, const Status& why) {
  for (JournalRecord& r : batch->records) {
    if (r.done) {
      auto done = std::move(r.done);
      r.done = nullptr;
      done(why);
    }
  }
  journal_->Recycle(batch);
}

void StoreImpl::OnJournalFileRemoving(uint64_t file) { files_->BeginRemove(file); }
void StoreImpl::OnJournalFileRemoved(uint64_t file) { files_->EndRemove(file); }

// ---------------------------------------------------------------- LAC

void StoreImpl::SetLacListener(LacListener listener) {
  auto p = listener ? std::make_shared<const LacListener>(std::move(listener)) : nullptr;
  MutexLock l(&listener_mu_);
  listener_ = std::move(p);
}

void StoreImpl::NotifyLac(const std::vector<std::pair<uint64_t, int64_t>>& changes) {
  if (changes.empty()) return;
  std::shared_ptr<const LacListener> l;
  {
    MutexLock lock(&listener_mu_);
    l = listener_;
  }
  if (!l) return;
  for (const auto& [seg, lac] : changes) (*l)(SegmentId(seg), EntryId(lac));
}

Result<EntryId> StoreImpl::WriteLac(SegmentId segment, EntryId lac) {
  const uint64_t seg = segment.value();
  int64_t after;
  bool raised = false;
  {
    MutexLock l(&mu_);
    DLOG_RETURN_IF_ERROR(Admission());
    auto it = segments_.find(seg);
    if (it == segments_.end()) return NotHeld(NodeErrc::kNoSuchSegment, SegName(seg) + " unknown");
    if (it->second.deleted) return NodeError(NodeErrc::kNoSuchSegment, SegName(seg) + " was deleted");
    if (lac.value() > it->second.lac) {
      it->second.lac = lac.value();
      raised = true;
    }
    after = it->second.lac;
  }
  if (raised) NotifyLac({{seg, after}});
  return EntryId(after);
}

SegmentState StoreImpl::GetSegment(SegmentId segment) const {
  MutexLock l(&mu_);
  auto it = segments_.find(segment.value());
  SegmentState st = ToState(it == segments_.end() ? nullptr : &it->second);
  st.lost_unknown_region = !lost_region_.empty();
  return st;
}

// ---------------------------------------------------------------- reads

void StoreImpl::Answer(const ReadCallback& done, ReadResult&& r) {
  probe_->reads_total.fetch_add(1, std::memory_order_relaxed);
  if (r.status.ok() && r.has_entry) probe_->read_bytes_total.fetch_add(r.payload.size(), std::memory_order_relaxed);
  if (r.status.Is(NodeErrc::kTooManyRequests)) probe_->rejected_too_many_total.fetch_add(1, std::memory_order_relaxed);
  done(std::move(r));
}

void StoreImpl::ReadEntry(SegmentId segment, EntryId entry, bool fence, ReadCallback done) {
  const uint64_t seg = segment.value();
  if (!fence) {
    SubmitRead(seg, entry.value(), std::move(done), /*internal=*/false);
    return;
  }
  probe_->fences_total.fetch_add(1, std::memory_order_relaxed);
  const int64_t e = entry.value();
  JournalRecord rec;
  rec.header.type = RecordType::kFence;
  rec.header.segment = seg;
  rec.header.entry = -1;
  rec.header.lac = -1;
  rec.header.payload_crc = crc32c::Value(nullptr, 0);
  // Runs once the FENCE record is durable and indexed (OK) or failed.
  rec.done = [this, seg, e, cb = done](const Status& st) {
    if (!st.ok()) {
      ReadResult r;
      r.status = st;
      r.segment = GetSegment(SegmentId(seg));
      Answer(cb, std::move(r));
      return;
    }
    {
      MutexLock l(&mu_);
      auto it = segments_.find(seg);
      if (it != segments_.end()) it->second.fence_indexed = true;
    }
    SubmitRead(seg, e, cb, /*internal=*/true);
  };
  Status st;
  bool direct = false;
  SegmentState state;
  {
    MutexLock l(&mu_);
    st = Admission();
    if (st.ok()) {
      auto it = segments_.find(seg);
      if (it != segments_.end() && it->second.deleted) {
        st = NodeError(NodeErrc::kNoSuchSegment, SegName(seg) + " was deleted");
      } else {
        SegEntry& s = it != segments_.end() ? it->second : segments_[seg];
        s.fenced = true;  // from now on no plain add is accepted
        if (s.fence_indexed) {
          direct = true;
        } else {
          st = journal_->Enqueue(rec, /*ignore_bound=*/true);
        }
      }
    }
    if (!st.ok()) {
      auto it = segments_.find(seg);
      state = ToState(it == segments_.end() ? nullptr : &it->second);
    }
  }
  if (direct) {
    SubmitRead(seg, e, std::move(done), /*internal=*/true);
  } else if (!st.ok()) {
    ReadResult r;
    r.status = st;
    r.segment = state;
    Answer(done, std::move(r));
  }
}

void StoreImpl::SubmitRead(uint64_t seg, int64_t entry, ReadCallback done, bool internal) {
  ReadResult r;
  uint64_t durable_seq = 0;
  {
    MutexLock l(&mu_);
    r.status = Admission();
    auto it = segments_.find(seg);
    const SegEntry* s = it == segments_.end() ? nullptr : &it->second;
    r.segment = ToState(s);
    if (!r.status.ok()) {
    } else if (s == nullptr) {
      r.status = NotHeld(NodeErrc::kNoSuchSegment, SegName(seg) + " unknown");
    } else if (s->deleted) {
      r.status = NodeError(NodeErrc::kNoSuchSegment, SegName(seg) + " was deleted");
    } else if (s->damaged) {
      r.status = NodeError(NodeErrc::kIoError, SegName(seg) + " is damaged on this node");
    } else if (entry < 0 || entry > s->last_entry) {
      r.status = NotHeld(NodeErrc::kNoSuchEntry, SegName(seg) + " entry " + std::to_string(entry) +
                                                     " not held (last entry " + std::to_string(s->last_entry) + ")");
    }
    durable_seq = durable_seq_;
  }
  if (!r.status.ok()) {
    Answer(done, std::move(r));
    return;
  }
  if (cache_->Lookup(seg, entry, &r.payload, &r.payload_crc32c)) {
    probe_->cache_hits_total.fetch_add(1, std::memory_order_relaxed);
    r.has_entry = true;
    r.from_cache = true;
    Answer(done, std::move(r));
    return;
  }
  probe_->cache_misses_total.fetch_add(1, std::memory_order_relaxed);
  ReadTask t;
  t.segment = seg;
  t.entry = entry;
  t.durable_seq = durable_seq;
  t.done = std::move(done);
  if (!readers_->Submit(t, internal)) {
    ReadResult rr;
    rr.status = NodeError(NodeErrc::kTooManyRequests, "read queue full");
    rr.segment = r.segment;
    Answer(t.done, std::move(rr));
  }
}

void StoreImpl::ExecuteRead(ReadTask& t) {
  ReadResult r;
  auto loc = index_->GetEntry(t.segment, t.entry);
  if (!loc.ok() && loc.status().Is(CommonErrc::kNotFound) && indexer_->indexed_seq() < t.durable_seq) {
    // Acknowledged but maybe not indexed yet: wait for the index to catch up.
    if (!indexer_->WaitIndexed(t.durable_seq, kIndexWaitMs)) {
      r.status = NodeError(NodeErrc::kTooManyRequests, "index is behind the journal; retry");
      r.segment = GetSegment(SegmentId(t.segment));
      Answer(t.done, std::move(r));
      return;
    }
    loc = index_->GetEntry(t.segment, t.entry);
  }
  if (!loc.ok()) {
    if (loc.status().Is(CommonErrc::kNotFound)) {
      r.status =
          NotHeld(NodeErrc::kNoSuchEntry, SegName(t.segment) + " entry " + std::to_string(t.entry) + " not held");
    } else {
      r.status = NodeError(NodeErrc::kIoError, "index lookup: " + loc.status().ToString());
    }
  } else {
    Status st = ReadEntryRecord(files_.get(), *loc, t.segment, t.entry, &r.payload, &r.payload_crc32c);
    if (st.ok()) {
      r.has_entry = true;
    } else if (st.Is(CommonErrc::kCorruption)) {
      MarkDamaged(t.segment, st);
      r.status = NodeError(NodeErrc::kIoError, st.message());
      r.payload = Slice();
    } else {
      r.status = NodeError(NodeErrc::kIoError, st.ToString());
      r.payload = Slice();
    }
  }
  // A delete may have raced the read: a deleted segment is gone.
  r.segment = GetSegment(SegmentId(t.segment));
  if (r.segment.deleted) {
    r.status = NodeError(NodeErrc::kNoSuchSegment, SegName(t.segment) + " was deleted");
    r.has_entry = false;
    r.payload = Slice();
  }
  Answer(t.done, std::move(r));
}

void StoreImpl::MarkDamaged(uint64_t segment, const Status& why) {
  {
    MutexLock l(&mu_);
    auto it = segments_.find(segment);
    if (it == segments_.end() || it->second.damaged) return;
    it->second.damaged = true;
  }
  DLOG_ERROR << "store: " << SegName(segment) << " is DAMAGED (its reads now fail with IO_ERROR): " << why.ToString();
  indexer_->MarkDamaged(segment);
}

// ---------------------------------------------------------------- deletes

void StoreImpl::DeleteSegments(std::vector<SegmentId> segments, DeleteCallback done) {
  std::vector<uint64_t> ids;
  ids.reserve(segments.size());
  for (SegmentId s : segments) ids.push_back(s.value());
  JournalRecord rec;
  rec.header.type = RecordType::kDelete;
  rec.header.segment = 0;
  rec.header.entry = -1;
  rec.header.lac = -1;
  rec.payload = Slice::CopyOf(EncodeDeletePayload(ids));
  rec.header.payload_crc = crc32c::Value(rec.payload.data(), rec.payload.size());
  Status st;
  uint32_t count = 0;
  {
    MutexLock l(&mu_);
    st = Admission();
    if (st.ok()) {
      for (uint64_t id : ids) {
        auto it = segments_.find(id);
        if (it != segments_.end() && !it->second.deleted) ++count;
      }
      rec.done = [done, count](const Status& s) { done(s, s.ok() ? count : 0); };
      st = journal_->Enqueue(rec, /*ignore_bound=*/true);
    }
    if (st.ok()) {
      // Tombstones now: no add or fence is accepted for these ids from here on.
      for (uint64_t id : ids) segments_[id].deleted = true;
    }
  }
  if (!st.ok()) {
    if (st.Is(NodeErrc::kTooManyRequests)) probe_->rejected_too_many_total.fetch_add(1, std::memory_order_relaxed);
    done(st, 0);
    return;
  }
  for (uint64_t id : ids) cache_->EraseSegment(id);
}

// ---------------------------------------------------------------- info

StoreInfo StoreImpl::Info() const {
  StoreInfo info;
  info.node_id = cookie_.node_id;
  info.instance_id = cookie_.instance_id;
  info.cluster_id = cookie_.cluster_id;
  {
    MutexLock l(&mu_);
    info.healthy = healthy_;
    info.unhealthy_reason = unhealthy_reason_;
    info.lost_unknown_region = !lost_region_.empty();
    info.lost_region = lost_region_;
    for (const auto& [id, s] : segments_) {
      if (s.deleted) continue;
      ++info.segments;
      if (s.damaged) info.damaged_segments.push_back(id);
    }
  }
  std::sort(info.damaged_segments.begin(), info.damaged_segments.end());
  auto names = env_->ListDir(journal_dir_);
  if (names.ok()) {
    for (const auto& n : *names) {
      uint64_t id;
      if (!ParseJournalFileName(n, &id)) continue;
      ++info.journal_files;
      auto sz = env_->FileSize(JoinPath(journal_dir_, n));
      if (sz.ok()) info.journal_bytes += *sz;
    }
  }
  auto free_bytes = env_->FreeBytes(opt_.data_dir);
  if (free_bytes.ok()) info.disk_free_bytes = *free_bytes;
  return info;
}

}  // namespace dlog::node
