#include "client/lib/client_impl.h"

#include <algorithm>
#include <charconv>

#include "client/lib/consumer_impl.h"
#include "client/lib/errors.h"
#include "client/lib/producer_impl.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/logging.h"

namespace dlog::client {

// ---------------------------------------------------------------- names and addresses

Result<std::vector<std::string>> ParseServiceUrl(const std::string& url) {
  constexpr std::string_view kScheme = "dlog://";
  if (url.rfind(kScheme, 0) != 0) {
    return Err(ClientErrc::kInvalidConfiguration,
               "service URL '" + url + "' must look like dlog://HOST:PORT[,HOST:PORT...]");
  }
  std::vector<std::string> out;
  std::string_view rest = std::string_view(url).substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  while (true) {
    const size_t comma = rest.find(',');
    std::string one(rest.substr(0, comma));
    auto addr = ParseBrokerAddress(one);
    if (!addr.ok()) {
      return Err(ClientErrc::kInvalidConfiguration, "service URL '" + url + "': " + addr.status().message());
    }
    if (one.rfind("localhost:", 0) == 0) one = "127.0.0.1" + one.substr(9);
    out.push_back(one);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

Result<sockaddr_in> ParseBrokerAddress(const std::string& address) {
  std::string text = address;
  if (text.rfind("localhost:", 0) == 0) text = "127.0.0.1" + text.substr(9);
  auto hp = ParseHostPort(text);
  if (!hp.ok()) return Err(ClientErrc::kInvalidConfiguration, "bad broker address '" + address + "'");
  sockaddr_in sa{};
  if (uv_ip4_addr(hp->host.c_str(), hp->port, &sa) != 0 || hp->port == 0) {
    return Err(ClientErrc::kInvalidConfiguration,
               "bad broker address '" + address + "' (an IPv4 address or localhost, and a port)");
  }
  return sa;
}

Status ValidateTopic(const std::string& topic) {
  int slashes = 0;
  size_t start = 0;
  for (size_t i = 0; i <= topic.size(); ++i) {
    if (i == topic.size() || topic[i] == '/') {
      if (i == start) {
        return Err(ClientErrc::kInvalidTopicName, "topic name '" + topic + "' must be tenant/namespace/topic");
      }
      if (i < topic.size()) ++slashes;
      start = i + 1;
    }
  }
  if (slashes != 2)
    return Err(ClientErrc::kInvalidTopicName, "topic name '" + topic + "' must be tenant/namespace/topic");
  return Status::OK();
}

// ---------------------------------------------------------------- lifecycle

Result<std::shared_ptr<ClientImpl>> ClientImpl::Create(ClientConfig config) {
  DLOG_ASSIGN_OR_RETURN(auto brokers, ParseServiceUrl(config.service_url));
  auto bad = [](const std::string& what) { return Err(ClientErrc::kInvalidConfiguration, what); };
  if (config.io_threads != 1) return bad("io_threads must be 1");
  if (config.operation_timeout_ms <= 0) return bad("operation_timeout_ms must be > 0");
  if (config.connection_timeout_ms <= 0) return bad("connection_timeout_ms must be > 0");
  if (config.keepalive_interval_ms <= 0) return bad("keepalive_interval_ms must be > 0");
  if (config.backoff_initial_ms <= 0 || config.backoff_max_ms < config.backoff_initial_ms) {
    return bad("backoff_initial_ms must be > 0 and <= backoff_max_ms");
  }
  if (config.max_frame_bytes < 1024) return bad("max_frame_bytes must be >= 1024");
  auto impl = std::make_shared<ClientImpl>(std::move(config), std::move(brokers));
  impl->loop_.Start();
  impl->loop_.RunSync([&] { impl->timers_.Start(); });
  return impl;
}

ClientImpl::ClientImpl(ClientConfig config, std::vector<std::string> brokers)
    : config_(std::move(config)),
      brokers_(std::move(brokers)),
      loop_("dlog-client"),
      timers_(&loop_),
      rng_(std::random_device{}()) {}

ClientImpl::~ClientImpl() { IgnoreError(Close()); }

bool ClientImpl::Post(std::function<void()> task) { return loop_.TryPost(task); }

Status ClientImpl::CheckBlockingAllowed(const char* what) const {
  if (loop_.InLoopThread()) {
    return Err(ClientErrc::kIllegalState,
               std::string(what) + " is a blocking call: not allowed on the client's callback thread");
  }
  return Status::OK();
}

int64_t ClientImpl::Deadline() const { return MonoMillis() + config_.operation_timeout_ms; }

int64_t ClientImpl::Backoff(int attempt) {
  int64_t b = config_.backoff_initial_ms;
  for (int i = 1; i < attempt && b < config_.backoff_max_ms; ++i) b *= 2;
  b = std::min(b, config_.backoff_max_ms);
  std::uniform_int_distribution<int64_t> jitter(-b / 5, b / 5);
  return std::max<int64_t>(1, b + jitter(rng_));
}

Status ClientImpl::Close() {
  {
    MutexLock l(&close_mu_);
    if (closed_) return Status::OK();
    closed_ = true;
  }
  if (loop_.InLoopThread()) {
    // Cannot join the loop from itself; Close() from the owner thread will finish.
    MutexLock l(&close_mu_);
    closed_ = false;
    return Err(ClientErrc::kIllegalState, "Client::Close on the client's callback thread");
  }
  // Close every producer and consumer (flushing producers), then the rest.
  struct Waiter {
    Mutex mu;
    CondVar cv;
    int left DLOG_GUARDED_BY(mu) = 0;
  };
  auto w = std::make_shared<Waiter>();
  loop_.RunSync([&] {
    closing_ = true;
    auto producers = producers_;
    auto consumers = consumers_;
    {
      MutexLock l(&w->mu);
      w->left = static_cast<int>(producers.size() + consumers.size());
    }
    auto done = [w](Status) {
      MutexLock l(&w->mu);
      if (--w->left == 0) w->cv.SignalAll();
    };
    for (auto& p : producers) p->CloseAsync(done);
    for (auto& c : consumers) c->CloseAsync(done);
  });
  {
    MutexLock l(&w->mu);
    const int64_t deadline = MonoMillis() + config_.operation_timeout_ms + 1000;
    while (w->left > 0 && MonoMillis() < deadline) w->cv.WaitFor(&w->mu, std::chrono::milliseconds(50));
  }
  loop_.RunSync([&] { ShutdownOnLoop(); });
  loop_.Stop();
  return Status::OK();
}

void ClientImpl::ShutdownOnLoop() {
  closing_ = true;
  auto pool = std::move(pool_);
  pool_.clear();
  for (auto& [addr, conn] : pool) conn->Abort();
  timers_.Shutdown();
  producers_.clear();
  consumers_.clear();
}

void ClientImpl::AddProducer(std::shared_ptr<ProducerImpl> p) { producers_.push_back(std::move(p)); }
void ClientImpl::RemoveProducer(ProducerImpl* p) {
  std::erase_if(producers_, [p](const auto& x) { return x.get() == p; });
}
void ClientImpl::AddConsumer(std::shared_ptr<ConsumerImpl> c) { consumers_.push_back(std::move(c)); }
void ClientImpl::RemoveConsumer(ConsumerImpl* c) {
  std::erase_if(consumers_, [c](const auto& x) { return x.get() == c; });
}

// ---------------------------------------------------------------- connections

void ClientImpl::GetConnection(const std::string& address, ConnCallback cb) {
  if (closing_) {
    cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
    return;
  }
  auto it = pool_.find(address);
  std::shared_ptr<BrokerConnection> conn;
  if (it != pool_.end() && !it->second->closed()) {
    conn = it->second;
  } else {
    auto sa = ParseBrokerAddress(address);
    if (!sa.ok()) {
      cb(Err(ClientErrc::kConnectError, sa.status().message()));
      return;
    }
    conn = std::make_shared<BrokerConnection>(this, address, *sa, next_conn_id_++);
    pool_[address] = conn;
    conn->Start();
    if (conn->closed()) pool_.erase(address);
  }
  conn->WhenReady([conn, cb = std::move(cb)](Status st) {
    if (st.ok()) {
      cb(conn);
    } else {
      cb(st);
    }
  });
}

void ClientImpl::OnConnectionClosed(BrokerConnection* conn) {
  auto it = pool_.find(conn->address());
  if (it != pool_.end() && it->second.get() == conn) pool_.erase(it);
}

void ClientImpl::GetServiceConnection(ConnCallback cb) {
  const std::string& addr = brokers_[next_broker_ % brokers_.size()];
  GetConnection(addr, [this, cb = std::move(cb)](Result<std::shared_ptr<BrokerConnection>> r) {
    if (!r.ok()) ++next_broker_;  // try the next broker next time
    cb(std::move(r));
  });
}

void ClientImpl::LookupOnce(const std::string& topic, int32_t partition, std::function<void(Result<std::string>)> cb) {
  GetServiceConnection([this, topic, partition, cb = std::move(cb)](Result<std::shared_ptr<BrokerConnection>> c) {
    if (!c.ok()) {
      cb(c.status());
      return;
    }
    auto conn = std::move(c).value();
    const uint64_t rid = conn->NewRequestId();
    proto::BaseCommand cmd;
    auto* l = cmd.mutable_lookup();
    l->set_request_id(rid);
    l->set_topic(topic);
    l->set_partition(partition);
    conn->SendRequest(rid, cmd, config_.operation_timeout_ms, [conn, cb = std::move(cb)](Result<proto::BaseCommand> r) {
      if (!r.ok()) {
        cb(r.status());
      } else if (!r->has_lookup_response()) {
        cb(Err(ClientErrc::kProtocolError, "the broker answered Lookup with something else"));
      } else if (r->lookup_response().broker_address().empty()) {
        cb(conn->address());
      } else {
        cb(r->lookup_response().broker_address());
      }
    });
  });
}

void ClientImpl::LookupAndConnect(const std::string& topic, int32_t partition, ConnCallback cb,
                                  std::function<bool()> still_wanted) {
  LookupOnce(topic, partition,
             [this, cb = std::move(cb), still_wanted = std::move(still_wanted)](Result<std::string> addr) mutable {
               if (still_wanted && !still_wanted()) return;
               if (!addr.ok()) {
                 cb(addr.status());
                 return;
               }
               GetConnection(*addr, std::move(cb));
             });
}

struct ClientImpl::RetryState {
  std::string topic;
  int32_t partition;
  FillRequest fill;
  int64_t deadline;
  ResponseCallback cb;
  int attempt = 0;
};

void ClientImpl::Request(const std::string& topic, int32_t partition, FillRequest fill, int64_t deadline_ms,
                         ResponseCallback cb) {
  auto st = std::make_shared<RetryState>(RetryState{topic, partition, std::move(fill), deadline_ms, std::move(cb)});
  Attempt(std::move(st));
}

void ClientImpl::Attempt(std::shared_ptr<RetryState> st) {
  ++st->attempt;
  auto finish = [this, st](Result<proto::BaseCommand> r) {
    if (r.ok() || !IsRetryable(r.status()) || closing_) {
      st->cb(std::move(r));
      return;
    }
    const int64_t wait = Backoff(st->attempt);
    if (MonoMillis() + wait >= st->deadline) {
      const Status& last = r.status();
      if (last.Is(ClientErrc::kConnectError)) {
        st->cb(Err(ClientErrc::kConnectError,
                   last.message() + " (gave up after " + std::to_string(config_.operation_timeout_ms) + " ms)"));
      } else {
        st->cb(Err(ClientErrc::kTimeout, "operation timed out after " + std::to_string(config_.operation_timeout_ms) +
                                             " ms; last error: " + last.message()));
      }
      return;
    }
    timers_.Schedule(wait, [this, st] { Attempt(st); });
  };
  auto send_on = [st, finish](Result<std::shared_ptr<BrokerConnection>> c) {
    if (!c.ok()) {
      finish(c.status());
      return;
    }
    auto conn = std::move(c).value();
    const uint64_t rid = conn->NewRequestId();
    proto::BaseCommand cmd;
    st->fill(&cmd, rid);
    const int64_t timeout = std::max<int64_t>(st->deadline - MonoMillis(), 1);
    conn->SendRequest(rid, cmd, timeout, finish);
  };
  if (st->partition < 0) {
    GetServiceConnection(send_on);
    return;
  }
  LookupAndConnect(st->topic, st->partition, send_on);
}

void ClientImpl::GetPartitions(const std::string& topic, int64_t deadline_ms, std::function<void(Result<int32_t>)> cb) {
  if (Status st = ValidateTopic(topic); !st.ok()) {
    cb(st);
    return;
  }
  Request(
      topic, -1,
      [topic](proto::BaseCommand* cmd, uint64_t rid) {
        cmd->mutable_partitioned_metadata()->set_request_id(rid);
        cmd->mutable_partitioned_metadata()->set_topic(topic);
      },
      deadline_ms,
      [topic, cb = std::move(cb)](Result<proto::BaseCommand> r) {
        if (!r.ok()) {
          cb(r.status());
        } else if (!r->has_partitioned_metadata_response()) {
          cb(Err(ClientErrc::kProtocolError, "the broker answered PartitionedMetadata with something else"));
        } else if (r->partitioned_metadata_response().partitions() < 1) {
          cb(Err(ClientErrc::kTopicNotFound, "topic " + topic + " not found"));
        } else {
          cb(r->partitioned_metadata_response().partitions());
        }
      });
}

void ClientImpl::ForEachPartition(const std::string& topic, int64_t deadline,
                                  std::function<void(int32_t, std::function<void(Status)>)> per_partition,
                                  std::function<void(Status)> cb) {
  GetPartitions(topic, deadline,
                [per_partition = std::move(per_partition), cb = std::move(cb)](Result<int32_t> n) mutable {
                  if (!n.ok()) {
                    cb(n.status());
                    return;
                  }
                  struct State {
                    int left;
                    Status first;
                    std::function<void(Status)> cb;
                  };
                  auto st = std::make_shared<State>(State{*n, Status::OK(), std::move(cb)});
                  for (int32_t p = 0; p < *n; ++p) {
                    per_partition(p, [st](Status s) {
                      if (!s.ok() && st->first.ok()) st->first = s;
                      if (--st->left == 0) st->cb(st->first);
                    });
                  }
                });
}

// ---------------------------------------------------------------- admin

namespace {

SubscriptionType FromProto(proto::SubscriptionType t) {
  switch (t) {
    case proto::SUB_SHARED:
      return SubscriptionType::kShared;
    case proto::SUB_FAILOVER:
      return SubscriptionType::kFailover;
    case proto::SUB_KEY_SHARED:
      return SubscriptionType::kKeyShared;
    default:
      return SubscriptionType::kExclusive;
  }
}

SubscriptionStats FromProto(const proto::SubscriptionStats& s, int32_t partition) {
  SubscriptionStats out;
  out.name = s.name();
  out.type = FromProto(s.type());
  out.partition = partition;
  out.backlog_messages = s.backlog_messages();
  out.mark_delete_seq = s.mark_delete_seq();
  out.ack_holes = s.ack_holes();
  out.consumers = s.consumers();
  out.msg_out = s.msg_out();
  out.redeliveries = s.redeliveries();
  out.backlog_age_ms = s.backlog_age_ms();
  return out;
}

Status Unexpected(const char* what) {
  return Err(ClientErrc::kProtocolError, std::string("the broker answered ") + what + " with something else");
}

// A per-partition subscription call: SUBSCRIPTION_NOT_FOUND on some
// partitions is fine, on all of them it is the answer.
struct SubCallState {
  int missing = 0;
  int partitions = 0;
};

// One partition's answer to a subscription call.
ClientImpl::ResponseCallback CountSubAnswer(std::shared_ptr<SubCallState> state, std::function<void(Status)> done) {
  return [state = std::move(state), done = std::move(done)](Result<proto::BaseCommand> r) {
    ++state->partitions;
    if (r.status().Is(ClientErrc::kSubscriptionNotFound)) {
      ++state->missing;
      return done(Status::OK());
    }
    done(r.status());
  };
}

// The outcome of a subscription call once every partition answered.
std::function<void(Status)> FinishSubCall(std::shared_ptr<SubCallState> state, std::string topic, std::string sub,
                                          std::function<void(Status)> cb) {
  return [state = std::move(state), topic = std::move(topic), sub = std::move(sub), cb = std::move(cb)](Status st) {
    if (st.ok() && state->partitions > 0 && state->missing == state->partitions) {
      st = Err(ClientErrc::kSubscriptionNotFound, "subscription " + sub + " not found on " + topic);
    }
    cb(st);
  };
}

}  // namespace

void ClientImpl::AdminRequest(const std::string& topic, FillRequest fill, ResponseCallback cb) {
  const int64_t deadline = Deadline();
  if (!Post([this, topic, fill = std::move(fill), deadline, cb]() mutable {
        Request(topic, -1, std::move(fill), deadline, std::move(cb));
      })) {
    cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
  }
}

void ClientImpl::CreateTopic(const std::string& topic, int32_t partitions, std::function<void(Status)> cb) {
  if (Status st = ValidateTopic(topic); !st.ok()) return cb(st);
  if (partitions < 1) return cb(Err(ClientErrc::kInvalidArgument, "a topic needs at least 1 partition"));
  AdminRequest(
      topic,
      [topic, partitions](proto::BaseCommand* cmd, uint64_t rid) {
        auto* c = cmd->mutable_create_topic();
        c->set_request_id(rid);
        c->set_topic(topic);
        c->set_partitions(partitions);
      },
      [cb = std::move(cb)](Result<proto::BaseCommand> r) { cb(r.status()); });
}

void ClientImpl::DeleteTopic(const std::string& topic, bool force, std::function<void(Status)> cb) {
  if (Status st = ValidateTopic(topic); !st.ok()) return cb(st);
  AdminRequest(
      topic,
      [topic, force](proto::BaseCommand* cmd, uint64_t rid) {
        auto* c = cmd->mutable_delete_topic();
        c->set_request_id(rid);
        c->set_topic(topic);
        c->set_force(force);
      },
      [cb = std::move(cb)](Result<proto::BaseCommand> r) { cb(r.status()); });
}

void ClientImpl::ListTopics(const std::string& ns, std::function<void(Result<std::vector<std::string>>)> cb) {
  const size_t slash = ns.find('/');
  if (slash == 0 || slash == std::string::npos || slash + 1 == ns.size() ||
      ns.find('/', slash + 1) != std::string::npos) {
    return cb(Err(ClientErrc::kInvalidArgument, "namespace '" + ns + "' must be tenant/namespace"));
  }
  AdminRequest(
      "",
      [ns](proto::BaseCommand* cmd, uint64_t rid) {
        cmd->mutable_list_topics()->set_request_id(rid);
        cmd->mutable_list_topics()->set_namespace_name(ns);
      },
      [cb = std::move(cb)](Result<proto::BaseCommand> r) {
        if (!r.ok()) return cb(r.status());
        if (!r->has_list_topics_response()) return cb(Unexpected("ListTopics"));
        const auto& t = r->list_topics_response().topics();
        cb(std::vector<std::string>(t.begin(), t.end()));
      });
}

void ClientImpl::TopicStatsOf(const std::string& topic, std::function<void(Result<TopicStats>)> cb) {
  if (Status st = ValidateTopic(topic); !st.ok()) return cb(st);
  AdminRequest(
      topic,
      [topic](proto::BaseCommand* cmd, uint64_t rid) {
        cmd->mutable_topic_stats()->set_request_id(rid);
        cmd->mutable_topic_stats()->set_topic(topic);
      },
      [topic, cb = std::move(cb)](Result<proto::BaseCommand> r) {
        if (!r.ok()) return cb(r.status());
        if (!r->has_topic_stats_response()) return cb(Unexpected("TopicStats"));
        const auto& s = r->topic_stats_response();
        TopicStats out;
        out.topic = topic;
        out.partitions = s.partitions();
        for (const auto& p : s.stats()) {
          PartitionStats ps;
          ps.partition = p.partition();
          ps.owner = p.owner();
          ps.records = p.records();
          ps.msg_in = p.msg_in();
          ps.bytes_in = p.bytes_in();
          ps.producers = p.producers();
          for (const auto& sub : p.subscriptions()) ps.subscriptions.push_back(FromProto(sub, p.partition()));
          out.partition_stats.push_back(std::move(ps));
        }
        cb(std::move(out));
      });
}

void ClientImpl::ListSubscriptions(const std::string& topic,
                                   std::function<void(Result<std::vector<SubscriptionStats>>)> cb) {
  if (Status st = ValidateTopic(topic); !st.ok()) return cb(st);
  const int64_t deadline = Deadline();
  if (!Post([this, topic, deadline, cb]() mutable {
        auto all = std::make_shared<std::vector<SubscriptionStats>>();
        ForEachPartition(
            topic, deadline,
            [this, topic, deadline, all](int32_t p, std::function<void(Status)> done) {
              Request(
                  topic, p,
                  [topic, p](proto::BaseCommand* cmd, uint64_t rid) {
                    auto* c = cmd->mutable_list_subscriptions();
                    c->set_request_id(rid);
                    c->set_topic(topic);
                    c->set_partition(p);
                  },
                  deadline,
                  [all, p, done = std::move(done)](Result<proto::BaseCommand> r) {
                    if (!r.ok()) return done(r.status());
                    if (!r->has_list_subscriptions_response()) return done(Unexpected("ListSubscriptions"));
                    for (const auto& s : r->list_subscriptions_response().subscriptions()) {
                      all->push_back(FromProto(s, p));
                    }
                    done(Status::OK());
                  });
            },
            [all, cb = std::move(cb)](Status st) {
              if (!st.ok()) return cb(st);
              std::sort(all->begin(), all->end(), [](const SubscriptionStats& a, const SubscriptionStats& b) {
                return a.name != b.name ? a.name < b.name : a.partition < b.partition;
              });
              cb(std::move(*all));
            });
      })) {
    cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
  }
}

void ClientImpl::ResetCursor(const std::string& topic, const std::string& sub, const CursorTarget& target,
                             std::function<void(Status)> cb) {
  if (Status st = ValidateTopic(topic); !st.ok()) return cb(st);
  if (sub.empty()) return cb(Err(ClientErrc::kInvalidArgument, "empty subscription name"));
  if (target.kind == CursorTarget::Kind::kMessageId && !target.message_id.is_position()) {
    return cb(Err(ClientErrc::kInvalidArgument, "reset to a message id needs a message's id"));
  }
  const int64_t deadline = Deadline();
  if (!Post([this, topic, sub, target, deadline, cb]() mutable {
        auto state = std::make_shared<SubCallState>();
        auto one = [this, topic, sub, target, deadline, state](int32_t p, std::function<void(Status)> done) {
          Request(
              topic, p,
              [topic, sub, target, p](proto::BaseCommand* cmd, uint64_t rid) {
                auto* c = cmd->mutable_reset_cursor();
                c->set_request_id(rid);
                c->set_topic(topic);
                c->set_partition(p);
                c->set_subscription(sub);
                switch (target.kind) {
                  case CursorTarget::Kind::kEarliest:
                    c->set_earliest(true);
                    break;
                  case CursorTarget::Kind::kLatest:
                    c->set_latest(true);
                    break;
                  case CursorTarget::Kind::kMessageId:
                    *c->mutable_message_id() = ToProto(target.message_id);
                    break;
                  case CursorTarget::Kind::kPublishTime:
                    c->set_publish_time_ms(target.publish_time_ms);
                    break;
                }
              },
              deadline, CountSubAnswer(state, std::move(done)));
        };
        auto finish = FinishSubCall(state, topic, sub, std::move(cb));
        if (target.kind == CursorTarget::Kind::kMessageId) {
          one(target.message_id.partition(), finish);
        } else {
          ForEachPartition(topic, deadline, one, finish);
        }
      })) {
    cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
  }
}

void ClientImpl::DeleteSubscription(const std::string& topic, const std::string& sub, std::function<void(Status)> cb) {
  if (Status st = ValidateTopic(topic); !st.ok()) return cb(st);
  if (sub.empty()) return cb(Err(ClientErrc::kInvalidArgument, "empty subscription name"));
  const int64_t deadline = Deadline();
  if (!Post([this, topic, sub, deadline, cb]() mutable {
        auto state = std::make_shared<SubCallState>();
        ForEachPartition(
            topic, deadline,
            [this, topic, sub, deadline, state](int32_t p, std::function<void(Status)> done) {
              Request(
                  topic, p,
                  [topic, sub, p](proto::BaseCommand* cmd, uint64_t rid) {
                    auto* c = cmd->mutable_delete_subscription();
                    c->set_request_id(rid);
                    c->set_topic(topic);
                    c->set_partition(p);
                    c->set_subscription(sub);
                  },
                  deadline, CountSubAnswer(state, std::move(done)));
            },
            FinishSubCall(state, topic, sub, std::move(cb)));
      })) {
    cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
  }
}

void ClientImpl::PartitionCount(const std::string& topic, std::function<void(Result<int32_t>)> cb) {
  const int64_t deadline = Deadline();
  if (!Post([this, topic, deadline, cb]() mutable { GetPartitions(topic, deadline, std::move(cb)); })) {
    cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
  }
}

// ---------------------------------------------------------------- producers and consumers

void ClientImpl::CreateProducer(const std::string& topic, ProducerConfig config,
                                std::function<void(Result<Producer>)> cb) {
  if (Status st = ValidateTopic(topic); !st.ok()) return cb(st);
  auto bad = [&](const std::string& what) { cb(Err(ClientErrc::kInvalidConfiguration, what)); };
  if (config.batching_max_messages < 1) return bad("batching_max_messages must be >= 1");
  if (config.batching_max_bytes < 1) return bad("batching_max_bytes must be >= 1");
  if (config.batching_max_delay_ms < 0) return bad("batching_max_delay_ms must be >= 0");
  if (config.max_pending_messages < 1) return bad("max_pending_messages must be >= 1");
  if (config.send_timeout_ms < 0) return bad("send_timeout_ms must be >= 0");
  auto impl = std::make_shared<ProducerImpl>(shared_from_this(), topic, std::move(config));
  if (!Post([this, impl, cb]() mutable {
        if (closing_) return cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
        AddProducer(impl);
        impl->Start([impl, cb = std::move(cb)](Status st) mutable {
          if (!st.ok()) return cb(st);
          cb(Producer(std::move(impl)));
        });
      })) {
    cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
  }
}

void ClientImpl::Subscribe(const std::string& topic, const std::string& sub, ConsumerConfig config, bool durable,
                           ReaderConfig reader, std::function<void(Result<Consumer>)> cb) {
  if (Status st = ValidateTopic(topic); !st.ok()) return cb(st);
  auto bad = [&](const std::string& what) { cb(Err(ClientErrc::kInvalidConfiguration, what)); };
  if (durable && sub.empty()) return bad("empty subscription name");
  if (config.receiver_queue_size < 1 || reader.receiver_queue_size < 1) return bad("receiver_queue_size must be >= 1");
  if (config.ack_timeout_ms != 0 && config.ack_timeout_ms < 1000) return bad("ack_timeout_ms must be 0 or >= 1000");
  if (config.negative_ack_redelivery_delay_ms < 0) return bad("negative_ack_redelivery_delay_ms must be >= 0");
  if (config.max_total_receiver_queue_size_across_partitions < 1) {
    return bad("max_total_receiver_queue_size_across_partitions must be >= 1");
  }
  auto impl =
      std::make_shared<ConsumerImpl>(shared_from_this(), topic, sub, std::move(config), durable, std::move(reader));
  if (!Post([this, impl, cb]() mutable {
        if (closing_) return cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
        AddConsumer(impl);
        impl->Start([impl, cb = std::move(cb)](Status st) mutable {
          if (!st.ok()) return cb(st);
          cb(Consumer(std::move(impl)));
        });
      })) {
    cb(Err(ClientErrc::kAlreadyClosed, "client closed"));
  }
}

}  // namespace dlog::client
