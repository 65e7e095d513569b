#include "ingest_test_server.h"

#include <httplib.h>

#include "record/codec.h"

namespace cpuledger::client::test {

IngestTestServer::IngestTestServer() = default;

IngestTestServer::~IngestTestServer() { Stop(); }

bool IngestTestServer::Start() {
  Stop();
  {
    std::lock_guard lk(mu_);
    stopping_ = false;
  }
  server_ = std::make_unique<httplib::Server>();
  server_->set_keep_alive_max_count(1000);
  server_->set_tcp_nodelay(true);
  server_->Post("/v1/ingest", [this](const httplib::Request& req, httplib::Response& res) {
    int status = 200;
    std::string answer, retry_after;
    bool drop = false;
    Handle(req.get_header_value("Authorization"), req.body, status, answer, retry_after, drop);
    if (drop) {
      // Promise a body, then fail to produce it: httplib closes the connection
      // after the headers, so the client gets no complete answer.
      res.set_content_provider(64, "application/json",
                               [](size_t, size_t, httplib::DataSink&) { return false; });
      return;
    }
    res.status = status;
    if (!retry_after.empty()) res.set_header("Retry-After", retry_after);
    res.set_content(answer, "application/json");
  });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  if (port_ == 0) {
    port_ = server_->bind_to_any_port("127.0.0.1");
    if (port_ <= 0) {
      port_ = 0;
      return false;
    }
  } else if (!server_->bind_to_port("127.0.0.1", port_)) {
    return false;
  }
  thread_ = std::thread([s = server_.get()] { s->listen_after_bind(); });
  // httplib's stop() does nothing until the listener runs: wait for it, so a
  // Stop() right after Start() really stops.
  return WaitFor([&] { return server_->is_running(); }, std::chrono::seconds(5));
}

void IngestTestServer::Stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  released_.notify_all();
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

void IngestTestServer::Handle(const std::string& authorization, const std::string& body,
                              int& status, std::string& answer, std::string& retry_after,
                              bool& drop_connection) {
  std::unique_lock lk(mu_);
  requests_++;
  if (!token_.empty() && authorization != "Bearer " + token_) {
    status = 401;
    answer = R"({"error":"bad token"})";
    return;
  }
  switch (mode_) {
    case Mode::kUnavailable:
      status = 503;
      retry_after = retry_after_;
      answer = R"({"error":"overloaded"})";
      return;
    case Mode::kCloseConnection:
      drop_connection = true;
      return;
    case Mode::kBadRequest:
      status = 400;
      answer = R"j({"error":"malformed (forced by the test)"})j";
      return;
    case Mode::kTooLarge:
      status = 413;
      answer = R"j({"error":"too large (forced by the test)"})j";
      return;
    case Mode::kOk:
    case Mode::kHold:
      break;
  }
  Result<record::Batch> batch = record::DecodeBatch(record::Encoding::kProtobuf, body);
  if (!batch.ok()) {
    status = batch.status().code() == StatusCode::kResourceExhausted ? 413 : 400;
    answer = R"({"error":")" + batch.status().message() + R"("})";
    return;
  }
  const bool duplicate = !seen_.emplace(batch->sender(), batch->sequence()).second;
  const int records = batch->records_size(), tallies = batch->tallies_size();
  if (duplicate) {
    duplicates_++;
  } else {
    stored_.push_back(Stored{batch->sender(), batch->sequence(), std::move(*batch)});
  }
  if (mode_ == Mode::kHold) {
    held_++;
    const uint64_t generation = release_generation_;
    released_.wait_for(lk, std::chrono::seconds(20),
                       [&] { return stopping_ || release_generation_ != generation; });
    held_--;
  }
  status = 200;
  answer = "{\"accepted\":" + std::to_string(duplicate ? 0 : records) +
           ",\"tallies\":" + std::to_string(duplicate ? 0 : tallies) +
           ",\"duplicate\":" + (duplicate ? "true" : "false") + "}";
}

void IngestTestServer::set_mode(Mode mode) {
  std::lock_guard lk(mu_);
  mode_ = mode;
}

void IngestTestServer::set_token(std::string token) {
  std::lock_guard lk(mu_);
  token_ = std::move(token);
}

void IngestTestServer::set_retry_after(std::string seconds) {
  std::lock_guard lk(mu_);
  retry_after_ = std::move(seconds);
}

void IngestTestServer::Release() {
  {
    std::lock_guard lk(mu_);
    release_generation_++;
    if (mode_ == Mode::kHold) mode_ = Mode::kOk;
  }
  released_.notify_all();
}

std::vector<IngestTestServer::Stored> IngestTestServer::stored() const {
  std::lock_guard lk(mu_);
  return stored_;
}

size_t IngestTestServer::requests() const {
  std::lock_guard lk(mu_);
  return requests_;
}

size_t IngestTestServer::duplicates() const {
  std::lock_guard lk(mu_);
  return duplicates_;
}

size_t IngestTestServer::held() const {
  std::lock_guard lk(mu_);
  return held_;
}

uint64_t IngestTestServer::records() const {
  std::lock_guard lk(mu_);
  uint64_t n = 0;
  for (const Stored& s : stored_) n += static_cast<uint64_t>(s.batch.records_size());
  return n;
}

uint64_t IngestTestServer::dropped_reported() const {
  std::lock_guard lk(mu_);
  uint64_t n = 0;
  for (const Stored& s : stored_) n += s.batch.dropped_records();
  return n;
}

std::vector<std::string> IngestTestServer::request_ids() const {
  std::lock_guard lk(mu_);
  std::vector<std::string> ids;
  for (const Stored& s : stored_)
    for (const record::RequestRecord& r : s.batch.records()) ids.push_back(r.request_id());
  return ids;
}

bool IngestTestServer::WaitFor(const std::function<bool()>& done,
                               std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace cpuledger::client::test
