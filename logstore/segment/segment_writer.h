// SegmentWriter: the one writer of a replicated segment (the role of a
// BookKeeper ledger handle opened for writing). DESIGN "Replicated segments".
//
//   auto w = SegmentWriter::CreateSync(&client, {.ensemble_size = 3, .write_quorum = 3, .ack_quorum = 2});
//   w.value()->Add(Slice::CopyOf("x"), [](Result<EntryId> r) { ... });
//   Result<EntryId> last = w.value()->CloseSync();
//
// Adds: entry ids are assigned in Add order from 0. Entry e goes to the Qw
// nodes starting at position e mod E of the current fragment's ensemble. An
// add completes when Qa nodes acknowledged it AND every earlier entry is
// complete; callbacks run in entry order. The LAC (highest complete entry) is
// piggybacked on later adds; if none carried it within lac_flush_ms, the
// writer sends WriteLac to the ensemble, so an idle writer's last entry
// becomes readable.
//
// Node errors: TOO_MANY_REQUESTS (and a full node-client window) are retried
// on the same node with backoff. FENCED fences the writer: every pending add
// fails with SegmentErrc::kFenced ("outcome unknown"), later adds fail with
// kFenced, nothing is retried. Any other error or a timeout starts an
// ensemble change (segment_writer.cc, "Ensemble change"): a replacement node
// is picked, a new fragment starting at F = the first incomplete entry is
// compare-and-set in metadata (no entry completes until it is; acks from the
// replaced node are ignored), then the incomplete entries are resent to the
// new node. On a CAS conflict the metadata is re-read; if the segment is no
// longer OPEN, the writer is fenced as above. With no spare node the writer
// goes on while every write set keeps Qa live nodes, and counts the segment
// under-replicated (SegmentProbe::under_replicated_segments).
//
// Back-pressure: at most SegmentOptions::writer_window adds are pending; an
// Add beyond that fails at once with kWindowFull (not sent: a definite
// failure). Callers keep their own permits (e.g. release one per callback).
//
// Errors an add callback can get: kFenced (outcome unknown), kOutcomeUnknown
// (writer destroyed with the add pending), kWindowFull and kClosed (not sent),
// kInvalidArgument (payload larger than kMaxPayload).
//
// Threading: every public method is thread-safe (posts to the client's loop);
// callbacks run on that loop. *Sync methods block and must not run on the loop.
// Lifetime: destroying the writer (not on the loop) abandons it: pending adds
// fail with kOutcomeUnknown; the segment stays OPEN (recovery closes it).
#pragma once

#include <functional>
#include <memory>

#include "common/buffer.h"
#include "common/status.h"
#include "common/strong_id.h"
#include "logstore/segment/segment_client.h"
#include "metadata.pb.h"

namespace dlog::segment {

struct WriterConfig {
  int ensemble_size = 3;  // E
  int write_quorum = 3;   // Qw
  int ack_quorum = 2;     // Qa
};

inline constexpr size_t kMaxPayload = 4u << 20;

// What Seal hands back: the CLOSED metadata the writer would store (state,
// last_entry_id = the LAC, length) and the version to compare-and-set it at.
struct SealedSegment {
  proto::SegmentMetadata closed;
  int32_t version = 0;
};

class SegmentWriter {
 public:
  using AddCallback = std::function<void(Result<EntryId>)>;
  using CloseCallback = std::function<void(Result<EntryId>)>;
  using CreateCallback = std::function<void(Result<std::unique_ptr<SegmentWriter>>)>;
  using PrepareCallback = std::function<void(Result<proto::SegmentMetadata>)>;
  using SealCallback = std::function<void(Result<SealedSegment>)>;

  // Allocates a segment id, places E live nodes and writes OPEN metadata with
  // fragment 0. Errors: kInvalidArgument (quorums; E <= 32), kNotEnoughNodes,
  // metadata errors. The callback runs on the loop.
  static void Create(SegmentClient* client, WriterConfig config, CreateCallback cb);
  static Result<std::unique_ptr<SegmentWriter>> CreateSync(SegmentClient* client, WriterConfig config);

  // The two halves of Create, for callers that store the new segment's
  // metadata themselves inside a larger atomic Multi (a log's roll):
  // Prepare allocates the id, places E live nodes, makes sure the segment's
  // bucket node exists and returns the OPEN metadata WITHOUT storing it; the
  // caller creates Layout::Segment(id) with Encode(meta) (version 0) and then
  // calls Open, before any add.
  static void Prepare(SegmentClient* client, WriterConfig config, PrepareCallback cb);
  // A writer over OPEN metadata the caller has stored at `version`. On the
  // client's loop only (the writer's timers are loop objects).
  static std::unique_ptr<SegmentWriter> Open(SegmentClient* client, proto::SegmentMetadata meta, int32_t version);

  ~SegmentWriter();
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;

  SegmentId id() const;
  // Appends `payload`; the callback gets its entry id once it is complete.
  void Add(Slice payload, AddCallback cb);
  Result<EntryId> AddSync(Slice payload);
  // Waits for every pending add, then sets the metadata CLOSED at the LAC by
  // CAS; the callback gets the last entry id (-1: empty). kFenced if the
  // writer was fenced (the segment is recovered by someone else).
  void Close(CloseCallback cb);
  Result<EntryId> CloseSync();
  // Like Close, but stores nothing: refuses later adds (kClosed), waits for
  // every pending add, then hands back the CLOSED metadata to store (for a
  // caller that closes the segment inside its own Multi, e.g. a log roll
  // that also lists the next segment). The writer stays alive (its LAC keeps
  // being sent) until destroyed. kFenced if it was fenced.
  void Seal(SealCallback cb);

  // Thread-safe snapshots.
  EntryId lac() const;
  proto::SegmentMetadata metadata() const;
  bool fenced() const;

  class Impl;

 private:
  explicit SegmentWriter(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace dlog::segment
