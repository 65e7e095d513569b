#include "store/clickhouse/http.h"

#include <httplib.h>

#include "base/url_text.h"

namespace cpuledger::store::clickhouse {

namespace {

constexpr size_t kMaxIdle = 8;

// ServerError() — the first line of ClickHouse's "Code: N, e.displayText() = ..." answer.
std::string ServerError(const std::string& body) {
  std::string line = body.substr(0, body.find('\n'));
  return line.size() > 2000 ? line.substr(0, 2000) + "..." : line;
}

}  // namespace

ShardClient::ShardClient(ShardOptions options) : options_(std::move(options)) {}
ShardClient::~ShardClient() = default;

std::unique_ptr<httplib::Client> ShardClient::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<httplib::Client> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<httplib::Client>(options_.url);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);
  c->set_connection_timeout(options_.timeout);
  c->set_read_timeout(options_.timeout);
  c->set_write_timeout(options_.timeout);
  if (!options_.user.empty()) c->set_basic_auth(options_.user, options_.password);
  return c;
}

void ShardClient::Release(std::unique_ptr<httplib::Client> client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(client));
}

Result<std::string> ShardClient::Post(const std::string& path, const std::string& body) {
  std::unique_ptr<httplib::Client> c = Acquire();
  httplib::Result res = c->Post(path, body, "application/octet-stream");
  if (!res)
    return Unavailable("ClickHouse at " + options_.url +
                       " cannot be reached: " + httplib::to_string(res.error()));
  Release(std::move(c));
  if (res->status != 200)
    return IoError("ClickHouse at " + options_.url + " answered " + std::to_string(res->status) +
                   ": " + ServerError(res->body));
  return std::move(res->body);
}

Result<std::string> ShardClient::Run(const std::string& sql) { return Post("/", sql); }

Status ShardClient::Insert(const std::string& insert, const std::string& rows) {
  return Post("/?query=" + UrlEncode(insert), rows).status();
}

bool ShardClient::Ping() {
  std::unique_ptr<httplib::Client> c = Acquire();
  httplib::Result res = c->Get("/ping");
  bool ok = res && res->status == 200 && res->body.rfind("Ok.", 0) == 0;
  if (res) Release(std::move(c));
  return ok;
}

}  // namespace cpuledger::store::clickhouse
