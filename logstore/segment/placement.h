// Placement: picks E distinct live nodes for a segment. A node is live while
// its ephemeral registration exists under Layout::NodesDir() (the child's
// name is the escaped node id). Rack/zone awareness comes later.
//
// Threading: the callback runs on the store's loop.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "metadata/layout.h"
#include "metadata/metadata_store.h"

namespace dlog::segment {

// Picks `count` distinct live nodes not in `exclude`, in random order.
// kNotEnoughNodes (with the live nodes found in the message) if there are
// fewer; store errors as they come.
void PickNodes(metadata::MetadataStore* store, const metadata::Layout& layout, size_t count,
               std::set<std::string> exclude, std::function<void(Result<std::vector<std::string>>)> cb);

// The live node ids (unescaped), sorted.
void ListLiveNodes(metadata::MetadataStore* store, const metadata::Layout& layout,
                   std::function<void(Result<std::vector<std::string>>)> cb);

}  // namespace dlog::segment
