// ZkStore: the MetadataStore on ZooKeeper, through the `zookeeper_mt` C
// client (async API only).
//
// Threading: the C client's I/O and completion threads only copy a reply and
// post it to the store's loop; every decision (re-read and compare, resends,
// watches, session changes) is taken on the loop. zookeeper_close blocks, so it
// runs on the store's own helper thread, which also times back-offs and
// heartbeats.
//
// Sessions: a connection loss the session survives reports kDisconnected, then
// kConnected (same id). When the session expires the store reports kExpired,
// fails the calls in flight with kSessionExpired, fires every watch with
// kSessionExpired, and makes a new session at once (reported by kConnected with
// the new id), so later calls work again.
//
// Last contact: a heartbeat (exists "/") every session timeout / 4 keeps
// LastContactNanos() fresh while the store is idle.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "metadata/metadata_store.h"

namespace dlog::metadata {

struct ZkStoreOptions {
  std::string connect;  // "host:port[,host:port...]"
  // Requested; the server clamps it to [2, 20] × its tickTime.
  std::chrono::milliseconds session_timeout{6000};
  // Open() waits this long for the first session.
  std::chrono::milliseconds connect_timeout{10000};
  // How long re-read-and-compare (and the retry of a read) keeps trying after a
  // connection loss before it reports kConnectionLoss. 0: twice the session timeout.
  std::chrono::milliseconds resolve_timeout{0};
  // How often a mutating call found "not applied" is sent again.
  int max_resends = 10;
};

class ZkStore final : public MetadataStore {
 public:
  // Connects and waits for the first session (connect_timeout). Blocking; any
  // thread but `loop`'s. kConnectionLoss if no session came up in time.
  // `loop` must outlive the store and run until Close has completed.
  static Result<std::unique_ptr<ZkStore>> Open(const ZkStoreOptions& options, net::EventLoop* loop);

  // Closes (CloseSync) if Close was not awaited. Must not run on the loop.
  ~ZkStore() override;

  void Get(std::string path, Callback<NodeData> cb, WatchCallback watch = nullptr) override;
  void Exists(std::string path, Callback<std::optional<Stat>> cb, WatchCallback watch = nullptr) override;
  void GetChildren(std::string path, Callback<std::vector<std::string>> cb, WatchCallback watch = nullptr) override;
  void Create(std::string path, std::string data, CreateMode mode, Callback<std::string> cb) override;
  void Set(std::string path, std::string data, int32_t version, Callback<Stat> cb) override;
  void Delete(std::string path, int32_t version, StatusCallback cb) override;
  void Multi(std::vector<Op> ops, Callback<std::vector<OpResult>> cb) override;
  int64_t SessionId() const override;
  std::string SessionGuid() const override;
  int64_t LastContactNanos() const override;
  std::chrono::milliseconds SessionTimeout() const override;
  void Close(std::function<void()> done) override;

  // For tests: the current session's id and password, to expire it from a
  // second handle. Blocking; not on the loop.
  std::pair<int64_t, std::string> SessionCredentials();

  class Impl;

 private:
  explicit ZkStore(net::EventLoop* loop);
  std::unique_ptr<Impl> impl_;
};

// "zk://127.0.0.1:2181[,host:port...][/dlog]" -> "127.0.0.1:2181[,...]".
// The tree lives under /dlog/<cluster id>; a path other than /dlog is refused.
Result<std::string> ParseZkUrl(const std::string& url);

}  // namespace dlog::metadata
