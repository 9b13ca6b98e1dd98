// StoreImpl: the Store (store.h) put together from its parts:
//
//   AddEntry / fence / DeleteSegments ──admission (mu_)──> Journal (writer thread)
//        │                                                   │ durable batch
//        │                  tail cache <── OnDurable ────────┤ (acks adds, deletes)
//        │                                                   ▼
//   ReadEntry ── cache hit ──> answer          Indexer (index thread: RocksDB,
//        └── miss ──> ReaderPool ── index ──>   flush, GC) ── OnIndexed:
//                      + journal file             fencing reads answered
//
// Admission (segment state check and enqueue) happens under one mutex, mu_,
// and a fence sets the segment's flag and enqueues its FENCE record under
// the same mutex: an add accepted before a fence is journaled before its
// FENCE record, an add after it is refused. Lock order: mu_ before the
// journal's queue lock; no store lock is held while a callback runs.
//
// Open() (on the caller's thread): options check, cookie check (or format),
// index open, replay (replay.h), index flush, then the journal, index and
// reader threads start.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/thread_annotations.h"
#include "logstore/node/cookie.h"
#include "logstore/node/index.h"
#include "logstore/node/indexer.h"
#include "logstore/node/journal.h"
#include "logstore/node/reader.h"
#include "logstore/node/replay.h"
#include "logstore/node/store.h"
#include "logstore/node/tail_cache.h"
#include "protocol/node_errors.h"

namespace dlog::node {

class StoreImpl final : public Store, private JournalSink, private IndexerHost {
 public:
  explicit StoreImpl(StoreOptions options);
  ~StoreImpl() override;  // Close() if still open

  // Open() minus the allocation: checks, replays, starts threads.
  Status Init();

  // Store
  Status Close() override;
  void CrashForTest() override;
  void AddEntry(SegmentId segment, EntryId entry, EntryId lac, uint32_t payload_crc32c, Slice payload, bool recovery,
                AddCallback done) override;
  void ReadEntry(SegmentId segment, EntryId entry, bool fence, ReadCallback done) override;
  SegmentState GetSegment(SegmentId segment) const override;
  Result<EntryId> WriteLac(SegmentId segment, EntryId lac) override;
  void DeleteSegments(std::vector<SegmentId> segments, DeleteCallback done) override;
  void SetLacListener(LacListener listener) override;
  StoreInfo Info() const override;
  NodeProbe* probe() override { return probe_; }

  // Test and tool hooks.
  const ReplayStats& replay_stats() const { return replay_stats_; }
  // Waits until everything acknowledged so far is indexed, then flushes the
  // index memtable (and runs GC); blocks.
  Status FlushIndexForTest();
  // The journal position the flushed index covers.
  JournalPos durable_index_position() const { return indexer_->durable_position(); }
  uint64_t journal_files_removed() const { return indexer_->files_removed(); }
  const TailCache& tail_cache() const { return *cache_; }
  const Cookie& cookie() const { return cookie_; }

 private:
  struct SegEntry {
    bool fenced = false;         // set the moment a fence arrives
    bool fence_indexed = false;  // a FENCE record of it is durable and indexed
    bool damaged = false;
    bool deleted = false;
    int64_t lac = -1;
    int64_t last_entry = -1;  // highest durable entry id
  };
  enum class State { kInit, kRunning, kStopped };

  // JournalSink (journal thread)
  void OnDurable(JournalBatch* batch) override;
  void OnJournalFailed(const Status& error) override;
  // IndexerHost (index thread)
  void OnIndexed(JournalBatch* batch) override;
  void OnBatchDropped(JournalBatch* batch, const Status& why) override;
  void OnIndexFailed(const Status& error) override;
  void OnJournalFileRemoving(uint64_t file) override;
  void OnJournalFileRemoved(uint64_t file) override;

  Status CheckOptions();
  Status Format();
  Status CheckCookies();
  Status Replay();
  void SetUnhealthy(const std::string& reason);
  // Non-OK if the store does not take requests now (closed, unhealthy).
  Status Admission() const DLOG_REQUIRES(mu_);
  static SegmentState ToState(const SegEntry* s);
  // A "not held" answer (kNoSuchEntry, or kNoSuchSegment for a segment not
  // known to be deleted) — or kIoError if the node lost a journal region of
  // unknown content, since then it cannot know what it is missing.
  Status NotHeld(NodeErrc code, const std::string& msg) const;
  // The read path after fencing, shared by plain reads.
  void SubmitRead(uint64_t segment, int64_t entry, ReadCallback done, bool internal);
  void ExecuteRead(ReadTask& task);
  void MarkDamaged(uint64_t segment, const Status& why);
  void Answer(const ReadCallback& done, ReadResult&& r);
  void NotifyLac(const std::vector<std::pair<uint64_t, int64_t>>& changes);
  void StopAll(bool clean);

  StoreOptions opt_;
  Env* env_ = nullptr;
  NodeProbe own_probe_;
  NodeProbe* probe_ = nullptr;
  std::string journal_dir_, index_dir_;
  Cookie cookie_;
  ReplayStats replay_stats_;
  // Non-empty if the node ever lost a journal region of unknown content (the
  // index's "L" key). Set in Init before any thread starts; constant after.
  std::string lost_region_;

  std::unique_ptr<Index> index_;
  std::unique_ptr<IndexBuilder> builder_;  // until the indexer takes it
  std::unique_ptr<TailCache> cache_;
  std::unique_ptr<JournalFileCache> files_;
  std::unique_ptr<Indexer> indexer_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<ReaderPool> readers_;

  mutable Mutex mu_;
  std::unordered_map<uint64_t, SegEntry> segments_ DLOG_GUARDED_BY(mu_);
  State state_ DLOG_GUARDED_BY(mu_) = State::kInit;
  bool healthy_ DLOG_GUARDED_BY(mu_) = true;
  std::string unhealthy_reason_ DLOG_GUARDED_BY(mu_);
  uint64_t durable_seq_ DLOG_GUARDED_BY(mu_) = 0;

  Mutex close_mu_;  // serialises Close and CrashForTest

  mutable Mutex listener_mu_;
  std::shared_ptr<const LacListener> listener_ DLOG_GUARDED_BY(listener_mu_);

  // Journal thread only.
  std::vector<std::pair<uint64_t, int64_t>> lac_changes_;
};

}  // namespace dlog::node
