// Start-up replay: brings the index up to the end of the journal.
//
// Reads every journal file from the index's position on and applies each
// valid record to the IndexBuilder (committing as it goes). A record that
// fails its checks is classified (DESIGN.md, "Torn tail vs corruption"):
//  - torn tail, if no valid record follows it anywhere later in the journal:
//    logged, then cut off (the bad bytes and any non-zero bytes of later files
//    are overwritten with zeros and fdatasync'ed) so it never comes back;
//  - corruption, if a valid record follows: logged at ERROR, replay goes on
//    from that record, and the affected segments are marked damaged in the
//    index (the header's segment when only the payload CRC or length is bad;
//    every segment with records in that file when the header itself is bad).
//    When the segments of the damaged region cannot all be known — the
//    header is unreadable, a zeroed region, or the bytes skipped up to the
//    next valid record are more than the one bad record whose header checked
//    — the node also records durably (index key "L") that it lost a journal
//    region of unknown content: from then on it never answers NO_SUCH_ENTRY
//    or NO_SUCH_SEGMENT (store.h).
// Header CRCs are salted per file (JournalSeed from the cookie's instance id),
// so record-shaped bytes inside a payload never pass for a record in the scan.
// A zero header is the normal end of data in a file, unless a valid record
// follows in the same file (a zeroed region: corruption). A record of an
// unknown version (magic and header CRC fine) stops start-up: a newer dlog
// wrote it.
//
// Runs on the Open() thread before any other thread starts. Reads one
// journal file into memory at a time (at most two during a forward scan).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "logstore/node/env.h"
#include "logstore/node/index.h"
#include "logstore/node/journal.h"

namespace dlog::node {

struct ReplayStats {
  JournalPos start;      // the index position replay began at
  JournalPos end;        // position after the last valid record
  uint64_t files = 0;    // files read
  uint64_t records = 0;  // valid records applied
  uint64_t entries = 0, fences = 0, deletes = 0;
  uint64_t torn_tails = 0;                 // torn tails cut off
  uint64_t corrupt_records = 0;            // bad records followed by valid ones
  std::vector<uint64_t> damaged_segments;  // segments newly marked damaged
  std::string lost_region;                 // non-empty: regions of unknown content lost in this replay
};

// `files`: ids of the journal files in `dir` (any order); `journal_salt`: the
// cookie's, which salts the header CRCs.
Result<ReplayStats> ReplayJournal(Env* env, const std::string& dir, const std::string& journal_salt,
                                  std::vector<uint64_t> files, IndexBuilder* builder);

}  // namespace dlog::node
