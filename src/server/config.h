// src/server/config.h — how `cpuledger serve` is set up: defaults, then a
// TOML file (--config), then command-line flags, each overriding the last.
//
//   # cpuledger.toml
//   bind = "127.0.0.1"        # loopback by default; "0.0.0.0" exposes it
//   port = 8750
//   data_dir = "/var/lib/cpuledger"
//   token = "s3cret"          # requires Authorization: Bearer s3cret
//   raw_retention = "14d"     # raw samples kept this long; rollups forever
//   profile_retention = "90d" # function entities and moments (whole hours)
//   tally_retention = "90d"   # worker tallies: unsampled counts, active users
//   max_body_bytes = 33554432 # larger ingest bodies get 413
//   http_threads = 8          # workers running the handlers (reading is async)
//   header_timeout = "10s"    # a request's headers must be in this soon after its first byte
//   request_timeout = "60s"   # ... and its body this soon (and at 16 KiB/s at least)
//   max_pending_batches = 256 # ingest queue; beyond it, 503 + Retry-After
//   max_dimension_values = 2000 # distinct values kept per service and dimension
//                             # (endpoint, method, host, cluster, region, flag names,
//                             # each flag's values); new ones beyond are stored as <other>
//   profile_flags = ["new_search"] # flags whose values keep call paths (flame graphs and
//                             # diffs by flag value); absent: every flag; [] none. Each
//                             # flag a record carries adds its profile once more.
//
//   # where the books are kept: "sqlite" (default: <data_dir>/cpuledger.sqlite)
//   # or "clickhouse" (in progress: src/store/clickhouse/clickhouse_store.h says
//   # which calls it answers); the schema is created on first start
//   store = "clickhouse"
//   clickhouse_urls = ["http://10.0.0.1:8123", "http://10.0.0.2:8123"]  # one per shard,
//                             # in the order of the cluster's remote_servers
//   clickhouse_user = "cpuledger"       # empty (default): the server's default user
//   clickhouse_password = "s3cret"      # sent with the user (HTTP basic authentication)
//   clickhouse_database = "cpuledger"
//   clickhouse_cluster = "cpuledger"    # the remote_servers entry of these shards
//   # the server's spool (src/server/store_spool.h): batches acknowledged while
//   # the store is down or slow wait here, and are replayed in order
//   spool = true              # default: on for "clickhouse", off for "sqlite"
//   spool_dir = "/var/lib/cpuledger/spool"  # default: <data_dir>/spool
//   spool_max_bytes = 1073741824 # beyond it, 503 (the clients' spools keep the batches)
//   spool_slow_after = "2s"   # a store write slower than this spools the next ones
//
//   # regression detection, run inside the server
//   detect_every = "5m"       # how often the detectors run; "off" (or "0") disables
//   detect_window = "24h"     # the data each run looks at
//   detect_confidence = 0.90  # two-sided confidence of the effect intervals, in (0.5, 1)
//   detect_fdr = 0.05         # Benjamini-Hochberg level over flag and function tests, (0, 0.5]
//   threshold_floor = 0.01    # no endpoint alerts on less than +1%, in [0, 1]
//
//   # a rollout's before/after windows: each side the narrowest width (whole
//   # minutes) holding `samples` requests, within [min_side, max_side]
//   [detect_windows]
//   samples = 5000
//   min_side = "10m"
//   max_side = "3h"
//   [detect_windows.batch]    # one service's own; keys it leaves out come
//   max_side = "12h"          # from [detect_windows] (or the defaults)
//
//   # fixed thresholds per endpoint, replacing the learned ones:
//   # [thresholds.<service>] then "<endpoint>" = relative change, in (0, 10]
//   [thresholds.shop]
//   "/checkout/" = 0.02
//   "/search/" = 0.05
//   [thresholds."billing.api"] # quote a service name with dots in it
//   "/invoice/<id>/" = 0.03
//
//   # where new alerts are POSTed as JSON (besides the server log)
//   webhooks = ["http://hooks.internal:9000/cpuledger"]  # http://; https:// too when
//                             # the HTTP client has TLS (see alert_sink.h)
//   webhook_token = "hook-s3cret"  # sent as Authorization: Bearer hook-s3cret
//   webhook_attempts = 6      # tries per alert and hook, in 1..20; doubling back-off
//   webhook_backoff = "2s"    # before the first retry
//   webhook_max_backoff = "1m"
//
// Top-level keys and table names not listed here are errors, so a typo is
// found at start-up rather than silently ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"

namespace cpuledger::server {

// DetectWindows — one service's before/after windows (the server hands them
// to detect::BeforeAfterWindows): samples >= 1, 0 < min_side <= max_side.
struct DetectWindows {
  size_t samples = 5000;
  int64_t min_side_us = 10LL * 60'000'000;
  int64_t max_side_us = 3LL * 3'600'000'000;
};

struct ServerConfig {
  std::string bind = "127.0.0.1";
  int port = 8750;
  std::string data_dir;          // required: holds cpuledger.sqlite
  std::string store = "sqlite";  // or "clickhouse"
  std::vector<std::string> clickhouse_urls;
  std::string clickhouse_user, clickhouse_password;
  std::string clickhouse_database = "cpuledger", clickhouse_cluster = "cpuledger";
  std::optional<bool> spool;  // unset: on for the ClickHouse store only
  std::string spool_dir;      // empty: <data_dir>/spool
  uint64_t spool_max_bytes = 1ull << 30;
  int64_t spool_slow_after_us = 2'000'000;
  std::string token;  // empty: no authentication
  size_t max_body_bytes = 32u << 20;
  int http_threads = 8;
  int64_t header_timeout_us = 10'000'000;   // first byte of a request -> end of its headers
  int64_t request_timeout_us = 60'000'000;  // first byte of a request -> end of its body
  size_t max_pending_batches = 256;
  size_t max_dimension_values = 2000;
  int64_t raw_retention_us = 14LL * 86'400'000'000;
  int64_t profile_retention_us = 90LL * 86'400'000'000;
  int64_t tally_retention_us = 90LL * 86'400'000'000;
  int64_t retention_every_us = 3'600'000'000;  // how often retention runs

  int64_t detect_every_us = 5LL * 60'000'000;  // 0: no scheduled detection
  int64_t detect_window_us = 24LL * 3'600'000'000;
  double detect_confidence = 0.90;
  double detect_fdr = 0.05;
  double threshold_floor = 0.01;
  // "service endpoint" (one space; the form of detect::DetectOptions::thresholds)
  // -> fixed relative threshold.
  std::map<std::string, double> thresholds;
  DetectWindows detect_windows;  // every service's, unless in detect_windows_by_service
  std::map<std::string, DetectWindows> detect_windows_by_service;

  std::vector<std::string> webhooks;  // empty: alerts go to the log only
  // store::SqliteOptions::profile_flags; unset: every flag.
  std::optional<std::set<std::string>> profile_flags = std::nullopt;
  std::string webhook_token;  // empty: no Authorization header
  int webhook_attempts = 6;
  int64_t webhook_backoff_us = 2'000'000;
  int64_t webhook_max_backoff_us = 60'000'000;
};

// LoadServerConfigFile() — applies the keys of a TOML file over `config`.
// RETURNS: InvalidArgument naming the file and the key for an unknown key, a
// wrong type or a bad value; Io when the file cannot be read or parsed.
Status LoadServerConfigFile(const std::string& path, ServerConfig& config);

// ValidateServerConfig() — the checks that need every source merged, and
// the range checks again (a config may be built in code). RETURNS:
// InvalidArgument naming the key.
Status ValidateServerConfig(const ServerConfig& config);

}  // namespace cpuledger::server
