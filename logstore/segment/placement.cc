#include "logstore/segment/placement.h"

#include <algorithm>
#include <random>

#include "logstore/segment/errors.h"

namespace dlog::segment {

void ListLiveNodes(metadata::MetadataStore* store, const metadata::Layout& layout,
                   std::function<void(Result<std::vector<std::string>>)> cb) {
  store->GetChildren(layout.NodesDir(), [cb = std::move(cb)](Result<std::vector<std::string>> r) {
    if (!r.ok()) {
      if (r.status().Is(metadata::MetaErrc::kNoNode)) return cb(std::vector<std::string>{});
      return cb(r.status());
    }
    std::vector<std::string> ids;
    for (const auto& name : *r) {
      auto id = metadata::UnescapeName(name);
      if (id.ok()) ids.push_back(std::move(*id));
    }
    std::sort(ids.begin(), ids.end());
    cb(std::move(ids));
  });
}

void PickNodes(metadata::MetadataStore* store, const metadata::Layout& layout, size_t count,
               std::set<std::string> exclude, std::function<void(Result<std::vector<std::string>>)> cb) {
  ListLiveNodes(store, layout,
                [count, exclude = std::move(exclude), cb = std::move(cb)](Result<std::vector<std::string>> r) {
                  if (!r.ok()) return cb(r.status());
                  std::vector<std::string> candidates;
                  for (auto& id : *r) {
                    if (!exclude.count(id)) candidates.push_back(id);
                  }
                  if (candidates.size() < count) {
                    std::string live;
                    for (auto& id : *r) live += (live.empty() ? "" : ",") + id;
                    return cb(Status::Error(SegmentErrc::kNotEnoughNodes,
                                            "need " + std::to_string(count) + " live nodes besides " +
                                                std::to_string(exclude.size()) + " excluded; live: [" + live + "]"));
                  }
                  static thread_local std::mt19937_64 rng{std::random_device{}()};
                  std::shuffle(candidates.begin(), candidates.end(), rng);
                  candidates.resize(count);
                  cb(std::move(candidates));
                });
}

}  // namespace dlog::segment
