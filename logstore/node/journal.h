// Journal: the write-ahead log of the storage node, with group commit.
//
// Records (adds, fences, deletes) are queued by any thread with Enqueue()
// into a bounded queue (bytes and records). One writer thread takes
// everything queued up to max_batch_bytes (after waiting up to max_wait_us
// for more), builds one iovec (headers, small payloads and zero padding
// copied into one contiguous staging run; payloads of 64 KiB or more written
// from their Slices as they are), does one pwritev and one fdatasync per batch,
// and hands the durable batch to the JournalSink. A batch that does not fit
// in the current file writes and syncs its first part there, then moves to
// the next file. Records never span files.
//
// Files are preallocated: a helper thread creates the next file (exclusive
// create, real writes of zeros over the whole file, fdatasync, fsync of the
// journal directory) before the writer needs it, so the writer never writes
// into a file whose directory entry is not durable. Start() opens a fresh file
// (the journal never appends to a file of an earlier run).
//
// Failure: a write or sync error stops the journal for good. The sink hears
// OnJournalFailed first; then every record of the failed batch, every queued
// record and every later Enqueue fails with NodeErrc::kUnhealthy. Nothing is
// retried.
//
// Back-pressure: the writer owns a fixed pool of batches; a batch returns to
// the pool when the sink calls Recycle(). While none is free the writer waits,
// the queue fills, and Enqueue answers kTooManyRequests.
//
// Threading: Enqueue/Recycle/Stop from any thread. JournalSink methods run
// on the writer thread; error callbacks of records run on the writer thread,
// or on the thread calling Stop for records still queued then.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/buffer.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "logstore/node/env.h"
#include "logstore/node/journal_format.h"
#include "logstore/node/probe.h"

namespace dlog::node {

// A position in the journal: file id and byte offset in that file.
struct JournalPos {
  uint64_t file = 0;
  uint64_t offset = 0;
  auto operator<=>(const JournalPos&) const = default;
};

struct JournalRecord {
  RecordHeader header;  // type, segment, entry, lac, payload CRC, flags; length is set by the writer
  Slice payload;
  // Called by the journal only with an error (kUnhealthy, kBadRequest). On
  // success the sink decides when to call it.
  std::function<void(const Status&)> done;
  // Set by the writer:
  JournalPos pos;       // where the record starts
  uint32_t length = 0;  // header + payload, unpadded
};

struct JournalBatch {
  uint64_t seq = 0;                    // 1, 2, ... in write order
  std::vector<JournalRecord> records;  // in queue order
  JournalPos end;                      // position after the last record (where the next one goes)
  uint64_t bytes = 0;                  // bytes written, padding included
};

class JournalSink {
 public:
  virtual ~JournalSink() = default;
  // The batch is written and fdatasync'ed. The sink completes its records
  // and must return the batch with Journal::Recycle (from any thread).
  virtual void OnDurable(JournalBatch* batch) = 0;
  // The journal stopped on `error` (called before records are failed).
  virtual void OnJournalFailed(const Status& error) = 0;
};

struct JournalOptions {
  std::string dir;
  uint64_t file_bytes = 64ull << 20;
  uint64_t max_batch_bytes = 4ull << 20;
  int64_t max_wait_us = 0;
  uint64_t queue_max_bytes = 64ull << 20;
  uint64_t queue_max_records = 65536;
  int batches_in_flight = 4;
  uint64_t first_file_id = 1;  // the fresh file Start() creates; ids above it follow
  std::string journal_salt;    // the cookie's: salts every header CRC (JournalSeed)
  Env* env = nullptr;
  NodeProbe* probe = nullptr;
};

class Preallocator;

class Journal {
 public:
  Journal(JournalOptions options, JournalSink* sink);
  ~Journal();  // Stop(false) if still running
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Creates the first file (blocking), then starts the writer and the
  // preallocation thread.
  Status Start();

  // Queues a record. On OK the record was moved from; otherwise it is left
  // intact (the caller still owns `done`) and the status says why:
  // kTooManyRequests (queue full, unless `ignore_bound`; a small slack is
  // always kept for records that ignore the bound), kUnhealthy (stopped or
  // failed), kBadRequest (the record can never fit in a journal file).
  Status Enqueue(JournalRecord& record, bool ignore_bound = false);

  // Returns a batch handed to the sink to the pool (clears it).
  void Recycle(JournalBatch* batch);

  // Stops the threads. With `drain`, everything queued is written first;
  // otherwise queued records fail with kUnhealthy (a batch being written is
  // finished). Idempotent. Blocks until the threads have exited.
  void Stop(bool drain);

  // The file the writer writes now (for Info and GC: never deleted).
  uint64_t current_file() const;
  // Status that stopped the journal (OK while healthy).
  Status error() const;

 private:
  void WriterLoop();
  Status WriteBatch(JournalBatch* b);
  Status WriteAndSync(File* f, uint64_t offset, bool* synced);
  void Fail(const Status& st, JournalBatch* b);
  void FailQueued(const Status& st);

  const JournalOptions opt_;
  JournalSink* const sink_;
  std::unique_ptr<Preallocator> prealloc_;

  mutable Mutex mu_;
  CondVar cv_;                                            // writer: records queued or stop
  CondVar free_cv_;                                       // writer: a batch was recycled or stop
  std::vector<JournalRecord> ring_ DLOG_GUARDED_BY(mu_);  // queue, grows to its bound
  size_t head_ DLOG_GUARDED_BY(mu_) = 0;
  size_t count_ DLOG_GUARDED_BY(mu_) = 0;
  uint64_t queued_bytes_ DLOG_GUARDED_BY(mu_) = 0;
  std::vector<JournalBatch*> free_ DLOG_GUARDED_BY(mu_);
  bool started_ DLOG_GUARDED_BY(mu_) = false;
  bool stop_ DLOG_GUARDED_BY(mu_) = false;
  bool drain_ DLOG_GUARDED_BY(mu_) = false;
  bool failed_ DLOG_GUARDED_BY(mu_) = false;
  Status error_ DLOG_GUARDED_BY(mu_);
  uint64_t current_file_id_ DLOG_GUARDED_BY(mu_) = 0;

  std::vector<std::unique_ptr<JournalBatch>> batches_;
  std::thread writer_;

  // Writer thread only.
  std::unique_ptr<File> file_;
  uint64_t file_id_ = 0;
  uint32_t seed_ = 0;  // JournalSeed of file_id_
  uint64_t offset_ = 0;
  uint64_t seq_ = 0;
  // The batch being built: small records (headers, payloads below
  // kCopyThreshold, padding) are copied into `staging_` and coalesce into one
  // piece; large payloads are their own piece, written from their Slice. A
  // writev with thousands of tiny vectors spent most of the node's CPU in the
  // kernel's per-segment copy loop; one contiguous run is several times faster.
  struct Piece {
    const uint8_t* ptr;  // null: a run of staging_ at `off`
    size_t off;
    size_t len;
  };
  void Stage(const void* p, size_t n);
  ByteBuffer staging_;
  std::vector<Piece> pieces_;
  std::vector<struct iovec> iov_;  // built from pieces_ for each write (reused)
};

}  // namespace dlog::node
