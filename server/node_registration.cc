#include "server/node_registration.h"

#include <thread>

#include "common/clock.h"
#include "common/logging.h"
#include "metadata/records.h"
#include "net/event_loop.h"

namespace dlog::server {

using metadata::CreateMode;
using metadata::MetaErrc;

NodeRegistration::NodeRegistration(metadata::MetadataStore* store, std::string node_path, std::string cookie_path,
                                   std::string record)
    : store_(store),
      node_path_(std::move(node_path)),
      cookie_path_(std::move(cookie_path)),
      record_(std::move(record)) {}

Result<std::unique_ptr<NodeRegistration>> NodeRegistration::Start(metadata::MetadataStore* store,
                                                                  const metadata::Layout& layout, NodeIdentity id,
                                                                  std::chrono::milliseconds wait_for_previous) {
  for (const std::string& dir : layout.Directories()) DLOG_RETURN_IF_ERROR(store->EnsurePathSync(dir));
  DLOG_RETURN_IF_ERROR(store->EnsurePathSync(layout.CookiesDir()));

  // 1. The cookie: metadata remembers which data dir this node id has.
  proto::NodeCookie cookie;
  cookie.set_node_id(id.node_id);
  cookie.set_instance_id(id.instance_id);
  cookie.set_cluster_id(id.cluster_id);
  const std::string cookie_path = layout.Cookie(id.node_id);
  auto existing = store->GetSync(cookie_path);
  if (existing.ok()) {
    DLOG_ASSIGN_OR_RETURN(proto::NodeCookie known, metadata::Decode<proto::NodeCookie>(cookie_path, existing->data));
    if (known.instance_id() != id.instance_id || known.cluster_id() != id.cluster_id) {
      return Status::Error(CommonErrc::kCorruption,
                           "metadata at " + cookie_path + " says node " + id.node_id + " is instance " +
                               known.instance_id() + " of cluster " + known.cluster_id() +
                               ", but its data dir holds instance " + id.instance_id + " of cluster " + id.cluster_id +
                               ": the data dir was wiped and re-formatted, or swapped. A node that forgot what it "
                               "acknowledged must not serve. If this really is a new node, delete " +
                               cookie_path + " first (its old data is gone).");
    }
  } else if (existing.status().Is(MetaErrc::kNoNode)) {
    auto created = store->CreateSync(cookie_path, metadata::Encode(cookie), CreateMode::kPersistent);
    if (!created.ok() && !created.status().Is(MetaErrc::kNodeExists)) return created.status();
    if (!created.ok()) {
      // Someone wrote it between our read and create: compare once more.
      DLOG_ASSIGN_OR_RETURN(auto again, store->GetSync(cookie_path));
      DLOG_ASSIGN_OR_RETURN(proto::NodeCookie known, metadata::Decode<proto::NodeCookie>(cookie_path, again.data));
      if (known.instance_id() != id.instance_id) {
        return Status::Error(CommonErrc::kCorruption,
                             "another data dir registered node " + id.node_id + " concurrently (" + cookie_path + ")");
      }
    }
  } else {
    return existing.status().WithContext("reading " + cookie_path);
  }

  // 2. The live entry.
  proto::NodeRegistration reg;
  reg.set_address(id.address);
  *reg.mutable_cookie() = cookie;
  reg.set_metrics_address(id.metrics_address);
  reg.set_registered_at_ms(WallMillis());
  const std::string node_path = layout.Node(id.node_id);
  std::unique_ptr<NodeRegistration> r(new NodeRegistration(store, node_path, cookie_path, metadata::Encode(reg)));
  const int64_t deadline = MonoMillis() + wait_for_previous.count();
  bool logged = false;
  while (true) {
    auto created = store->CreateSync(node_path, r->record_, CreateMode::kEphemeral);
    if (created.ok()) break;
    if (!created.status().Is(MetaErrc::kNodeExists)) return created.status().WithContext("registering " + node_path);
    auto cur = store->ExistsSync(node_path);
    if (cur.ok() && cur->has_value() && (*cur)->ephemeral_owner == store->SessionId()) break;  // ours
    if (MonoMillis() > deadline) {
      return Status::Error(CommonErrc::kUnavailable, node_path + " is still held by another session (is node " +
                                                         id.node_id + " running elsewhere?)");
    }
    if (!logged) {
      DLOG_INFO << "waiting for the previous registration " << node_path << " to expire";
      logged = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  NodeRegistration* self = r.get();
  r->session_sub_ = store->SubscribeSession([self](const metadata::SessionEvent& ev) {
    if (ev.state == metadata::SessionState::kExpired) {
      DLOG_WARN << "metadata session " << ev.session_id << " expired: " << self->node_path_
                << " is gone until the new session registers it again";
    } else if (ev.state == metadata::SessionState::kConnected) {
      self->ReRegister();
    }
  });
  DLOG_INFO << "registered " << node_path << " (cookie " << cookie_path << ")";
  return r;
}

void NodeRegistration::ReRegister() {
  if (stopped_.load()) return;
  store_->Create(node_path_, record_, CreateMode::kEphemeral, [this](Result<std::string> r) {
    if (r.ok()) {
      DLOG_INFO << "registered " << node_path_ << " again in the new metadata session";
    } else if (!r.status().Is(MetaErrc::kNodeExists)) {
      DLOG_WARN << "could not register " << node_path_ << " again: " << r.status().ToString();
    }
  });
}

void NodeRegistration::Stop() {
  if (stopped_.exchange(true)) return;
  // On the loop, so no session callback is running or will run with `this`.
  store_->loop()->RunSync([this] { store_->UnsubscribeSession(session_sub_); });
  Status st = store_->DeleteSync(node_path_, metadata::kAnyVersion);
  if (!st.ok() && !st.Is(MetaErrc::kNoNode)) DLOG_WARN << "unregistering " << node_path_ << ": " << st.ToString();
}

NodeRegistration::~NodeRegistration() { Stop(); }

}  // namespace dlog::server
