#include "server/config.h"

#include <toml++/toml.h>

#include "base/duration.h"

namespace cpuledger::server {

Status LoadServerConfigFile(const std::string& path, ServerConfig& config) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return IoError("config " + path + ": " + std::string(e.description()) + " at line " +
                   std::to_string(e.source().begin.line));
  }
  auto wrong = [&](std::string_view key, std::string_view want) {
    return InvalidArgument("config " + path + ": key '" + std::string(key) + "' must be " +
                           std::string(want));
  };
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "bind" || k == "data_dir" || k == "token") {
      auto v = node.value<std::string>();
      if (!v) return wrong(k, "a string");
      (k == "bind" ? config.bind : k == "data_dir" ? config.data_dir : config.token) = *v;
    } else if (k == "port" || k == "http_threads" || k == "max_body_bytes" ||
               k == "max_pending_batches") {
      auto v = node.value<int64_t>();
      if (!v || *v <= 0) return wrong(k, "a positive integer");
      if (k == "port") config.port = static_cast<int>(*v);
      if (k == "http_threads") config.http_threads = static_cast<int>(*v);
      if (k == "max_body_bytes") config.max_body_bytes = static_cast<size_t>(*v);
      if (k == "max_pending_batches") config.max_pending_batches = static_cast<size_t>(*v);
    } else if (k == "raw_retention") {
      auto v = node.value<std::string>();
      if (!v) return wrong(k, "a duration string such as \"14d\"");
      Result<int64_t> us = ParseDurationUs(*v);
      if (!us.ok())
        return InvalidArgument("config " + path + ": raw_retention: " + us.status().message());
      config.raw_retention_us = *us;
    } else {
      return InvalidArgument("config " + path + ": unknown key '" + std::string(k) +
                             "' (known: bind, port, data_dir, token, raw_retention, "
                             "max_body_bytes, http_threads, max_pending_batches)");
    }
  }
  return OkStatus();
}

Status ValidateServerConfig(const ServerConfig& c) {
  if (c.data_dir.empty()) return InvalidArgument("data_dir is required (--data-dir DIR)");
  if (c.port <= 0 || c.port > 65535)
    return InvalidArgument("port " + std::to_string(c.port) + " is outside 1..65535");
  if (c.http_threads < 1 || c.http_threads > 256)
    return InvalidArgument("http_threads must be in 1..256");
  return OkStatus();
}

}  // namespace cpuledger::server
