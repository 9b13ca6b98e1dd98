#include "metadata/zk_store.h"

#include <pthread.h>
#include <zookeeper/proto.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "common/check.h"
#include "common/clock.h"
#include "common/failpoint.h"
#include "common/logging.h"
#include "net/event_loop.h"

namespace dlog::metadata {

namespace {

Status Err(MetaErrc c, std::string msg) { return Status::Error(c, std::move(msg)); }

// A ZooKeeper return code as a status, with `what` ("get /a") in the message.
Status FromZk(int rc, const std::string& what) {
  std::string msg = what + ": " + zerror(rc);
  switch (rc) {
    case ZOK:
      return Status::OK();
    case ZNONODE:
      return Err(MetaErrc::kNoNode, msg);
    case ZNODEEXISTS:
      return Err(MetaErrc::kNodeExists, msg);
    case ZBADVERSION:
      return Err(MetaErrc::kBadVersion, msg);
    case ZNOTEMPTY:
      return Err(MetaErrc::kNotEmpty, msg);
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZTHROTTLEDOP:
      return Err(MetaErrc::kConnectionLoss, msg);
    case ZSESSIONEXPIRED:
    case ZINVALIDSTATE:
    case ZSESSIONMOVED:
    case ZAUTHFAILED:
      return Err(MetaErrc::kSessionExpired, msg);
    case ZCLOSING:
      return Err(MetaErrc::kClosed, msg);
    case ZBADARGUMENTS:
    case ZNOCHILDRENFOREPHEMERALS:
    case ZINVALIDACL:
      return Err(MetaErrc::kInvalidArgument, msg);
    default:
      return Err(MetaErrc::kIoError, msg);
  }
}

// True if the server answered (so the session was alive when we sent).
bool ServerAnswered(int rc) {
  switch (rc) {
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZCLOSING:
    case ZSESSIONEXPIRED:
    case ZINVALIDSTATE:
    case ZSYSTEMERROR:
    case ZMARSHALLINGERROR:
    case ZTHROTTLEDOP:
    case ZRUNTIMEINCONSISTENCY:
      return false;
    default:
      return true;
  }
}

bool LostConnection(int rc) { return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT; }

dlog::metadata::Stat ToStat(const struct ::Stat* s) {
  dlog::metadata::Stat o;
  if (s == nullptr) return o;
  o.version = s->version;
  o.cversion = s->cversion;
  o.num_children = s->numChildren;
  o.ephemeral_owner = s->ephemeralOwner;
  o.ctime_ms = s->ctime;
  o.mtime_ms = s->mtime;
  o.czxid = s->czxid;
  o.mzxid = s->mzxid;
  return o;
}

int ZkMode(CreateMode m) {
  switch (m) {
    case CreateMode::kPersistent:
      return ZOO_PERSISTENT;
    case CreateMode::kEphemeral:
      return ZOO_EPHEMERAL;
    case CreateMode::kPersistentSequential:
      return ZOO_PERSISTENT_SEQUENTIAL;
    case CreateMode::kEphemeralSequential:
      return ZOO_EPHEMERAL_SEQUENTIAL;
  }
  return ZOO_PERSISTENT;
}

void ZkLog(const char* message) { DLOG_WARN << "zookeeper: " << message; }

// A helper thread: runs tasks now or after a delay, in order of due time
// (tasks due at the same time in the order posted).
class HelperThread {
 public:
  void Start(const char* name) {
    thread_ = std::thread([this, name] {
      pthread_setname_np(pthread_self(), name);
      Run();
    });
  }
  // Drops tasks not run yet and joins.
  void Stop() {
    {
      MutexLock l(&mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    if (thread_.joinable()) thread_.join();
  }
  void Post(std::function<void()> fn) { PostAt(0, std::move(fn)); }
  void PostAfter(int64_t delay_nanos, std::function<void()> fn) { PostAt(MonoNanos() + delay_nanos, std::move(fn)); }

 private:
  void PostAt(int64_t at, std::function<void()> fn) {
    MutexLock l(&mu_);
    if (stop_) return;
    tasks_.emplace(at, std::move(fn));
    cv_.SignalAll();
  }
  void Run() {
    MutexLock l(&mu_);
    while (!stop_) {
      if (tasks_.empty()) {
        cv_.Wait(&mu_);
        continue;
      }
      int64_t now = MonoNanos();
      auto it = tasks_.begin();
      if (it->first > now) {
        cv_.WaitFor(&mu_, std::chrono::nanoseconds(it->first - now));
        continue;
      }
      std::function<void()> fn = std::move(it->second);
      tasks_.erase(it);
      mu_.unlock();
      fn();
      mu_.lock();
    }
  }

  std::thread thread_;
  Mutex mu_;
  CondVar cv_;
  std::multimap<int64_t, std::function<void()>> tasks_ DLOG_GUARDED_BY(mu_);
  bool stop_ DLOG_GUARDED_BY(mu_) = false;
};

}  // namespace

class ZkStore::Impl {
 public:
  Impl(ZkStore* owner, net::EventLoop* loop, ZkStoreOptions options)
      : owner_(owner), loop_(loop), options_(std::move(options)) {
    timeout_ms_.store(static_cast<int>(options_.session_timeout.count()));
  }

  // ---- kinds of calls and of requests ----
  enum class Kind { kGet, kExists, kChildren, kMutate, kMulti };
  enum class ReqKind {
    kGet,
    kExists,
    kChildren,
    kCreate,
    kSet,
    kDelete,
    kMulti,
    kHeartbeat,
    kProbeGet,
    kProbeChildren
  };

  // One call of the API, from its start to its callback (loop thread only).
  struct Pending {
    uint64_t id = 0;
    Kind kind = Kind::kGet;
    std::string path;  // reads
    WatchCallback watch;
    std::vector<Op> ops;  // kMutate (one op) and kMulti
    Callback<NodeData> get_cb;
    Callback<std::optional<Stat>> exists_cb;
    Callback<std::vector<std::string>> children_cb;
    Callback<std::vector<OpResult>> mutate_cb;  // kMutate and kMulti

    uint64_t attempt = 0;  // bumped by every send and every re-read round
    int resends = 0;
    int64_t deadline = 0;  // set at the first connection loss
    int64_t backoff_nanos = 0;
    int64_t session_at_send = 0;
    // Re-read state.
    int outstanding = 0;
    bool round_failed = false;
    std::map<std::string, std::optional<NodeData>> probed;            // path -> data (nullopt: absent)
    std::map<std::string, std::vector<std::string>> probed_children;  // parent -> children
  };

  // One request to ZooKeeper; owned by the completion (a shared_ptr in a heap holder).
  struct Req {
    Impl* impl = nullptr;
    ReqKind kind = ReqKind::kGet;
    uint64_t op_id = 0;
    uint64_t attempt = 0;
    uint64_t gen = 0;
    int64_t sent_nanos = 0;
    std::string path;
    // Buffers that must live until the completion (multi).
    std::vector<std::string> paths, datas;
    std::vector<std::vector<char>> path_bufs;
    std::vector<struct ::Stat> stats;
    std::vector<zoo_op_t> zops;
    std::vector<zoo_op_result_t> zres;
  };
  using ReqPtr = std::shared_ptr<Req>;

  struct Reply {
    int rc = ZOK;
    std::string data;
    Stat stat;
    std::vector<std::string> children;
    std::string path;
    std::vector<int> op_errs;
    std::vector<OpResult> op_results;
  };

  struct HandleCtx {
    Impl* impl;
    uint64_t gen;
  };

  // ---- lifecycle ----

  void Start() {
    helper_.Start("meta-zk");
    ScheduleHeartbeat();
    loop_->Post([this] { Connect(); });
  }

  // Blocks until the first session is up or the deadline passes.
  bool WaitConnected(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    MutexLock l(&mu_);
    // Connected, and a first request answered (so LastContactNanos() is set).
    while (!ever_connected_ || last_contact_.load() == 0) {
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      cv_.WaitFor(&mu_, deadline - now);
    }
    return true;
  }

  void StopHelper() { helper_.Stop(); }

  // Loop thread.
  void Connect() {
    if (closing_) return;
    uint64_t gen = ++gen_;
    auto* hc = new HandleCtx{this, gen};
    zhandle_t* zh = zookeeper_init(options_.connect.c_str(), &Impl::GlobalWatcher,
                                   static_cast<int>(options_.session_timeout.count()), nullptr, hc, 0);
    if (zh == nullptr) {
      delete hc;
      DLOG_WARN << "zookeeper_init(" << options_.connect << ") failed; retrying";
      helper_.PostAfter(200'000'000, [this] { loop_->Post([this] { Connect(); }); });
      return;
    }
    zoo_set_log_callback(zh, &ZkLog);
    zh_ = zh;
    hctx_ = hc;
  }

  // Loop thread.
  void CloseOnLoop(std::function<void()> done) {
    if (closed_) {
      done();
      return;
    }
    close_waiters_.push_back(std::move(done));
    if (closing_) return;
    closing_ = true;
    zhandle_t* zh = zh_;
    HandleCtx* hc = hctx_;
    zh_ = nullptr;
    hctx_ = nullptr;
    helper_.Post([this, zh, hc] {
      if (zh != nullptr) zookeeper_close(zh);  // completions get ZCLOSING, posted before FinishClose
      delete hc;
      loop_->Post([this] { FinishClose(); });
    });
  }

  void FinishClose() {
    std::vector<uint64_t> ids;
    for (auto& [id, p] : pending_) ids.push_back(id);
    for (uint64_t id : ids) Fail(id, Err(MetaErrc::kClosed, "metadata store closed"));
    FireAllWatches(WatchEventType::kClosed);
    closed_ = true;
    connected_ = false;
    owner_->NotifySession(SessionEvent{SessionState::kClosed, session_id_.load()});
    auto waiters = std::move(close_waiters_);
    for (auto& w : waiters) w();
  }

  // ---- starting calls (loop thread) ----

  void StartCall(std::unique_ptr<Pending> p) {
    if (closing_ || closed_) {
      uint64_t id = p->id = next_id_++;
      pending_.emplace(id, std::move(p));
      Fail(id, Err(MetaErrc::kClosed, "metadata store closed"));
      return;
    }
    Status st = Validate(*p);
    uint64_t id = p->id = next_id_++;
    Pending* raw = p.get();
    pending_.emplace(id, std::move(p));
    if (!st.ok()) {
      Fail(id, st);
      return;
    }
    Send(raw);
  }

  static Status Validate(const Pending& p) {
    if (p.kind != Kind::kMutate && p.kind != Kind::kMulti) return ValidatePath(p.path);
    for (size_t i = 0; i < p.ops.size(); ++i) {
      const Op& op = p.ops[i];
      Status st = ValidatePath(op.path);
      if (st.ok() && op.data.size() > kMaxDataSize) {
        st = Err(MetaErrc::kInvalidArgument, op.path + ": data of " + std::to_string(op.data.size()) +
                                                 " bytes exceeds " + std::to_string(kMaxDataSize));
      }
      if (st.ok() && op.type == Op::Type::kDelete && op.path == "/") {
        st = Err(MetaErrc::kInvalidArgument, "cannot delete /");
      }
      if (!st.ok()) {
        if (p.kind == Kind::kMutate) return st;
        return Status::Error(static_cast<MetaErrc>(st.code()),
                             "multi op #" + std::to_string(i) + " (" + op.Describe() + "): " + st.message());
      }
    }
    return Status::OK();
  }

  // Sends the call (again).
  void Send(Pending* p) {
    if (zh_ == nullptr) {
      Fail(p->id, Err(MetaErrc::kClosed, "metadata store closed"));
      return;
    }
    ReqPtr req = NewReq(p);
    p->session_at_send = session_id_.load();
    if ((p->kind == Kind::kMutate || p->kind == Kind::kMulti) && DLOG_FAILPOINT("metadata.zk.drop_request")) {
      Reply r;  // never sent, but looks like a connection loss
      r.rc = ZCONNECTIONLOSS;
      loop_->Post([this, req, r = std::move(r)]() mutable { OnReply(req, std::move(r)); });
      return;
    }
    int rc = ZOK;
    auto* holder = new ReqPtr(req);
    switch (p->kind) {
      case Kind::kGet:
        req->kind = ReqKind::kGet;
        rc = zoo_aget(zh_, p->path.c_str(), p->watch ? 1 : 0, &Impl::DataDone, holder);
        break;
      case Kind::kExists:
        req->kind = ReqKind::kExists;
        rc = zoo_aexists(zh_, p->path.c_str(), p->watch ? 1 : 0, &Impl::StatDone, holder);
        break;
      case Kind::kChildren:
        req->kind = ReqKind::kChildren;
        rc = zoo_aget_children(zh_, p->path.c_str(), p->watch ? 1 : 0, &Impl::ChildrenDone, holder);
        break;
      case Kind::kMutate: {
        const Op& op = p->ops[0];
        switch (op.type) {
          case Op::Type::kCreate:
            req->kind = ReqKind::kCreate;
            rc = zoo_acreate(zh_, op.path.c_str(), op.data.data(), static_cast<int>(op.data.size()),
                             &ZOO_OPEN_ACL_UNSAFE, ZkMode(op.mode), &Impl::StringDone, holder);
            break;
          case Op::Type::kSet:
            req->kind = ReqKind::kSet;
            rc = zoo_aset(zh_, op.path.c_str(), op.data.data(), static_cast<int>(op.data.size()), op.version,
                          &Impl::StatDone, holder);
            break;
          case Op::Type::kDelete:
            req->kind = ReqKind::kDelete;
            rc = zoo_adelete(zh_, op.path.c_str(), op.version, &Impl::VoidDone, holder);
            break;
          case Op::Type::kCheck:
            DLOG_CHECK(false) << "check is a multi op only";
        }
        break;
      }
      case Kind::kMulti:
        req->kind = ReqKind::kMulti;
        BuildMulti(req.get(), p->ops);
        rc = zoo_amulti(zh_, static_cast<int>(req->zops.size()), req->zops.data(), req->zres.data(), &Impl::VoidDone,
                        holder);
        break;
    }
    if (rc != ZOK) {
      // Not sent: no completion will come.
      delete holder;
      Reply r;
      r.rc = rc;
      loop_->Post([this, req, r = std::move(r)]() mutable { OnReply(req, std::move(r)); });
    }
  }

  ReqPtr NewReq(Pending* p) {
    auto req = std::make_shared<Req>();
    req->impl = this;
    req->op_id = p->id;
    req->attempt = ++p->attempt;
    req->gen = gen_;
    req->sent_nanos = MonoNanos();
    return req;
  }

  static void BuildMulti(Req* req, const std::vector<Op>& ops) {
    size_t n = ops.size();
    req->paths.resize(n);
    req->datas.resize(n);
    req->path_bufs.resize(n);
    req->stats.resize(n);
    req->zops.resize(n);
    req->zres.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const Op& op = ops[i];
      req->paths[i] = op.path;
      req->datas[i] = op.data;
      const char* path = req->paths[i].c_str();
      switch (op.type) {
        case Op::Type::kCheck:
          zoo_check_op_init(&req->zops[i], path, op.version);
          break;
        case Op::Type::kCreate:
          req->path_bufs[i].assign(op.path.size() + 32, '\0');
          zoo_create_op_init(&req->zops[i], path, req->datas[i].data(), static_cast<int>(req->datas[i].size()),
                             &ZOO_OPEN_ACL_UNSAFE, ZkMode(op.mode), req->path_bufs[i].data(),
                             static_cast<int>(req->path_bufs[i].size()));
          break;
        case Op::Type::kSet:
          zoo_set_op_init(&req->zops[i], path, req->datas[i].data(), static_cast<int>(req->datas[i].size()), op.version,
                          &req->stats[i]);
          break;
        case Op::Type::kDelete:
          zoo_delete_op_init(&req->zops[i], path, op.version);
          break;
      }
    }
  }

  // ---- completions (ZooKeeper's threads): copy, then post ----

  static void Deliver(const void* data, Reply r) {
    auto* holder = static_cast<ReqPtr*>(const_cast<void*>(data));
    ReqPtr req = std::move(*holder);
    delete holder;
    Impl* impl = req->impl;
    bool mutating = req->kind == ReqKind::kCreate || req->kind == ReqKind::kSet || req->kind == ReqKind::kDelete ||
                    req->kind == ReqKind::kMulti;
    if (mutating && r.rc == ZOK && DLOG_FAILPOINT("metadata.zk.lose_reply")) {
      r.rc = ZCONNECTIONLOSS;  // applied, but we pretend the reply was lost
    } else if (ServerAnswered(r.rc)) {
      int64_t prev = impl->last_contact_.load();
      while (prev < req->sent_nanos && !impl->last_contact_.compare_exchange_weak(prev, req->sent_nanos)) {
      }
    }
    impl->loop_->Post([impl, req, r = std::move(r)]() mutable { impl->OnReply(req, std::move(r)); });
  }

  static void DataDone(int rc, const char* value, int value_len, const struct ::Stat* stat, const void* data) {
    Reply r;
    r.rc = rc;
    if (rc == ZOK) {
      if (value != nullptr && value_len > 0) r.data.assign(value, static_cast<size_t>(value_len));
      r.stat = ToStat(stat);
    }
    Deliver(data, std::move(r));
  }

  static void StatDone(int rc, const struct ::Stat* stat, const void* data) {
    Reply r;
    r.rc = rc;
    if (rc == ZOK) r.stat = ToStat(stat);
    Deliver(data, std::move(r));
  }

  static void ChildrenDone(int rc, const struct String_vector* strings, const void* data) {
    Reply r;
    r.rc = rc;
    if (rc == ZOK && strings != nullptr) {
      for (int i = 0; i < strings->count; ++i) r.children.emplace_back(strings->data[i]);
      std::sort(r.children.begin(), r.children.end());
    }
    Deliver(data, std::move(r));
  }

  static void StringDone(int rc, const char* value, const void* data) {
    Reply r;
    r.rc = rc;
    if (rc == ZOK && value != nullptr) r.path = value;
    Deliver(data, std::move(r));
  }

  static void VoidDone(int rc, const void* data) {
    Reply r;
    r.rc = rc;
    const auto* holder = static_cast<const ReqPtr*>(data);
    Req* req = holder->get();
    if (req->kind == ReqKind::kMulti) {
      for (size_t i = 0; i < req->zres.size(); ++i) {
        r.op_errs.push_back(req->zres[i].err);
        OpResult o;
        if (rc == ZOK) {
          if (req->zops[i].type == ZOO_CREATE_OP && req->zres[i].value != nullptr) o.path = req->zres[i].value;
          if (req->zops[i].type == ZOO_SETDATA_OP) o.stat = ToStat(&req->stats[i]);
        }
        r.op_results.push_back(std::move(o));
      }
    }
    Deliver(data, std::move(r));
  }

  static void GlobalWatcher(zhandle_t* zh, int type, int state, const char* path, void* ctx) {
    auto* hc = static_cast<HandleCtx*>(ctx);
    Impl* impl = hc->impl;
    uint64_t gen = hc->gen;
    std::string p = path != nullptr ? path : "";
    int64_t sid = 0;
    int timeout = 0;
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
      const clientid_t* cid = zoo_client_id(zh);
      sid = cid != nullptr ? cid->client_id : 0;
      timeout = zoo_recv_timeout(zh);
    }
    impl->loop_->Post([impl, gen, type, state, p = std::move(p), sid, timeout] {
      impl->OnWatcher(gen, type, state, p, sid, timeout);
    });
  }

  // ---- replies (loop thread) ----

  void OnReply(const ReqPtr& req, Reply r) {
    if (req->kind == ReqKind::kHeartbeat) {
      heartbeat_in_flight_ = false;
      MutexLock l(&mu_);
      cv_.SignalAll();  // WaitConnected
      return;
    }
    auto it = pending_.find(req->op_id);
    if (it == pending_.end()) return;
    Pending* p = it->second.get();
    if (req->attempt != p->attempt) return;  // an answer to an earlier send or round
    // The old handle of an expired session is closed with ZCLOSING: that is expiry, not Close().
    if (req->gen != gen_ && (r.rc == ZCLOSING || r.rc == ZINVALIDSTATE)) r.rc = ZSESSIONEXPIRED;
    if (r.rc == ZCLOSING && !closing_) r.rc = ZSESSIONEXPIRED;

    if (req->kind == ReqKind::kProbeGet || req->kind == ReqKind::kProbeChildren) {
      OnProbe(p, req, std::move(r));
      return;
    }
    if (r.rc == ZTHROTTLEDOP) {  // not executed: send again after a pause
      RetryLater(p, [this](Pending* q) { Send(q); });
      return;
    }
    switch (p->kind) {
      case Kind::kGet:
      case Kind::kExists:
      case Kind::kChildren:
        if (LostConnection(r.rc)) {
          RetryLater(p, [this](Pending* q) { Send(q); });
          return;
        }
        FinishRead(p, std::move(r));
        return;
      case Kind::kMutate:
      case Kind::kMulti:
        if (LostConnection(r.rc)) {
          DLOG_INFO << "metadata: connection lost during " << DescribeCall(*p) << "; re-reading to decide";
          RetryLater(p, [this](Pending* q) { StartRound(q); });
          return;
        }
        FinishMutation(p, std::move(r));
        return;
    }
  }

  void FinishRead(Pending* p, Reply r) {
    uint64_t id = p->id;
    if (p->kind == Kind::kGet) {
      if (r.rc == ZOK) {
        if (p->watch) data_watches_[p->path].push_back(std::move(p->watch));
        Complete(id, [cb = std::move(p->get_cb), r = std::move(r)]() mutable {
          cb(NodeData{std::move(r.data), r.stat});
        });
      } else {
        Fail(id, FromZk(r.rc, "get " + p->path));
      }
    } else if (p->kind == Kind::kExists) {
      if (r.rc == ZOK || r.rc == ZNONODE) {
        if (p->watch) data_watches_[p->path].push_back(std::move(p->watch));
        std::optional<Stat> s;
        if (r.rc == ZOK) s = r.stat;
        Complete(id, [cb = std::move(p->exists_cb), s] { cb(s); });
      } else {
        Fail(id, FromZk(r.rc, "exists " + p->path));
      }
    } else {
      if (r.rc == ZOK) {
        if (p->watch) child_watches_[p->path].push_back(std::move(p->watch));
        Complete(id, [cb = std::move(p->children_cb), c = std::move(r.children)]() mutable { cb(std::move(c)); });
      } else {
        Fail(id, FromZk(r.rc, "children " + p->path));
      }
    }
  }

  void FinishMutation(Pending* p, Reply r) {
    uint64_t id = p->id;
    if (r.rc == ZOK) {
      std::vector<OpResult> results;
      if (p->kind == Kind::kMulti) {
        results = std::move(r.op_results);
      } else {
        OpResult o;
        o.path = std::move(r.path);
        o.stat = r.stat;
        results.push_back(std::move(o));
      }
      Complete(id, [cb = std::move(p->mutate_cb), res = std::move(results)]() mutable { cb(std::move(res)); });
      return;
    }
    if (p->kind == Kind::kMulti) {
      // The first op with a real error is the one that failed.
      for (size_t i = 0; i < r.op_errs.size(); ++i) {
        int e = r.op_errs[i];
        if (e != ZOK && e != ZRUNTIMEINCONSISTENCY) {
          Status st = FromZk(e, p->ops[i].Describe());
          Fail(id, Status::Error(static_cast<MetaErrc>(st.code()),
                                 "multi op #" + std::to_string(i) + " (" + p->ops[i].Describe() + "): " + zerror(e)));
          return;
        }
      }
      Fail(id, FromZk(r.rc, "multi"));
      return;
    }
    Fail(id, FromZk(r.rc, p->ops[0].Describe()));
  }

  // ---- re-read and compare (loop thread) ----

  // Runs `fn` after a back-off, unless the deadline has passed (then kConnectionLoss).
  void RetryLater(Pending* p, std::function<void(Pending*)> fn) {
    int64_t now = MonoNanos();
    if (p->deadline == 0) {
      int64_t t = options_.resolve_timeout.count() > 0 ? options_.resolve_timeout.count()
                                                       : 2 * static_cast<int64_t>(timeout_ms_.load());
      p->deadline = now + t * 1'000'000;
      p->backoff_nanos = 20'000'000;
    }
    if (now >= p->deadline) {
      Fail(p->id, Err(MetaErrc::kConnectionLoss,
                      DescribeCall(*p) + ": connection lost; outcome still unknown after re-reading"));
      return;
    }
    ++p->attempt;  // ignore anything still in flight for the previous attempt
    uint64_t id = p->id;
    int64_t delay = p->backoff_nanos;
    p->backoff_nanos = std::min<int64_t>(p->backoff_nanos * 2, 500'000'000);
    helper_.PostAfter(delay, [this, id, fn = std::move(fn)] {
      loop_->Post([this, id, fn] {
        auto it = pending_.find(id);
        if (it == pending_.end()) return;
        if (closing_) {
          Fail(id, Err(MetaErrc::kClosed, "metadata store closed"));
        } else if (zh_ == nullptr) {
          RetryLater(it->second.get(), fn);  // between sessions
        } else {
          fn(it->second.get());
        }
      });
    });
  }

  // A round: children of the parents of sequential creates, then every node
  // the call touched (and the sequential candidates), then a verdict.
  void StartRound(Pending* p) {
    ++p->attempt;
    p->probed.clear();
    p->probed_children.clear();
    p->round_failed = false;
    p->outstanding = 0;
    std::set<std::string> parents;
    for (const Op& op : p->ops) {
      if (op.type == Op::Type::kCreate && IsSequential(op.mode)) parents.insert(ParentPath(op.path));
    }
    if (parents.empty()) {
      ProbeNodes(p);
      return;
    }
    for (const std::string& parent : parents) {
      ReqPtr req = ProbeReq(p, ReqKind::kProbeChildren, parent);
      auto* holder = new ReqPtr(req);
      ++p->outstanding;
      int rc = zoo_aget_children(zh_, parent.c_str(), 0, &Impl::ChildrenDone, holder);
      if (rc != ZOK) {
        delete holder;
        Reply r;
        r.rc = rc;
        loop_->Post([this, req, r = std::move(r)]() mutable { OnReply(req, std::move(r)); });
      }
    }
  }

  ReqPtr ProbeReq(Pending* p, ReqKind kind, const std::string& path) {
    auto req = std::make_shared<Req>();
    req->impl = this;
    req->kind = kind;
    req->op_id = p->id;
    req->attempt = p->attempt;
    req->gen = gen_;
    req->sent_nanos = MonoNanos();
    req->path = path;
    return req;
  }

  std::vector<std::string> SequentialCandidates(const Pending& p, const Op& op) const {
    std::vector<std::string> out;
    std::string parent = ParentPath(op.path);
    std::string prefix = BaseName(op.path);
    auto it = p.probed_children.find(parent);
    if (it == p.probed_children.end()) return out;
    for (const std::string& name : it->second) {
      if (name.size() == prefix.size() + kSequenceDigits && name.compare(0, prefix.size(), prefix) == 0 &&
          SequenceOf(name) >= 0) {
        out.push_back(JoinPath(parent, name));
      }
    }
    return out;
  }

  void ProbeNodes(Pending* p) {
    std::set<std::string> paths;
    for (const Op& op : p->ops) {
      if (op.type == Op::Type::kCheck) continue;
      if (op.type == Op::Type::kCreate && IsSequential(op.mode)) {
        for (auto& c : SequentialCandidates(*p, op)) paths.insert(c);
      } else {
        paths.insert(op.path);
      }
    }
    if (paths.empty()) {
      Decide(p);
      return;
    }
    p->outstanding = static_cast<int>(paths.size());
    for (const std::string& path : paths) {
      ReqPtr req = ProbeReq(p, ReqKind::kProbeGet, path);
      auto* holder = new ReqPtr(req);
      int rc = zoo_aget(zh_, path.c_str(), 0, &Impl::DataDone, holder);
      if (rc != ZOK) {
        delete holder;
        Reply r;
        r.rc = rc;
        loop_->Post([this, req, r = std::move(r)]() mutable { OnReply(req, std::move(r)); });
      }
    }
  }

  void OnProbe(Pending* p, const ReqPtr& req, Reply r) {
    if (req->kind == ReqKind::kProbeChildren) {
      if (r.rc == ZOK) {
        p->probed_children[req->path] = std::move(r.children);
      } else if (r.rc == ZNONODE) {
        p->probed_children[req->path] = {};
      } else {
        p->round_failed = true;
      }
    } else {
      if (r.rc == ZOK) {
        p->probed[req->path] = NodeData{std::move(r.data), r.stat};
      } else if (r.rc == ZNONODE) {
        p->probed[req->path] = std::nullopt;
      } else {
        p->round_failed = true;
      }
    }
    if (--p->outstanding > 0) return;
    if (p->round_failed) {
      RetryLater(p, [this](Pending* q) { StartRound(q); });
      return;
    }
    if (req->kind == ReqKind::kProbeChildren) {
      ++p->attempt;
      ProbeNodes(p);
    } else {
      Decide(p);
    }
  }

  enum class Verdict { kApplied, kNotApplied, kConflict, kUnknown };
  struct OpVerdict {
    Verdict verdict = Verdict::kApplied;
    Status status;
    OpResult result;
  };

  OpVerdict Judge(const Pending& p, const Op& op) const {
    OpVerdict v;
    auto node = [&](const std::string& path) -> const std::optional<NodeData>* {
      auto it = p.probed.find(path);
      return it == p.probed.end() ? nullptr : &it->second;
    };
    auto ours = [&](const NodeData& d) {
      if (d.data != op.data) return false;
      if (IsEphemeral(op.mode)) return d.stat.ephemeral_owner == p.session_at_send;
      return d.stat.ephemeral_owner == 0;
    };
    switch (op.type) {
      case Op::Type::kCheck:
        return v;
      case Op::Type::kCreate: {
        if (IsSequential(op.mode)) {
          std::vector<std::string> mine;
          for (const std::string& c : SequentialCandidates(p, op)) {
            const auto* n = node(c);
            if (n != nullptr && n->has_value() && ours(**n)) mine.push_back(c);
          }
          if (mine.size() == 1) {
            v.result.path = mine[0];
          } else if (mine.empty()) {
            v.verdict = Verdict::kNotApplied;
          } else {
            v.verdict = Verdict::kUnknown;
            v.status = Err(MetaErrc::kConnectionLoss, op.Describe() + ": " + std::to_string(mine.size()) +
                                                          " sequential nodes match; make the prefix unique");
          }
          return v;
        }
        const auto* n = node(op.path);
        if (n == nullptr || !n->has_value()) {
          v.verdict = Verdict::kNotApplied;
        } else if (ours(**n)) {
          v.result.path = op.path;
        } else {
          v.verdict = Verdict::kConflict;
          v.status = Err(MetaErrc::kNodeExists, op.path + " (found after a connection loss, not ours)");
        }
        return v;
      }
      case Op::Type::kSet: {
        const auto* n = node(op.path);
        if (n == nullptr || !n->has_value()) {
          v.verdict = Verdict::kConflict;
          v.status = Err(MetaErrc::kNoNode, op.path + " (gone after a connection loss)");
          return v;
        }
        const NodeData& d = **n;
        if (op.version == kAnyVersion) {
          if (d.data == op.data) {
            v.result.stat = d.stat;
          } else {
            v.verdict = Verdict::kNotApplied;
          }
        } else if (d.stat.version == op.version + 1 && d.data == op.data) {
          v.result.stat = d.stat;
        } else if (d.stat.version == op.version) {
          v.verdict = Verdict::kNotApplied;
        } else {
          v.verdict = Verdict::kConflict;
          v.status = Err(MetaErrc::kBadVersion, op.path + ": version " + std::to_string(d.stat.version) +
                                                    " after a connection loss, expected " + std::to_string(op.version) +
                                                    " (our write may have been applied before a later one)");
        }
        return v;
      }
      case Op::Type::kDelete: {
        const auto* n = node(op.path);
        if (n == nullptr || !n->has_value()) return v;  // gone: done
        if (op.version == kAnyVersion || (**n).stat.version == op.version) {
          v.verdict = Verdict::kNotApplied;
        } else {
          v.verdict = Verdict::kConflict;
          v.status = Err(MetaErrc::kBadVersion, op.path + ": version " + std::to_string((**n).stat.version) +
                                                    " after a connection loss, expected " + std::to_string(op.version));
        }
        return v;
      }
    }
    return v;
  }

  void Decide(Pending* p) {
    bool ephemeral = false;
    for (const Op& op : p->ops) ephemeral = ephemeral || (op.type == Op::Type::kCreate && IsEphemeral(op.mode));
    if (ephemeral && session_id_.load() != p->session_at_send) {
      Fail(p->id,
           Err(MetaErrc::kSessionExpired, DescribeCall(*p) + ": the session expired before the outcome was known"));
      return;
    }
    std::vector<OpVerdict> verdicts;
    bool all_applied = true;
    for (const Op& op : p->ops) {
      verdicts.push_back(Judge(*p, op));
      all_applied = all_applied && verdicts.back().verdict == Verdict::kApplied;
    }
    if (all_applied) {
      DLOG_INFO << "metadata: " << DescribeCall(*p) << " was applied before the connection loss";
      std::vector<OpResult> results;
      for (auto& v : verdicts) results.push_back(std::move(v.result));
      Complete(p->id, [cb = std::move(p->mutate_cb), res = std::move(results)]() mutable { cb(std::move(res)); });
      return;
    }
    for (auto& v : verdicts) {
      if (v.verdict == Verdict::kUnknown) {
        Fail(p->id, v.status);
        return;
      }
    }
    if (p->kind == Kind::kMutate && verdicts[0].verdict == Verdict::kConflict) {
      Fail(p->id, verdicts[0].status);
      return;
    }
    // Not applied (or, for a multi, not wholly visible): the atomic call is
    // sent again, and its own version checks decide.
    if (p->resends >= options_.max_resends) {
      Fail(p->id, Err(MetaErrc::kConnectionLoss,
                      DescribeCall(*p) + ": gave up after " + std::to_string(p->resends) + " resends"));
      return;
    }
    ++p->resends;
    DLOG_INFO << "metadata: " << DescribeCall(*p) << " was not applied; sending it again";
    Send(p);
  }

  static std::string DescribeCall(const Pending& p) {
    switch (p.kind) {
      case Kind::kGet:
        return "get " + p.path;
      case Kind::kExists:
        return "exists " + p.path;
      case Kind::kChildren:
        return "children " + p.path;
      case Kind::kMutate:
        return p.ops[0].Describe();
      case Kind::kMulti:
        return "multi of " + std::to_string(p.ops.size()) + " ops";
    }
    return "?";
  }

  // ---- finishing (loop thread) ----

  // Removes the call, then runs `invoke` (its callback).
  void Complete(uint64_t id, std::function<void()> invoke) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    std::unique_ptr<Pending> keep = std::move(it->second);
    pending_.erase(it);
    invoke();
  }

  void Fail(uint64_t id, Status st) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    std::unique_ptr<Pending> p = std::move(it->second);
    pending_.erase(it);
    switch (p->kind) {
      case Kind::kGet:
        p->get_cb(st);
        break;
      case Kind::kExists:
        p->exists_cb(st);
        break;
      case Kind::kChildren:
        p->children_cb(st);
        break;
      case Kind::kMutate:
      case Kind::kMulti:
        p->mutate_cb(st);
        break;
    }
  }

  // ---- watches and sessions (loop thread) ----

  void OnWatcher(uint64_t gen, int type, int state, const std::string& path, int64_t sid, int timeout) {
    if (gen != gen_ || closing_ || closed_) return;  // an old handle, or closing
    if (type != ZOO_SESSION_EVENT) {
      if (type == ZOO_CREATED_EVENT) {
        FireWatches(&data_watches_, path, WatchEventType::kCreated);
      } else if (type == ZOO_DELETED_EVENT) {
        FireWatches(&data_watches_, path, WatchEventType::kDeleted);
        FireWatches(&child_watches_, path, WatchEventType::kDeleted);
      } else if (type == ZOO_CHANGED_EVENT) {
        FireWatches(&data_watches_, path, WatchEventType::kDataChanged);
      } else if (type == ZOO_CHILD_EVENT) {
        FireWatches(&child_watches_, path, WatchEventType::kChildrenChanged);
      }
      return;
    }
    if (state == ZOO_CONNECTED_STATE) {
      if (timeout > 0) timeout_ms_.store(timeout);
      if (connected_) return;
      connected_ = true;
      if (sid != session_id_.load()) {
        session_id_.store(sid);
        char guid[32];
        std::snprintf(guid, sizeof(guid), "%016" PRIx64, static_cast<uint64_t>(sid));
        MutexLock l(&mu_);
        session_guid_ = guid;
      }
      DLOG_INFO << "metadata: connected to ZooKeeper " << options_.connect << ", session 0x" << std::hex << sid
                << std::dec << ", timeout " << timeout << " ms";
      SendHeartbeat();
      {
        MutexLock l(&mu_);
        ever_connected_ = true;
        cv_.SignalAll();
      }
      owner_->NotifySession(SessionEvent{SessionState::kConnected, sid});
    } else if (state == ZOO_CONNECTING_STATE || state == ZOO_ASSOCIATING_STATE) {
      if (!connected_) return;
      connected_ = false;
      DLOG_WARN << "metadata: lost connection to ZooKeeper " << options_.connect << " (session 0x" << std::hex
                << session_id_.load() << std::dec << " may live on)";
      owner_->NotifySession(SessionEvent{SessionState::kDisconnected, session_id_.load()});
    } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
      OnExpired();
    }
  }

  void OnExpired() {
    int64_t old_sid = session_id_.load();
    DLOG_WARN << "metadata: ZooKeeper session 0x" << std::hex << old_sid << std::dec
              << " expired; owners must stop; making a new session";
    connected_ = false;
    // Replace the handle first: callbacks run below may issue new calls, which
    // must go to the new session's handle, never to the expired one (a call
    // queued on a handle that is being closed in the expired state was seen
    // to never complete, leaking its request).
    zhandle_t* zh = zh_;
    HandleCtx* hc = hctx_;
    zh_ = nullptr;
    hctx_ = nullptr;
    helper_.Post([zh, hc] {
      if (zh != nullptr) zookeeper_close(zh);
      delete hc;
    });
    Connect();
    // Calls in flight on the old session fail with kSessionExpired, except
    // re-reads, which go on with the new session.
    std::vector<uint64_t> ids;
    for (auto& [id, p] : pending_) {
      if (p->deadline == 0) ids.push_back(id);
    }
    for (uint64_t id : ids) {
      auto it = pending_.find(id);
      if (it != pending_.end()) {
        Fail(id, Err(MetaErrc::kSessionExpired, DescribeCall(*it->second) + ": session expired"));
      }
    }
    FireAllWatches(WatchEventType::kSessionExpired);
    owner_->NotifySession(SessionEvent{SessionState::kExpired, old_sid});
  }

  void FireWatches(std::map<std::string, std::vector<WatchCallback>>* m, const std::string& path, WatchEventType type) {
    auto it = m->find(path);
    if (it == m->end()) return;
    std::vector<WatchCallback> cbs = std::move(it->second);
    m->erase(it);
    for (auto& cb : cbs) cb(WatchEvent{type, path});
  }

  void FireAllWatches(WatchEventType type) {
    auto data = std::move(data_watches_);
    auto child = std::move(child_watches_);
    data_watches_.clear();
    child_watches_.clear();
    for (auto* m : {&data, &child}) {
      for (auto& [path, cbs] : *m) {
        for (auto& cb : cbs) cb(WatchEvent{type, path});
      }
    }
  }

  void ScheduleHeartbeat() {
    int64_t interval = std::max<int64_t>(timeout_ms_.load() / 4, 20) * 1'000'000;
    helper_.PostAfter(interval, [this] {
      loop_->Post([this] { SendHeartbeat(); });
      ScheduleHeartbeat();
    });
  }

  void SendHeartbeat() {
    if (zh_ == nullptr || !connected_ || heartbeat_in_flight_) return;
    auto req = std::make_shared<Req>();
    req->impl = this;
    req->kind = ReqKind::kHeartbeat;
    req->gen = gen_;
    req->sent_nanos = MonoNanos();
    auto* holder = new ReqPtr(req);
    if (zoo_aexists(zh_, "/", 0, &Impl::StatDone, holder) == ZOK) {
      heartbeat_in_flight_ = true;
    } else {
      delete holder;
    }
  }

  std::pair<int64_t, std::string> Credentials() {
    std::pair<int64_t, std::string> out;
    if (zh_ == nullptr) return out;
    const clientid_t* cid = zoo_client_id(zh_);
    out.first = cid->client_id;
    out.second.assign(cid->passwd, sizeof(cid->passwd));
    return out;
  }

  std::string Guid() {
    MutexLock l(&mu_);
    return session_guid_;
  }

  ZkStore* const owner_;
  net::EventLoop* const loop_;
  const ZkStoreOptions options_;
  HelperThread helper_;

  std::atomic<int64_t> session_id_{0};
  std::atomic<int64_t> last_contact_{0};
  std::atomic<int> timeout_ms_{0};

  Mutex mu_;
  CondVar cv_;
  bool ever_connected_ DLOG_GUARDED_BY(mu_) = false;
  std::string session_guid_ DLOG_GUARDED_BY(mu_);

  // Loop thread only.
  zhandle_t* zh_ = nullptr;
  HandleCtx* hctx_ = nullptr;
  uint64_t gen_ = 0;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Pending>> pending_;
  std::map<std::string, std::vector<WatchCallback>> data_watches_;
  std::map<std::string, std::vector<WatchCallback>> child_watches_;
  bool connected_ = false;
  bool closing_ = false;
  bool closed_ = false;
  bool heartbeat_in_flight_ = false;
  std::vector<std::function<void()>> close_waiters_;
};

// ---- ZkStore ----

ZkStore::ZkStore(net::EventLoop* loop) : MetadataStore(loop) {}

Result<std::unique_ptr<ZkStore>> ZkStore::Open(const ZkStoreOptions& options, net::EventLoop* loop) {
  DLOG_CHECK(!loop->InLoopThread()) << "ZkStore::Open on its loop";
  static std::once_flag log_level_once;
  std::call_once(log_level_once, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_WARN); });
  std::unique_ptr<ZkStore> store(new ZkStore(loop));
  store->impl_ = std::make_unique<Impl>(store.get(), loop, options);
  store->impl_->Start();
  if (!store->impl_->WaitConnected(options.connect_timeout)) {
    store.reset();  // closes, stops the helper, drains the loop
    return Err(MetaErrc::kConnectionLoss, "no ZooKeeper session with " + options.connect + " within " +
                                              std::to_string(options.connect_timeout.count()) + " ms");
  }
  return store;
}

ZkStore::~ZkStore() {
  if (impl_ == nullptr) return;
  CloseSync();
  impl_->StopHelper();
  // Tasks the helper posted before it stopped may still be queued on the loop:
  // let them run (they find nothing pending) before the Impl goes.
  loop()->RunSync([] {});
  impl_.reset();
}

void ZkStore::Get(std::string path, Callback<NodeData> cb, WatchCallback watch) {
  auto p = std::make_shared<Impl::Pending>();
  p->kind = Impl::Kind::kGet;
  p->path = std::move(path);
  p->watch = std::move(watch);
  p->get_cb = std::move(cb);
  loop()->Post([impl = impl_.get(), p] { impl->StartCall(std::make_unique<Impl::Pending>(std::move(*p))); });
}

void ZkStore::Exists(std::string path, Callback<std::optional<Stat>> cb, WatchCallback watch) {
  auto p = std::make_shared<Impl::Pending>();
  p->kind = Impl::Kind::kExists;
  p->path = std::move(path);
  p->watch = std::move(watch);
  p->exists_cb = std::move(cb);
  loop()->Post([impl = impl_.get(), p] { impl->StartCall(std::make_unique<Impl::Pending>(std::move(*p))); });
}

void ZkStore::GetChildren(std::string path, Callback<std::vector<std::string>> cb, WatchCallback watch) {
  auto p = std::make_shared<Impl::Pending>();
  p->kind = Impl::Kind::kChildren;
  p->path = std::move(path);
  p->watch = std::move(watch);
  p->children_cb = std::move(cb);
  loop()->Post([impl = impl_.get(), p] { impl->StartCall(std::make_unique<Impl::Pending>(std::move(*p))); });
}

void ZkStore::Create(std::string path, std::string data, CreateMode mode, Callback<std::string> cb) {
  auto p = std::make_shared<Impl::Pending>();
  p->kind = Impl::Kind::kMutate;
  p->ops.push_back(Op::Create(std::move(path), std::move(data), mode));
  p->mutate_cb = [cb = std::move(cb)](Result<std::vector<OpResult>> r) {
    if (!r.ok()) return cb(r.status());
    cb(std::move(r->front().path));
  };
  loop()->Post([impl = impl_.get(), p] { impl->StartCall(std::make_unique<Impl::Pending>(std::move(*p))); });
}

void ZkStore::Set(std::string path, std::string data, int32_t version, Callback<Stat> cb) {
  auto p = std::make_shared<Impl::Pending>();
  p->kind = Impl::Kind::kMutate;
  p->ops.push_back(Op::Set(std::move(path), std::move(data), version));
  p->mutate_cb = [cb = std::move(cb)](Result<std::vector<OpResult>> r) {
    if (!r.ok()) return cb(r.status());
    cb(r->front().stat);
  };
  loop()->Post([impl = impl_.get(), p] { impl->StartCall(std::make_unique<Impl::Pending>(std::move(*p))); });
}

void ZkStore::Delete(std::string path, int32_t version, StatusCallback cb) {
  auto p = std::make_shared<Impl::Pending>();
  p->kind = Impl::Kind::kMutate;
  p->ops.push_back(Op::Delete(std::move(path), version));
  p->mutate_cb = [cb = std::move(cb)](Result<std::vector<OpResult>> r) { cb(r.status()); };
  loop()->Post([impl = impl_.get(), p] { impl->StartCall(std::make_unique<Impl::Pending>(std::move(*p))); });
}

void ZkStore::Multi(std::vector<Op> ops, Callback<std::vector<OpResult>> cb) {
  auto p = std::make_shared<Impl::Pending>();
  p->kind = Impl::Kind::kMulti;
  p->ops = std::move(ops);
  p->mutate_cb = std::move(cb);
  loop()->Post([impl = impl_.get(), p] {
    if (p->ops.empty()) {
      p->mutate_cb(std::vector<OpResult>{});
      return;
    }
    impl->StartCall(std::make_unique<Impl::Pending>(std::move(*p)));
  });
}

int64_t ZkStore::SessionId() const { return impl_->session_id_.load(); }
std::string ZkStore::SessionGuid() const { return impl_->Guid(); }
int64_t ZkStore::LastContactNanos() const { return impl_->last_contact_.load(); }
std::chrono::milliseconds ZkStore::SessionTimeout() const {
  return std::chrono::milliseconds(impl_->timeout_ms_.load());
}

void ZkStore::Close(std::function<void()> done) {
  loop()->Post([impl = impl_.get(), done = std::move(done)]() mutable { impl->CloseOnLoop(std::move(done)); });
}

std::pair<int64_t, std::string> ZkStore::SessionCredentials() {
  std::pair<int64_t, std::string> out;
  loop()->RunSync([&] { out = impl_->Credentials(); });
  return out;
}

Result<std::string> ParseZkUrl(const std::string& url) {
  const std::string scheme = "zk://";
  if (url.rfind(scheme, 0) != 0) {
    return Status::Error(MetaErrc::kInvalidArgument, "metadata URL '" + url + "' must start with zk://");
  }
  std::string rest = url.substr(scheme.size());
  std::string path;
  const size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    path = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  if (!path.empty() && path != "/dlog" && path != "/dlog/") {
    return Status::Error(
        MetaErrc::kInvalidArgument,
        "metadata URL '" + url + "': the tree lives under /dlog/<cluster id>; path '" + path + "' is not supported");
  }
  if (rest.empty()) return Status::Error(MetaErrc::kInvalidArgument, "metadata URL '" + url + "' names no host");
  return rest;
}

}  // namespace dlog::metadata
