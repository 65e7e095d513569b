#include "server/server.h"

#include <chrono>
#include <filesystem>

namespace cpuledger::server {

Result<std::unique_ptr<Server>> Server::Start(const ServerConfig& config) {
  Status valid = ValidateServerConfig(config);
  if (!valid.ok()) return valid;
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return IoError("cannot create data dir " + config.data_dir + ": " + ec.message());

  std::unique_ptr<Server> s(new Server());
  s->config_ = config;
  store::SqliteOptions options;
  options.path = (std::filesystem::path(config.data_dir) / "cpuledger.sqlite").string();
  options.raw_retention_us = config.raw_retention_us;
  Result<std::unique_ptr<store::Store>> store = store::OpenSqliteStore(options);
  if (!store.ok()) return store.status();
  s->store_ = std::move(*store);
  s->writer_ = std::make_unique<IngestWriter>(*s->store_, s->metrics_, config.max_pending_batches,
                                              config.retention_every_us);
  s->context_ = ApiContext{s->store_.get(), s->writer_.get(), &s->metrics_, config.token};

  const int threads = config.http_threads;
  s->http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s->http_.set_payload_max_length(config.max_body_bytes);
  s->http_.set_keep_alive_max_count(10000);
  s->http_.set_tcp_nodelay(true);
  s->http_.set_read_timeout(30, 0);
  InstallRoutes(s->http_, s->context_);

  if (!s->http_.bind_to_port(config.bind.c_str(), config.port))
    return Unavailable("cannot listen on " + config.bind + ":" + std::to_string(config.port) +
                       " (in use, or not an address of this machine)");
  s->port_ = config.port;
  Server* raw = s.get();
  s->listener_ = std::thread([raw] { raw->http_.listen_after_bind(); });
  // httplib's stop() is a no-op until the listener runs: wait for it, so a
  // Stop() right after Start() cannot leave the listener running forever.
  while (!s->http_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return s;
}

void Server::Stop() {
  std::call_once(stopped_, [this] {
    http_.stop();
    if (listener_.joinable()) listener_.join();
    writer_.reset();  // commits what is queued
  });
}

Server::~Server() { Stop(); }

}  // namespace cpuledger::server
