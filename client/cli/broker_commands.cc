#include "client/cli/broker_commands.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "common/thread_annotations.h"
#include "dlog/dlog.h"

namespace dlog::cli {
namespace {

using client::ClientErrc;

volatile std::sig_atomic_t g_stop = 0;
void OnStopSignal(int) { g_stop = 1; }

int Fail(const std::string& what, const std::string& message) {
  std::fprintf(stderr, "dlog %s: %s\n", what.c_str(), message.c_str());
  return 1;
}

// One clear line for a failed call.
std::string Describe(const Status& st, const BrokerArgs& a) {
  if (st.Is(ClientErrc::kConnectError)) {
    return st.message() + "; is a broker running at " + a.service_url + "?";
  }
  if (st.Is(ClientErrc::kTopicNotFound)) return "topic " + a.topic + " not found";
  if (st.Is(ClientErrc::kTopicExists)) return "topic " + a.topic + " already exists";
  if (st.Is(ClientErrc::kSubscriptionNotFound)) {
    return "subscription " + a.subscription + " not found on " + a.topic;
  }
  return st.message().empty() ? std::string(st.CodeName()) : st.message();
}

Result<std::unique_ptr<client::Client>> Connect(const BrokerArgs& a) {
  client::ClientConfig c;
  c.service_url = a.service_url;
  c.operation_timeout_ms = a.timeout_ms;
  c.connection_timeout_ms = std::min<int64_t>(a.timeout_ms, 10000);
  return client::Client::Create(c);
}

std::string SubTypeName(client::SubscriptionType t) {
  switch (t) {
    case client::SubscriptionType::kShared:
      return "shared";
    case client::SubscriptionType::kFailover:
      return "failover";
    case client::SubscriptionType::kKeyShared:
      return "key_shared";
    case client::SubscriptionType::kExclusive:
      break;
  }
  return "exclusive";
}

int Produce(client::Client* c, const BrokerArgs& a, const std::string& what) {
  auto producer = c->CreateProducer(a.topic);
  if (!producer.ok()) return Fail(what, Describe(producer.status(), a));
  struct Tally {
    Mutex mu;
    int64_t ok DLOG_GUARDED_BY(mu) = 0;
    Status first_error DLOG_GUARDED_BY(mu);
  };
  auto tally = std::make_shared<Tally>();
  int64_t sent = 0;
  auto send = [&](const std::string& payload) {
    client::Message m = client::Message::Create(payload);
    if (!a.key.empty()) m.SetKey(a.key);
    ++sent;
    const bool verbose = a.verbose;
    producer->SendAsync(std::move(m), [tally, verbose](Result<client::MessageId> r) {
      MutexLock l(&tally->mu);
      if (r.ok()) {
        ++tally->ok;
        if (verbose) std::printf("%s\n", r->ToString().c_str());
      } else if (tally->first_error.ok()) {
        tally->first_error = r.status();
      }
    });
  };
  if (!a.messages.empty()) {
    for (int64_t i = 0; i < a.count; ++i) {
      for (const std::string& m : a.messages) send(m);
    }
  } else {
    std::string line;
    while (std::getline(std::cin, line)) {
      for (int64_t i = 0; i < a.count; ++i) send(line);
    }
  }
  Status flushed = producer->Flush();
  Status closed = producer->Close();
  int64_t ok;
  Status first;
  {
    MutexLock l(&tally->mu);
    ok = tally->ok;
    first = tally->first_error;
  }
  std::fflush(stdout);
  std::fprintf(stderr, "produced %lld of %lld messages to %s\n", static_cast<long long>(ok),
               static_cast<long long>(sent), a.topic.c_str());
  if (!first.ok()) return Fail(what, Describe(first, a));
  if (!flushed.ok()) return Fail(what, Describe(flushed, a));
  if (!closed.ok()) return Fail(what, Describe(closed, a));
  return 0;
}

int Consume(client::Client* c, const BrokerArgs& a, const std::string& what) {
  client::ConsumerConfig cc;
  if (a.sub_type == "exclusive") {
    cc.subscription_type = client::SubscriptionType::kExclusive;
  } else if (a.sub_type == "shared") {
    cc.subscription_type = client::SubscriptionType::kShared;
  } else if (a.sub_type == "failover") {
    cc.subscription_type = client::SubscriptionType::kFailover;
  } else if (a.sub_type == "key_shared") {
    cc.subscription_type = client::SubscriptionType::kKeyShared;
  } else {
    return Fail(what, "subscription type '" + a.sub_type + "' is not exclusive, shared, failover or key_shared");
  }
  if (a.position != "earliest" && a.position != "latest") {
    return Fail(what, "--position must be earliest or latest, not '" + a.position + "'");
  }
  cc.initial_position =
      a.position == "earliest" ? client::InitialPosition::kEarliest : client::InitialPosition::kLatest;
  auto consumer = c->Subscribe(a.topic, a.subscription, cc);
  if (!consumer.ok()) return Fail(what, Describe(consumer.status(), a));
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int64_t received = 0;
  while (!g_stop && (a.count == 0 || received < a.count)) {
    auto m = consumer->Receive(200);
    if (!m.ok()) {
      if (m.status().Is(ClientErrc::kTimeout)) continue;
      return Fail(what, Describe(m.status(), a));
    }
    ++received;
    if (a.verbose) {
      std::string props;
      for (const auto& [k, v] : m->properties()) props += (props.empty() ? "" : ",") + k + "=" + v;
      std::printf("%s\t%s\t%s\t", m->id().ToString().c_str(), m->has_key() ? m->key().c_str() : "-",
                  props.empty() ? "-" : props.c_str());
    }
    const std::string_view p = m->payload();
    std::fwrite(p.data(), 1, p.size(), stdout);
    std::fputc('\n', stdout);
    if (std::fflush(stdout) != 0) break;  // the reader of stdout went away
    if (!a.no_ack) {
      if (Status st = consumer->Acknowledge(*m); !st.ok()) return Fail(what, Describe(st, a));
    }
  }
  IgnoreError(consumer->Close());
  return 0;
}

int TopicStats(client::Client* c, const BrokerArgs& a, const std::string& what) {
  auto s = c->GetTopicStats(a.topic);
  if (!s.ok()) return Fail(what, Describe(s.status(), a));
  std::printf("topic: %s\n", s->topic.c_str());
  std::printf("partitions: %d\n", s->partitions);
  for (const auto& p : s->partition_stats) {
    std::printf("partition %d: owner %s, records %lld, msg in %lld, bytes in %lld, producers %d\n", p.partition,
                p.owner.empty() ? "-" : p.owner.c_str(), static_cast<long long>(p.records),
                static_cast<long long>(p.msg_in), static_cast<long long>(p.bytes_in), p.producers);
    for (const auto& sub : p.subscriptions) {
      std::printf("  subscription %s (%s): backlog %lld, consumers %d, msg out %lld, redeliveries %lld\n",
                  sub.name.c_str(), SubTypeName(sub.type).c_str(), static_cast<long long>(sub.backlog_messages),
                  sub.consumers, static_cast<long long>(sub.msg_out), static_cast<long long>(sub.redeliveries));
    }
  }
  return 0;
}

int SubscriptionsList(client::Client* c, const BrokerArgs& a, const std::string& what) {
  auto subs = c->ListSubscriptions(a.topic);
  if (!subs.ok()) return Fail(what, Describe(subs.status(), a));
  for (const auto& s : *subs) {
    std::printf("%s\tpartition %d\t%s\tbacklog %lld\tconsumers %d\n", s.name.c_str(), s.partition,
                SubTypeName(s.type).c_str(), static_cast<long long>(s.backlog_messages), s.consumers);
  }
  return 0;
}

int SubscriptionsReset(client::Client* c, const BrokerArgs& a, const std::string& what) {
  client::CursorTarget target;
  if (a.time_ms >= 0) {
    if (!a.to.empty()) return Fail(what, "give either --to or --time, not both");
    target = client::CursorTarget::AtTime(a.time_ms);
  } else if (a.to == "earliest") {
    target = client::CursorTarget::Earliest();
  } else if (a.to == "latest") {
    target = client::CursorTarget::Latest();
  } else if (!a.to.empty()) {
    auto id = client::MessageId::FromString(a.to);
    if (!id.ok()) return Fail(what, id.status().message());
    target = client::CursorTarget::At(*id);
  } else {
    return Fail(what, "say where to: --to earliest|latest|MESSAGE_ID or --time MS");
  }
  if (Status st = c->ResetCursor(a.topic, a.subscription, target); !st.ok()) return Fail(what, Describe(st, a));
  std::printf("reset subscription %s on %s\n", a.subscription.c_str(), a.topic.c_str());
  return 0;
}

}  // namespace

void AddBrokerCommands(CLI::App* app, BrokerArgs* a) {
  auto common = [a](CLI::App* cmd) {
    cmd->add_option("--service-url", a->service_url, "Brokers: dlog://HOST:PORT[,HOST:PORT...]")->capture_default_str();
    cmd->add_option("--timeout", a->timeout_ms, "Operation timeout in ms (lookups, connects, admin calls)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
  };
  a->produce = app->add_subcommand("produce", "Publish messages to a topic (from -m, or one per stdin line)");
  a->produce->add_option("TOPIC", a->topic, "tenant/namespace/topic")->required();
  a->produce->add_option("-m,--message", a->messages, "A message (repeatable); without -m, stdin lines");
  a->produce->add_option("-n,--count", a->count, "Send each message this many times")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  a->produce->add_option("--key", a->key, "Partition key of every message");
  a->produce->add_flag("-v,--verbose", a->verbose, "Print each message's id");
  common(a->produce);

  a->consume = app->add_subcommand("consume", "Receive messages of a subscription; prints one per line");
  a->consume->add_option("TOPIC", a->topic, "tenant/namespace/topic")->required();
  a->consume->add_option("-s,--subscription", a->subscription, "Subscription name")->required();
  a->consume->add_option("-t,--type", a->sub_type, "exclusive, shared, failover or key_shared")->capture_default_str();
  a->consume->add_option("-n,--count", a->count, "Stop after this many messages (0: run until interrupted)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  a->consume->add_option("--position", a->position, "Where a new subscription starts: earliest or latest")
      ->capture_default_str();
  a->consume->add_flag("--no-ack", a->no_ack, "Do not acknowledge what is received");
  a->consume->add_flag("-v,--verbose", a->verbose, "Print id, key and properties before each payload (tab-separated)");
  common(a->consume);

  a->topics = app->add_subcommand("topics", "Topics: create, list, delete, stats");
  a->topics->require_subcommand(1);
  a->topics_create = a->topics->add_subcommand("create", "Create a topic");
  a->topics_create->add_option("TOPIC", a->topic, "tenant/namespace/topic")->required();
  a->topics_create->add_option("-p,--partitions", a->partitions, "Partitions")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  common(a->topics_create);
  a->topics_list = a->topics->add_subcommand("list", "List a namespace's topics");
  a->topics_list->add_option("NAMESPACE", a->ns, "tenant/namespace")->required();
  common(a->topics_list);
  a->topics_delete = a->topics->add_subcommand("delete", "Delete a topic and its data");
  a->topics_delete->add_option("TOPIC", a->topic, "tenant/namespace/topic")->required();
  a->topics_delete->add_flag("--force", a->force, "Delete even with subscriptions (closes their consumers)");
  common(a->topics_delete);
  a->topics_stats = a->topics->add_subcommand("stats", "Per-partition stats of a topic");
  a->topics_stats->add_option("TOPIC", a->topic, "tenant/namespace/topic")->required();
  common(a->topics_stats);

  a->subs = app->add_subcommand("subscriptions", "Subscriptions: list, reset, delete");
  a->subs->require_subcommand(1);
  a->subs_list = a->subs->add_subcommand("list", "A topic's subscriptions, per partition");
  a->subs_list->add_option("TOPIC", a->topic, "tenant/namespace/topic")->required();
  common(a->subs_list);
  a->subs_reset = a->subs->add_subcommand("reset", "Move a subscription's cursor");
  a->subs_reset->add_option("TOPIC", a->topic, "tenant/namespace/topic")->required();
  a->subs_reset->add_option("-s,--subscription", a->subscription, "Subscription name")->required();
  a->subs_reset->add_option("--to", a->to, "earliest, latest or a message id (as `consume -v` prints it)");
  a->subs_reset->add_option("--time", a->time_ms, "Publish time in ms since the epoch")->check(CLI::NonNegativeNumber);
  common(a->subs_reset);
  a->subs_delete = a->subs->add_subcommand("delete", "Delete a subscription");
  a->subs_delete->add_option("TOPIC", a->topic, "tenant/namespace/topic")->required();
  a->subs_delete->add_option("-s,--subscription", a->subscription, "Subscription name")->required();
  common(a->subs_delete);
}

bool BrokerCommandParsed(const BrokerArgs& a) {
  return a.produce->parsed() || a.consume->parsed() || a.topics->parsed() || a.subs->parsed();
}

int RunBrokerCommand(const BrokerArgs& a) {
  std::string what;
  if (a.produce->parsed()) what = "produce " + a.topic;
  if (a.consume->parsed()) what = "consume " + a.topic;
  if (a.topics_create->parsed()) what = "topics create " + a.topic;
  if (a.topics_list->parsed()) what = "topics list " + a.ns;
  if (a.topics_delete->parsed()) what = "topics delete " + a.topic;
  if (a.topics_stats->parsed()) what = "topics stats " + a.topic;
  if (a.subs_list->parsed()) what = "subscriptions list " + a.topic;
  if (a.subs_reset->parsed()) what = "subscriptions reset " + a.topic;
  if (a.subs_delete->parsed()) what = "subscriptions delete " + a.topic;

  auto client = Connect(a);
  if (!client.ok()) return Fail(what, Describe(client.status(), a));
  client::Client* c = client->get();

  if (a.produce->parsed()) return Produce(c, a, what);
  if (a.consume->parsed()) return Consume(c, a, what);
  if (a.topics_create->parsed()) {
    if (Status st = c->CreateTopic(a.topic, a.partitions); !st.ok()) return Fail(what, Describe(st, a));
    std::printf("created topic %s with %d partition%s\n", a.topic.c_str(), a.partitions, a.partitions == 1 ? "" : "s");
    return 0;
  }
  if (a.topics_list->parsed()) {
    auto topics = c->ListTopics(a.ns);
    if (!topics.ok()) return Fail(what, Describe(topics.status(), a));
    for (const auto& t : *topics) std::printf("%s\n", t.c_str());
    return 0;
  }
  if (a.topics_delete->parsed()) {
    if (Status st = c->DeleteTopic(a.topic, a.force); !st.ok()) {
      if (st.Is(ClientErrc::kNotAllowed) && !a.force) return Fail(what, Describe(st, a) + " (use --force)");
      return Fail(what, Describe(st, a));
    }
    std::printf("deleted topic %s\n", a.topic.c_str());
    return 0;
  }
  if (a.topics_stats->parsed()) return TopicStats(c, a, what);
  if (a.subs_list->parsed()) return SubscriptionsList(c, a, what);
  if (a.subs_reset->parsed()) return SubscriptionsReset(c, a, what);
  if (a.subs_delete->parsed()) {
    if (Status st = c->DeleteSubscription(a.topic, a.subscription); !st.ok()) return Fail(what, Describe(st, a));
    std::printf("deleted subscription %s on %s\n", a.subscription.c_str(), a.topic.c_str());
    return 0;
  }
  return 2;
}

}  // namespace dlog::cli
