// Reading and compare-and-setting a segment's metadata record
// (Layout::Segment(id), a SegmentMetadata record). Callbacks run on the
// store's loop.
#pragma once

#include <cstdint>
#include <functional>

#include "common/status.h"
#include "common/strong_id.h"
#include "metadata.pb.h"
#include "metadata/layout.h"
#include "metadata/metadata_store.h"

namespace dlog::segment {

struct VersionedMeta {
  proto::SegmentMetadata meta;
  int32_t version = 0;
};

// Reads and decodes the record. kNoNode if absent; codec errors name the path.
void LoadSegment(metadata::MetadataStore* store, const metadata::Layout& layout, SegmentId id,
                 std::function<void(Result<VersionedMeta>)> cb);

// Sets the record if its version is still `version`; the callback gets the
// new version. kBadVersion on a conflict (the caller re-reads and decides).
void CasSegment(metadata::MetadataStore* store, const metadata::Layout& layout, const proto::SegmentMetadata& meta,
                int32_t version, std::function<void(Result<int32_t>)> cb);

// Creates the record (and its bucket if missing).
void CreateSegment(metadata::MetadataStore* store, const metadata::Layout& layout, const proto::SegmentMetadata& meta,
                   std::function<void(Status)> cb);

// Creates the bucket node that holds `id`'s record, if missing.
void EnsureSegmentBucket(metadata::MetadataStore* store, const metadata::Layout& layout, SegmentId id,
                         std::function<void(Status)> cb);

const char* SegmentStateName(proto::SegmentState s);

}  // namespace dlog::segment
