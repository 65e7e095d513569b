// `cpuledger serve --port N --data-dir DIR [--bind ADDR] [--token T] [--config FILE]`
#include <signal.h>

#include <iostream>

#include "base/duration.h"
#include "cli/commands.h"
#include "server/server.h"

namespace cpuledger::cli {
namespace {

// WaitForTerminationSignal() — blocks SIGINT/SIGTERM in every thread (call it
// before any thread starts) and returns a function that waits for one.
sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  struct Flags {
    server::ServerConfig config;
    std::string config_file;
    std::string retention;
    std::string detect_every;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd =
      app.add_subcommand("serve", "Run the cpuledger server (ingest, store, query API)");
  CLI::Option* port = cmd->add_option("--port", f->config.port, "TCP port (default 8750)");
  CLI::Option* dir = cmd->add_option("--data-dir", f->config.data_dir,
                                     "Directory of the SQLite store (created if missing)");
  CLI::Option* bind = cmd->add_option("--bind", f->config.bind, "Address (default 127.0.0.1)");
  CLI::Option* token =
      cmd->add_option("--token", f->config.token,
                      "Require Authorization: Bearer TOKEN on every route but /healthz");
  CLI::Option* retention =
      cmd->add_option("--raw-retention", f->retention, "Keep raw samples this long (default 14d)");
  CLI::Option* detect_every =
      cmd->add_option("--detect-every", f->detect_every,
                      "Run the regression detectors this often: 1m, 5m (default), off");
  CLI::Option* webhooks = cmd->add_option("--webhook", f->config.webhooks,
                                          "POST new alerts as JSON to this URL (repeatable)");
  cmd->add_option("--config", f->config_file, "TOML file; flags override it")
      ->check(CLI::ExistingFile);
  cmd->callback([f, exit_code, port, dir, bind, token, retention, detect_every, webhooks] {
    // Defaults < config file < flags: re-apply the flags given over the file.
    server::ServerConfig config;
    if (!f->config_file.empty()) {
      Status s = server::LoadServerConfigFile(f->config_file, config);
      if (!s.ok()) {
        std::cerr << "cpuledger serve: " << s.message() << "\n";
        *exit_code = 2;
        return;
      }
    }
    if (port->count()) config.port = f->config.port;
    if (dir->count()) config.data_dir = f->config.data_dir;
    if (bind->count()) config.bind = f->config.bind;
    if (token->count()) config.token = f->config.token;
    if (retention->count()) {
      Result<int64_t> us = ParseDurationUs(f->retention);
      if (!us.ok()) {
        std::cerr << "cpuledger serve: --raw-retention: " << us.status().message() << "\n";
        *exit_code = 2;
        return;
      }
      config.raw_retention_us = *us;
    }
    if (webhooks->count()) config.webhooks = f->config.webhooks;
    if (detect_every->count()) {
      if (f->detect_every == "off" || f->detect_every == "0") {
        config.detect_every_us = 0;
      } else {
        Result<int64_t> us = ParseDurationUs(f->detect_every);
        if (!us.ok()) {
          std::cerr << "cpuledger serve: --detect-every: " << us.status().message() << "\n";
          *exit_code = 2;
          return;
        }
        config.detect_every_us = *us;
      }
    }
    sigset_t signals = BlockTerminationSignals();
    Result<std::unique_ptr<server::Server>> server = server::Server::Start(config);
    if (!server.ok()) {
      std::cerr << "cpuledger serve: " << server.status().message() << "\n";
      *exit_code = server.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      return;
    }
    std::cerr << "cpuledger serve: listening on http://" << config.bind << ":" << (*server)->port()
              << " (data in " << config.data_dir << ", "
              << (config.token.empty() ? "no token" : "bearer token required") << ")\n";
    int sig = 0;
    sigwait(&signals, &sig);
    std::cerr << "cpuledger serve: signal " << sig << ", stopping\n";
    (*server)->Stop();
    *exit_code = 0;
  });
}

}  // namespace cpuledger::cli
