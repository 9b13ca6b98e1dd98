// MetadataStore: the one interface to dlog's metadata, with a ZooKeeper
// implementation (zk_store.h) for clusters and an embedded one
// (embedded_store.h, RocksDB) for `dlogd standalone`. Both pass the same
// contract suite (tests/metadata/contract_test.cc).
//
// The model is ZooKeeper's: a tree of nodes named by absolute paths, each
// holding bytes and a version that every Set bumps; persistent, ephemeral
// (gone with the session that made it) and sequential nodes (a 10-digit,
// zero-padded, strictly increasing suffix per parent); compare-and-set on
// versions; an atomic Multi of check/create/set/delete; one-shot watches; and
// session-state events.
//
// Threading: every async method may be called from any thread and never runs
// its callback inline: callbacks, watch callbacks and session callbacks run on
// the store's EventLoop (loop()). The *Sync wrappers block the calling thread
// on the async call and must not be called on that loop (DLOG_CHECK). The loop
// must run until Close() has completed. Close() is explicit and awaited: after
// its callback, no callback of this store runs again.
//
// Errors (MetaErrc, domain kMetadata):
//   kNoNode, kNodeExists, kBadVersion (CAS conflict), kNotEmpty: definite
//     answers; nothing was changed by the failing call.
//   kConnectionLoss: the outcome is unknown and stayed unknown after the store
//     re-read the nodes involved ("re-read and compare", see below); retryable
//     after the caller re-reads.
//   kSessionExpired: the session that made the call expired; owners must stop
//     (their ephemeral nodes are gone). A mutating call that fails with it may
//     or may not have been applied (ephemeral creates are gone either way).
//   kClosed: the store is closing or closed.
//   kCorruptRecord, kUnknownVersion: from the record codec (records.h).
//   kInvalidArgument: a malformed path, too-large data, children of an
//     ephemeral node, a bad sequential prefix.
//   kIoError: the embedded store's disk failed, or ZooKeeper returned an
//     unexpected error.
//
// Re-read and compare: a mutating call that loses its connection is never
// blindly re-sent. The store re-reads the nodes it touched and decides:
//   Create   exists with our data (and, if ephemeral, our session) -> done;
//            absent -> not applied, sent again; other data -> kNodeExists.
//            Sequential: the parent's children named <prefix><10 digits>
//            holding our data (and our session, if ephemeral); exactly one ->
//            done; none -> sent again; several -> kConnectionLoss. Make the
//            prefix or the data unique (lock nodes carry SessionGuid()).
//   Set v    version v+1 with our data -> done; version v -> sent again;
//            anything else -> kBadVersion (a later writer changed it; ours
//            may have been applied before that). Set with kAnyVersion: our
//            data -> done, else sent again.
//   Delete v absent -> done; present at version v -> sent again; else
//            kBadVersion.
//   Multi    every create/set/delete shows its effect -> done; otherwise the
//            atomic multi is sent again and its own checks decide (so a
//            retried multi may report a conflict although its first attempt
//            succeeded, if someone changed the nodes in between).
// Reads that lose their connection are simply retried. Re-reading goes on
// until the connection is back or ZkStoreOptions::resolve_timeout passes
// (then kConnectionLoss).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"

namespace dlog::net {
class EventLoop;
}

namespace dlog::metadata {

enum class MetaErrc : int {
  kNoNode = 1,
  kNodeExists = 2,
  kBadVersion = 3,
  kNotEmpty = 4,
  kConnectionLoss = 5,
  kSessionExpired = 6,
  kClosed = 7,
  kCorruptRecord = 8,
  kUnknownVersion = 9,
  kInvalidArgument = 10,
  kIoError = 11,
};

}  // namespace dlog::metadata

template <>
struct dlog::ErrcTraits<dlog::metadata::MetaErrc> {
  static constexpr ErrorDomain kDomain = ErrorDomain::kMetadata;
  static const char* Name(int code);
};

namespace dlog::metadata {

// Matches any version in Set, Delete and Check.
inline constexpr int32_t kAnyVersion = -1;
// Largest value accepted (ZooKeeper's jute.maxbuffer is 1 MiB including the
// request around it); both stores refuse more with kInvalidArgument.
inline constexpr size_t kMaxDataSize = 1000 * 1000;
// Digits of a sequential node's suffix.
inline constexpr int kSequenceDigits = 10;

enum class CreateMode { kPersistent, kEphemeral, kPersistentSequential, kEphemeralSequential };
inline bool IsEphemeral(CreateMode m) { return m == CreateMode::kEphemeral || m == CreateMode::kEphemeralSequential; }
inline bool IsSequential(CreateMode m) {
  return m == CreateMode::kPersistentSequential || m == CreateMode::kEphemeralSequential;
}

struct Stat {
  int32_t version = 0;   // data version, bumped by every Set
  int32_t cversion = 0;  // bumped by every child create/delete
  int32_t num_children = 0;
  int64_t ephemeral_owner = 0;  // owning session id, 0 for persistent nodes
  int64_t ctime_ms = 0;
  int64_t mtime_ms = 0;
  int64_t czxid = 0;  // transaction that created the node
  int64_t mzxid = 0;  // transaction that last changed its data
};

struct NodeData {
  std::string data;
  Stat stat;
};

// One operation of a Multi.
struct Op {
  enum class Type { kCheck, kCreate, kSet, kDelete };
  Type type = Type::kCheck;
  std::string path;
  std::string data;
  int32_t version = kAnyVersion;
  CreateMode mode = CreateMode::kPersistent;

  static Op Check(std::string path, int32_t version);
  static Op Create(std::string path, std::string data, CreateMode mode = CreateMode::kPersistent);
  static Op Set(std::string path, std::string data, int32_t version);
  static Op Delete(std::string path, int32_t version);
  // "create /a/b" and the like, for messages.
  std::string Describe() const;
};

struct OpResult {
  std::string path;  // kCreate: the created path (with its sequence suffix)
  Stat stat;         // kSet: the node's new stat
};

enum class WatchEventType {
  kCreated,          // an Exists watch on an absent node: it was created
  kDeleted,          // the node was deleted (data and children watches)
  kDataChanged,      // Set on the node
  kChildrenChanged,  // a child was created or deleted
  kSessionExpired,   // the watch is lost: the session expired
  kClosed,           // the watch is lost: the store closed
};
const char* WatchEventName(WatchEventType t);

struct WatchEvent {
  WatchEventType type;
  std::string path;
};
// A watch fires exactly once (runs on the loop): with the first change of its
// node after the read that set it, or with kSessionExpired / kClosed. A
// connection loss that the session survives does not fire it.
using WatchCallback = std::function<void(const WatchEvent&)>;

enum class SessionState {
  kConnected,     // connected; after kExpired this is a new session (new id)
  kDisconnected,  // connection lost; the session may still be alive
  kExpired,       // the session expired: its ephemeral nodes are gone, owners must stop
  kClosed,        // Close() ran
};
const char* SessionStateName(SessionState s);

struct SessionEvent {
  SessionState state;
  int64_t session_id;  // the session the event is about
};
using SessionCallback = std::function<void(const SessionEvent&)>;

template <typename T>
using Callback = std::function<void(Result<T>)>;
using StatusCallback = std::function<void(Status)>;

// Paths: absolute, '/'-separated, no empty, "." or ".." component, no trailing
// '/', no NUL; "/" is the root (it always exists and can't be changed).
Status ValidatePath(std::string_view path);
std::string ParentPath(std::string_view path);  // "/a/b" -> "/a"; "/a" -> "/"
std::string BaseName(std::string_view path);    // "/a/b" -> "b"
std::string JoinPath(std::string_view dir, std::string_view name);
// The sequence number of a sequential node's name ("lock-0000000042" -> 42),
// or -1 if it does not end in kSequenceDigits digits.
int64_t SequenceOf(std::string_view name);

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;
  MetadataStore(const MetadataStore&) = delete;
  MetadataStore& operator=(const MetadataStore&) = delete;

  // Reads a node. kNoNode if absent (and then no watch is set).
  virtual void Get(std::string path, Callback<NodeData> cb, WatchCallback watch = nullptr) = 0;
  // The node's stat, or nullopt if absent. The watch is set either way (on an
  // absent node it fires kCreated).
  virtual void Exists(std::string path, Callback<std::optional<Stat>> cb, WatchCallback watch = nullptr) = 0;
  // Names (not paths) of the children, sorted. kNoNode if absent. The watch
  // fires kChildrenChanged or kDeleted.
  virtual void GetChildren(std::string path, Callback<std::vector<std::string>> cb, WatchCallback watch = nullptr) = 0;
  // Creates a node; the callback gets its path (with the suffix if
  // sequential). kNodeExists, kNoNode (no parent), kInvalidArgument (parent
  // is ephemeral, bad path, data too large).
  virtual void Create(std::string path, std::string data, CreateMode mode, Callback<std::string> cb) = 0;
  // Sets the data if the version matches (or version is kAnyVersion).
  // kNoNode, kBadVersion.
  virtual void Set(std::string path, std::string data, int32_t version, Callback<Stat> cb) = 0;
  // Deletes the node if the version matches. kNoNode, kBadVersion, kNotEmpty.
  virtual void Delete(std::string path, int32_t version, StatusCallback cb) = 0;
  // All or nothing. On failure the status is the first failing op's code with
  // "multi op #<i> (<op>)" in its message, and nothing was applied.
  virtual void Multi(std::vector<Op> ops, Callback<std::vector<OpResult>> cb) = 0;

  // Session events, on the loop. Unsubscribe on the loop thread guarantees no
  // later call of that callback.
  uint64_t SubscribeSession(SessionCallback cb);
  void UnsubscribeSession(uint64_t id);

  // The current session's id (changes when a new session replaces an expired
  // one). Thread-safe.
  virtual int64_t SessionId() const = 0;
  // A unique string for the current session, to put in lock node names so a
  // node created during a connection loss is recognised. Thread-safe.
  virtual std::string SessionGuid() const = 0;
  // MonoNanos() at which the last request that got an answer from the store
  // was sent: the server had heard from the session at that time or later.
  // For the lease rule (DESIGN "Lease"). Thread-safe.
  virtual int64_t LastContactNanos() const = 0;
  // The negotiated session timeout. Thread-safe.
  virtual std::chrono::milliseconds SessionTimeout() const = 0;

  // Fails what is pending with kClosed, drops the session (ephemeral nodes go),
  // fires every watch with kClosed, reports SessionState::kClosed, then calls
  // `done` on the loop. Later calls fail with kClosed. Any thread.
  virtual void Close(std::function<void()> done) = 0;

  net::EventLoop* loop() const { return loop_; }

  // Blocking wrappers over the calls above. Not on loop() (DLOG_CHECK).
  Result<NodeData> GetSync(const std::string& path);
  Result<std::optional<Stat>> ExistsSync(const std::string& path);
  Result<std::vector<std::string>> GetChildrenSync(const std::string& path);
  Result<std::string> CreateSync(const std::string& path, const std::string& data,
                                 CreateMode mode = CreateMode::kPersistent);
  Result<Stat> SetSync(const std::string& path, const std::string& data, int32_t version);
  Status DeleteSync(const std::string& path, int32_t version);
  Result<std::vector<OpResult>> MultiSync(std::vector<Op> ops);
  void CloseSync();

  // Creates `path` and every missing ancestor as empty persistent nodes;
  // OK if it exists. Not on loop().
  Status EnsurePathSync(const std::string& path);

 protected:
  explicit MetadataStore(net::EventLoop* loop) : loop_(loop) {}
  // Loop thread: calls every subscriber.
  void NotifySession(const SessionEvent& ev);

 private:
  net::EventLoop* const loop_;
  Mutex session_mu_;
  uint64_t next_subscription_ DLOG_GUARDED_BY(session_mu_) = 1;
  std::map<uint64_t, SessionCallback> session_subs_ DLOG_GUARDED_BY(session_mu_);
};

}  // namespace dlog::metadata
