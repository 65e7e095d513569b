#include "server/config.h"

#include <toml++/toml.h>

#include <cctype>
#include <cmath>

#include "base/duration.h"
#include "server/alert_sink.h"
#include "store/clickhouse/sql.h"

namespace cpuledger::server {
namespace {

constexpr std::string_view kKnownKeys =
    "bind, port, data_dir, token, raw_retention, profile_retention, tally_retention, "
    "max_body_bytes, http_threads, header_timeout, request_timeout, "
    "max_pending_batches, max_dimension_values, detect_every, detect_window, detect_confidence, "
    "detect_fdr, "
    "threshold_floor, thresholds, detect_windows, webhooks, webhook_token, webhook_attempts, "
    "webhook_backoff, webhook_max_backoff, profile_flags, store, clickhouse_urls, "
    "clickhouse_user, clickhouse_password, clickhouse_database, clickhouse_cluster, spool, "
    "spool_dir, spool_max_bytes, spool_slow_after";

constexpr int64_t kSecondUs = 1'000'000;

bool HasSpace(std::string_view s) {
  for (char c : s)
    if (std::isspace(static_cast<unsigned char>(c))) return true;
  return false;
}

// CheckStore() — the store keys (store, clickhouse_*).
Status CheckStore(const ServerConfig& c) {
  if (c.store != "sqlite" && c.store != "clickhouse")
    return InvalidArgument("store must be \"sqlite\" or \"clickhouse\", got \"" + c.store + "\"");
  if (c.store != "clickhouse") return OkStatus();
  if (c.clickhouse_urls.empty())
    return InvalidArgument("store = \"clickhouse\" needs clickhouse_urls (one per shard)");
  for (const std::string& url : c.clickhouse_urls)
    if (url.rfind("http://", 0) != 0 || url.size() <= 7 || url.find('/', 7) != std::string::npos)
      return InvalidArgument("clickhouse_urls: '" + url + "' must be http://host:port, no path");
  for (const auto& [key, name] : {std::pair{"clickhouse_database", &c.clickhouse_database},
                                  std::pair{"clickhouse_cluster", &c.clickhouse_cluster}})
    if (!store::clickhouse::ValidIdentifier(*name))
      return InvalidArgument(std::string(key) + " must be [A-Za-z_][A-Za-z0-9_]*, got '" + *name +
                             "'");
  return OkStatus();
}

// CheckWindows() — one service's before/after windows ("" for every service's).
Status CheckWindows(const std::string& service, const DetectWindows& w) {
  const std::string name = service.empty() ? "detect_windows" : "detect_windows." + service;
  if (w.samples < 1) return InvalidArgument(name + ": samples must be at least 1");
  if (w.min_side_us <= 0) return InvalidArgument(name + ": min_side must be positive");
  if (w.max_side_us < w.min_side_us)
    return InvalidArgument(name + ": max_side must be at least min_side");
  return OkStatus();
}

// CheckRanges() — every check of one value, shared by the file loader (which
// adds the file's name) and ValidateServerConfig().
Status CheckRanges(const ServerConfig& c) {
  if (c.detect_every_us != 0 && c.detect_every_us < kSecondUs)
    return InvalidArgument("detect_every must be at least 1s, or \"off\"");
  if (c.detect_window_us <= 0) return InvalidArgument("detect_window must be positive");
  if (c.spool_slow_after_us <= 0 || c.spool_max_bytes == 0)
    return InvalidArgument("spool_slow_after and spool_max_bytes must be positive");
  if (c.header_timeout_us < 100'000 || c.request_timeout_us < 100'000)
    return InvalidArgument("header_timeout and request_timeout must be at least 100ms");
  if (!(c.detect_confidence > 0.5 && c.detect_confidence < 1))
    return InvalidArgument("detect_confidence must be in (0.5, 1), e.g. 0.90");
  if (!(c.detect_fdr > 0 && c.detect_fdr <= 0.5))
    return InvalidArgument("detect_fdr must be in (0, 0.5], e.g. 0.05");
  if (!(c.threshold_floor >= 0 && c.threshold_floor <= 1))
    return InvalidArgument("threshold_floor must be in [0, 1] (a relative change: 0.01 is 1%)");
  for (const auto& [key, value] : c.thresholds) {
    const size_t space = key.find(' ');
    if (space == 0 || space == std::string::npos || space + 1 == key.size() ||
        HasSpace(key.substr(0, space)))
      return InvalidArgument("thresholds: '" + key +
                             "' must be \"<service> <endpoint>\" (a service without spaces)");
    if (!(std::isfinite(value) && value > 0 && value <= 10))
      return InvalidArgument("thresholds: " + key.substr(0, space) + " " + key.substr(space + 1) +
                             " = " + std::to_string(value) +
                             " must be in (0, 10] (a relative change: 0.02 is 2%)");
  }
  if (Status s = CheckWindows("", c.detect_windows); !s.ok()) return s;
  for (const auto& [service, w] : c.detect_windows_by_service)
    if (Status s = CheckWindows(service, w); !s.ok()) return s;
  for (const std::string& url : c.webhooks) {
    Result<WebhookUrl> parsed = ParseWebhookUrl(url);
    if (!parsed.ok()) return InvalidArgument("webhooks: " + parsed.status().message());
  }
  if (HasSpace(c.webhook_token)) return InvalidArgument("webhook_token must not contain spaces");
  if (c.webhook_attempts < 1 || c.webhook_attempts > 20)
    return InvalidArgument("webhook_attempts must be in 1..20");
  if (c.webhook_backoff_us < 1000) return InvalidArgument("webhook_backoff must be at least 1ms");
  if (c.webhook_max_backoff_us < c.webhook_backoff_us)
    return InvalidArgument("webhook_max_backoff must be at least webhook_backoff");
  return CheckStore(c);
}

// ApplyWindowKey() — one key of a [detect_windows] table over `w`.
// RETURNS: InvalidArgument naming the key (prefixed `name`).
Status ApplyWindowKey(const std::string& name, std::string_view key, const toml::node& node,
                      DetectWindows& w) {
  if (key == "samples") {
    auto v = node.value<int64_t>();
    if (!v || node.type() != toml::node_type::integer || *v <= 0)
      return InvalidArgument(name + ".samples must be a positive integer");
    w.samples = static_cast<size_t>(*v);
    return OkStatus();
  }
  if (key == "min_side" || key == "max_side") {
    auto v = node.value<std::string>();
    if (!v || node.type() != toml::node_type::string)
      return InvalidArgument(name + "." + std::string(key) +
                             " must be a duration string such as \"3h\"");
    Result<int64_t> us = ParseDurationUs(*v);
    if (!us.ok())
      return InvalidArgument(name + "." + std::string(key) + ": " + us.status().message());
    (key == "min_side" ? w.min_side_us : w.max_side_us) = *us;
    return OkStatus();
  }
  return InvalidArgument(name + ": unknown key '" + std::string(key) +
                         "' (known: samples, min_side, max_side, and a table per service)");
}

// LoadWindows() — a [detect_windows] table: its own keys for every service,
// then one sub-table per service, starting from those.
Status LoadWindows(const toml::table& table, ServerConfig& out) {
  for (auto&& [key, node] : table)
    if (!node.is_table())
      if (Status s = ApplyWindowKey("detect_windows", key.str(), node, out.detect_windows); !s.ok())
        return s;
  for (auto&& [key, node] : table) {
    if (!node.is_table()) continue;
    const std::string service(key.str());
    DetectWindows w = out.detect_windows;
    for (auto&& [k, v] : *node.as_table())
      if (Status s = ApplyWindowKey("detect_windows." + service, k.str(), v, w); !s.ok()) return s;
    out.detect_windows_by_service[service] = w;
  }
  return OkStatus();
}

}  // namespace

Status LoadServerConfigFile(const std::string& path, ServerConfig& config) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return IoError("config " + path + ": " + std::string(e.description()) + " at line " +
                   std::to_string(e.source().begin.line));
  }
  const std::string where = "config " + path + ": ";
  auto wrong = [&](std::string_view key, std::string_view want) {
    return InvalidArgument(where + "key '" + std::string(key) + "' must be " + std::string(want));
  };
  // Applies a loaded value over the config only once the whole file is
  // good: a bad file leaves `config` as the caller had it.
  ServerConfig out = config;
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "bind" || k == "data_dir" || k == "token" || k == "webhook_token") {
      auto v = node.value<std::string>();
      if (!v || node.type() != toml::node_type::string) return wrong(k, "a string");
      (k == "bind"       ? out.bind
       : k == "data_dir" ? out.data_dir
       : k == "token"    ? out.token
                         : out.webhook_token) = *v;
    } else if (k == "store" || k == "clickhouse_user" || k == "clickhouse_password" ||
               k == "clickhouse_database" || k == "clickhouse_cluster") {
      auto v = node.value<std::string>();
      if (!v || node.type() != toml::node_type::string) return wrong(k, "a string");
      (k == "store"                 ? out.store
       : k == "clickhouse_user"     ? out.clickhouse_user
       : k == "clickhouse_password" ? out.clickhouse_password
       : k == "clickhouse_database" ? out.clickhouse_database
                                    : out.clickhouse_cluster) = *v;
    } else if (k == "clickhouse_urls") {
      const toml::array* urls = node.as_array();
      if (!urls) return wrong(k, "an array of URL strings");
      out.clickhouse_urls.clear();
      for (const toml::node& u : *urls) {
        const auto* s = u.as_string();
        if (!s) return wrong(k, "an array of URL strings");
        out.clickhouse_urls.push_back(s->get());
      }
    } else if (k == "port" || k == "http_threads" || k == "max_body_bytes" ||
               k == "max_pending_batches" || k == "max_dimension_values" ||
               k == "webhook_attempts") {
      auto v = node.value<int64_t>();
      if (!v || node.type() != toml::node_type::integer || *v <= 0)
        return wrong(k, "a positive integer");
      if (k == "port") out.port = static_cast<int>(std::min<int64_t>(*v, 1 << 30));
      if (k == "http_threads") out.http_threads = static_cast<int>(std::min<int64_t>(*v, 1 << 30));
      if (k == "max_body_bytes") out.max_body_bytes = static_cast<size_t>(*v);
      if (k == "max_pending_batches") out.max_pending_batches = static_cast<size_t>(*v);
      if (k == "max_dimension_values") out.max_dimension_values = static_cast<size_t>(*v);
      if (k == "webhook_attempts")
        out.webhook_attempts = static_cast<int>(std::min<int64_t>(*v, 1 << 30));
    } else if (k == "raw_retention" || k == "profile_retention" || k == "tally_retention" ||
               k == "detect_every" || k == "detect_window" || k == "webhook_backoff" ||
               k == "webhook_max_backoff" || k == "header_timeout" || k == "request_timeout") {
      auto v = node.value<std::string>();
      if (!v || node.type() != toml::node_type::string)
        return wrong(k, k == "detect_every" ? "a duration string such as \"5m\", or \"off\""
                                            : "a duration string such as \"14d\"");
      int64_t us = 0;
      if (k == "detect_every" && (*v == "off" || *v == "0")) {
        us = 0;  // the schedule is off; `cpuledger detect` still runs on demand
      } else {
        Result<int64_t> parsed = ParseDurationUs(*v);
        if (!parsed.ok())
          return InvalidArgument(where + std::string(k) + ": " + parsed.status().message());
        us = *parsed;
      }
      if (k == "raw_retention") out.raw_retention_us = us;
      if (k == "profile_retention") out.profile_retention_us = us;
      if (k == "tally_retention") out.tally_retention_us = us;
      if (k == "detect_every") out.detect_every_us = us;
      if (k == "detect_window") out.detect_window_us = us;
      if (k == "webhook_backoff") out.webhook_backoff_us = us;
      if (k == "webhook_max_backoff") out.webhook_max_backoff_us = us;
      if (k == "header_timeout") out.header_timeout_us = us;
      if (k == "request_timeout") out.request_timeout_us = us;
    } else if (k == "detect_confidence" || k == "detect_fdr" || k == "threshold_floor") {
      // value<double>() also takes an integer (threshold_floor = 0).
      auto v = node.value<double>();
      if (!v || !(node.is_floating_point() || node.is_integer())) return wrong(k, "a number");
      (k == "detect_confidence" ? out.detect_confidence
       : k == "detect_fdr"      ? out.detect_fdr
                                : out.threshold_floor) = *v;
    } else if (k == "webhooks") {
      const toml::array* urls = node.as_array();
      if (!urls) return wrong(k, "an array of URL strings");
      out.webhooks.clear();  // the file's list replaces, not extends, the one before
      for (const toml::node& u : *urls) {
        const auto* s = u.as_string();
        if (!s) return wrong(k, "an array of URL strings");
        out.webhooks.push_back(s->get());
      }
    } else if (k == "profile_flags") {
      const toml::array* names = node.as_array();
      if (!names) return wrong(k, "an array of flag names, e.g. [\"new_search\"]");
      out.profile_flags.emplace();
      for (const toml::node& n : *names) {
        const auto* s = n.as_string();
        if (!s || s->get().empty())
          return wrong(k, "an array of flag names, e.g. [\"new_search\"]");
        out.profile_flags->insert(s->get());
      }
    } else if (k == "thresholds") {
      const toml::table* services = node.as_table();
      if (!services)
        return wrong(k, "a table of services: [thresholds.shop] then \"/checkout/\" = 0.02");
      for (auto&& [service, endpoints_node] : *services) {
        // The map's key is "service endpoint": a space in the service would
        // make it ambiguous (and no service name has one).
        if (service.str().empty() || HasSpace(service.str()))
          return InvalidArgument(where + "thresholds: service '" + std::string(service.str()) +
                                 "' must be \"<service> <endpoint>\" with no spaces in the "
                                 "service");
        const toml::table* endpoints = endpoints_node.as_table();
        if (!endpoints)
          return InvalidArgument(where + "thresholds." + std::string(service.str()) +
                                 " must be a table of \"<endpoint>\" = number, e.g. "
                                 "[thresholds." +
                                 std::string(service.str()) + "] \"/checkout/\" = 0.02");
        for (auto&& [endpoint, value_node] : *endpoints) {
          auto v = value_node.value<double>();
          if (!v || !(value_node.is_floating_point() || value_node.is_integer()))
            return InvalidArgument(where + "thresholds." + std::string(service.str()) + " \"" +
                                   std::string(endpoint.str()) + "\" must be a number");
          out.thresholds[std::string(service.str()) + " " + std::string(endpoint.str())] = *v;
        }
      }
    } else if (k == "spool") {
      auto v = node.value<bool>();
      if (!v || node.type() != toml::node_type::boolean) return wrong(k, "true or false");
      out.spool = *v;
    } else if (k == "spool_dir") {
      auto v = node.value<std::string>();
      if (!v || node.type() != toml::node_type::string || v->empty())
        return wrong(k, "a directory path");
      out.spool_dir = *v;
    } else if (k == "spool_max_bytes") {
      auto v = node.value<int64_t>();
      if (!v || node.type() != toml::node_type::integer || *v <= 0)
        return wrong(k, "a positive integer");
      out.spool_max_bytes = static_cast<uint64_t>(*v);
    } else if (k == "spool_slow_after") {
      auto v = node.value<std::string>();
      if (!v || node.type() != toml::node_type::string)
        return wrong(k, "a duration string such as \"2s\"");
      Result<int64_t> parsed = ParseDurationUs(*v);
      if (!parsed.ok())
        return InvalidArgument(where + "spool_slow_after: " + parsed.status().message());
      out.spool_slow_after_us = *parsed;
    } else if (k == "detect_windows") {
      const toml::table* windows = node.as_table();
      if (!windows) return wrong(k, "a table: [detect_windows] then max_side = \"3h\"");
      if (Status s = LoadWindows(*windows, out); !s.ok())
        return InvalidArgument(where + s.message());
    } else {
      return InvalidArgument(where + "unknown key '" + std::string(k) +
                             "' (known: " + std::string(kKnownKeys) + ")");
    }
  }
  Status ranges = CheckRanges(out);
  if (!ranges.ok()) return InvalidArgument(where + ranges.message());
  config = std::move(out);
  return OkStatus();
}

Status ValidateServerConfig(const ServerConfig& c) {
  if (c.data_dir.empty()) return InvalidArgument("data_dir is required (--data-dir DIR)");
  if (c.port <= 0 || c.port > 65535)
    return InvalidArgument("port " + std::to_string(c.port) + " is outside 1..65535");
  if (c.http_threads < 1 || c.http_threads > 256)
    return InvalidArgument("http_threads must be in 1..256");
  return CheckRanges(c);
}

}  // namespace cpuledger::server
