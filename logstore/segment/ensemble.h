// Striping arithmetic over SegmentMetadata: which fragment holds an entry and
// which nodes form its write set. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/strong_id.h"
#include "metadata.pb.h"

namespace dlog::segment {

// Index of the fragment that holds `entry` (the last one whose first entry is
// <= entry). Fragments are ascending and the first starts at 0.
int FragmentIndexOf(const proto::SegmentMetadata& meta, EntryId entry);

// Ensemble positions of the write set of `entry` in an ensemble of E nodes:
// Qw positions starting at entry mod E.
std::vector<int> WriteSetPositions(int64_t entry, int e, int qw);

// The node ids of `entry`'s write set, in striping order.
std::vector<std::string> WriteSetNodes(const proto::SegmentMetadata& meta, EntryId entry);

// E >= Qw >= Qa >= 1, fragments ascending from 0, each with E nodes.
Status ValidateMetadata(const proto::SegmentMetadata& meta);

}  // namespace dlog::segment
