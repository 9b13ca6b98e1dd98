// EmbeddedStore: the MetadataStore of `dlogd standalone`. In-process, the
// whole tree in memory, persisted in RocksDB with synced writes (one
// WriteBatch per call, so a Multi is atomic on disk too).
//
// Same semantics as ZooKeeper (the contract suite runs on both): versions,
// cversion, sequential suffixes (the parent's cversion, persisted with the
// parent, so never reused while the parent lives), one-shot watches, atomic
// Multi. Its one session lives as long as the store: ephemeral nodes are
// deleted by Close() and, if the process died, by the next Open().
// Connection loss and session expiry never happen here.
//
// Threading: one worker thread runs every call in order (RocksDB writes block
// there, never on the loop) and posts results and watch events to the loop,
// in that order. On-disk format: docs/formats/metadata.md ("Embedded store").
#pragma once

#include <memory>
#include <string>

#include "metadata/metadata_store.h"

namespace dlog::metadata {

struct EmbeddedStoreOptions {
  std::string dir;                                   // RocksDB directory; created if missing
  bool sync = true;                                  // fsync every write (tests of speed only turn this off)
  std::chrono::milliseconds session_timeout{10000};  // reported by SessionTimeout()
  // Tests set false to leave ephemeral nodes behind as a crashed process would.
  bool drop_ephemerals_on_close = true;
};

class EmbeddedStore final : public MetadataStore {
 public:
  // Opens (or creates) the store and drops the ephemeral nodes a previous
  // process left. kIoError if RocksDB can't open; kCorruptRecord naming the
  // key if a stored node does not parse or has no parent. Blocking; any
  // thread but `loop`'s. `loop` must outlive the store and run until Close.
  static Result<std::unique_ptr<EmbeddedStore>> Open(const EmbeddedStoreOptions& options, net::EventLoop* loop);

  // Closes (CloseSync) if Close was not awaited; must not run on the loop then.
  ~EmbeddedStore() override;

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

  class Impl;

 private:
  EmbeddedStore(net::EventLoop* loop, std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlog::metadata
