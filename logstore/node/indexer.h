// Indexer: the index thread. Takes each durable journal batch (in journal
// order), writes it to the index as one WriteBatch together with the journal
// position after it, then tells the host (which completes fencing reads and
// returns the batch to the journal). Periodically (flush interval), after a
// DELETE, on FlushNow and on a draining Stop it flushes the memtable and
// records the flushed position as the durable index position; then it
// collects garbage: journal files wholly before the durable position whose
// segments are all deleted are removed (their 'F' keys first).
//
// Hand-off: Submit never blocks; the journal's fixed batch pool bounds what
// can be queued here. When the index lags, batches are not recycled, the
// journal writer waits, its queue fills, and adds get kTooManyRequests.
//
// A failed index write makes the node unhealthy (host->OnIndexFailed); later
// batches are handed back with an error (host->OnBatchDropped).
//
// Threading: public methods from any thread; host calls on the index thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "logstore/node/env.h"
#include "logstore/node/index.h"
#include "logstore/node/journal.h"

namespace dlog::node {

class IndexerHost {
 public:
  virtual ~IndexerHost() = default;
  // The batch is indexed. The host completes what waited for that and
  // recycles the batch.
  virtual void OnIndexed(JournalBatch* batch) = 0;
  // The batch will not be indexed (crash stop or index failure).
  virtual void OnBatchDropped(JournalBatch* batch, const Status& why) = 0;
  virtual void OnIndexFailed(const Status& error) = 0;
  // GC is about to remove a journal file (Removing), and has tried to (Removed,
  // called whether or not the unlink succeeded).
  virtual void OnJournalFileRemoving(uint64_t file) = 0;
  virtual void OnJournalFileRemoved(uint64_t file) = 0;
};

struct IndexerOptions {
  std::string journal_dir;
  int64_t flush_interval_ms = 60000;  // 0: flush only after deletes, on FlushNow and Close
  Env* env = nullptr;
};

class Indexer {
 public:
  // `builder` holds the state replay left (position, segments, file sets).
  Indexer(IndexerOptions options, Index* index, std::unique_ptr<IndexBuilder> builder, IndexerHost* host);
  ~Indexer();

  void Start();
  void Submit(JournalBatch* batch);
  // Persists a damaged mark (found by a read) with the next write.
  void MarkDamaged(uint64_t segment);
  // Blocks until the index thread has flushed (and run GC) once from now.
  Status FlushNow();
  // With `drain`: index everything submitted, flush, stop. Without: drop what
  // is queued (host->OnBatchDropped), no flush. Idempotent; blocks.
  void Stop(bool drain);

  uint64_t indexed_seq() const;
  // Waits until batch `seq` is indexed; false on timeout or stop.
  bool WaitIndexed(uint64_t seq, int64_t timeout_ms) const;
  JournalPos durable_position() const;
  uint64_t flushes() const;
  uint64_t files_removed() const;

 private:
  void Loop();
  void IndexBatch(JournalBatch* b);
  Status FlushAndCollect();
  void SetFailed(const Status& st);

  const IndexerOptions opt_;
  Index* const index_;
  std::unique_ptr<IndexBuilder> builder_;  // index thread only (after Start)
  IndexerHost* const host_;

  mutable Mutex mu_;
  mutable CondVar cv_;       // work for the thread
  mutable CondVar done_cv_;  // indexed_seq_ / flushes_ advanced
  std::vector<JournalBatch*> queue_ DLOG_GUARDED_BY(mu_);
  std::vector<uint64_t> damage_ DLOG_GUARDED_BY(mu_);
  bool flush_requested_ DLOG_GUARDED_BY(mu_) = false;
  bool stop_ DLOG_GUARDED_BY(mu_) = false;
  bool drain_ DLOG_GUARDED_BY(mu_) = false;
  bool running_ DLOG_GUARDED_BY(mu_) = false;
  uint64_t indexed_seq_ DLOG_GUARDED_BY(mu_) = 0;
  uint64_t flushes_ DLOG_GUARDED_BY(mu_) = 0;
  uint64_t files_removed_ DLOG_GUARDED_BY(mu_) = 0;
  JournalPos durable_pos_ DLOG_GUARDED_BY(mu_);
  Status failed_ DLOG_GUARDED_BY(mu_);
  Status last_flush_status_ DLOG_GUARDED_BY(mu_);
  std::thread thread_;

  // Index thread only.
  std::vector<JournalBatch*> work_;
  std::vector<uint64_t> damage_work_;
  int64_t last_flush_ms_ = 0;
};

}  // namespace dlog::node
