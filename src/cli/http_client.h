// src/cli/http_client.h — the CLI's calls to a cpuledger server.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "base/status.h"

namespace cpuledger::cli {

// ServerClient — one keep-alive connection to `url` ("http://host:port").
class ServerClient {
 public:
  // `token` empty: taken from $CPULEDGER_TOKEN if set.
  ServerClient(std::string url, std::string token);
  ~ServerClient();
  ServerClient(const ServerClient&) = delete;
  ServerClient& operator=(const ServerClient&) = delete;

  // ServerClient::GetJson() — GET path?query. RETURNS: the JSON body of a
  // 200, or an error quoting the server's {"error": ...} and the HTTP status.
  Result<nlohmann::json> GetJson(const std::string& path_and_query);

  // ServerClient::Post() — POST a body. RETURNS: the HTTP status and body,
  // or Unavailable when the server cannot be reached.
  Result<std::pair<int, std::string>> Post(const std::string& path, const std::string& body,
                                           const std::string& content_type);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string url_;
};

}  // namespace cpuledger::cli
