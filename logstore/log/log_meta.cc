#include "logstore/log/log_meta.h"

#include <map>
#include <memory>
#include <optional>
#include <set>

#include "metadata/records.h"

namespace dlog::log {

using metadata::MetaErrc;

Status MapLogError(const Status& st, const LogPaths& log) {
  if (st.Is(MetaErrc::kNoNode)) return Status::Error(LogErrc::kLogNotFound, log.Describe() + " does not exist");
  return st;
}

void LoadLog(metadata::MetadataStore* store, const LogPaths& log, std::function<void(Result<VersionedLog>)> cb) {
  store->Get(log.path, [log, cb = std::move(cb)](Result<metadata::NodeData> r) {
    if (!r.ok()) return cb(MapLogError(r.status(), log));
    Result<proto::LogMetadata> m = metadata::Decode<proto::LogMetadata>(log.path, r->data);
    if (!m.ok()) return cb(m.status());
    cb(VersionedLog{std::move(*m), r->stat.version});
  });
}

void LoadSegments(segment::SegmentClient* client, std::vector<proto::LogSegmentRef> refs, bool skip_missing,
                  std::function<void(Result<std::vector<segment::VersionedMeta>>)> cb) {
  struct State {
    std::vector<std::optional<segment::VersionedMeta>> out;
    size_t left;
    Status error;
    std::function<void(Result<std::vector<segment::VersionedMeta>>)> cb;
  };
  if (refs.empty()) {
    client->loop()->Post([cb] { cb(std::vector<segment::VersionedMeta>{}); });
    return;
  }
  auto st = std::make_shared<State>();
  st->out.resize(refs.size());
  st->left = refs.size();
  st->cb = std::move(cb);
  for (size_t i = 0; i < refs.size(); ++i) {
    segment::LoadSegment(client->store(), client->layout(), SegmentId(refs[i].segment_id()),
                         [st, i, skip_missing](Result<segment::VersionedMeta> r) {
                           if (r.ok()) {
                             st->out[i] = std::move(*r);
                           } else if (!(skip_missing && r.status().Is(MetaErrc::kNoNode)) && st->error.ok()) {
                             st->error = r.status();
                           }
                           if (--st->left > 0) return;
                           if (!st->error.ok()) return st->cb(st->error);
                           std::vector<segment::VersionedMeta> v;
                           for (auto& o : st->out) {
                             if (o) v.push_back(std::move(*o));
                           }
                           st->cb(std::move(v));
                         });
  }
}

void DeleteSegmentData(segment::SegmentClient* client, const std::vector<proto::SegmentMetadata>& segments,
                       std::function<void()> done) {
  std::map<std::string, std::vector<SegmentId>> by_node;
  for (const auto& s : segments) {
    std::set<std::string> nodes;
    for (const auto& f : s.fragments()) nodes.insert(f.ensemble().begin(), f.ensemble().end());
    for (const auto& n : nodes) by_node[n].push_back(SegmentId(s.segment_id()));
  }
  if (by_node.empty()) {
    client->loop()->Post(std::move(done));
    return;
  }
  auto left = std::make_shared<size_t>(by_node.size());
  auto cb = std::make_shared<std::function<void()>>(std::move(done));
  for (auto& [node, ids] : by_node) {
    node::NodeClient* c = client->Node(node);
    if (c == nullptr) {
      if (--*left == 0) client->loop()->Post(*cb);
      continue;
    }
    c->DeleteSegments(ids, [left, cb](const Status&) {
      if (--*left == 0) (*cb)();
    });
  }
}

}  // namespace dlog::log
