#include "logstore/segment/ensemble.h"

#include "logstore/segment/errors.h"

namespace dlog::segment {

int FragmentIndexOf(const proto::SegmentMetadata& meta, EntryId entry) {
  int idx = 0;
  for (int i = 0; i < meta.fragments_size(); ++i) {
    if (meta.fragments(i).first_entry_id() <= entry.value()) idx = i;
  }
  return idx;
}

std::vector<int> WriteSetPositions(int64_t entry, int e, int qw) {
  std::vector<int> out;
  out.reserve(qw);
  const int start = static_cast<int>(entry % e);
  for (int i = 0; i < qw; ++i) out.push_back((start + i) % e);
  return out;
}

std::vector<std::string> WriteSetNodes(const proto::SegmentMetadata& meta, EntryId entry) {
  const auto& frag = meta.fragments(FragmentIndexOf(meta, entry));
  std::vector<std::string> out;
  for (int p : WriteSetPositions(entry.value(), static_cast<int>(meta.ensemble_size()),
                                 static_cast<int>(meta.write_quorum()))) {
    out.push_back(frag.ensemble(p));
  }
  return out;
}

Status ValidateMetadata(const proto::SegmentMetadata& meta) {
  const uint32_t e = meta.ensemble_size(), qw = meta.write_quorum(), qa = meta.ack_quorum();
  if (!(e >= qw && qw >= qa && qa >= 1)) {
    return Status::Error(SegmentErrc::kBadState, "segment " + std::to_string(meta.segment_id()) +
                                                     ": bad quorums E=" + std::to_string(e) +
                                                     " Qw=" + std::to_string(qw) + " Qa=" + std::to_string(qa));
  }
  if (meta.fragments_size() == 0 || meta.fragments(0).first_entry_id() != 0) {
    return Status::Error(SegmentErrc::kBadState,
                         "segment " + std::to_string(meta.segment_id()) + ": no fragment starting at entry 0");
  }
  for (int i = 0; i < meta.fragments_size(); ++i) {
    if (static_cast<uint32_t>(meta.fragments(i).ensemble_size()) != e ||
        (i > 0 && meta.fragments(i).first_entry_id() <= meta.fragments(i - 1).first_entry_id())) {
      return Status::Error(SegmentErrc::kBadState,
                           "segment " + std::to_string(meta.segment_id()) + ": bad fragment #" + std::to_string(i));
    }
  }
  return Status::OK();
}

}  // namespace dlog::segment
