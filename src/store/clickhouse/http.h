// src/store/clickhouse/http.h — one ClickHouse server's HTTP interface, as
// the ClickHouse store uses it: a statement in, TabSeparated text out, and
// inserts with their rows in the body.
//
//   ShardClient shard({.url = "http://127.0.0.1:8123"});
//   Result<std::string> tsv = shard.Run("SELECT 1 FORMAT TabSeparated");
//   Status s = shard.Insert("INSERT INTO db.t FORMAT RowBinary", rows);
//
// Thread-safe: keep-alive connections (cpp-httplib, as every HTTP client of
// cpuledger) are pooled, one per concurrent call.
// RETURNS: Unavailable when the server cannot be reached or times out (retry
// later); Io with the server's message when it answered an error.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"

namespace httplib {
class Client;
}

namespace cpuledger::store::clickhouse {

// ShardOptions — where one server is and who we are to it.
struct ShardOptions {
  std::string url;       // "http://host:port", no path
  std::string user;      // empty: the server's default user, no credentials sent
  std::string password;  // sent with `user` as HTTP basic authentication
  std::chrono::milliseconds timeout{30'000};  // connect, send and receive, each
};

class ShardClient {
 public:
  explicit ShardClient(ShardOptions options);
  ~ShardClient();
  ShardClient(const ShardClient&) = delete;
  ShardClient& operator=(const ShardClient&) = delete;

  // ShardClient::Run() — POSTs `sql` as the body. RETURNS: the response body.
  Result<std::string> Run(const std::string& sql);
  // ShardClient::Insert() — `insert` ("INSERT INTO t FORMAT RowBinary") in
  // the URL, `rows` in the body. REQUIRES: rows in the format named.
  Status Insert(const std::string& insert, const std::string& rows);
  // ShardClient::Ping() — GET /ping answered "Ok.".
  bool Ping();

  const std::string& url() const { return options_.url; }

 private:
  Result<std::string> Post(const std::string& path, const std::string& body);
  std::unique_ptr<httplib::Client> Acquire();
  void Release(std::unique_ptr<httplib::Client> client);

  const ShardOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;  // guarded by mu_
};

}  // namespace cpuledger::store::clickhouse
