// Broker: connections, commands, lookup and ownership, topic admin.
#include "broker/broker.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/logging.h"
#include "logstore/log/errors.h"
#include "metadata/records.h"

namespace dlog::broker {
namespace {

constexpr int32_t kProtocolVersion = proto::BROKER_PROTOCOL_V1;
constexpr int64_t kTickMs = 100;
constexpr uint32_t kMaxFlowPermits = 1u << 30;

// One thread running blocking library calls (topic admin), so the loop never
// blocks. Bounded: Submit refuses beyond `max_queue`.
class AdminThread {
 public:
  explicit AdminThread(size_t max_queue) : max_queue_(max_queue) {}
  ~AdminThread() { Stop(); }
  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool Submit(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_ || queue_.size() >= max_queue_) return false;
    queue_.push_back(std::move(fn));
    cv_.notify_one();
    return true;
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }
  const size_t max_queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

class Broker::Impl final : public BrokerCtx, public std::enable_shared_from_this<Broker::Impl> {
 public:
  Impl(net::EventLoop* l, log::LogClient* lc, CursorDb* db, BrokerOptions o, BrokerProbe* p) : admin_(o.admin_queue) {
    loop = l;
    logs = lc;
    cursor_db = db;
    opts = std::move(o);
    if (opts.broker_id.empty()) opts.broker_id = opts.advertise;
    probe = p;
  }

  // ---- BrokerCtx ----
  void Send(const net::ConnectionPtr& conn, const proto::BaseCommand& cmd, std::string_view payload) override {
    if (conn && !conn->closed()) conn->SendFrame(cmd, payload);
  }
  proto::BaseCommand& Out() override {
    out_.Clear();
    return out_;
  }
  bool LeaseOk() const override {
    metadata::MetadataStore* store = logs->store();
    const int64_t lease_ns = store->SessionTimeout().count() * 1'000'000 * 2 / 3;
    return MonoNanos() - store->LastContactNanos() < lease_ns;
  }
  void Forget(Partition* p) override {
    auto it = partitions_.find(p->name());
    if (it != partitions_.end() && it->second.get() == p) partitions_.erase(it);
  }
  void DetachProducer(const ProducerH& p) override {
    auto c = conns_.find(p.conn->id());
    if (c != conns_.end()) c->second->producers.erase(p.id);
  }
  void DetachConsumer(const ConsumerH& c) override {
    auto cs = conns_.find(c.conn->id());
    if (cs != conns_.end()) cs->second->consumers.erase(c.id);
  }

  void Start() {
    admin_.Start();
    loop->RunSync([this] {
      std::weak_ptr<Impl> w = weak_from_this();
      session_sub_ = logs->store()->SubscribeSession([w, l = loop](const metadata::SessionEvent& ev) {
        if (ev.state != metadata::SessionState::kExpired) return;
        l->Post([w] {
          if (auto self = w.lock()) self->OnSessionExpired();
        });
      });
      tick_timer_ = std::make_unique<segment::Timer>(loop);
      ScheduleTick();
    });
  }

  void Stop(int64_t timeout_ms) {
    if (stopped_) return;
    stopped_ = true;
    admin_.Stop();
    loop->RunSync([this] {
      stopping_ = true;
      tick_timer_.reset();
      std::vector<std::shared_ptr<Partition>> all;
      for (auto& [n, p] : partitions_) all.push_back(p);
      for (auto& p : all) p->Unload(Status::Error(CommonErrc::kUnavailable, "the broker is stopping"));
      conns_.clear();
    });
    // Let the writers close (their callbacks come back through the loop).
    const int64_t deadline = MonoMillis() + timeout_ms;
    while (MonoMillis() < deadline) {
      bool done = false;
      loop->RunSync([&] { done = closing == 0; });
      if (done) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // Whatever is still closing (a writer that could not close in time) is
    // emptied here, on the loop: its subscriptions, cursors and writer go, so
    // a late library callback that drops the last reference elsewhere frees
    // nothing tied to this loop.
    loop->RunSync([this] {
      for (auto& w : created_) {
        if (auto p = w.lock()) p->Shutdown();
      }
      created_.clear();
    });
    if (session_sub_ != 0) {
      const uint64_t id = session_sub_;
      session_sub_ = 0;
      logs->store()->loop()->RunSync([this, id] { logs->store()->UnsubscribeSession(id); });
    }
  }

  // ---- FrameHandler ----
  void OnOpen(const net::ConnectionPtr& conn) {
    auto cs = std::make_unique<ConnState>();
    cs->conn = conn;
    conns_[conn->id()] = std::move(cs);
    probe->connections.fetch_add(1, std::memory_order_relaxed);
    probe->connections_total.fetch_add(1, std::memory_order_relaxed);
  }

  void OnClose(const net::ConnectionPtr& conn) {
    auto it = conns_.find(conn->id());
    if (it == conns_.end()) return;
    std::unique_ptr<ConnState> cs = std::move(it->second);
    conns_.erase(it);
    probe->connections.fetch_sub(1, std::memory_order_relaxed);
    for (auto& [id, p] : cs->producers) {
      if (!p->closed) p->part->RemoveProducer(p.get());
    }
    for (auto& [id, c] : cs->consumers) {
      if (!c->closed) c->part->RemoveConsumer(c.get());
    }
  }

  void OnProtocolError(const net::ConnectionPtr& conn, const Status& error) {
    probe->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
    DLOG_WARN << "broker: closing connection from " << conn->peer() << ": " << error.ToString();
    SendError(conn, 0, proto::SERVER_BAD_REQUEST, error.ToString());
  }

  void OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) {
    if (!cmd_.ParseFromArray(header.data(), static_cast<int>(header.size()))) {
      return Violation(conn, "frame header is not a BaseCommand");
    }
    auto it = conns_.find(conn->id());
    if (it == conns_.end()) return;
    ConnState* cs = it->second.get();
    const auto kind = cmd_.command_case();
    if (kind != proto::BaseCommand::kSend && kind != proto::BaseCommand::kMessage && !payload.empty()) {
      return Violation(conn, "only Send carries a payload");
    }
    if (!cs->connected) {
      if (kind != proto::BaseCommand::kConnect) return Violation(conn, "the first command must be Connect");
      return OnConnect(cs, cmd_.connect());
    }
    switch (kind) {
      case proto::BaseCommand::kConnect:
        return Violation(conn, "Connect sent twice");
      case proto::BaseCommand::kPing:
        Out().mutable_pong();
        return Send(conn, out_, {});
      case proto::BaseCommand::kPong:
        return;
      case proto::BaseCommand::kLookup:
        return OnLookup(cs, cmd_.lookup());
      case proto::BaseCommand::kPartitionedMetadata:
        return OnPartitionedMetadata(cs, cmd_.partitioned_metadata());
      case proto::BaseCommand::kCreateTopic:
        return OnCreateTopic(cs, cmd_.create_topic());
      case proto::BaseCommand::kDeleteTopic:
        return OnDeleteTopic(cs, cmd_.delete_topic());
      case proto::BaseCommand::kListTopics:
        return OnListTopics(cs, cmd_.list_topics());
      case proto::BaseCommand::kTopicStats:
        return OnTopicStats(cs, cmd_.topic_stats());
      case proto::BaseCommand::kListSubscriptions:
        return OnListSubscriptions(cs, cmd_.list_subscriptions());
      case proto::BaseCommand::kResetCursor:
        return OnResetCursor(cs, cmd_.reset_cursor());
      case proto::BaseCommand::kDeleteSubscription:
        return OnDeleteSubscription(cs, cmd_.delete_subscription());
      case proto::BaseCommand::kProducer:
        return OnProducer(cs, cmd_.producer());
      case proto::BaseCommand::kSend:
        return OnSend(cs, cmd_.send(), std::move(payload));
      case proto::BaseCommand::kCloseProducer:
        return OnCloseProducer(cs, cmd_.close_producer());
      case proto::BaseCommand::kSubscribe:
        return OnSubscribe(cs, cmd_.subscribe());
      case proto::BaseCommand::kFlow:
        return OnFlow(cs, cmd_.flow());
      case proto::BaseCommand::kAck:
        return OnAck(cs, cmd_.ack());
      case proto::BaseCommand::kRedeliver:
        return OnRedeliver(cs, cmd_.redeliver());
      case proto::BaseCommand::kSeek:
        return OnSeek(cs, cmd_.seek());
      case proto::BaseCommand::kCloseConsumer:
        return OnCloseConsumer(cs, cmd_.close_consumer());
      case proto::BaseCommand::kUnsubscribe:
        return OnUnsubscribe(cs, cmd_.unsubscribe());
      case proto::BaseCommand::kGetLastMessageId:
        return OnGetLastMessageId(cs, cmd_.get_last_message_id());
      default:
        return Violation(conn, "command " + std::to_string(static_cast<int>(kind)) + " is not a client request");
    }
  }

 private:
  void Violation(const net::ConnectionPtr& conn, const std::string& what) {
    probe->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
    DLOG_WARN << "broker: protocol violation from " << conn->peer() << ": " << what << "; closing";
    SendError(conn, 0, proto::SERVER_BAD_REQUEST, what);
    conn->Close();
  }

  void SendError(const net::ConnectionPtr& conn, uint64_t request_id, proto::ServerError e, const std::string& msg) {
    proto::BaseCommand& out = Out();
    proto::Error* err = out.mutable_error();
    err->set_request_id(request_id);
    err->set_error(e);
    err->set_message(msg);
    Send(conn, out, {});
  }

  void SendSuccess(const net::ConnectionPtr& conn, uint64_t request_id) {
    Out().mutable_success()->set_request_id(request_id);
    Send(conn, out_, {});
  }

  void Reply(const net::ConnectionPtr& conn, uint64_t request_id, const Status& st) {
    if (st.ok()) return SendSuccess(conn, request_id);
    SendError(conn, request_id, ErrorOf(st), st.ToString());
  }

  static proto::ServerError ErrorOf(const Status& st) {
    if (st.domain() == ErrorDomain::kCommon) {
      switch (static_cast<CommonErrc>(st.code())) {
        case CommonErrc::kNotFound:
          return proto::SERVER_SUBSCRIPTION_NOT_FOUND;
        case CommonErrc::kAlreadyExists:
          return proto::SERVER_CONSUMER_BUSY;
        case CommonErrc::kAborted:
          return proto::SERVER_NOT_ALLOWED;
        default:
          break;
      }
    }
    return ToServerError(st);
  }

  void OnConnect(ConnState* cs, const proto::Connect& c) {
    if (c.protocol_version() < 1) {
      SendError(cs->conn, 0, proto::SERVER_UNSUPPORTED_VERSION,
                "protocol version " + std::to_string(c.protocol_version()) +
                    " is not supported (this broker speaks 1.." + std::to_string(kProtocolVersion) + ")");
      cs->conn->Close();
      return;
    }
    cs->connected = true;
    proto::Connected* r = Out().mutable_connected();
    r->set_server_version("dlog-broker/0.1");
    r->set_protocol_version(std::min(c.protocol_version(), kProtocolVersion));
    r->set_max_message_size(opts.max_message_size);
    Send(cs->conn, out_, {});
  }

  // ---- topics ----

  struct TopicInfo {
    int32_t partitions = 0;
  };

  // Reads the topic's metadata (creating it when auto-create is on).
  void GetTopic(const TopicName& t, bool create, std::function<void(Result<TopicInfo>)> cb) {
    const std::string path = logs->layout().Topic(t.Full());
    std::weak_ptr<Impl> w = weak_from_this();
    logs->store()->Get(path, [this, w, t, create, path, cb](Result<metadata::NodeData> r) {
      auto box = std::make_shared<Result<metadata::NodeData>>(std::move(r));
      loop->Post([this, w, t, create, path, cb, box] {
        if (!w.lock()) return;
        if (box->ok()) {
          auto m = metadata::Decode<proto::TopicMetadata>(path, box->value().data);
          if (!m.ok()) return cb(m.status());
          return cb(TopicInfo{m->partitions()});
        }
        if (!box->status().Is(metadata::MetaErrc::kNoNode)) return cb(box->status());
        if (!create || !opts.auto_create_topics) {
          return cb(Status::Error(log::LogErrc::kLogNotFound, "topic " + t.Full() + " does not exist"));
        }
        const int32_t n = opts.auto_create_partitions;
        RunAdmin([this, t, n] { return CreateTopicSync(t, n, /*exists_ok=*/true); },
                 [cb, n](Status st) {
                   if (!st.ok()) return cb(st);
                   cb(TopicInfo{n});
                 });
      });
    });
  }

  // Admin thread.
  Result<std::shared_ptr<log::Namespace>> NamespaceSync(const std::string& name) {
    {
      std::lock_guard<std::mutex> l(ns_mu_);
      auto it = namespaces_.find(name);
      if (it != namespaces_.end()) return it->second;
    }
    auto ns = log::Namespace::OpenOrCreateSync(logs->segments(), name, opts.namespace_defaults);
    if (!ns.ok()) return ns.status();
    std::shared_ptr<log::Namespace> shared(std::move(ns).value());
    std::lock_guard<std::mutex> l(ns_mu_);
    auto [it, inserted] = namespaces_.emplace(name, shared);
    return it->second;
  }

  // Admin thread. Logs first, then the topic node (so a topic that exists
  // has its logs).
  Status CreateTopicSync(const TopicName& t, int32_t partitions, bool exists_ok) {
    if (partitions < 1 || partitions > kMaxPartitions) {
      return Status::Error(CommonErrc::kInvalidArgument, "partitions must be 1.." + std::to_string(kMaxPartitions) +
                                                             ", not " + std::to_string(partitions));
    }
    const std::string path = logs->layout().Topic(t.Full());
    auto existing = logs->store()->GetSync(path);
    if (existing.ok()) {
      auto m = metadata::Decode<proto::TopicMetadata>(path, existing->data);
      if (exists_ok) return Status::OK();
      return Status::Error(log::LogErrc::kLogExists,
                           "topic " + t.Full() + " exists" +
                               (m.ok() ? " with " + std::to_string(m->partitions()) + " partition(s)" : std::string()));
    }
    DLOG_ASSIGN_OR_RETURN(auto ns, NamespaceSync(t.LogNamespace()));
    for (int32_t i = 0; i < partitions; ++i) {
      for (const std::string& name : {t.PartitionLog(i), t.CursorLog(i)}) {
        Status st = ns->CreateLogSync(name);
        if (!st.ok() && !st.Is(log::LogErrc::kLogExists)) return st;
      }
    }
    proto::TopicMetadata meta;
    meta.set_partitions(partitions);
    meta.set_ctime_ms(WallMillis());
    auto created = logs->store()->CreateSync(path, metadata::Encode(meta));
    if (!created.ok()) {
      if (created.status().Is(metadata::MetaErrc::kNodeExists)) {
        return exists_ok ? Status::OK() : Status::Error(log::LogErrc::kLogExists, "topic " + t.Full() + " exists");
      }
      return created.status();
    }
    DLOG_INFO << "broker: created topic " << t.Full() << " with " << partitions << " partition(s)";
    return Status::OK();
  }

  // Admin thread. The topic node goes first (owners watch it and let go of
  // their partitions); then each partition's logs, retried while an owner
  // still holds them.
  Status DeleteTopicSync(const TopicName& t) {
    const std::string path = logs->layout().Topic(t.Full());
    auto existing = logs->store()->GetSync(path);
    if (!existing.ok()) {
      if (existing.status().Is(metadata::MetaErrc::kNoNode)) {
        return Status::Error(log::LogErrc::kLogNotFound, "topic " + t.Full() + " does not exist");
      }
      return existing.status();
    }
    DLOG_ASSIGN_OR_RETURN(auto meta, metadata::Decode<proto::TopicMetadata>(path, existing->data));
    DLOG_RETURN_IF_ERROR(logs->store()->DeleteSync(path, existing->stat.version));
    DLOG_ASSIGN_OR_RETURN(auto ns, NamespaceSync(t.LogNamespace()));
    const int64_t deadline = MonoMillis() + 30000;
    for (int32_t i = 0; i < meta.partitions(); ++i) {
      for (const std::string& name : {t.CursorLog(i), t.PartitionLog(i)}) {
        for (;;) {
          Status st = ns->DeleteLogSync(name);
          if (st.ok() || st.Is(log::LogErrc::kLogNotFound)) break;
          if (!st.Is(log::LogErrc::kLocked) || MonoMillis() > deadline) return st.WithContext("deleting " + name);
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    }
    DLOG_INFO << "broker: deleted topic " << t.Full();
    return Status::OK();
  }

  template <typename Fn>
  void RunAdmin(Fn fn, std::function<void(Status)> cb) {
    std::weak_ptr<Impl> w = weak_from_this();
    net::EventLoop* l = loop;
    bool ok = admin_.Submit([w, l, fn, cb] {
      Status st = fn();
      l->Post([w, cb, st] {
        if (w.lock()) cb(st);
      });
    });
    if (!ok) cb(Status::Error(log::LogErrc::kBusy, "the broker's admin queue is full; retry"));
  }

  void OnCreateTopic(ConnState* cs, const proto::CreateTopic& r) {
    auto t = TopicName::Parse(r.topic());
    if (!t.ok()) return SendError(cs->conn, r.request_id(), proto::SERVER_INVALID_TOPIC_NAME, t.status().message());
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    RunAdmin([this, t = *t, n = r.partitions()] { return CreateTopicSync(t, n, false); },
             [this, conn, rid](Status st) {
               if (st.Is(log::LogErrc::kLogExists))
                 return SendError(conn, rid, proto::SERVER_TOPIC_EXISTS, st.message());
               Reply(conn, rid, st);
             });
  }

  void OnDeleteTopic(ConnState* cs, const proto::DeleteTopic& r) {
    auto t = TopicName::Parse(r.topic());
    if (!t.ok()) return SendError(cs->conn, r.request_id(), proto::SERVER_INVALID_TOPIC_NAME, t.status().message());
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    RunAdmin([this, t = *t] { return DeleteTopicSync(t); }, [this, conn, rid](Status st) { Reply(conn, rid, st); });
  }

  void OnListTopics(ConnState* cs, const proto::ListTopics& r) {
    auto ns = LogNamespaceOf(r.namespace_name());
    if (!ns.ok()) return SendError(cs->conn, r.request_id(), proto::SERVER_BAD_REQUEST, ns.status().message());
    const std::string prefix = r.namespace_name() + "/";
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    std::weak_ptr<Impl> w = weak_from_this();
    logs->store()->GetChildren(
        logs->layout().TopicsDir(), [this, w, conn, rid, prefix](Result<std::vector<std::string>> r2) {
          auto box = std::make_shared<Result<std::vector<std::string>>>(std::move(r2));
          loop->Post([this, w, conn, rid, prefix, box] {
            if (!w.lock()) return;
            if (!box->ok() && !box->status().Is(metadata::MetaErrc::kNoNode)) {
              return SendError(conn, rid, proto::SERVER_SERVICE_NOT_READY, box->status().ToString());
            }
            proto::ListTopicsResponse* resp = Out().mutable_list_topics_response();
            resp->set_request_id(rid);
            if (box->ok()) {
              for (const std::string& child : box->value()) {
                auto name = metadata::UnescapeName(child);
                if (name.ok() && name->rfind(prefix, 0) == 0) resp->add_topics(*name);
              }
            }
            std::sort(resp->mutable_topics()->begin(), resp->mutable_topics()->end());
            Send(conn, out_, {});
          });
        });
  }

  void OnTopicStats(ConnState* cs, const proto::TopicStats& r) {
    auto t = TopicName::Parse(r.topic());
    if (!t.ok()) return SendError(cs->conn, r.request_id(), proto::SERVER_INVALID_TOPIC_NAME, t.status().message());
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    GetTopic(*t, false, [this, conn, rid, t = *t](Result<TopicInfo> info) {
      if (!info.ok()) return SendError(conn, rid, ToServerError(info.status()), info.status().message());
      auto resp = std::make_shared<proto::TopicStatsResponse>();
      resp->set_request_id(rid);
      resp->set_partitions(info->partitions);
      auto left = std::make_shared<int32_t>(info->partitions);
      auto finish = [this, conn, resp, left] {
        if (--*left > 0) return;
        std::sort(resp->mutable_stats()->begin(), resp->mutable_stats()->end(),
                  [](const auto& a, const auto& b) { return a.partition() < b.partition(); });
        *Out().mutable_topic_stats_response() = *resp;
        Send(conn, out_, {});
      };
      for (int32_t i = 0; i < info->partitions; ++i) {
        auto it = partitions_.find(t.PartitionName(i));
        if (it != partitions_.end() && it->second->state() == Partition::State::kReady) {
          *resp->add_stats() = it->second->Stats();
          finish();
          continue;
        }
        // Not here: the owner (if any) from the log's lock.
        std::weak_ptr<Impl> w = weak_from_this();
        WithNamespace(t.LogNamespace(), [this, w, t, i, resp, finish](Result<std::shared_ptr<log::Namespace>> ns) {
          if (!ns.ok()) {
            resp->add_stats()->set_partition(i);
            return finish();
          }
          (*ns)->GetLogInfo(t.PartitionLog(i), [this, w, i, resp, finish](Result<log::LogInfo> li) {
            auto box = std::make_shared<Result<log::LogInfo>>(std::move(li));
            loop->Post([w, i, resp, finish, box] {
              if (!w.lock()) return;
              proto::PartitionStats* s = resp->add_stats();
              s->set_partition(i);
              if (box->ok()) {
                if ((*box)->owner) s->set_owner((*box)->owner->address());
                int64_t records = 0;
                for (const auto& seg : (*box)->segments) {
                  if (seg.meta.state() == proto::SEGMENT_CLOSED) {
                    records = std::max(records, seg.meta.first_record_seq() + seg.meta.record_count());
                  }
                }
                s->set_records(records);
              }
              finish();
            });
          });
        });
      }
    });
  }

  void WithNamespace(const std::string& name, std::function<void(Result<std::shared_ptr<log::Namespace>>)> cb) {
    {
      std::lock_guard<std::mutex> l(ns_mu_);
      auto it = namespaces_.find(name);
      if (it != namespaces_.end()) return cb(it->second);
    }
    auto result =
        std::make_shared<Result<std::shared_ptr<log::Namespace>>>(Status::Error(CommonErrc::kInternal, "not run"));
    RunAdmin(
        [this, name, result] {
          *result = NamespaceSync(name);
          return result->ok() ? Status::OK() : result->status();
        },
        [cb, result](Status st) {
          if (!st.ok()) return cb(st);
          cb(*result);
        });
  }

  // ---- lookup and ownership ----

  // Finds or starts loading the partition here. kLocked (as NOT_OWNER) if another broker holds it.
  void Acquire(const TopicName& t, int32_t index, int64_t lock_timeout_ms,
               std::function<void(Result<std::shared_ptr<Partition>>)> cb) {
    const std::string name = t.PartitionName(index);
    auto it = partitions_.find(name);
    if (it != partitions_.end()) {
      auto p = it->second;
      return p->WhenLoaded([p, cb](Status st) {
        if (!st.ok()) return cb(st);
        cb(p);
      });
    }
    if (stopping_) return cb(Status::Error(CommonErrc::kUnavailable, "the broker is stopping"));
    auto p = std::make_shared<Partition>(shared_from_this(), t, index);
    partitions_[name] = p;
    if (created_.size() >= 2 * partitions_.size() + 64) {
      created_.erase(std::remove_if(created_.begin(), created_.end(),
                                    [](const std::weak_ptr<Partition>& w) { return w.expired(); }),
                     created_.end());
    }
    created_.push_back(p);
    p->WhenLoaded([p, cb](Status st) {
      if (!st.ok()) return cb(st);
      cb(p);
    });
    std::weak_ptr<Partition> wp = p;
    WithNamespace(t.LogNamespace(), [wp, lock_timeout_ms](Result<std::shared_ptr<log::Namespace>> ns) {
      auto part = wp.lock();
      if (!part || part->state() != Partition::State::kLoading) return;
      if (!ns.ok()) return part->Unload(ns.status());
      part->Load(*ns, lock_timeout_ms);
    });
  }

  void OnLookup(ConnState* cs, const proto::Lookup& r) {
    probe->lookups_total.fetch_add(1, std::memory_order_relaxed);
    auto t = TopicName::Parse(r.topic());
    if (!t.ok()) return SendError(cs->conn, r.request_id(), proto::SERVER_INVALID_TOPIC_NAME, t.status().message());
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    const int32_t index = r.partition();
    GetTopic(*t, true, [this, conn, rid, index, t = *t](Result<TopicInfo> info) {
      if (!info.ok()) return SendError(conn, rid, ToServerError(info.status()), info.status().message());
      if (index < 0 || index >= info->partitions) {
        return SendError(conn, rid, proto::SERVER_BAD_REQUEST,
                         "topic " + t.Full() + " has " + std::to_string(info->partitions) +
                             " partition(s); no partition " + std::to_string(index));
      }
      auto answer = [this, conn, rid](const std::string& address) {
        proto::LookupResponse* resp = Out().mutable_lookup_response();
        resp->set_request_id(rid);
        resp->set_broker_address(address);
        resp->set_redirect(address != opts.advertise);
        Send(conn, out_, {});
      };
      if (partitions_.count(t.PartitionName(index)) != 0) return answer(opts.advertise);
      if (!LeaseOk())
        return SendError(conn, rid, proto::SERVER_SERVICE_NOT_READY, "the broker has no metadata lease now");
      // Who holds the partition's log?
      std::weak_ptr<Impl> w = weak_from_this();
      WithNamespace(
          t.LogNamespace(), [this, w, t, index, conn, rid, answer](Result<std::shared_ptr<log::Namespace>> ns) {
            if (!ns.ok()) return SendError(conn, rid, ToServerError(ns.status()), ns.status().ToString());
            (*ns)->GetLogInfo(t.PartitionLog(index), [this, w, t, index, conn, rid, answer](Result<log::LogInfo> li) {
              auto box = std::make_shared<Result<log::LogInfo>>(std::move(li));
              loop->Post([this, w, t, index, conn, rid, answer, box] {
                if (!w.lock()) return;
                if (!box->ok()) return SendError(conn, rid, ToServerError(box->status()), box->status().ToString());
                const auto& owner = (*box)->owner;
                if (owner && owner->address() != opts.advertise) return answer(owner->address());
                // Nobody (or a previous life of this broker, whose lock goes with its session).
                const int64_t wait =
                    owner ? std::max<int64_t>(opts.load_lock_timeout_ms, logs->store()->SessionTimeout().count() * 2)
                          : opts.load_lock_timeout_ms;
                Acquire(t, index, wait, [answer, conn, rid, this](Result<std::shared_ptr<Partition>> p) {
                  if (p.ok()) return answer(opts.advertise);
                  if (p.status().Is(log::LogErrc::kLocked)) {
                    // Another broker won the race; its address is in the message
                    // only, so send the client to look up again.
                    return SendError(conn, rid, proto::SERVER_SERVICE_NOT_READY, p.status().ToString());
                  }
                  SendError(conn, rid, ToServerError(p.status()), p.status().ToString());
                });
              });
            });
          });
    });
  }

  void OnPartitionedMetadata(ConnState* cs, const proto::PartitionedMetadata& r) {
    auto t = TopicName::Parse(r.topic());
    if (!t.ok()) return SendError(cs->conn, r.request_id(), proto::SERVER_INVALID_TOPIC_NAME, t.status().message());
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    GetTopic(*t, true, [this, conn, rid](Result<TopicInfo> info) {
      if (!info.ok()) return SendError(conn, rid, ToServerError(info.status()), info.status().message());
      proto::PartitionedMetadataResponse* resp = Out().mutable_partitioned_metadata_response();
      resp->set_request_id(rid);
      resp->set_partitions(info->partitions);
      Send(conn, out_, {});
    });
  }

  // The owned, ready partition a request names; else an error reply.
  std::shared_ptr<Partition> Owned(const net::ConnectionPtr& conn, uint64_t rid, const std::string& topic,
                                   int32_t index) {
    auto t = TopicName::Parse(topic);
    if (!t.ok()) {
      SendError(conn, rid, proto::SERVER_INVALID_TOPIC_NAME, t.status().message());
      return nullptr;
    }
    auto it = partitions_.find(t->PartitionName(index));
    if (it == partitions_.end()) {
      SendError(conn, rid, proto::SERVER_NOT_OWNER,
                "partition " + t->PartitionName(index) + " is not served here; look it up");
      return nullptr;
    }
    if (it->second->state() != Partition::State::kReady) {
      SendError(conn, rid, proto::SERVER_SERVICE_NOT_READY, "partition " + t->PartitionName(index) + " is loading");
      return nullptr;
    }
    return it->second;
  }

  // Producer/Subscribe: the partition, loading it if this broker may take it.
  void WithPartition(ConnState* cs, uint64_t rid, const std::string& topic, int32_t index,
                     std::function<void(std::shared_ptr<Partition>)> fn) {
    auto t = TopicName::Parse(topic);
    if (!t.ok()) return SendError(cs->conn, rid, proto::SERVER_INVALID_TOPIC_NAME, t.status().message());
    if (!LeaseOk())
      return SendError(cs->conn, rid, proto::SERVER_SERVICE_NOT_READY, "the broker has no metadata lease now");
    auto conn = cs->conn;
    GetTopic(*t, true, [this, conn, rid, index, t = *t, fn](Result<TopicInfo> info) {
      if (!info.ok()) return SendError(conn, rid, ToServerError(info.status()), info.status().message());
      if (index < 0 || index >= info->partitions) {
        return SendError(conn, rid, proto::SERVER_BAD_REQUEST,
                         "topic " + t.Full() + " has no partition " + std::to_string(index));
      }
      Acquire(t, index, 0, [this, conn, rid, fn](Result<std::shared_ptr<Partition>> p) {
        if (conn->closed()) return;
        if (!p.ok()) {
          const auto e =
              p.status().Is(log::LogErrc::kLocked) ? proto::SERVER_NOT_OWNER : proto::SERVER_SERVICE_NOT_READY;
          return SendError(conn, rid, e, p.status().ToString());
        }
        fn(*p);
      });
    });
  }

  // ---- producers ----

  void OnProducer(ConnState* cs, const proto::Producer& r) {
    if (cs->producers.count(r.producer_id()) != 0) {
      return SendError(cs->conn, r.request_id(), proto::SERVER_BAD_REQUEST,
                       "producer id " + std::to_string(r.producer_id()) + " is already open on this connection");
    }
    if (r.producer_name().size() > 256) {
      return SendError(cs->conn, r.request_id(), proto::SERVER_BAD_REQUEST, "producer name longer than 256 bytes");
    }
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    const uint64_t pid = r.producer_id();
    std::string name = r.producer_name().empty()
                           ? opts.broker_id + "-" + std::to_string(conn->id()) + "-" + std::to_string(++producer_seq_) +
                                 "-" + std::to_string(WallMillis())
                           : r.producer_name();
    WithPartition(cs, rid, r.topic(), r.partition(), [this, conn, rid, pid, name](std::shared_ptr<Partition> part) {
      auto it = conns_.find(conn->id());
      if (it == conns_.end()) return;
      ConnState* c = it->second.get();
      if (c->producers.count(pid) != 0) return SendError(conn, rid, proto::SERVER_BAD_REQUEST, "producer id in use");
      auto p = std::make_shared<ProducerH>();
      p->id = pid;
      p->conn = conn;
      p->name = name;
      p->part = part;
      int64_t last = -1;
      Status st = part->AddProducer(p, &last);
      if (!st.ok()) {
        const auto e =
            st.Is(CommonErrc::kAlreadyExists) ? proto::SERVER_PRODUCER_BUSY : proto::SERVER_SERVICE_NOT_READY;
        return SendError(conn, rid, e, st.message());
      }
      c->producers[pid] = p;
      proto::ProducerSuccess* ok = Out().mutable_producer_success();
      ok->set_request_id(rid);
      ok->set_producer_name(name);
      ok->set_last_sequence_id(last);
      Send(conn, out_, {});
    });
  }

  void OnSend(ConnState* cs, const proto::Send& s, Slice payload) {
    auto it = cs->producers.find(s.producer_id());
    if (it == cs->producers.end() || it->second->closed) {
      proto::SendError* e = Out().mutable_send_error();
      e->set_producer_id(s.producer_id());
      e->set_sequence_id(s.sequence_id());
      e->set_error(proto::SERVER_UNKNOWN_PRODUCER);
      e->set_message("no producer " + std::to_string(s.producer_id()) + " on this connection");
      return Send(cs->conn, out_, {});
    }
    auto p = it->second;
    p->part->OnSend(p.get(), s, std::move(payload));
  }

  void OnCloseProducer(ConnState* cs, const proto::CloseProducer& r) {
    auto it = cs->producers.find(r.producer_id());
    if (it != cs->producers.end()) {
      auto p = it->second;
      cs->producers.erase(it);
      if (!p->closed) p->part->RemoveProducer(p.get());
    }
    SendSuccess(cs->conn, r.request_id());
  }

  // ---- consumers ----

  void OnSubscribe(ConnState* cs, const proto::Subscribe& r) {
    if (cs->consumers.count(r.consumer_id()) != 0) {
      return SendError(cs->conn, r.request_id(), proto::SERVER_BAD_REQUEST,
                       "consumer id " + std::to_string(r.consumer_id()) + " is already open on this connection");
    }
    if (r.durable() && (r.subscription().empty() || r.subscription().size() > 256 ||
                        r.subscription().find('\0') != std::string::npos)) {
      return SendError(cs->conn, r.request_id(), proto::SERVER_BAD_REQUEST, "subscription name must be 1..256 bytes");
    }
    if (!proto::SubscriptionType_IsValid(r.sub_type()) || !proto::InitialPosition_IsValid(r.initial_position())) {
      return SendError(cs->conn, r.request_id(), proto::SERVER_BAD_REQUEST,
                       "unknown subscription type or initial position");
    }
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    auto req = std::make_shared<proto::Subscribe>(r);
    WithPartition(cs, rid, r.topic(), r.partition(), [this, conn, rid, req](std::shared_ptr<Partition> part) {
      auto it = conns_.find(conn->id());
      if (it == conns_.end()) return;
      if (it->second->consumers.count(req->consumer_id()) != 0) {
        return SendError(conn, rid, proto::SERVER_BAD_REQUEST, "consumer id in use");
      }
      auto c = std::make_shared<ConsumerH>();
      c->id = req->consumer_id();
      c->conn = conn;
      c->name = req->consumer_name().empty() ? conn->peer() + "/" + std::to_string(c->id) : req->consumer_name();
      c->part = part;
      c->priority = req->priority_level();
      // Registered first, so that messages sent at once find it; dropped on failure.
      it->second->consumers[c->id] = c;
      // Success goes before the first Message (Subscribe dispatches nothing
      // before the consumer's Flow).
      part->Subscribe(*req, c, [this, conn, rid, c](Status st) {
        if (!st.ok()) {
          auto cit = conns_.find(conn->id());
          if (cit != conns_.end()) cit->second->consumers.erase(c->id);
          return SendError(conn, rid, ErrorOf(st), st.message());
        }
        SendSuccess(conn, rid);
      });
    });
  }

  std::shared_ptr<ConsumerH> FindConsumer(ConnState* cs, uint64_t id) {
    auto it = cs->consumers.find(id);
    if (it == cs->consumers.end() || it->second->closed || it->second->sub == nullptr) return nullptr;
    return it->second;
  }

  void OnFlow(ConnState* cs, const proto::Flow& f) {
    auto c = FindConsumer(cs, f.consumer_id());
    if (!c)
      return SendError(cs->conn, 0, proto::SERVER_UNKNOWN_CONSUMER,
                       "Flow for unknown consumer " + std::to_string(f.consumer_id()));
    if (f.message_permits() > kMaxFlowPermits) {
      return SendError(
          cs->conn, 0, proto::SERVER_BAD_REQUEST,
          "Flow of " + std::to_string(f.message_permits()) + " permits exceeds " + std::to_string(kMaxFlowPermits));
    }
    c->sub->OnFlow(c.get(), f.message_permits());
  }

  void OnAck(ConnState* cs, const proto::Ack& a) {
    auto conn = cs->conn;
    const uint64_t rid = a.request_id();
    const uint64_t cid = a.consumer_id();
    auto reply = [this, conn, rid, cid](proto::ServerError e, std::string msg) {
      if (rid == 0) {
        if (e != proto::SERVER_OK) SendError(conn, 0, e, msg);
        return;
      }
      proto::AckResponse* r = Out().mutable_ack_response();
      r->set_consumer_id(cid);
      r->set_request_id(rid);
      r->set_error(e);
      r->set_message(msg);
      Send(conn, out_, {});
    };
    auto c = FindConsumer(cs, cid);
    if (!c) return reply(proto::SERVER_UNKNOWN_CONSUMER, "Ack for unknown consumer " + std::to_string(cid));
    if (a.message_ids_size() > 100000)
      return reply(proto::SERVER_BAD_REQUEST, "more than 100000 message ids in one Ack");
    c->sub->OnAck(c.get(), a, reply);
  }

  void OnRedeliver(ConnState* cs, const proto::RedeliverUnacknowledged& r) {
    auto c = FindConsumer(cs, r.consumer_id());
    if (!c)
      return SendError(cs->conn, 0, proto::SERVER_UNKNOWN_CONSUMER, "RedeliverUnacknowledged for unknown consumer");
    c->sub->OnRedeliver(c.get(), r);
  }

  void OnSeek(ConnState* cs, const proto::Seek& r) {
    auto c = FindConsumer(cs, r.consumer_id());
    if (!c) return SendError(cs->conn, r.request_id(), proto::SERVER_UNKNOWN_CONSUMER, "Seek for unknown consumer");
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    auto part = c->part;
    const std::string sub_name = c->sub->name();
    auto done = [this, conn, rid](Status st) { Reply(conn, rid, st); };
    auto seek = [part, sub_name, done](int64_t seq) { part->SeekSubscription(sub_name, seq, done); };
    if (r.has_message_id()) return seek(std::clamp<int64_t>(r.message_id().record_seq(), 0, part->durable_end()));
    if (r.to_case() == proto::Seek::kPublishTimeMs) {
      return part->SeqAtTime(r.publish_time_ms(), [seek, done](Result<int64_t> seq) {
        if (!seq.ok()) return done(seq.status());
        seek(*seq);
      });
    }
    SendError(conn, rid, proto::SERVER_BAD_REQUEST, "Seek names no position");
  }

  void OnCloseConsumer(ConnState* cs, const proto::CloseConsumer& r) {
    auto it = cs->consumers.find(r.consumer_id());
    if (it != cs->consumers.end()) {
      auto c = it->second;
      cs->consumers.erase(it);
      if (!c->closed) c->part->RemoveConsumer(c.get());
    }
    SendSuccess(cs->conn, r.request_id());
  }

  void OnUnsubscribe(ConnState* cs, const proto::Unsubscribe& r) {
    auto c = FindConsumer(cs, r.consumer_id());
    if (!c)
      return SendError(cs->conn, r.request_id(), proto::SERVER_UNKNOWN_CONSUMER, "Unsubscribe for unknown consumer");
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    if (c->sub->consumer_count() > 1) {
      return SendError(conn, rid, proto::SERVER_NOT_ALLOWED,
                       "subscription '" + c->sub->name() + "' has other consumers; close this one instead");
    }
    cs->consumers.erase(r.consumer_id());
    c->part->Unsubscribe(c.get(), [this, conn, rid](Status st) { Reply(conn, rid, st); });
  }

  void OnGetLastMessageId(ConnState* cs, const proto::GetLastMessageId& r) {
    auto c = FindConsumer(cs, r.consumer_id());
    if (!c)
      return SendError(cs->conn, r.request_id(), proto::SERVER_UNKNOWN_CONSUMER,
                       "GetLastMessageId for unknown consumer");
    proto::GetLastMessageIdResponse* resp = Out().mutable_get_last_message_id_response();
    resp->set_request_id(r.request_id());
    if (auto id = c->part->LastMessageId()) *resp->mutable_last_message_id() = *id;
    Send(cs->conn, out_, {});
  }

  // ---- admin on a partition's owner ----

  void OnListSubscriptions(ConnState* cs, const proto::ListSubscriptions& r) {
    auto part = Owned(cs->conn, r.request_id(), r.topic(), r.partition());
    if (!part) return;
    proto::ListSubscriptionsResponse* resp = Out().mutable_list_subscriptions_response();
    resp->set_request_id(r.request_id());
    for (auto& s : part->SubscriptionStatsList()) *resp->add_subscriptions() = std::move(s);
    Send(cs->conn, out_, {});
  }

  void OnResetCursor(ConnState* cs, const proto::ResetCursor& r) {
    auto part = Owned(cs->conn, r.request_id(), r.topic(), r.partition());
    if (!part) return;
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    part->ResetCursor(r, [this, conn, rid](Status st) { Reply(conn, rid, st); });
  }

  void OnDeleteSubscription(ConnState* cs, const proto::DeleteSubscription& r) {
    auto part = Owned(cs->conn, r.request_id(), r.topic(), r.partition());
    if (!part) return;
    auto conn = cs->conn;
    const uint64_t rid = r.request_id();
    part->DeleteSubscription(r.subscription(), [this, conn, rid](Status st) { Reply(conn, rid, st); });
  }

  // ---- periodic and session ----

  void ScheduleTick() {
    std::weak_ptr<Impl> w = weak_from_this();
    if (!tick_timer_) return;
    tick_timer_->Start(kTickMs, [w] {
      auto self = w.lock();
      if (!self || self->stopping_) return;
      std::vector<std::shared_ptr<Partition>> all;
      for (auto& [n, p] : self->partitions_) all.push_back(p);
      for (auto& p : all) p->Tick();
      self->ScheduleTick();
    });
  }

  void OnSessionExpired() {
    DLOG_WARN << "broker: metadata session expired; releasing every partition";
    std::vector<std::shared_ptr<Partition>> all;
    for (auto& [n, p] : partitions_) all.push_back(p);
    for (auto& p : all) p->Unload(Status::Error(log::LogErrc::kLockLost, "the broker's metadata session expired"));
  }

  AdminThread admin_;
  std::unique_ptr<segment::Timer> tick_timer_;  // loop thread; made in Start, dropped in Stop
  proto::BaseCommand cmd_;
  proto::BaseCommand out_;
  std::unordered_map<uint64_t, std::unique_ptr<ConnState>> conns_;
  std::map<std::string, std::shared_ptr<Partition>> partitions_;
  std::vector<std::weak_ptr<Partition>> created_;  // every partition object not yet freed (for Stop)
  std::mutex ns_mu_;
  std::map<std::string, std::shared_ptr<log::Namespace>> namespaces_;
  uint64_t session_sub_ = 0;
  uint64_t producer_seq_ = 0;
  bool stopping_ = false;
  bool stopped_ = false;
};

Broker::Broker(net::EventLoop* loop, log::LogClient* logs, CursorDb* cursor_db, BrokerOptions options,
               BrokerProbe* probe)
    : impl_(std::make_shared<Impl>(loop, logs, cursor_db, std::move(options), probe)) {}

Broker::~Broker() { impl_->Stop(0); }

void Broker::Start() { impl_->Start(); }
void Broker::Stop(int64_t timeout_ms) { impl_->Stop(timeout_ms); }
void Broker::OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) {
  impl_->OnFrame(conn, header, std::move(payload));
}
void Broker::OnProtocolError(const net::ConnectionPtr& conn, const Status& error) {
  impl_->OnProtocolError(conn, error);
}
void Broker::OnOpen(const net::ConnectionPtr& conn) { impl_->OnOpen(conn); }
void Broker::OnClose(const net::ConnectionPtr& conn) { impl_->OnClose(conn); }

}  // namespace dlog::broker
