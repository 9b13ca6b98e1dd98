// dlogd: the one server binary. Roles: logstore, broker, standalone.
#include <CLI/CLI.hpp>

#include "server/broker_main.h"
#include "server/logstore_main.h"
#include "server/standalone_main.h"

int main(int argc, char** argv) {
  CLI::App app{"dlogd: the dlog server (roles: logstore, broker, standalone)"};
  app.set_config("--config", "", "Read options from this TOML/INI file");
  app.require_subcommand(1);
  dlog::server::LogstoreFlags logstore;
  CLI::App* ls = app.add_subcommand("logstore", "Run one logstore (storage) node");
  dlog::server::AddLogstoreOptions(ls, &logstore);
  dlog::server::BrokerFlags broker;
  CLI::App* br = app.add_subcommand("broker", "Run a broker (topics, producers, consumers) over a ZooKeeper cluster");
  dlog::server::AddBrokerOptions(br, &broker);
  dlog::server::StandaloneFlags standalone;
  CLI::App* sa = app.add_subcommand(
      "standalone",
      "Run everything in one process: embedded metadata, one logstore node, a broker, the log service, metrics");
  dlog::server::AddStandaloneOptions(sa, &standalone);
  CLI11_PARSE(app, argc, argv);
  if (ls->parsed()) return dlog::server::RunLogstore(logstore);
  if (br->parsed()) return dlog::server::RunBroker(broker);
  if (sa->parsed()) return dlog::server::RunStandalone(standalone);
  return 2;
}
