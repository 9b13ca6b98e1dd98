// NodeRegistration: a logstore node's presence and identity in metadata.
//
// - cookies/<node id> (persistent) holds the node's data-dir cookie (node id,
//   instance id, cluster). At start the node compares it with its data dir's:
//   none yet -> it is written; the same instance -> fine; a different instance
//   -> the data dir was wiped and re-formatted, or swapped: the node refuses
//   to start (a node that forgot what it acknowledged must never answer "no
//   such entry"). An operator who really replaces a node deletes that record.
// - nodes/<node id> (ephemeral) holds the node's address, cookie and metrics
//   address: placement picks live nodes from here. A previous process's entry
//   (a crash, its session not yet expired) is waited out. After a session
//   expiry the store makes a new session and the entry is created again. A
//   clean shutdown closes the session, so the entry goes at once.
//
// Threading: Start/Stop block and must not run on the store's loop; the
// re-registration after an expiry runs on the loop.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "metadata/layout.h"
#include "metadata/metadata_store.h"

namespace dlog::server {

struct NodeIdentity {
  std::string node_id;
  std::string instance_id;
  std::string cluster_id;
  std::string address;          // host:port of the node's RPC listener
  std::string metrics_address;  // may be empty
};

class NodeRegistration {
 public:
  // Checks the cookie in metadata, then registers. `store` must outlive this object.
  static Result<std::unique_ptr<NodeRegistration>> Start(metadata::MetadataStore* store, const metadata::Layout& layout,
                                                         NodeIdentity identity,
                                                         std::chrono::milliseconds wait_for_previous);
  ~NodeRegistration();
  // Stops re-registering and deletes the entry (the session's close would too).
  void Stop();

  std::string node_path() const { return node_path_; }
  std::string cookie_path() const { return cookie_path_; }

 private:
  NodeRegistration(metadata::MetadataStore* store, std::string node_path, std::string cookie_path, std::string record);
  void ReRegister();  // on the store's loop

  metadata::MetadataStore* const store_;
  const std::string node_path_;
  const std::string cookie_path_;
  const std::string record_;  // the encoded NodeRegistration
  uint64_t session_sub_ = 0;
  std::atomic<bool> stopped_{false};
};

}  // namespace dlog::server
