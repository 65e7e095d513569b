// src/server/server.h — the `cpuledger serve` daemon: one store, one ingest
// writer, an HTTP server on a thread pool, and the detector schedule (every
// `detect_every`, all detectors over `detect_window`; new alerts to the
// server log and the webhooks). The HTTP layer (server/http) reads requests
// on a small io pool and runs the handlers on `http_threads` workers.
//
//   ServerConfig config;  config.data_dir = "/var/lib/cpuledger";
//   Result<std::unique_ptr<Server>> server = Server::Start(config);
//   ...                                      // serving on server->port()
//   (*server)->Stop();                       // or let it go out of scope
//
// Start() binds before it returns, so a taken port is an error at start-up,
// and /healthz answers 200 as soon as Start() has returned.
//
// Several servers may share one store (a ClickHouse cluster behind a
// stateless ingest tier): the schedule runs only where the store's lease
// "detector" is held (Store::HoldLease, holder "host:pid:random", ttl 3
// detect_every), taken or renewed before each run; the others skip their
// runs and take over once the holder has not renewed for a ttl. /metrics
// says which one holds it (cpuledger_detector_leader); changes are logged.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "detect/detect.h"
#include "server/alert_sink.h"
#include "server/api.h"
#include "server/config.h"
#include "server/http/http_server.h"
#include "server/ingest_writer.h"
#include "server/metrics.h"
#include "store/store.h"

namespace cpuledger::server {

class Server {
 public:
  // Server::Start() — opens <data_dir>/cpuledger.sqlite, binds, serves.
  // RETURNS: InvalidArgument for a bad config, Io for the store, Unavailable
  // when the address cannot be bound.
  static Result<std::unique_ptr<Server>> Start(const ServerConfig& config);
  ~Server();  // Stop()s

  // Server::Stop() — stops accepting, finishes requests in flight, commits
  // what the writer holds. Idempotent; thread-safe.
  void Stop();
  int port() const { return port_; }
  const Metrics& metrics() const { return metrics_; }

  // Server::Detect() — one detector run over [now_us - window_us, now_us]
  // (window 0: the configured one): kept in the store (detect::RecordRun),
  // and its alert changes (opened, reopened, resolved; *opened of them
  // opened or reopened) sent to the log and the webhooks. Runs are serialized. Thread-safe.
  Result<detect::DetectReport> Detect(int64_t now_us, int64_t window_us, size_t* opened);

 private:
  Server() = default;
  void ScheduleLoop();  // the detector schedule's thread
  // LeadsDetection() — takes or renews the detector lease; false (run
  // skipped) when another server holds it or the store cannot tell.
  bool LeadsDetection();

  ServerConfig config_;
  int port_ = 0;
  Metrics metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<IngestWriter> writer_;
  ApiContext context_;
  std::unique_ptr<http::HttpServer> http_;
  std::atomic<const http::HttpServer*> http_live_{nullptr};  // http_, once set: for /metrics
  std::once_flag stopped_;

  std::unique_ptr<AlertSinks> sinks_;
  std::mutex detect_mu_;  // one detector run at a time
  std::mutex schedule_mu_;
  std::condition_variable schedule_cv_;
  bool stopping_ = false;     // guarded by schedule_mu_
  std::thread scheduler_;     // runs while config_.detect_every_us > 0
  std::string lease_holder_;  // this server in the detector lease: host:pid:random
  bool leading_ = false;      // held the lease at the last try (scheduler thread only)
};

}  // namespace cpuledger::server
