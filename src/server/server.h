// src/server/server.h — the `cpuledger serve` daemon: one store, one ingest
// writer, an HTTP server on a thread pool.
//
//   ServerConfig config;  config.data_dir = "/var/lib/cpuledger";
//   Result<std::unique_ptr<Server>> server = Server::Start(config);
//   ...                                      // serving on server->port()
//   (*server)->Stop();                       // or let it go out of scope
//
// Start() binds before it returns, so a taken port is an error at start-up,
// and /healthz answers 200 as soon as Start() has returned.
#pragma once

#include <httplib.h>

#include <memory>
#include <thread>

#include "server/api.h"
#include "server/config.h"
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

 private:
  Server() = default;

  ServerConfig config_;
  int port_ = 0;
  Metrics metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<IngestWriter> writer_;
  ApiContext context_;
  httplib::Server http_;
  std::thread listener_;
  std::once_flag stopped_;
};

}  // namespace cpuledger::server
