// src/client/ingest_client.h — one POST /v1/ingest, and what its answer means
// for the batch: taken, try again later, or never.
//
//   IngestClient client("http://127.0.0.1:8750", token, std::chrono::seconds(2));
//   PostResult r = client.Post(serialized_batch);
//   switch (r.outcome) { case PostOutcome::kAcknowledged: ... }
//
// The server's answers (src/server/api.cc): 200 {"accepted","tallies",
// "duplicate"} — a duplicate is acknowledged too, the batch is stored once;
// 400 malformed, 401 bad token, 413 too large: the same bytes can never
// succeed; 503 + Retry-After: overloaded, retry later. What each answer
// means for the batch is base/delivery.h's rule, shared by every sender.
//
// Thread-safety: none; one IngestClient per sender thread (it keeps one
// keep-alive connection).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/delivery.h"
#include "base/status.h"

namespace httplib {
class Client;
}

namespace cpuledger::client {

// PostResult — one attempt.
struct PostResult {
  delivery::Verdict outcome = delivery::Verdict::kRetry;  // base/delivery.h's one rule
  int http_status = 0;                                    // 0: no HTTP response at all
  std::chrono::milliseconds retry_after{0};               // Retry-After of a 429/503; 0 when absent
  std::string error;                                      // for people; empty when acknowledged
};

// IngestClient — POSTs protobuf batches to one server.
class IngestClient {
 public:
  // IngestClient::Create() — `url` is "http://host:port" (or https://), no path.
  // RETURNS: InvalidArgument naming server_url when it is not such a URL.
  static Result<std::unique_ptr<IngestClient>> Create(const std::string& url,
                                                      const std::string& token,
                                                      std::chrono::milliseconds timeout);
  ~IngestClient();
  IngestClient(const IngestClient&) = delete;
  IngestClient& operator=(const IngestClient&) = delete;

  // IngestClient::Post() — POST /v1/ingest, Content-Type application/x-protobuf,
  // "Authorization: Bearer <token>" when a token is set. Never throws.
  // COST: one HTTP round trip, bounded by the timeout for connect, send and
  // receive each; reuses the previous connection when the server kept it.
  PostResult Post(const std::string& body);

  // IngestClient::Healthy() — GET /healthz answered 200: the cheap probe
  // used while backing off from a server that could not be reached.
  bool Healthy();

  const std::string& url() const { return url_; }

 private:
  IngestClient(std::string url, std::string token, std::unique_ptr<httplib::Client> http);
  std::string url_;
  std::string token_;
  std::unique_ptr<httplib::Client> http_;
};

}  // namespace cpuledger::client
