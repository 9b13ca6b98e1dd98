#include "metadata/embedded_store.h"

#include <pthread.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cinttypes>
#include <cstdio>
#include <deque>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "common/check.h"
#include "common/clock.h"
#include "common/logging.h"
#include "metadata.pb.h"
#include "net/event_loop.h"

namespace dlog::metadata {

namespace {

constexpr char kZxidKey[] = "#zxid";  // not a path: paths start with '/'

Status Err(MetaErrc c, std::string msg) { return Status::Error(c, std::move(msg)); }

std::string SequenceSuffix(int32_t seq) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%010d", seq);
  return buf;
}

}  // namespace

class EmbeddedStore::Impl {
 public:
  Impl(EmbeddedStore* owner, net::EventLoop* loop, EmbeddedStoreOptions options)
      : owner_(owner), loop_(loop), options_(std::move(options)) {}

  ~Impl() {
    {
      MutexLock l(&mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    if (thread_.joinable()) thread_.join();
  }

  Status OpenDb() {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(o, options_.dir, &db);
    if (!s.ok()) return Err(MetaErrc::kIoError, "open metadata store " + options_.dir + ": " + s.ToString());
    db_.reset(db);
    wopts_.sync = options_.sync;
    std::random_device rd;
    std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(MonoNanos()));
    do {
      session_id_ = static_cast<int64_t>(rng() >> 1);
    } while (session_id_ == 0);
    char guid[40];
    std::snprintf(guid, sizeof(guid), "%016" PRIx64 "%016" PRIx64, rng(), rng());
    session_guid_ = guid;
    DLOG_RETURN_IF_ERROR(Load());
    thread_ = std::thread([this] { Run(); });
    return Status::OK();
  }

  // Any thread: queue a task for the worker.
  void Submit(std::function<void()> task) {
    MutexLock l(&mu_);
    tasks_.push_back(std::move(task));
    cv_.Signal();
  }

  // Worker thread: run `fn` on the loop.
  void ToLoop(std::function<void()> fn) { loop_->Post(std::move(fn)); }

  // ---- the calls (worker thread) ----

  void DoGet(const std::string& path, Callback<NodeData> cb, WatchCallback watch) {
    Result<NodeData> r = [&]() -> Result<NodeData> {
      if (closed_) return Err(MetaErrc::kClosed, "metadata store closed");
      DLOG_RETURN_IF_ERROR(ValidatePath(path));
      auto it = nodes_.find(path);
      if (it == nodes_.end()) return Err(MetaErrc::kNoNode, path);
      if (watch) data_watches_[path].push_back(std::move(watch));
      return NodeData{it->second.rec.data(), StatOf(it->second)};
    }();
    ToLoop([cb = std::move(cb), r = std::move(r)]() mutable { cb(std::move(r)); });
  }

  void DoExists(const std::string& path, Callback<std::optional<Stat>> cb, WatchCallback watch) {
    Result<std::optional<Stat>> r = [&]() -> Result<std::optional<Stat>> {
      if (closed_) return Err(MetaErrc::kClosed, "metadata store closed");
      DLOG_RETURN_IF_ERROR(ValidatePath(path));
      if (watch) data_watches_[path].push_back(std::move(watch));
      auto it = nodes_.find(path);
      if (it == nodes_.end()) return std::optional<Stat>();
      return std::optional<Stat>(StatOf(it->second));
    }();
    ToLoop([cb = std::move(cb), r = std::move(r)]() mutable { cb(std::move(r)); });
  }

  void DoChildren(const std::string& path, Callback<std::vector<std::string>> cb, WatchCallback watch) {
    Result<std::vector<std::string>> r = [&]() -> Result<std::vector<std::string>> {
      if (closed_) return Err(MetaErrc::kClosed, "metadata store closed");
      DLOG_RETURN_IF_ERROR(ValidatePath(path));
      auto it = nodes_.find(path);
      if (it == nodes_.end()) return Err(MetaErrc::kNoNode, path);
      if (watch) child_watches_[path].push_back(std::move(watch));
      return std::vector<std::string>(it->second.children.begin(), it->second.children.end());
    }();
    ToLoop([cb = std::move(cb), r = std::move(r)]() mutable { cb(std::move(r)); });
  }

  // Every mutation is a transaction of one or more ops.
  Result<std::vector<OpResult>> DoTxn(const std::vector<Op>& ops, bool is_multi) {
    if (closed_) return Err(MetaErrc::kClosed, "metadata store closed");
    Txn txn(this, next_zxid_ + 1);
    std::vector<OpResult> results;
    for (size_t i = 0; i < ops.size(); ++i) {
      Result<OpResult> r = ApplyOp(&txn, ops[i]);
      if (!r.ok()) {
        txn.Undo();
        if (!is_multi) return r.status();
        return Status::Error(
            static_cast<MetaErrc>(r.status().code()),
            "multi op #" + std::to_string(i) + " (" + ops[i].Describe() + "): " + r.status().message());
      }
      results.push_back(std::move(r).value());
    }
    if (!txn.touched.empty()) DLOG_RETURN_IF_ERROR(Commit(&txn));
    return results;
  }

  void DoClose(std::function<void()> done) {
    if (!closed_) {
      // Our session ends: its ephemeral nodes go, as with a clean ZooKeeper close.
      if (options_.drop_ephemerals_on_close) {
        IgnoreError(DropEphemerals([this](const Node& n) { return n.rec.ephemeral_owner() == session_id_; }));
      }
      closed_ = true;
      for (auto* m : {&data_watches_, &child_watches_}) {
        for (auto& [p, cbs] : *m) {
          for (auto& cb : cbs) {
            ToLoop([cb = std::move(cb), p = p] { cb(WatchEvent{WatchEventType::kClosed, p}); });
          }
        }
        m->clear();
      }
      EmbeddedStore* owner = owner_;
      int64_t sid = session_id_;
      ToLoop([owner, sid] { owner->NotifySession(SessionEvent{SessionState::kClosed, sid}); });
    }
    ToLoop(std::move(done));
  }

  int64_t session_id() const { return session_id_; }
  const std::string& session_guid() const { return session_guid_; }
  const EmbeddedStoreOptions& options() const { return options_; }

 private:
  struct Node {
    proto::EmbeddedNode rec;
    std::set<std::string> children;
  };

  // Applied in place with an undo log: the worker is the only thread that
  // touches the tree, so nothing sees a half-applied transaction.
  struct Txn {
    Txn(Impl* impl_in, int64_t zxid_in) : impl(impl_in), zxid(zxid_in) {}
    Impl* impl;
    int64_t zxid;
    std::vector<std::function<void()>> undo;
    std::set<std::string> touched;
    std::vector<std::pair<WatchEventType, std::string>> events;

    Node* Find(const std::string& p) {
      auto it = impl->nodes_.find(p);
      return it == impl->nodes_.end() ? nullptr : &it->second;
    }
    // Records the node's current state before it is changed.
    void Save(const std::string& p) {
      touched.insert(p);
      auto it = impl->nodes_.find(p);
      if (it == impl->nodes_.end()) {
        undo.push_back([impl_ = impl, p] { impl_->nodes_.erase(p); });
      } else {
        // The record only: children sets are restored by their own undo
        // entries (a bucket may have thousands of children).
        undo.push_back([impl_ = impl, p, saved = it->second.rec] { impl_->nodes_[p].rec = saved; });
      }
    }
    void AddChild(const std::string& parent, const std::string& name) {
      impl->nodes_[parent].children.insert(name);
      undo.push_back([impl_ = impl, parent, name] { impl_->nodes_[parent].children.erase(name); });
    }
    void RemoveChild(const std::string& parent, const std::string& name) {
      impl->nodes_[parent].children.erase(name);
      undo.push_back([impl_ = impl, parent, name] { impl_->nodes_[parent].children.insert(name); });
    }
    void Undo() {
      for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
      undo.clear();
      touched.clear();
      events.clear();
    }
  };

  Result<OpResult> ApplyOp(Txn* txn, const Op& op) {
    DLOG_RETURN_IF_ERROR(ValidatePath(op.path));
    if (op.data.size() > kMaxDataSize) {
      return Err(MetaErrc::kInvalidArgument, op.path + ": data of " + std::to_string(op.data.size()) +
                                                 " bytes exceeds " + std::to_string(kMaxDataSize));
    }
    OpResult res;
    switch (op.type) {
      case Op::Type::kCheck: {
        Node* n = txn->Find(op.path);
        if (n == nullptr) return Err(MetaErrc::kNoNode, op.path);
        if (op.version != kAnyVersion && n->rec.version() != op.version) {
          return Err(MetaErrc::kBadVersion, op.path + ": version " + std::to_string(n->rec.version()) + ", expected " +
                                                std::to_string(op.version));
        }
        return res;
      }
      case Op::Type::kCreate: {
        if (op.path == "/") return Err(MetaErrc::kNodeExists, "/");
        std::string parent_path = ParentPath(op.path);
        Node* parent = txn->Find(parent_path);
        if (parent == nullptr) return Err(MetaErrc::kNoNode, "parent of " + op.path);
        if (parent->rec.ephemeral_owner() != 0) {
          return Err(MetaErrc::kInvalidArgument, op.path + ": parent " + parent_path + " is ephemeral");
        }
        std::string path = op.path;
        if (IsSequential(op.mode)) path += SequenceSuffix(parent->rec.cversion());
        if (txn->Find(path) != nullptr) return Err(MetaErrc::kNodeExists, path);
        txn->Save(parent_path);
        txn->Save(path);
        parent = txn->Find(parent_path);
        parent->rec.set_cversion(parent->rec.cversion() + 1);
        txn->AddChild(parent_path, BaseName(path));
        Node n;
        n.rec.set_data(op.data);
        n.rec.set_ephemeral_owner(IsEphemeral(op.mode) ? session_id_ : 0);
        int64_t now = WallMillis();
        n.rec.set_ctime_ms(now);
        n.rec.set_mtime_ms(now);
        n.rec.set_czxid(txn->zxid);
        n.rec.set_mzxid(txn->zxid);
        nodes_.emplace(path, std::move(n));
        txn->events.emplace_back(WatchEventType::kCreated, path);
        txn->events.emplace_back(WatchEventType::kChildrenChanged, parent_path);
        res.path = path;
        return res;
      }
      case Op::Type::kSet: {
        Node* n = txn->Find(op.path);
        if (n == nullptr) return Err(MetaErrc::kNoNode, op.path);
        if (op.version != kAnyVersion && n->rec.version() != op.version) {
          return Err(MetaErrc::kBadVersion, op.path + ": version " + std::to_string(n->rec.version()) + ", expected " +
                                                std::to_string(op.version));
        }
        txn->Save(op.path);
        n = txn->Find(op.path);
        n->rec.set_data(op.data);
        n->rec.set_version(n->rec.version() + 1);
        n->rec.set_mtime_ms(WallMillis());
        n->rec.set_mzxid(txn->zxid);
        txn->events.emplace_back(WatchEventType::kDataChanged, op.path);
        res.stat = StatOf(*n);
        return res;
      }
      case Op::Type::kDelete: {
        if (op.path == "/") return Err(MetaErrc::kInvalidArgument, "cannot delete /");
        Node* n = txn->Find(op.path);
        if (n == nullptr) return Err(MetaErrc::kNoNode, op.path);
        if (op.version != kAnyVersion && n->rec.version() != op.version) {
          return Err(MetaErrc::kBadVersion, op.path + ": version " + std::to_string(n->rec.version()) + ", expected " +
                                                std::to_string(op.version));
        }
        if (!n->children.empty()) return Err(MetaErrc::kNotEmpty, op.path);
        RemoveNode(txn, op.path);
        return res;
      }
    }
    return Err(MetaErrc::kInvalidArgument, "unknown op");
  }

  void RemoveNode(Txn* txn, const std::string& path) {
    std::string parent_path = ParentPath(path);
    txn->Save(parent_path);
    txn->Save(path);
    Node* parent = txn->Find(parent_path);
    DLOG_CHECK(parent != nullptr) << "metadata node " << path << " has no parent";
    parent->rec.set_cversion(parent->rec.cversion() + 1);
    txn->RemoveChild(parent_path, BaseName(path));
    nodes_.erase(path);
    txn->events.emplace_back(WatchEventType::kDeleted, path);
    txn->events.emplace_back(WatchEventType::kChildrenChanged, parent_path);
  }

  Status DropEphemerals(const std::function<bool(const Node&)>& pred) {
    std::vector<std::string> doomed;
    for (const auto& [p, n] : nodes_) {
      if (n.rec.ephemeral_owner() != 0 && pred(n)) doomed.push_back(p);
    }
    if (doomed.empty()) return Status::OK();
    Txn txn(this, next_zxid_ + 1);
    for (const std::string& p : doomed) RemoveNode(&txn, p);  // ephemerals have no children
    DLOG_RETURN_IF_ERROR(Commit(&txn));
    DLOG_INFO << "metadata store " << options_.dir << ": dropped " << doomed.size() << " ephemeral node(s)";
    return Status::OK();
  }

  // Writes every node the transaction touched, and the zxid, in one synced
  // WriteBatch; on success fires its watches, on failure undoes it in memory.
  Status Commit(Txn* txn) {
    rocksdb::WriteBatch batch;
    for (const std::string& p : txn->touched) {
      auto it = nodes_.find(p);
      if (it == nodes_.end()) {
        batch.Delete(p);
      } else {
        batch.Put(p, it->second.rec.SerializeAsString());
      }
    }
    batch.Put(kZxidKey, std::to_string(txn->zxid));
    rocksdb::Status s = db_->Write(wopts_, &batch);
    if (!s.ok()) {
      txn->Undo();
      return Err(MetaErrc::kIoError, "metadata store write: " + s.ToString());
    }
    next_zxid_ = txn->zxid;
    for (auto& [type, p] : txn->events) Fire(type, p);
    return Status::OK();
  }

  void Fire(WatchEventType type, const std::string& path) {
    auto fire_all = [&](std::map<std::string, std::vector<WatchCallback>>& m, WatchEventType t) {
      auto it = m.find(path);
      if (it == m.end()) return;
      std::vector<WatchCallback> cbs = std::move(it->second);
      m.erase(it);
      for (auto& cb : cbs) ToLoop([cb = std::move(cb), t, path] { cb(WatchEvent{t, path}); });
    };
    switch (type) {
      case WatchEventType::kCreated:
      case WatchEventType::kDataChanged:
        fire_all(data_watches_, type);
        break;
      case WatchEventType::kDeleted:
        fire_all(data_watches_, type);
        fire_all(child_watches_, type);
        break;
      case WatchEventType::kChildrenChanged:
        fire_all(child_watches_, type);
        break;
      default:
        break;
    }
  }

  static Stat StatOf(const Node& n) {
    Stat s;
    s.version = n.rec.version();
    s.cversion = n.rec.cversion();
    s.num_children = static_cast<int32_t>(n.children.size());
    s.ephemeral_owner = n.rec.ephemeral_owner();
    s.ctime_ms = n.rec.ctime_ms();
    s.mtime_ms = n.rec.mtime_ms();
    s.czxid = n.rec.czxid();
    s.mzxid = n.rec.mzxid();
    return s;
  }

  Status Load() {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string key = it->key().ToString();
      if (key == kZxidKey) {
        next_zxid_ = std::strtoll(it->value().ToString().c_str(), nullptr, 10);
        continue;
      }
      Node n;
      if (key.empty() || key[0] != '/' || !n.rec.ParseFromString(it->value().ToString())) {
        return Err(MetaErrc::kCorruptRecord,
                   "embedded metadata store " + options_.dir + ": node " + key + " does not parse");
      }
      nodes_.emplace(std::move(key), std::move(n));
    }
    if (!it->status().ok()) return Err(MetaErrc::kIoError, "metadata store read: " + it->status().ToString());
    if (nodes_.find("/") == nodes_.end()) {
      Node root;
      rocksdb::Status s = db_->Put(wopts_, "/", root.rec.SerializeAsString());
      if (!s.ok()) return Err(MetaErrc::kIoError, "metadata store write: " + s.ToString());
      nodes_.emplace("/", std::move(root));
    }
    for (auto& [p, n] : nodes_) {
      if (p == "/") continue;
      auto parent = nodes_.find(ParentPath(p));
      if (parent == nodes_.end()) {
        return Err(MetaErrc::kCorruptRecord,
                   "embedded metadata store " + options_.dir + ": node " + p + " has no parent");
      }
      parent->second.children.insert(BaseName(p));
    }
    // Ephemeral nodes of a previous process: its session is over.
    return DropEphemerals([](const Node&) { return true; });
  }

  void Run() {
    pthread_setname_np(pthread_self(), "meta-embedded");
    while (true) {
      std::deque<std::function<void()>> batch;
      {
        MutexLock l(&mu_);
        while (tasks_.empty() && !stop_) cv_.Wait(&mu_);
        if (tasks_.empty() && stop_) return;
        batch.swap(tasks_);
      }
      for (auto& t : batch) t();
    }
  }

  EmbeddedStore* const owner_;
  net::EventLoop* const loop_;
  const EmbeddedStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions wopts_;
  int64_t session_id_ = 0;
  std::string session_guid_;
  std::thread thread_;

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> tasks_ DLOG_GUARDED_BY(mu_);
  bool stop_ DLOG_GUARDED_BY(mu_) = false;

  // Worker thread only (and Load, before the worker starts).
  std::unordered_map<std::string, Node> nodes_;
  int64_t next_zxid_ = 0;  // the last zxid used
  std::map<std::string, std::vector<WatchCallback>> data_watches_;
  std::map<std::string, std::vector<WatchCallback>> child_watches_;
  bool closed_ = false;
};

Result<std::unique_ptr<EmbeddedStore>> EmbeddedStore::Open(const EmbeddedStoreOptions& options, net::EventLoop* loop) {
  DLOG_CHECK(!loop->InLoopThread()) << "EmbeddedStore::Open on its loop";
  std::unique_ptr<EmbeddedStore> store(new EmbeddedStore(loop, nullptr));
  store->impl_ = std::make_unique<Impl>(store.get(), loop, options);
  Status st = store->impl_->OpenDb();
  if (!st.ok()) {
    store->impl_.reset();
    return st;
  }
  return store;
}

EmbeddedStore::EmbeddedStore(net::EventLoop* loop, std::unique_ptr<Impl> impl)
    : MetadataStore(loop), impl_(std::move(impl)) {}

EmbeddedStore::~EmbeddedStore() {
  if (impl_ != nullptr) CloseSync();
  impl_.reset();  // joins the worker
}

void EmbeddedStore::Get(std::string path, Callback<NodeData> cb, WatchCallback watch) {
  impl_->Submit([this, path = std::move(path), cb = std::move(cb), watch = std::move(watch)]() mutable {
    impl_->DoGet(path, std::move(cb), std::move(watch));
  });
}

void EmbeddedStore::Exists(std::string path, Callback<std::optional<Stat>> cb, WatchCallback watch) {
  impl_->Submit([this, path = std::move(path), cb = std::move(cb), watch = std::move(watch)]() mutable {
    impl_->DoExists(path, std::move(cb), std::move(watch));
  });
}

void EmbeddedStore::GetChildren(std::string path, Callback<std::vector<std::string>> cb, WatchCallback watch) {
  impl_->Submit([this, path = std::move(path), cb = std::move(cb), watch = std::move(watch)]() mutable {
    impl_->DoChildren(path, std::move(cb), std::move(watch));
  });
}

void EmbeddedStore::Create(std::string path, std::string data, CreateMode mode, Callback<std::string> cb) {
  impl_->Submit([this, op = Op::Create(std::move(path), std::move(data), mode), cb = std::move(cb)]() mutable {
    auto r = impl_->DoTxn({op}, false);
    Result<std::string> out = r.ok() ? Result<std::string>(std::move(r->front().path)) : r.status();
    impl_->ToLoop([cb = std::move(cb), out = std::move(out)]() mutable { cb(std::move(out)); });
  });
}

void EmbeddedStore::Set(std::string path, std::string data, int32_t version, Callback<Stat> cb) {
  impl_->Submit([this, op = Op::Set(std::move(path), std::move(data), version), cb = std::move(cb)]() mutable {
    auto r = impl_->DoTxn({op}, false);
    Result<Stat> out = r.ok() ? Result<Stat>(r->front().stat) : r.status();
    impl_->ToLoop([cb = std::move(cb), out = std::move(out)]() mutable { cb(std::move(out)); });
  });
}

void EmbeddedStore::Delete(std::string path, int32_t version, StatusCallback cb) {
  impl_->Submit([this, op = Op::Delete(std::move(path), version), cb = std::move(cb)]() mutable {
    auto r = impl_->DoTxn({op}, false);
    Status st = r.status();
    impl_->ToLoop([cb = std::move(cb), st = std::move(st)]() mutable { cb(std::move(st)); });
  });
}

void EmbeddedStore::Multi(std::vector<Op> ops, Callback<std::vector<OpResult>> cb) {
  impl_->Submit([this, ops = std::move(ops), cb = std::move(cb)]() mutable {
    auto r = impl_->DoTxn(ops, true);
    impl_->ToLoop([cb = std::move(cb), r = std::move(r)]() mutable { cb(std::move(r)); });
  });
}

int64_t EmbeddedStore::SessionId() const { return impl_->session_id(); }
std::string EmbeddedStore::SessionGuid() const { return impl_->session_guid(); }
// In-process: the store is always in contact.
int64_t EmbeddedStore::LastContactNanos() const { return MonoNanos(); }
std::chrono::milliseconds EmbeddedStore::SessionTimeout() const { return impl_->options().session_timeout; }

void EmbeddedStore::Close(std::function<void()> done) {
  impl_->Submit([this, done = std::move(done)]() mutable { impl_->DoClose(std::move(done)); });
}

}  // namespace dlog::metadata
