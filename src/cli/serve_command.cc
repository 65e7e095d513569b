// `cpuledger serve --port N --data-dir DIR [--bind ADDR] [--token-file F] [--config FILE]
//                  [--header-timeout 10s] [--request-timeout 60s]`
// The token: --token-file (first line), else $CPULEDGER_TOKEN, else --token
// (which any local user can read in /proc/PID/cmdline).
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdlib>
#include <fstream>
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

// ReadTokenFile() — the first line of `path`, without its line end.
Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  std::string token;
  if (!in || !std::getline(in, token)) return InvalidArgument("cannot read a token from " + path);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty()) return InvalidArgument("the first line of " + path + " is empty");
  return token;
}

// PrepareProcess() — what a long-running server needs of the process: the
// descriptor limit raised to its hard limit (each connection, slow ones
// included, is a descriptor), and malloc tuned for large request bodies:
// bodies under 32 MiB reuse the heap (a mapping each was page faults on
// every byte), one arena (so that malloc_trim() reaches all of it: it does
// not trim the top of other threads' arenas), and no trim after each free
// (the next request faulted the memory in again); the HTTP layer trims once
// a burst of large bodies is over.
void PrepareProcess() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
      std::cerr << "cpuledger serve: cannot raise the open-file limit; serving with fewer\n";
  }
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

// ParseTimeout() — a --*-timeout flag's duration into *out_us; nothing when
// the flag is not given. RETURNS: false (and says why on stderr) when it
// does not parse.
bool ParseTimeout(const char* flag, const std::string& text, int64_t* out_us) {
  if (text.empty()) return true;
  Result<int64_t> us = ParseDurationUs(text);
  if (!us.ok()) {
    std::cerr << "cpuledger serve: " << flag << ": " << us.status().message() << "\n";
    return false;
  }
  *out_us = *us;
  return true;
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  struct Flags {
    server::ServerConfig config;
    std::string config_file;
    std::string retention;
    std::string detect_every;
    std::string token_file;
    std::string header_timeout;   // "" unless given
    std::string request_timeout;  // "" unless given
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
                      "Require Authorization: Bearer TOKEN on every route but /healthz (prefer "
                      "--token-file or $CPULEDGER_TOKEN: other users can read a command line)");
  CLI::Option* token_file =
      cmd->add_option("--token-file", f->token_file, "Read the bearer token from this file")
          ->check(CLI::ExistingFile);
  CLI::Option* retention =
      cmd->add_option("--raw-retention", f->retention, "Keep raw samples this long (default 14d)");
  CLI::Option* detect_every =
      cmd->add_option("--detect-every", f->detect_every,
                      "Run the regression detectors this often: 1m, 5m (default), off");
  CLI::Option* webhooks = cmd->add_option("--webhook", f->config.webhooks,
                                          "POST new alerts as JSON to this URL (repeatable)");
  cmd->add_option("--header-timeout", f->header_timeout,
                  "A request's headers must be in this soon after its first byte (default 10s)");
  cmd->add_option("--request-timeout", f->request_timeout,
                  "A request's headers and body must be in this soon after its first byte "
                  "(default 60s)");
  cmd->add_option("--config", f->config_file, "TOML file; flags override it")
      ->check(CLI::ExistingFile);
  cmd->callback(
      [f, exit_code, port, dir, bind, token, token_file, retention, detect_every, webhooks] {
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
        if (const char* env = std::getenv("CPULEDGER_TOKEN"); env != nullptr && *env != '\0')
          config.token = env;
        if (token_file->count()) {
          Result<std::string> t = ReadTokenFile(f->token_file);
          if (!t.ok()) {
            std::cerr << "cpuledger serve: --token-file: " << t.status().message() << "\n";
            *exit_code = 2;
            return;
          }
          config.token = *t;
        }
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
        if (!ParseTimeout("--header-timeout", f->header_timeout, &config.header_timeout_us) ||
            !ParseTimeout("--request-timeout", f->request_timeout, &config.request_timeout_us)) {
          *exit_code = 2;
          return;
        }
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
        PrepareProcess();
        sigset_t signals = BlockTerminationSignals();
        Result<std::unique_ptr<server::Server>> server = server::Server::Start(config);
        if (!server.ok()) {
          std::cerr << "cpuledger serve: " << server.status().message() << "\n";
          *exit_code = server.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
          return;
        }
        std::cerr << "cpuledger serve: listening on http://" << config.bind << ":"
                  << (*server)->port() << " (data in " << config.data_dir << ", "
                  << (config.token.empty() ? "no token" : "bearer token required") << ")\n";
        int sig = 0;
        sigwait(&signals, &sig);
        std::cerr << "cpuledger serve: signal " << sig << ", stopping\n";
        (*server)->Stop();
        *exit_code = 0;
      });
}

}  // namespace cpuledger::cli
