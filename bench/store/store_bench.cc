// bench/store/store_bench.cc — what the SQLite store costs.
//
//   BM_AppendBatches/<records per minute>: records/s into a fresh file, one
//     AppendBatches() call per batch of 1000 realistic records. The argument
//     is the event-time density. 18M/min is 300k requests/s, the server's
//     target: that is the figure the target applies to. 60k/min (1k
//     requests/s) and 1000/min (the 7-day data set below, where nearly every
//     record is its own minute rollup row) show the cost of rollup writes
//     when traffic is too thin to amortise them; at those rates nobody needs
//     300k records/s, so they carry no target.
//   Query latency over 10M records spanning 7 days: group by endpoint over
//     the last hour and over the whole 7 days (31 runs each; p50, p95). The
//     data set is generated once through AppendBatches() into
//     ${build}/bench-data/ and reused; generating it is a throughput figure too.
//
// Environment: CPULEDGER_BENCH_RECORDS overrides the 10M (a smaller data set
// gets its own file). The figures are printed as a table at the end.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench_files.h"
#include "record/record.pb.h"
#include "store/store.h"

namespace cpuledger::store {
namespace {

using record::Batch;
using record::RequestRecord;

constexpr int64_t kUs = 1'000'000;
// 2024-03-04 13:37:25 UTC: the data set starts (and ends, 7 days later) off
// every hour and minute boundary, so "the last hour" has ragged edges.
constexpr int64_t kStartUs = 1709559445LL * kUs;
constexpr int64_t kWeekUs = 7 * 86400 * kUs;
constexpr int kGeneratorVersion = 3;  // bump when Fleet changes: regenerates cached data

// Fleet — a realistic mix: 4 services with 20/15/10/5 endpoints (Zipf
// popularity), 5 hosts each over 2 clusters and 2 regions, a deploy halfway
// with a one-hour rollout during which both commits serve, two flags (one on
// half the requests only), 200k users (skewed), per-endpoint sample rates
// (popular endpoints sampled less), log-normal costs whose medians span three
// decades, one host in five without a PMU.
class Fleet {
 public:
  explicit Fleet(uint64_t seed) : rng_(seed) {
    static const char* kServices[] = {"web", "api", "feed", "media"};
    static const int kEndpoints[] = {20, 15, 10, 5};
    for (int s = 0; s < 4; ++s) {
      for (int e = 0; e < kEndpoints[s]; ++e) {
        Endpoint ep;
        ep.service = kServices[s];
        ep.service_index = s;
        ep.name = "/" + ep.service + "/route_" + std::to_string(e) + "/<id>";
        ep.method = e % 3 == 2 ? "POST" : "GET";
        ep.weight = 1.0 / std::pow(e + 1.0, 1.1);
        ep.median_instructions = 2e6 * std::pow(10.0, (e * 7 % 11) / 3.5);
        ep.sample_rate = e < 3 ? 0.01 : e < 8 ? 0.1 : 1.0;
        endpoints_.push_back(ep);
      }
    }
    double total = 0;
    for (const Endpoint& ep : endpoints_) total += ep.weight;
    double acc = 0;
    for (Endpoint& ep : endpoints_) cumulative_.push_back(acc += ep.weight / total);
  }

  RequestRecord Make(int64_t start_us, int64_t deploy_us) {
    const Endpoint& ep = PickEndpoint();
    RequestRecord r;
    const int host = static_cast<int>(rng_() % 5);
    r.set_start_time_unix_us(start_us);
    r.set_service(ep.service);
    r.set_endpoint(ep.name);
    r.set_method(ep.method);
    const uint64_t st = rng_() % 100;
    r.set_status(st < 95 ? 200 : st < 98 ? 404 : st < 99 ? 302 : 500);
    r.set_host(ep.service + "-" + std::to_string(host));
    r.set_cluster(host < 3 ? "east-1" : "west-2");
    r.set_region(host < 3 ? "us-east" : "us-west");
    // Rollout: hosts switch one by one over an hour.
    const bool new_commit = start_us >= deploy_us + host * 12 * 60 * kUs;
    r.set_commit(new_commit ? "4e5f6a7b" : "1a2b3c4d");
    (*r.mutable_flags())["new_feed"] = rng_() % 10 < 3 ? "on" : "off";
    if (rng_() % 2 == 0) (*r.mutable_flags())["exp_ranker"] = rng_() % 2 == 0 ? "a" : "b";
    const uint64_t u =
        static_cast<uint64_t>(std::pow(static_cast<double>(rng_() % 1'000'000) / 1e6, 3) * 200'000);
    r.set_user("u" + std::to_string(u * 2654435761u % 1'000'003));
    r.set_sample_rate(ep.sample_rate);
    char id[40];
    std::snprintf(id, sizeof id, "%016llx%016llx", static_cast<unsigned long long>(rng_()),
                  static_cast<unsigned long long>(rng_()));
    r.set_request_id(id);
    const double instructions = ep.median_instructions * std::exp(0.6 * normal_(rng_));
    record::CpuBill* cpu = r.mutable_cpu();
    cpu->set_cpu_ns(static_cast<uint64_t>(instructions / 2.5));
    if (host != 4) {
      cpu->set_instructions(static_cast<uint64_t>(instructions));
      cpu->set_cycles(static_cast<uint64_t>(instructions * 0.8));
      cpu->set_counter_source("hardware");
    } else {
      cpu->set_counter_source("thread_cputime");
    }
    r.set_wall_us(static_cast<uint64_t>(instructions / 2000 * (1 + rng_() % 4)));
    if (rng_() % 4 != 0) {
      r.mutable_db()->set_wall_us(rng_() % 20000);
      r.mutable_db()->set_calls(static_cast<uint32_t>(1 + rng_() % 12));
    }
    if (rng_() % 2 == 0) {
      r.mutable_cache()->set_wall_us(rng_() % 2000);
      r.mutable_cache()->set_calls(static_cast<uint32_t>(1 + rng_() % 6));
    }
    return r;
  }

  // A batch of `n` records starting at *t_us, `gap_us` apart on average.
  Batch MakeBatch(size_t n, int64_t* t_us, double gap_us, int64_t deploy_us, uint64_t sequence) {
    Batch b;
    b.set_sender("bench-worker");
    b.set_sequence(sequence);
    std::exponential_distribution<double> gap(1.0 / gap_us);
    for (size_t i = 0; i < n; ++i) {
      *t_us += static_cast<int64_t>(gap(rng_));
      // Workers ship a few seconds late and out of order.
      const int64_t jitter = static_cast<int64_t>(rng_() % (3 * kUs));
      *b.add_records() = Make(*t_us - jitter, deploy_us);
    }
    return b;
  }

 private:
  struct Endpoint {
    std::string service, name, method;
    int service_index = 0;
    double weight = 0, median_instructions = 0, sample_rate = 1;
  };
  const Endpoint& PickEndpoint() {
    const double x = uniform_(rng_);
    auto it = std::lower_bound(cumulative_.begin(), cumulative_.end(), x);
    return endpoints_[std::min<size_t>(it - cumulative_.begin(), endpoints_.size() - 1)];
  }

  std::mt19937_64 rng_;
  std::normal_distribution<double> normal_{0, 1};
  std::uniform_real_distribution<double> uniform_{0, 1};
  std::vector<Endpoint> endpoints_;
  std::vector<double> cumulative_;
};

// BM_AppendBatches — records/s through AppendBatches(), batches of 1000.
void BM_AppendBatches(benchmark::State& state) {
  const double per_minute = static_cast<double>(state.range(0));
  const double gap_us = 60.0 * kUs / per_minute;
  const std::string path = TempPath("store_bench_append");
  RemoveStoreFiles(path);
  Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path});
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  Fleet fleet(1);
  constexpr size_t kBatch = 1000;
  // A group commit's worth of batches, reused: the server appends batches it
  // has just decoded, so their records are in cache; a pool much larger than
  // the cache would measure memory stalls on the benchmark's own data.
  constexpr size_t kPool = 16;
  int64_t t = kStartUs;
  uint64_t sequence = 0;
  std::vector<Batch> pool;
  for (size_t i = 0; i < kPool; ++i)
    pool.push_back(fleet.MakeBatch(kBatch, &t, gap_us, kStartUs + kWeekUs / 2, sequence++));
  const int64_t pool_span_us = t - kStartUs;
  size_t next = 0;
  for (auto _ : state) {
    Batch& b = pool[next % kPool];
    if (next >= kPool) {
      // Reuse the pool, later in time and under new sequence numbers.
      state.PauseTiming();
      for (RequestRecord& r : *b.mutable_records())
        r.set_start_time_unix_us(r.start_time_unix_us() + pool_span_us);
      b.set_sequence(sequence++);
      state.ResumeTiming();
    }
    ++next;
    const Batch* batches[] = {&b};
    Result<std::vector<AppendOutcome>> out = (*store)->AppendBatches(batches);
    if (!out.ok()) {
      state.SkipWithError(out.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBatch));
  store->reset();
  RemoveStoreFiles(path);
}
BENCHMARK(BM_AppendBatches)
    ->ArgName("records_per_min")
    ->Arg(1000)
    ->Arg(60'000)
    ->Arg(18'000'000)
    ->MinTime(3.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- query latency over the 7-day data set ----

struct Figure {
  std::string name, value, target, verdict;
};

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const size_t rank = std::clamp<size_t>(static_cast<size_t>(std::ceil(q * v.size())), 1, v.size());
  return v[rank - 1];
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// EnsureDataSet() — the cached file, generated when missing. RETURNS: the path
// ("" on failure); *append_rate is set when it was generated now.
std::string EnsureDataSet(uint64_t records, double* append_rate) {
  const std::string dir = CPULEDGER_BENCH_DATA_DIR;
  std::filesystem::create_directories(dir);
  const std::string name = records == 10'000'000 ? "store-10m" : "store-" + std::to_string(records);
  const std::string path = dir + "/" + name + ".sqlite";
  const std::string marker = path + ".ok";
  {
    std::ifstream in(marker);
    int version = 0;
    if (in >> version && version == kGeneratorVersion && std::filesystem::exists(path)) return path;
  }
  std::printf("generating %llu records over 7 days into %s (once; reused later) ...\n",
              static_cast<unsigned long long>(records), path.c_str());
  std::fflush(stdout);
  const std::string tmp = path + ".tmp";
  RemoveStoreFiles(tmp);
  RemoveStoreFiles(path);
  std::filesystem::remove(marker);
  {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = tmp});
    if (!store.ok()) {
      std::fprintf(stderr, "cannot create %s: %s\n", tmp.c_str(),
                   store.status().ToString().c_str());
      return "";
    }
    Fleet fleet(7);
    constexpr size_t kBatch = 1000;
    const double gap_us = static_cast<double>(kWeekUs) / static_cast<double>(records);
    int64_t t = kStartUs;
    double in_store_s = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t done = 0, seq = 0; done < records; done += kBatch, ++seq) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kBatch, records - done));
      Batch b = fleet.MakeBatch(n, &t, gap_us, kStartUs + kWeekUs / 2, seq);
      const Batch* batches[] = {&b};
      const auto a0 = std::chrono::steady_clock::now();
      Result<std::vector<AppendOutcome>> out = (*store)->AppendBatches(batches);
      in_store_s += SecondsSince(a0);
      if (!out.ok()) {
        std::fprintf(stderr, "append failed: %s\n", out.status().ToString().c_str());
        return "";
      }
      if (seq % 1000 == 999) {
        std::printf("  %llu records, %.0f s\n", static_cast<unsigned long long>(done + n),
                    SecondsSince(t0));
        std::fflush(stdout);
      }
    }
    *append_rate = static_cast<double>(records) / in_store_s;
  }  // closing the last connection checkpoints and removes the WAL
  std::filesystem::rename(tmp, path);
  std::ofstream(marker) << kGeneratorVersion << "\n";
  return path;
}

std::vector<Figure> QueryFigures() {
  std::vector<Figure> figures;
  uint64_t records = 10'000'000;
  if (const char* env = std::getenv("CPULEDGER_BENCH_RECORDS"))
    records = std::strtoull(env, nullptr, 10);
  double append_rate = 0;
  const std::string path = EnsureDataSet(records, &append_rate);
  if (path.empty()) return {{"query data set", "generation failed", "", "missed"}};
  if (append_rate > 0) {
    char v[64];
    std::snprintf(v, sizeof v, "%.0f records/s", append_rate);
    figures.push_back({"append while generating the 7-day data set", v, "(info)", ""});
  }
  Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path});
  if (!store.ok()) return {{"query data set", store.status().ToString(), "", "missed"}};
  Result<StoreStats> stats = (*store)->Stats();
  if (stats.ok())
    std::printf("data set: %llu raw samples, %llu rollup rows, %.1f GB\n",
                static_cast<unsigned long long>(stats->raw_samples),
                static_cast<unsigned long long>(stats->rollup_rows),
                static_cast<double>(stats->file_bytes) / 1e9);

  const int64_t end_us = kStartUs + kWeekUs;
  struct Case {
    std::string name;
    int64_t from_us;
  };
  for (const Case& c : {Case{"group by endpoint, last 1 h", end_us - 3600 * kUs},
                        Case{"group by endpoint, 7 days", end_us - kWeekUs}}) {
    QuerySpec spec;
    spec.group_by = {DimensionRef{Dimension::kEndpoint, {}}};
    spec.from_us = c.from_us;
    spec.to_us = end_us;
    std::vector<double> ms;
    uint64_t samples = 0;
    for (int i = 0; i < 32; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      Result<QueryResult> r = (*store)->Query(spec);
      const double elapsed = SecondsSince(t0) * 1e3;
      if (!r.ok()) return {{c.name, r.status().ToString(), "", "missed"}};
      if (i == 0) {  // the first run warms the page cache; not counted
        for (const QueryRow& row : r->rows) samples += row.samples;
        continue;
      }
      ms.push_back(elapsed);
    }
    const double p50 = Percentile(ms, 0.5), p95 = Percentile(ms, 0.95);
    char v[96];
    std::snprintf(v, sizeof v, "p50 %.1f ms, p95 %.1f ms (%llu samples)", p50, p95,
                  static_cast<unsigned long long>(samples));
    figures.push_back({"query: " + c.name, v, "p95 <= 100 ms", p95 <= 100 ? "met" : "missed"});
  }
  return figures;
}

void PrintFigures(const std::vector<Figure>& figures) {
  std::printf("\n%-50s  %-50s  %-20s  %s\n", "figure", "value", "target", "");
  for (const Figure& f : figures)
    std::printf("%-50s  %-50s  %-20s  %s\n", f.name.c_str(), f.value.c_str(), f.target.c_str(),
                f.verdict.c_str());
}

// Collects BM_AppendBatches items/s for the table.
class FigureReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      auto it = run.counters.find("items_per_second");
      if (it == run.counters.end()) continue;
      char v[64];
      std::snprintf(v, sizeof v, "%.0f records/s", it->second.value);
      const bool targeted = run.benchmark_name().find("18000000") != std::string::npos;
      std::string name = run.benchmark_name();
      name = name.substr(0, name.find("/min_time"));
      figures.push_back({name, v, targeted ? ">= 300000 records/s" : "(info)",
                         targeted ? (it->second.value >= 300'000 ? "met" : "missed") : ""});
    }
  }
  std::vector<Figure> figures;
};

}  // namespace
}  // namespace cpuledger::store

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  cpuledger::store::FigureReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  std::vector<cpuledger::store::Figure> figures = reporter.figures;
  for (auto& f : cpuledger::store::QueryFigures()) figures.push_back(std::move(f));
  cpuledger::store::PrintFigures(figures);
  return 0;
}
