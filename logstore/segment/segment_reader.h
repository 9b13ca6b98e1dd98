// SegmentReader: reads a replicated segment's entries. Readers never fence.
//
// What may be read: in a segment that is not CLOSED, entries up to the LAC
// (the highest LAC any node of the last fragment reports, or one learnt from a
// long-poll reply); in a CLOSED one, entries up to last_entry_id. A read
// beyond that first refreshes the metadata and the LAC once, then fails with
// kNotReadable.
//
// Replica choice: an entry is read from one replica of its write set (in the
// fragment that holds it); the next replica is tried on an error, on
// NO_SUCH_ENTRY (the entry is <= LAC, so some replica has it), or — in
// addition, speculatively — after speculative_read_ms without an answer
// (SegmentProbe::speculative_reads_total). `first_replica` rotates the
// starting replica (tests use it to read from every replica).
//
// Tailing: WaitForEntry long-polls one replica until the entry is covered by
// the node's LAC (or the timeout passes), then the entry is readable.
//
// Errors: kNotReadable, kUnavailable (every replica failed; the message has
// the last error), metadata errors on Open/Refresh.
//
// Threading: thread-safe; callbacks on the client's loop; *Sync not on it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/buffer.h"
#include "common/status.h"
#include "common/strong_id.h"
#include "logstore/segment/segment_client.h"
#include "metadata.pb.h"

namespace dlog::segment {

struct ReadResult {
  EntryId entry;
  Slice payload;
  std::string node;  // the replica that served it
};

struct ReaderOptions {
  int first_replica = 0;  // index in the write set of the replica tried first
};

class SegmentReader {
 public:
  using OpenCallback = std::function<void(Result<std::unique_ptr<SegmentReader>>)>;
  using ReadCallback = std::function<void(Result<ReadResult>)>;
  using LacCallback = std::function<void(Result<EntryId>)>;

  // Reads the metadata (and, if not CLOSED, the LAC). kNoNode if the segment does not exist.
  static void Open(SegmentClient* client, SegmentId id, ReaderOptions options, OpenCallback cb);
  static Result<std::unique_ptr<SegmentReader>> OpenSync(SegmentClient* client, SegmentId id,
                                                         ReaderOptions options = {});
  ~SegmentReader();  // not on the loop
  SegmentReader(const SegmentReader&) = delete;
  SegmentReader& operator=(const SegmentReader&) = delete;

  void Read(EntryId entry, ReadCallback cb);
  Result<ReadResult> ReadSync(EntryId entry);
  // Re-reads the metadata and asks the last fragment's nodes for their LAC;
  // the callback gets the last readable entry (-1: none).
  void Refresh(LacCallback cb);
  Result<EntryId> RefreshSync();
  // Long poll: waits up to timeout_ms for `entry` to become readable, then reads it.
  void WaitForEntry(EntryId entry, uint32_t timeout_ms, ReadCallback cb);
  Result<ReadResult> WaitForEntrySync(EntryId entry, uint32_t timeout_ms);

  // Thread-safe snapshots.
  EntryId last_readable() const;
  bool closed() const;
  proto::SegmentMetadata metadata() const;

  class Impl;

 private:
  explicit SegmentReader(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace dlog::segment
