#include "server/metrics.h"

#include <algorithm>
#include <sstream>

#include "base/duration.h"

namespace cpuledger::server {

std::string PrometheusSample(std::string_view name, std::string_view type, std::string_view help,
                             uint64_t value) {
  const std::string n(name);
  return "# HELP " + n + " " + std::string(help) + "\n# TYPE " + n + " " + std::string(type) +
         "\n" + n + " " + std::to_string(value) + "\n";
}

std::string PrometheusLabelled(std::string_view name, std::string_view type, std::string_view help,
                               std::string_view label,
                               const std::vector<std::pair<std::string_view, uint64_t>>& samples) {
  const std::string n(name);
  std::string out =
      "# HELP " + n + " " + std::string(help) + "\n# TYPE " + n + " " + std::string(type) + "\n";
  for (const auto& [value, count] : samples)
    out += n + "{" + std::string(label) + "=\"" + std::string(value) + "\"} " +
           std::to_string(count) + "\n";
  return out;
}

void LatencyHistogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBoundsSeconds.size() && seconds > kBoundsSeconds[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

std::string LatencyHistogram::Render(const std::string& name, const std::string& help) const {
  std::ostringstream out;
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBoundsSeconds.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    out << name << "_bucket{le=\"" << kBoundsSeconds[i] << "\"} " << cumulative << "\n";
  }
  cumulative += counts_.back().load(std::memory_order_relaxed);
  out << name << "_bucket{le=\"+Inf\"} " << cumulative << "\n";
  out << name << "_sum " << static_cast<double>(sum_micros_.load()) / 1e6 << "\n";
  out << name << "_count " << cumulative << "\n";
  return out.str();
}

std::string Metrics::RenderSpool() const {
  std::string out = PrometheusLabelled(
      "cpuledger_store_spool_batches_total", "counter",
      "Batches through the server's spool: acknowledged into it while the store was down or "
      "slow, replayed into the store (duplicates: it had them already), dropped as damaged.",
      "result",
      {{"spooled", batches_spooled.load()},
       {"replayed", spool_replayed.load()},
       {"replayed_duplicate", spool_replayed_duplicate.load()},
       {"dropped_damaged", spool_dropped_damaged.load()}});
  out += PrometheusSample("cpuledger_store_spool_batches", "gauge",
                          "Acknowledged batches waiting in the spool for the store.",
                          spool_batches.load());
  out += PrometheusSample("cpuledger_store_spool_bytes", "gauge", "Size of the spool on disk.",
                          spool_bytes.load());
  const int64_t oldest = spool_oldest_unix_us.load();
  const int64_t age_us = oldest > 0 ? std::max<int64_t>(0, NowUnixUs() - oldest) : 0;
  out += PrometheusSample("cpuledger_store_spool_oldest_age_seconds", "gauge",
                          "Age of the oldest spooled batch (0: the spool is empty).",
                          static_cast<uint64_t>(age_us / 1'000'000));
  return out;
}

std::string Metrics::RenderPrometheus(const store::StoreStats* stats) const {
  std::ostringstream out;
  auto counter =
      [&](const char* name, const char* help, const char* label,
          std::initializer_list<std::pair<const char*, const std::atomic<uint64_t>*>> v) {
        std::vector<std::pair<std::string_view, uint64_t>> samples;
        for (const auto& [value, c] : v) samples.emplace_back(value, c->load());
        out << PrometheusLabelled(name, "counter", help, label, samples);
      };
  counter("cpuledger_ingest_batches_total", "Ingest batches by outcome.", "result",
          {{"accepted", &batches_accepted},
           {"duplicate", &batches_duplicate},
           {"malformed", &batches_malformed},
           {"too_large", &batches_too_large},
           {"unsupported_type", &batches_bad_type},
           {"overloaded", &batches_overloaded},
           {"store_failed", &batches_store_failed}});
  counter("cpuledger_ingest_records_total", "Request records by outcome.", "result",
          {{"accepted", &records_accepted},
           {"duplicate", &records_duplicate},
           {"dropped", &records_dropped}});
  counter("cpuledger_ingest_tallies_total", "Worker tallies stored.", "result",
          {{"accepted", &tallies_accepted}});
  counter("cpuledger_client_dropped_records_total",
          "Records the recorders dropped before sending (queue or spool full), as they reported.",
          "reason", {{"reported", &client_dropped}});
  counter("cpuledger_http_unauthorized_total", "Requests refused for a missing or wrong token.",
          "route", {{"any", &unauthorized}});
  counter("cpuledger_queries_total", "Query API calls.", "result",
          {{"ok", &queries}, {"error", &query_errors}});
  counter("cpuledger_detector_runs_total", "Runs of every detector (scheduled or on request).",
          "result", {{"ok", &detect_runs}, {"error", &detect_failures}});
  out << PrometheusSample("cpuledger_detector_leader", "gauge",
                          "1 while this server holds the detector lease (runs the schedule).",
                          detector_leader.load(std::memory_order_relaxed));
  out << store_append_seconds.Render("cpuledger_store_append_seconds",
                                     "Time to commit one group of batches to the store.");
  out << query_seconds.Render("cpuledger_query_seconds", "Time to answer one query.");
  out << RenderSpool();
  if (stats) {
    out << PrometheusSample("cpuledger_store_raw_samples", "gauge", "Raw sampled requests kept.",
                            stats->raw_samples);
    out << PrometheusSample("cpuledger_store_file_bytes", "gauge", "Size of the store on disk.",
                            stats->file_bytes);
    std::vector<std::pair<std::string_view, uint64_t>> folded(stats->folded_values.begin(),
                                                              stats->folded_values.end());
    out << PrometheusLabelled("cpuledger_dimension_values_folded_total", "counter",
                              "Values stored as <other>: their dimension had "
                              "max_dimension_values distinct values in their service.",
                              "dimension", folded);
  }
  return out.str();
}

}  // namespace cpuledger::server
