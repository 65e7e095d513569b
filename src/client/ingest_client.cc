#include "client/ingest_client.h"

#include <httplib.h>

#include <algorithm>

namespace cpuledger::client {
namespace {

constexpr char kIngestPath[] = "/v1/ingest";
constexpr char kHealthPath[] = "/healthz";
constexpr char kContentType[] = "application/x-protobuf";
constexpr size_t kMaxErrorBody = 200;  // of a refusal's body, quoted in errors

bool StartsWith(const std::string& s, std::string_view prefix) {
  return s.size() >= prefix.size() && std::string_view(s).substr(0, prefix.size()) == prefix;
}

}  // namespace

Result<std::unique_ptr<IngestClient>> IngestClient::Create(const std::string& url,
                                                           const std::string& token,
                                                           std::chrono::milliseconds timeout) {
  std::string base = url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const bool http = StartsWith(base, "http://"), https = StartsWith(base, "https://");
  const size_t host_at = http ? 7 : https ? 8 : 0;
  if (host_at == 0 || base.size() == host_at || base.find('/', host_at) != std::string::npos)
    return InvalidArgument("server_url '" + url +
                           "' must look like http://host:port (or https://), without a path");
  try {
    auto client = std::make_unique<httplib::Client>(base);
    if (!client->is_valid())
      return InvalidArgument("server_url '" + url + "' is not a usable http(s) URL");
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
    const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(timeout - seconds);
    client->set_connection_timeout(seconds.count(), usec.count());
    client->set_read_timeout(seconds.count(), usec.count());
    client->set_write_timeout(seconds.count(), usec.count());
    client->set_keep_alive(true);
    // Headers and body go out in separate writes: without TCP_NODELAY, Nagle
    // holds the body until the server's delayed ACK (~40 ms per batch).
    client->set_tcp_nodelay(true);
    return std::unique_ptr<IngestClient>(new IngestClient(base, token, std::move(client)));
  } catch (const std::exception& e) {
    return Internal(std::string("cannot create the HTTP client: ") + e.what());
  }
}

IngestClient::IngestClient(std::string url, std::string token,
                           std::unique_ptr<httplib::Client> http)
    : url_(std::move(url)), token_(std::move(token)), http_(std::move(http)) {}

IngestClient::~IngestClient() = default;

PostResult IngestClient::Post(const std::string& body) {
  PostResult out;
  try {
    httplib::Headers headers;
    if (!token_.empty()) headers.emplace("Authorization", "Bearer " + token_);
    httplib::Result res = http_->Post(kIngestPath, headers, body, kContentType);
    if (!res) {
      out.error = "server " + url_ + " unreachable (" + httplib::to_string(res.error()) + ")";
      return out;
    }
    out.http_status = res->status;
    out.outcome = delivery::Classify(res->status);
    if (out.outcome == delivery::Verdict::kDelivered) return out;
    out.retry_after = delivery::ParseRetryAfter(res->get_header_value("Retry-After"),
                                                std::chrono::system_clock::now());
    out.error = "server " + url_ + " answered " + std::to_string(res->status) + ": " +
                res->body.substr(0, kMaxErrorBody);
    while (!out.error.empty() && (out.error.back() == '\n' || out.error.back() == '\r'))
      out.error.pop_back();
  } catch (const std::exception& e) {
    out = PostResult{};
    out.error = std::string("HTTP client failed: ") + e.what();
  }
  return out;
}

bool IngestClient::Healthy() {
  try {
    httplib::Result res = http_->Get(kHealthPath);
    return res && res->status == 200;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace cpuledger::client
