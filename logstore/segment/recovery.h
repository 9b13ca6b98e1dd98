// SegmentRecovery: takes over a segment whose writer may be gone and closes
// it at an entry >= every entry ever acknowledged (DESIGN "Recovery").
//
//   1. Read the metadata. CLOSED: done (its value is the answer). OPEN: mark
//      IN_RECOVERY by CAS (a conflict re-reads and starts over).
//      IN_RECOVERY: resume (anyone may resume a segment stuck there).
//   2. Fence: a fencing ReadEntry to every node of the LAST fragment's
//      ensemble, retried on errors, until for every write set Qw - Qa + 1 of
//      its nodes answered (OK or NO_SUCH_ENTRY): then no ack quorum can form
//      without a fenced node, so the old writer can get nothing more
//      acknowledged. The highest LAC in the answers is kept.
//   3. Read forward from max(highest LAC, last fragment's first entry - 1) + 1,
//      every read carrying the fence flag (a node that missed step 2 is fenced
//      by the read itself, so it cannot accept a late add after saying "no
//      such entry": apache/bookkeeper#2614). Reads are pipelined. An entry
//      found on any replica is rewritten, with the recovery flag, to its whole
//      write set (done once Qa acked and every replica answered). Only an
//      explicit NO_SUCH_ENTRY from Qw - Qa + 1 replicas of an entry's write set
//      makes it "missing"; errors and timeouts retry that read, never count.
//      The first missing entry ends the segment: last = missing - 1.
//   4. CAS the metadata to CLOSED with last_entry_id (length is left as it
//      was: recovery does not know the bytes of entries it did not read). On a
//      conflict, re-read: a CLOSED value already there is adopted (concurrent
//      recoverers converge on the first close); otherwise start over.
//
// Not done yet: replacing failed nodes of the last fragment during recovery
// (a node that stays down leaves the recovered entries under-replicated).
//
// Errors: metadata errors from the first read (kNoNode: no such segment),
// kBadState (metadata without fragments / bad quorums), kClosed if the
// SegmentClient closes mid-way. Transient node and store errors are retried.
//
// Threading: Recover is thread-safe; the callback runs on the client's loop.
// The procedure keeps itself alive until it calls back.
#pragma once

#include <functional>

#include "common/status.h"
#include "common/strong_id.h"
#include "logstore/segment/segment_client.h"
#include "metadata.pb.h"

namespace dlog::segment {

class SegmentRecovery {
 public:
  using Callback = std::function<void(Result<proto::SegmentMetadata>)>;
  // The callback gets the CLOSED metadata.
  static void Recover(SegmentClient* client, SegmentId id, Callback cb);
  // Blocking; not on the loop.
  static Result<proto::SegmentMetadata> RecoverSync(SegmentClient* client, SegmentId id);
};

}  // namespace dlog::segment
