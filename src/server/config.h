// src/server/config.h — how `cpuledger serve` is set up: defaults, then a
// TOML file (--config), then command-line flags, each overriding the last.
//
//   # cpuledger.toml
//   bind = "127.0.0.1"        # loopback by default; "0.0.0.0" exposes it
//   port = 8750
//   data_dir = "/var/lib/cpuledger"
//   token = "s3cret"          # requires Authorization: Bearer s3cret
//   raw_retention = "14d"     # raw samples kept this long; rollups forever
//   max_body_bytes = 33554432 # larger ingest bodies get 413
//   http_threads = 8
//   max_pending_batches = 256 # ingest queue; beyond it, 503 + Retry-After
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/status.h"

namespace cpuledger::server {

struct ServerConfig {
  std::string bind = "127.0.0.1";
  int port = 8750;
  std::string data_dir;  // required: holds cpuledger.sqlite
  std::string token;     // empty: no authentication
  size_t max_body_bytes = 32u << 20;
  int http_threads = 8;
  size_t max_pending_batches = 256;
  int64_t raw_retention_us = 14LL * 86'400'000'000;
  int64_t retention_every_us = 3'600'000'000;  // how often retention runs
};

// LoadServerConfigFile() — applies the keys of a TOML file over `config`.
// RETURNS: InvalidArgument naming the file and the key for an unknown key, a
// wrong type or a bad value; Io when the file cannot be read or parsed.
Status LoadServerConfigFile(const std::string& path, ServerConfig& config);

// ValidateServerConfig() — the checks that need every source merged.
Status ValidateServerConfig(const ServerConfig& config);

}  // namespace cpuledger::server
