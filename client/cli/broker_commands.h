// The `dlog` CLI's broker commands (produce, consume, topics, subscriptions),
// built on the public client library (client/include/dlog/).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace dlog::cli {

struct BrokerArgs {
  std::string service_url = "dlog://127.0.0.1:6650";
  int64_t timeout_ms = 10000;
  std::string topic;
  std::string subscription;
  std::string ns;
  // produce
  std::vector<std::string> messages;
  int64_t count = 1;
  std::string key;
  bool verbose = false;
  // consume
  std::string sub_type = "exclusive";
  std::string position = "latest";
  bool no_ack = false;
  // topics
  int32_t partitions = 1;
  bool force = false;
  // subscriptions reset
  std::string to;
  int64_t time_ms = -1;

  CLI::App* produce = nullptr;
  CLI::App* consume = nullptr;
  CLI::App* topics = nullptr;
  CLI::App* topics_create = nullptr;
  CLI::App* topics_list = nullptr;
  CLI::App* topics_delete = nullptr;
  CLI::App* topics_stats = nullptr;
  CLI::App* subs = nullptr;
  CLI::App* subs_list = nullptr;
  CLI::App* subs_reset = nullptr;
  CLI::App* subs_delete = nullptr;
};

// Adds the commands to `app`; their values land in *args.
void AddBrokerCommands(CLI::App* app, BrokerArgs* args);
// True if one of them was given.
bool BrokerCommandParsed(const BrokerArgs& args);
// Runs the parsed command: 0, or 1 after printing one line on stderr.
int RunBrokerCommand(const BrokerArgs& args);

}  // namespace dlog::cli
