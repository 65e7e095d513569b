#include "cli/http_client.h"

#include <httplib.h>

#include <cstdlib>

namespace cpuledger::cli {

struct ServerClient::Impl {
  explicit Impl(const std::string& url) : client(url) {}
  httplib::Client client;
  httplib::Headers headers;
};

ServerClient::ServerClient(std::string url, std::string token)
    : impl_(std::make_unique<Impl>(url)), url_(std::move(url)) {
  if (token.empty())
    if (const char* env = std::getenv("CPULEDGER_TOKEN")) token = env;
  if (!token.empty()) impl_->headers.emplace("Authorization", "Bearer " + token);
  impl_->client.set_keep_alive(true);
  impl_->client.set_tcp_nodelay(true);  // headers and body go out in separate writes
  impl_->client.set_connection_timeout(5, 0);
  impl_->client.set_read_timeout(120, 0);
}

ServerClient::~ServerClient() = default;

Result<nlohmann::json> ServerClient::GetJson(const std::string& path_and_query) {
  httplib::Result res = impl_->client.Get(path_and_query, impl_->headers);
  if (!res) return Unavailable("cannot reach " + url_ + ": " + httplib::to_string(res.error()));
  nlohmann::json body = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (res->status != 200) {
    std::string why =
        body.is_object() && body.contains("error") ? body["error"].get<std::string>() : res->body;
    return InvalidArgument("server answered " + std::to_string(res->status) + ": " + why);
  }
  if (body.is_discarded()) return Internal("server answered with invalid JSON");
  return body;
}

Result<std::pair<int, std::string>> ServerClient::Post(const std::string& path,
                                                       const std::string& body,
                                                       const std::string& content_type) {
  httplib::Result res = impl_->client.Post(path, impl_->headers, body, content_type);
  if (!res) return Unavailable("cannot reach " + url_ + ": " + httplib::to_string(res.error()));
  return std::make_pair(res->status, res->body);
}

}  // namespace cpuledger::cli
