// tests/cpp/client/ingest_test_server.h — a real HTTP server on 127.0.0.1
// that plays `cpuledger serve`'s POST /v1/ingest for the recorder tests.
//
// It parses each body with record::DecodeBatch (as the server does), keeps
// each (sender, sequence) once, and answers 200 {"accepted","tallies",
// "duplicate"}. A test can make it answer 503 (+ Retry-After), 400, 401
// (wrong token), 413, drop connections mid-answer, or hold requests (store
// first, answer when released: a lost acknowledgement once the client's
// timeout passes); and stop it and start it again on the same port.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "record/record.pb.h"

namespace httplib {
class Server;
}

namespace cpuledger::client::test {

class IngestTestServer {
 public:
  enum class Mode {
    kOk,               // store, 200
    kUnavailable,      // 503 with Retry-After (retry_after()), nothing stored
    kCloseConnection,  // nothing stored; the connection drops before the answer's body
    kHold,             // store, then answer 200 only after Release() (or Stop())
    kBadRequest,       // 400, nothing stored
    kTooLarge,         // 413, nothing stored
  };

  // One stored batch, in arrival order.
  struct Stored {
    std::string sender;
    uint64_t sequence = 0;
    record::Batch batch;
  };

  IngestTestServer();
  ~IngestTestServer();

  // IngestTestServer::Start() — listens on 127.0.0.1: a free port the first
  // time, the same port after Stop(). RETURNS: false if it cannot bind.
  bool Start();
  // IngestTestServer::Stop() — stops listening and closes connections; held
  // requests are released. What was stored is kept.
  void Stop();

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void set_mode(Mode mode);
  void set_token(std::string token);          // required bearer token; empty: none
  void set_retry_after(std::string seconds);  // Retry-After of a 503
  // IngestTestServer::Release() — answers the held requests (and later ones
  // are not held any more unless set_mode(kHold) again).
  void Release();

  std::vector<Stored> stored() const;
  size_t requests() const;            // POSTs seen, any answer
  size_t duplicates() const;          // POSTs of an already stored (sender, sequence)
  size_t held() const;                // requests being held right now
  uint64_t records() const;           // records stored
  uint64_t dropped_reported() const;  // sum of stored batches' dropped_records
  // request_ids of stored records, in arrival order.
  std::vector<std::string> request_ids() const;

  // IngestTestServer::WaitFor() — polls `done` every few ms until it holds or
  // `timeout` passes. RETURNS: whether it held.
  static bool WaitFor(const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  void Handle(const std::string& authorization, const std::string& body, int& status,
              std::string& answer, std::string& retry_after, bool& drop_connection);

  mutable std::mutex mu_;
  std::condition_variable released_;
  Mode mode_ = Mode::kOk;
  std::string token_;
  std::string retry_after_ = "0";
  uint64_t release_generation_ = 0;
  bool stopping_ = false;
  std::vector<Stored> stored_;
  std::set<std::pair<std::string, uint64_t>> seen_;
  size_t requests_ = 0, duplicates_ = 0, held_ = 0;

  int port_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace cpuledger::client::test
