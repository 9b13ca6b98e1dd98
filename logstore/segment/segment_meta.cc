#include "logstore/segment/segment_meta.h"

#include "metadata/records.h"

namespace dlog::segment {

void LoadSegment(metadata::MetadataStore* store, const metadata::Layout& layout, SegmentId id,
                 std::function<void(Result<VersionedMeta>)> cb) {
  std::string path = layout.Segment(id);
  store->Get(path, [path, cb = std::move(cb)](Result<metadata::NodeData> r) {
    if (!r.ok()) return cb(r.status());
    auto m = metadata::Decode<proto::SegmentMetadata>(path, r->data);
    if (!m.ok()) return cb(m.status());
    cb(VersionedMeta{std::move(*m), r->stat.version});
  });
}

void CasSegment(metadata::MetadataStore* store, const metadata::Layout& layout, const proto::SegmentMetadata& meta,
                int32_t version, std::function<void(Result<int32_t>)> cb) {
  store->Set(layout.Segment(SegmentId(meta.segment_id())), metadata::Encode(meta), version,
             [cb = std::move(cb)](Result<metadata::Stat> r) {
               if (!r.ok()) return cb(r.status());
               cb(r->version);
             });
}

void CreateSegment(metadata::MetadataStore* store, const metadata::Layout& layout, const proto::SegmentMetadata& meta,
                   std::function<void(Status)> cb) {
  const SegmentId id(meta.segment_id());
  std::string data = metadata::Encode(meta);
  std::string path = layout.Segment(id);
  store->Create(path, data, metadata::CreateMode::kPersistent,
                [store, bucket = layout.SegmentBucket(id), path, data, cb = std::move(cb)](Result<std::string> r) {
                  if (r.ok()) return cb(Status::OK());
                  if (!r.status().Is(metadata::MetaErrc::kNoNode)) return cb(r.status());
                  // The bucket is missing: make it (a racing creator is fine), then try again.
                  store->Create(bucket, "", metadata::CreateMode::kPersistent,
                                [store, path, data, cb](Result<std::string> b) {
                                  if (!b.ok() && !b.status().Is(metadata::MetaErrc::kNodeExists)) {
                                    return cb(b.status());
                                  }
                                  store->Create(path, data, metadata::CreateMode::kPersistent,
                                                [cb](Result<std::string> r2) { cb(r2.status()); });
                                });
                });
}

void EnsureSegmentBucket(metadata::MetadataStore* store, const metadata::Layout& layout, SegmentId id,
                         std::function<void(Status)> cb) {
  store->Create(layout.SegmentBucket(id), "", metadata::CreateMode::kPersistent,
                [cb = std::move(cb)](Result<std::string> r) {
                  if (!r.ok() && !r.status().Is(metadata::MetaErrc::kNodeExists)) return cb(r.status());
                  cb(Status::OK());
                });
}

const char* SegmentStateName(proto::SegmentState s) {
  switch (s) {
    case proto::SEGMENT_OPEN:
      return "OPEN";
    case proto::SEGMENT_IN_RECOVERY:
      return "IN_RECOVERY";
    case proto::SEGMENT_CLOSED:
      return "CLOSED";
    default:
      return "UNSPECIFIED";
  }
}

}  // namespace dlog::segment
