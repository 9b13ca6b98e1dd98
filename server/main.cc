// dlogd: the one server binary. Roles: logstore (now); standalone and broker
// come with later modules.
#include <CLI/CLI.hpp>

#include "server/logstore_main.h"

int main(int argc, char** argv) {
  CLI::App app{"dlogd: the dlog server (roles: logstore)"};
  app.set_config("--config", "", "Read options from this TOML/INI file");
  app.require_subcommand(1);
  dlog::server::LogstoreFlags logstore;
  CLI::App* ls = app.add_subcommand("logstore", "Run one logstore (storage) node");
  dlog::server::AddLogstoreOptions(ls, &logstore);
  CLI11_PARSE(app, argc, argv);
  if (ls->parsed()) return dlog::server::RunLogstore(logstore);
  return 2;
}
