// src/server/metrics.h — the server's own counters, rendered for Prometheus
// at GET /metrics. Every field is a relaxed atomic: bumping one costs a few
// nanoseconds and never blocks a request.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/store.h"

namespace cpuledger::server {

// PrometheusSample() — one unlabelled metric in text exposition format: its
// HELP and TYPE lines ("counter" or "gauge") and its sample line.
std::string PrometheusSample(std::string_view name, std::string_view type, std::string_view help,
                             uint64_t value);

// PrometheusLabelled() — one metric with one label: HELP, TYPE and a sample
// line per (label value, count), in the order given.
std::string PrometheusLabelled(std::string_view name, std::string_view type, std::string_view help,
                               std::string_view label,
                               const std::vector<std::pair<std::string_view, uint64_t>>& samples);

// LatencyHistogram — a Prometheus histogram with fixed bucket bounds.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBoundsSeconds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  void Observe(double seconds);
  // LatencyHistogram::Render() — the _bucket/_sum/_count lines of `name`.
  std::string Render(const std::string& name, const std::string& help) const;

 private:
  std::array<std::atomic<uint64_t>, kBoundsSeconds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_micros_{0};
};

// Metrics — what /metrics shows.
struct Metrics {
  // Ingest batches by outcome.
  std::atomic<uint64_t> batches_accepted{0};
  std::atomic<uint64_t> batches_duplicate{0};
  std::atomic<uint64_t> batches_malformed{0};     // 400: did not parse or validate
  std::atomic<uint64_t> batches_too_large{0};     // 413
  std::atomic<uint64_t> batches_bad_type{0};      // 415: unknown Content-Type
  std::atomic<uint64_t> batches_overloaded{0};    // 503: ingest queue full
  std::atomic<uint64_t> batches_store_failed{0};  // 503: the store could not commit
  std::atomic<uint64_t> unauthorized{0};          // 401 on any route
  // Records by outcome.
  std::atomic<uint64_t> records_accepted{0};
  std::atomic<uint64_t> records_duplicate{0};  // in replayed batches, stored once before
  std::atomic<uint64_t> records_dropped{0};    // in decodable batches refused with 503
  std::atomic<uint64_t> tallies_accepted{0};
  std::atomic<uint64_t> client_dropped{0};  // drops the recorders reported (Batch.dropped_records)
  std::atomic<uint64_t> queries{0};
  std::atomic<uint64_t> query_errors{0};
  // Detector runs (the schedule's and /v1/detect's) by outcome.
  std::atomic<uint64_t> detect_runs{0};
  std::atomic<uint64_t> detect_failures{0};
  std::atomic<uint64_t> detector_leader{0};  // 1 while this server holds the detector lease
  // The server's spool (store_spool.h), set by the IngestWriter.
  std::atomic<uint64_t> batches_spooled{0};           // acknowledged into the spool
  std::atomic<uint64_t> spool_replayed{0};            // spooled batches the store took since
  std::atomic<uint64_t> spool_replayed_duplicate{0};  // ... of which it had already
  std::atomic<uint64_t> spool_dropped_damaged{0};     // entries that could not be read back
  std::atomic<uint64_t> spool_batches{0};             // gauge: waiting in the spool
  std::atomic<uint64_t> spool_bytes{0};               // gauge
  std::atomic<int64_t> spool_oldest_unix_us{0};       // gauge: 0 when empty
  LatencyHistogram store_append_seconds;
  LatencyHistogram query_seconds;

  // Metrics::RenderPrometheus() — text exposition format 0.0.4.
  std::string RenderPrometheus(const store::StoreStats* stats) const;
  // Metrics::RenderSpool() — the spool's lines of RenderPrometheus().
  std::string RenderSpool() const;
};

}  // namespace cpuledger::server
