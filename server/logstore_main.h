// `dlogd logstore`: one storage node serving node RPCs on 127.0.0.1.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace dlog::server {

struct LogstoreFlags {
  std::string data_dir;
  std::string listen = "127.0.0.1:4181";
  std::string metrics_listen;
  std::string node_id;
  std::string cluster_id = "dlog";
  bool format = false;
  std::string journal_file_size = "64MiB";
  std::string journal_max_batch = "4MiB";
  std::string journal_max_wait = "0us";
  std::string journal_queue_size = "64MiB";
  std::string cache_size = "64MiB";
  std::string max_frame_size = "5MiB";
  std::string inbound_memory = "256MiB";
  std::string index_flush_interval = "60s";
  std::string metadata;  // zk://HOST:PORT[,...][/dlog]; empty: no metadata (a lone node)
  std::string metadata_session_timeout = "6s";
};

void AddLogstoreOptions(CLI::App* app, LogstoreFlags* flags);
// Runs until SIGINT/SIGTERM. Returns the process exit code.
int RunLogstore(const LogstoreFlags& flags);

}  // namespace dlog::server
