// tests/cpp/server/metrics_test.cc — /metrics' text: every sample line is
// well-formed exposition format, counters read what was counted, histogram
// buckets are cumulative, and the store's figures appear only with stats.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>

namespace cpuledger::server {
namespace {

// Samples() — "name{labels}" -> value, for every sample line; fails the test
// on a line that is neither a comment nor a sample.
std::map<std::string, double> Samples(const std::string& text) {
  static const std::regex kSample(R"(^([a-z_]+(\{[a-z_]+="[^"]*"\})?) (-?[0-9.e+]+|\+Inf)$)");
  std::map<std::string, double> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    std::smatch m;
    EXPECT_TRUE(std::regex_match(line, m, kSample)) << "not exposition format: " << line;
    if (!m.empty()) out[m[1]] = std::stod(m[3]);
  }
  return out;
}

TEST(MetricsTest, CountersAndHistogramsRenderAsPrometheusText) {
  Metrics m;
  m.batches_accepted += 3;
  m.batches_store_failed += 1;
  m.records_accepted += 300;
  m.unauthorized += 2;
  for (double s : {0.0001, 0.003, 0.003, 0.2, 5.0}) m.store_append_seconds.Observe(s);
  const std::map<std::string, double> got = Samples(m.RenderPrometheus(nullptr));
  EXPECT_EQ(got.at(R"(cpuledger_ingest_batches_total{result="accepted"})"), 3);
  EXPECT_EQ(got.at(R"(cpuledger_ingest_batches_total{result="store_failed"})"), 1);
  EXPECT_EQ(got.at(R"(cpuledger_ingest_records_total{result="accepted"})"), 300);
  EXPECT_EQ(got.at(R"(cpuledger_http_unauthorized_total{route="any"})"), 2);
  // Cumulative buckets: le=0.0005 holds 1, le=0.005 holds 3, +Inf all 5.
  EXPECT_EQ(got.at(R"(cpuledger_store_append_seconds_bucket{le="0.0005"})"), 1);
  EXPECT_EQ(got.at(R"(cpuledger_store_append_seconds_bucket{le="0.005"})"), 3);
  EXPECT_EQ(got.at(R"(cpuledger_store_append_seconds_bucket{le="0.25"})"), 4);
  EXPECT_EQ(got.at(R"(cpuledger_store_append_seconds_bucket{le="+Inf"})"), 5);
  EXPECT_EQ(got.at("cpuledger_store_append_seconds_count"), 5);
  EXPECT_NEAR(got.at("cpuledger_store_append_seconds_sum"), 5.2061, 1e-4);
  EXPECT_EQ(got.count("cpuledger_store_raw_samples"), 0u);  // no stats, no store lines
}

TEST(MetricsTest, StoreFiguresAndFoldedValuesComeWithStats) {
  Metrics m;
  store::StoreStats stats;
  stats.raw_samples = 1234;
  stats.file_bytes = 4096;
  stats.folded_values = {{"endpoint", 180}, {"host", 0}};
  const std::map<std::string, double> got = Samples(m.RenderPrometheus(&stats));
  EXPECT_EQ(got.at("cpuledger_store_raw_samples"), 1234);
  EXPECT_EQ(got.at("cpuledger_store_file_bytes"), 4096);
  EXPECT_EQ(got.at(R"(cpuledger_dimension_values_folded_total{dimension="endpoint"})"), 180);
  EXPECT_EQ(got.at(R"(cpuledger_dimension_values_folded_total{dimension="host"})"), 0);
}

}  // namespace
}  // namespace cpuledger::server
