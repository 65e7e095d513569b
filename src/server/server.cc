#include "server/server.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "base/duration.h"
#include "store/clickhouse/clickhouse_store.h"

namespace cpuledger::server {
namespace {

store::ClickHouseOptions ClickHouseOptionsFrom(const ServerConfig& config) {
  store::ClickHouseOptions o;
  for (const std::string& url : config.clickhouse_urls) {
    store::clickhouse::ShardOptions shard;
    shard.url = url;
    shard.user = config.clickhouse_user;
    shard.password = config.clickhouse_password;
    o.shards.push_back(shard);
  }
  o.database = config.clickhouse_database;
  o.cluster = config.clickhouse_cluster;
  o.raw_retention_us = config.raw_retention_us;
  o.profile_retention_us = config.profile_retention_us;
  o.tally_retention_us = config.tally_retention_us;
  o.profile_flags = config.profile_flags;
  return o;
}

// LeaseHolderId() — host:pid:random, unique per process even across a
// restart that reuses the pid.
std::string LeaseHolderId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) snprintf(host, sizeof(host), "unknown");
  char id[64];
  snprintf(id, sizeof(id), ":%d:%08x", static_cast<int>(getpid()),
           static_cast<unsigned>(std::random_device{}()));
  return std::string(host) + id;
}

constexpr const char* kDetectorLease = "detector";

// OpenSpool() — the server's spool (store_spool.h), or nullptr when it is off.
Result<std::unique_ptr<StoreSpool>> OpenSpool(const ServerConfig& config) {
  if (!config.spool.value_or(config.store == "clickhouse")) return std::unique_ptr<StoreSpool>();
  const std::string dir = config.spool_dir.empty()
                              ? (std::filesystem::path(config.data_dir) / "spool").string()
                              : config.spool_dir;
  return StoreSpool::Open(dir, config.spool_max_bytes, nullptr);
}

}  // namespace

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
  options.profile_retention_us = config.profile_retention_us;
  options.tally_retention_us = config.tally_retention_us;
  options.max_dimension_values = config.max_dimension_values;
  options.profile_flags = config.profile_flags;
  options.log = [](const std::string& line) {
    fprintf(stderr, "cpuledger serve: %s\n", line.c_str());
  };
  Result<std::unique_ptr<store::Store>> store =
      config.store == "clickhouse" ? store::OpenClickHouseStore(ClickHouseOptionsFrom(config))
                                   : store::OpenSqliteStore(options);
  if (!store.ok()) return store.status();
  s->store_ = std::move(*store);
  Result<std::unique_ptr<StoreSpool>> spool = OpenSpool(config);
  if (!spool.ok()) return spool.status();
  s->writer_ = std::make_unique<IngestWriter>(
      *s->store_, s->metrics_, config.max_pending_batches, config.retention_every_us,
      std::move(*spool), SpoolPolicy{.slow_after_us = config.spool_slow_after_us});
  s->sinks_ = std::make_unique<AlertSinks>(AlertSinkOptionsFrom(config));
  s->context_.store = s->store_.get();
  s->context_.writer = s->writer_.get();
  s->context_.metrics = &s->metrics_;
  s->context_.token = config.token;
  s->context_.sinks = s->sinks_.get();
  s->context_.max_body_bytes = config.max_body_bytes;
  Server* self = s.get();
  s->context_.detect = [self](int64_t now, int64_t window, size_t* opened) {
    return self->Detect(now, window, opened);
  };

  http::HttpOptions http_options;
  http_options.bind = config.bind;
  http_options.port = config.port;
  http_options.worker_threads = config.http_threads;
  http_options.max_body_bytes = config.max_body_bytes;
  // Eight whole bodies, or more when the limit is small: beyond it a body
  // waits for memory (503 + Retry-After) instead of taking it.
  http_options.max_body_bytes_in_flight = std::max<size_t>(8 * config.max_body_bytes, 256u << 20);
  http_options.header_timeout_us = config.header_timeout_us;
  http_options.request_timeout_us = config.request_timeout_us;
  s->context_.http_stats = [self] {
    const http::HttpServer* live = self->http_live_.load();
    return live != nullptr ? live->stats() : http::HttpStats{};
  };
  Result<std::unique_ptr<http::HttpServer>> http =
      http::HttpServer::Start(http_options, MakeHttpService(s->context_));
  if (!http.ok()) return http.status();
  s->http_ = std::move(*http);
  s->http_live_.store(s->http_.get());
  s->port_ = s->http_->port();
  Server* raw = s.get();
  s->lease_holder_ = LeaseHolderId();
  if (config.detect_every_us > 0) s->scheduler_ = std::thread([raw] { raw->ScheduleLoop(); });
  return s;
}

Result<detect::DetectReport> Server::Detect(int64_t now_us, int64_t window_us, size_t* opened) {
  std::lock_guard<std::mutex> lock(detect_mu_);
  detect::DetectOptions options;
  options.now_us = now_us;
  options.window_us = window_us > 0 ? window_us : config_.detect_window_us;
  options.confidence = config_.detect_confidence;
  options.fdr = config_.detect_fdr;
  options.threshold_floor = config_.threshold_floor;
  options.thresholds = config_.thresholds;
  auto windows = [](const DetectWindows& w) {
    return detect::BeforeAfterWindows{w.samples, w.min_side_us, w.max_side_us};
  };
  options.before_after = windows(config_.detect_windows);
  for (const auto& [service, w] : config_.detect_windows_by_service)
    options.before_after_by_service[service] = windows(w);
  Result<detect::DetectReport> report = detect::RunDetectors(*store_, options);
  Result<std::vector<detect::AlertChange>> changes =
      report.ok() ? detect::RecordRun(*store_, *report) : report.status();
  if (!changes.ok()) {
    metrics_.detect_failures.fetch_add(1, std::memory_order_relaxed);
    return changes.status();
  }
  for (const detect::AlertChange& c : *changes) sinks_->Send(c);
  if (opened != nullptr)
    *opened = std::count_if(changes->begin(), changes->end(),
                            [](const detect::AlertChange& c) { return c.state == "open"; });
  metrics_.detect_runs.fetch_add(1, std::memory_order_relaxed);
  return report;
}

void Server::ScheduleLoop() {
  std::unique_lock<std::mutex> lock(schedule_mu_);
  while (!schedule_cv_.wait_for(lock, std::chrono::microseconds(config_.detect_every_us),
                                [this] { return stopping_; })) {
    lock.unlock();
    if (LeadsDetection()) {
      Result<detect::DetectReport> r = Detect(NowUnixUs(), 0, nullptr);
      if (!r.ok())
        fprintf(stderr, "cpuledger: detector run failed: %s\n", r.status().message().c_str());
    }
    lock.lock();
  }
}

bool Server::LeadsDetection() {
  // Renewed before every run: a ttl of three periods survives two missed renewals.
  Result<bool> held =
      store_->HoldLease(kDetectorLease, lease_holder_, NowUnixUs(), 3 * config_.detect_every_us);
  if (!held.ok())
    fprintf(stderr, "cpuledger: detector lease: the store cannot tell (%s): run skipped\n",
            held.status().message().c_str());
  const bool leading = held.ok() && *held;
  if (leading != leading_)
    fprintf(stderr, "cpuledger: detector lease %s by %s\n", leading ? "taken" : "lost",
            lease_holder_.c_str());
  leading_ = leading;
  metrics_.detector_leader.store(leading ? 1 : 0, std::memory_order_relaxed);
  return leading;
}

void Server::Stop() {
  std::call_once(stopped_, [this] {
    {
      std::lock_guard<std::mutex> lock(schedule_mu_);
      stopping_ = true;
    }
    schedule_cv_.notify_all();
    if (scheduler_.joinable()) scheduler_.join();
    if (http_) http_->Stop();
    writer_.reset();  // commits what is queued
    if (sinks_) sinks_->Stop();
  });
}

Server::~Server() { Stop(); }

}  // namespace cpuledger::server
