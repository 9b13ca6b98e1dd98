// `dlogd standalone`: everything in one process, data under one directory:
// an embedded metadata store (DATA/metadata, synced RocksDB), one logstore
// node (DATA/logstore, formatted on the first run) registered in it, the log
// library over them with namespace "default" (E=Qw=Qa=1), the log service
// (server/log_service.h) on --listen, metrics, and a periodic sweep
// (retention, deletion of truncated segments) of every log.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace dlog::server {

struct StandaloneFlags {
  std::string data_dir;
  std::string listen = "127.0.0.1:4180";         // the log service
  std::string broker_listen = "127.0.0.1:6650";  // the broker ("off": none)
  std::string node_listen = "127.0.0.1:4181";
  std::string metrics_listen = "127.0.0.1:9464";  // "off" (or empty): none
  std::string sweep_interval = "30s";
  std::string writer_idle_timeout = "30s";
  std::string max_frame_size = "5MiB";
  std::string journal_file_size = "64MiB";
  std::string cache_size = "64MiB";
};

void AddStandaloneOptions(CLI::App* app, StandaloneFlags* flags);
// Runs until SIGINT/SIGTERM. Returns the process exit code.
int RunStandalone(const StandaloneFlags& flags);

}  // namespace dlog::server
