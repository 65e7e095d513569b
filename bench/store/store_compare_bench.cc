// bench/store/store_compare_bench.cc — the ClickHouse store against the
// SQLite store at 10M records, side by side (issue 17): ingest records/s,
// bytes a record on disk, group-by query latency, and what a fleet needs.
//
// It starts a two-shard ClickHouse cluster on loopback
// (tests/clickhouse/cluster.py) and a SQLite store, in one temp dir that is
// removed at exit; the servers it starts are stopped on every exit path,
// SIGINT and SIGTERM included. The data: the simulator's records (src/sim:
// 3 services, 11 endpoints, 48 hosts, 5 commits, 2 flags, 200k users) over
// one day ending at the last 15:00 UTC, streamed (never all in memory) as
// batches of 1000 from 32 senders. Plain request records only: no worker
// tallies, no profiles (the ClickHouse store keeps no function entities yet).
//
//  1. In process: every batch into both stores through AppendBatches(),
//     64 batches a call (the most the server's writer hands over at once).
//  2. Through `cpuledger serve` (an ingest instance): the first
//     --serve-records records again, into a fresh store of each kind, posted
//     as protobuf over 8 connections at once (each sender's batches in order);
//     acknowledged = stored.
//  3. Bytes a record on disk: the SQLite file after its WAL is checkpointed;
//     ClickHouse's system.parts bytes_on_disk of the database summed over the
//     shards, after OPTIMIZE FINAL (merged, as a store some hours old is).
//  4. Store::Query() p50/p99 of five group-by shapes, each run --runs times
//     (the first run warms caches and is not counted; at most --query-budget
//     seconds a shape and backend).
// Targets: ingest, a fleet of --hosts web hosts at --host-rps requests/s
// at 1% sampling; queries, none in issue 17: the dashboard's "each page's
// data under 1 s" (issue 16), so p99 <= 1000 ms.
// Run time at 10M: ~8 min on a loaded 2-core VM, then a few more minutes
// deleting ClickHouse's part files; --ingest-budget stops step 1 early (and
// says so) should the stores be slower than that.
//
// Usage: store_compare_bench --cpuledger PATH [--records 10000000]
//          [--serve-records 500000] [--runs 11] [--query-budget 20]
//          [--ingest-budget 600] [--hosts 1000] [--host-rps 500]
// REQUIRES: clickhouse-server (scripts/bootstrap) and python3 on PATH.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "sim_batches.h"
#include "store/clickhouse/clickhouse_store.h"
#include "store/clickhouse/http.h"
#include "store/store.h"

namespace cpuledger::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int64_t kUs = 1'000'000;
// Senders: enough that xxHash64(sender) spreads them evenly over two shards.
constexpr int kSenders = 32;
constexpr int kServeSenders = 8;  // threads posting to one server at once
// Batches per AppendBatches() call: the most the server's writer hands over
// (server::IngestWriter::kMaxGroup), as it does when many senders post at once.
constexpr size_t kGroup = 64;
constexpr double kQueryTargetMs = 1000;
constexpr double kDiurnalMean = 0.55;  // the simulator's mean traffic / peak (fleet.cc)
constexpr const char* kDatabase = "bench";
constexpr const char* kServeDatabase = "bench_serve";

std::atomic<bool> g_interrupted{false};
void OnSignal(int) { g_interrupted = true; }

struct Options {
  std::string cpuledger;
  uint64_t records = 10'000'000;
  uint64_t serve_records = 500'000;
  int runs = 11;
  double query_budget_s = 20;
  double ingest_budget_s = 600;
  int hosts = 1000;
  double host_rps = 500;
};

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Thousands() — 1234567 -> "1,234,567".
std::string Thousands(double v) {
  std::string digits = std::to_string(static_cast<long long>(std::llround(v)));
  for (int i = static_cast<int>(digits.size()) - 3; i > (digits[0] == '-' ? 1 : 0); i -= 3)
    digits.insert(static_cast<size_t>(i), ",");
  return digits;
}

std::string Format(const char* fmt, double a, double b = 0) {
  char buf[128];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

Status Interrupted() { return Unavailable("interrupted"); }

// RunCommand() — runs argv to completion. RETURNS: Internal unless it exits 0.
Status RunCommand(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Internal("command failed: " + argv[0] + " " + argv[1] + " " + argv[2]);
  return OkStatus();
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// TempRoot — the bench's scratch dir, removed with everything in it.
class TempRoot {
 public:
  TempRoot()
      : path_(fs::temp_directory_path() / ("cpuledger-compare-" + std::to_string(getpid()))) {
    fs::create_directories(path_);
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Cluster — tests/clickhouse/cluster.py's servers, stopped (and their dir
// removed) by the destructor.
class Cluster {
 public:
  static Result<std::unique_ptr<Cluster>> Start(const fs::path& dir) {
    auto cluster = std::unique_ptr<Cluster>(new Cluster(dir));
    if (Status s =
            RunCommand({"python3", cluster->script_, "start", dir.string(), "--shards", "2"});
        !s.ok())
      return s;
    cluster->started_ = true;
    std::ifstream in(dir / "cluster.json");
    nlohmann::json state = nlohmann::json::parse(in, nullptr, false);
    if (state.is_discarded() || !state.contains("http_urls"))
      return Internal("unreadable " + (dir / "cluster.json").string());
    for (const auto& url : state["http_urls"]) cluster->urls_.push_back(url.get<std::string>());
    return cluster;
  }
  ~Cluster() {
    if (started_) (void)RunCommand({"python3", script_, "stop", dir_.string()});
  }
  const std::vector<std::string>& urls() const { return urls_; }

 private:
  explicit Cluster(fs::path dir)
      : dir_(std::move(dir)),
        script_(std::string(CPULEDGER_SOURCE_DIR) + "/tests/clickhouse/cluster.py") {}
  fs::path dir_;
  std::string script_;
  bool started_ = false;
  std::vector<std::string> urls_;
};

// ServeProcess — one `cpuledger serve`, SIGTERMed and reaped by the destructor.
class ServeProcess {
 public:
  static Result<std::unique_ptr<ServeProcess>> Start(const std::string& binary, const fs::path& dir,
                                                     const std::string& config) {
    fs::create_directories(dir);
    const int port = FreePort();
    std::vector<std::string> argv = {
        binary,       "serve",      "--port",         std::to_string(port),
        "--data-dir", dir.string(), "--detect-every", "off"};
    if (!config.empty()) {
      std::ofstream(dir / "cpuledger.toml") << config;
      argv.insert(argv.end(), {"--config", (dir / "cpuledger.toml").string()});
    }
    const std::string log = (dir / "serve.log").string();
    const pid_t pid = fork();
    if (pid == 0) {
      if (std::freopen(log.c_str(), "w", stderr) == nullptr || dup2(2, 1) < 0) _exit(126);
      std::vector<char*> args;
      for (std::string& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    auto serve = std::unique_ptr<ServeProcess>(new ServeProcess(pid, port));
    httplib::Client probe("127.0.0.1", port);
    for (int i = 0; i < 600 && !g_interrupted; ++i) {
      if (auto r = probe.Get("/healthz"); r && r->status == 200) return serve;
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        serve->pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return Unavailable("cpuledger serve did not answer /healthz: " + text);
  }
  ~ServeProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  int port() const { return port_; }

 private:
  ServeProcess(pid_t pid, int port) : pid_(pid), port_(port) {}
  pid_t pid_;
  int port_;
};

// ---- the data set ----

// DayEnd() — the last 15:00 UTC (the simulator's daily peak) before now:
// recent, so the servers' retention keeps the day, and the same all day long.
int64_t DayEnd() {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t peak = now - now % 86400 + 15 * 3600;
  return peak <= now ? peak : peak - 86400;
}

// CompareFleet() — the default shop (3 services, 11 endpoints) on 4x the
// hosts, a rollout in two services, a second flag, 200k users; every request
// sampled (sim_batches.h), peak_rps set so that one day holds ~`records`.
sim::FleetConfig CompareFleet(uint64_t records, int64_t end_s) {
  sim::FleetConfig c = sim::DefaultFleet();
  c.seed = 17;
  c.duration_s = 86400;
  c.start_unix_s = end_s - c.duration_s;
  c.sample_rate = 1.0;
  c.users = 200'000;
  c.peak_rps = static_cast<double>(records) / (kDiurnalMean * static_cast<double>(c.duration_s));
  for (sim::ServiceSpec& s : c.services) s.hosts *= 4;
  sim::FlagSpec ranker;
  ranker.name = "exp_ranker";
  ranker.exposure = 0.5;
  ranker.service = "shop-api";
  c.flags.push_back(ranker);
  sim::RolloutSpec api;
  api.service = "shop-api";
  api.from = "3d1e9a0";
  api.to = "5c2b7f4";
  api.at_s = 8 * 3600;
  c.rollouts.push_back(api);
  return c;
}

// ---- 1. ingest in process ----

struct IngestFigures {
  uint64_t records = 0;
  double sqlite_s = 0, clickhouse_s = 0, generate_s = 0;
  bool bounded = false;                   // stopped by --ingest-budget before --records
  std::vector<std::string> serve_bodies;  // the first --serve-records records, as posted
  uint64_t serve_records = 0;             // in serve_bodies
};

Status AppendGroup(store::Store& store, const std::vector<record::Batch>& group, double* seconds) {
  std::vector<const record::Batch*> ptrs;
  for (const record::Batch& b : group) ptrs.push_back(&b);
  const auto t0 = Clock::now();
  Result<std::vector<store::AppendOutcome>> out = store.AppendBatches(ptrs);
  *seconds += SecondsSince(t0);
  return out.status();
}

Result<IngestFigures> IngestInProcess(const Options& o, int64_t end_s, store::Store& sqlite,
                                      store::Store& clickhouse) {
  IngestFigures f;
  SimBatches batches(CompareFleet(o.records, end_s),
                     {.senders = kSenders, .batch_records = 1000, .tallies = false});
  const auto t0 = Clock::now();
  uint64_t next_report = 1'000'000;
  while (f.records < o.records) {
    if (g_interrupted) return Interrupted();
    if (SecondsSince(t0) > o.ingest_budget_s) {
      f.bounded = true;
      break;
    }
    const auto g0 = Clock::now();
    std::vector<record::Batch> group;
    while (group.size() < kGroup && f.records < o.records) {
      std::optional<record::Batch> b = batches.Next();
      if (!b) break;
      f.records += static_cast<uint64_t>(b->records_size());
      if (f.records <= o.serve_records) {
        f.serve_bodies.push_back(b->SerializeAsString());
        f.serve_records += static_cast<uint64_t>(b->records_size());
      }
      group.push_back(std::move(*b));
    }
    f.generate_s += SecondsSince(g0);
    if (group.empty()) break;  // the simulated day is over
    if (Status s = AppendGroup(sqlite, group, &f.sqlite_s); !s.ok()) return s;
    if (Status s = AppendGroup(clickhouse, group, &f.clickhouse_s); !s.ok()) return s;
    if (f.records >= next_report) {
      std::printf("  %s records: SQLite %s records/s, ClickHouse %s records/s (%.0f s)\n",
                  Thousands(static_cast<double>(f.records)).c_str(),
                  Thousands(static_cast<double>(f.records) / f.sqlite_s).c_str(),
                  Thousands(static_cast<double>(f.records) / f.clickhouse_s).c_str(),
                  SecondsSince(t0));
      std::fflush(stdout);
      next_report += 1'000'000;
    }
  }
  return f;
}

// ---- 2. ingest through `cpuledger serve` ----

struct ServeFigures {
  double records_per_s = 0;
  double ack_p50_ms = 0, ack_p99_ms = 0;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = std::clamp<size_t>(
      static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))), 1, v.size());
  return v[rank - 1];
}

// PostAll() — kServeSenders threads; thread t posts the bodies of senders t,
// t + kServeSenders, ... in their generation order (each sender's sequence in order).
Result<ServeFigures> PostAll(int port, const std::vector<std::string>& bodies, uint64_t records) {
  std::atomic<bool> failed{false};
  std::vector<std::vector<double>> ack_ms(kServeSenders);
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kServeSenders; ++t)
    threads.emplace_back([&, t] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_read_timeout(120, 0);
      for (size_t i = 0; i < bodies.size() && !failed && !g_interrupted; ++i) {
        if (static_cast<int>(i % kSenders) % kServeSenders != t) continue;
        for (;;) {  // 503: the ingest queue is full; the recorder would retry
          const auto sent = Clock::now();
          auto res = client.Post("/v1/ingest", bodies[i], "application/x-protobuf");
          if (res && res->status == 503) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
          }
          ack_ms[static_cast<size_t>(t)].push_back(SecondsSince(sent) * 1e3);
          if (!res || res->status != 200) {
            std::fprintf(stderr, "ingest failed: %s\n", res ? res->body.c_str() : "no answer");
            failed = true;
          }
          break;
        }
      }
    });
  for (std::thread& t : threads) t.join();
  if (g_interrupted) return Interrupted();
  if (failed) return Internal("a POST /v1/ingest failed");
  ServeFigures f;
  f.records_per_s = static_cast<double>(records) / SecondsSince(t0);
  std::vector<double> all;
  for (const auto& v : ack_ms) all.insert(all.end(), v.begin(), v.end());
  f.ack_p50_ms = Percentile(all, 0.5);
  f.ack_p99_ms = Percentile(all, 0.99);
  return f;
}

Result<ServeFigures> IngestThroughServe(const Options& o, const fs::path& dir,
                                        const std::string& config,
                                        const std::vector<std::string>& bodies, uint64_t records) {
  Result<std::unique_ptr<ServeProcess>> serve = ServeProcess::Start(o.cpuledger, dir, config);
  if (!serve.ok()) return serve.status();
  return PostAll((*serve)->port(), bodies, records);
}

std::string ClickHouseConfig(const std::vector<std::string>& urls, const char* database) {
  std::string config = "store = \"clickhouse\"\nclickhouse_database = \"" + std::string(database) +
                       "\"\nclickhouse_urls = [";
  for (size_t i = 0; i < urls.size(); ++i) config += (i ? ", \"" : "\"") + urls[i] + "\"";
  return config + "]\n";
}

// ---- 3. bytes on disk ----

store::clickhouse::ShardOptions Shard(
    const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  store::clickhouse::ShardOptions shard;
  shard.url = url;
  shard.timeout = timeout;
  return shard;
}

uint64_t SqliteBytes(const std::string& path) {
  uint64_t bytes = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    const uintmax_t n = fs::file_size(path + suffix, ec);
    if (!ec) bytes += n;
  }
  return bytes;
}

struct ClickHouseBytes {
  uint64_t total = 0, records_table = 0;
  uint64_t rollup_rows = 0, coarse_rollup_rows = 0;  // the minute rollups' rows, merged
  std::vector<uint64_t> rows_per_shard;
};

// MergeAndMeasure() — OPTIMIZE FINAL of every table holding parts in the
// database, on every shard, then bytes_on_disk summed over the shards.
Result<ClickHouseBytes> MergeAndMeasure(const std::vector<std::string>& urls) {
  ClickHouseBytes out;
  const std::string where =
      " FROM system.parts WHERE active AND database = '" + std::string(kDatabase) + "'";
  for (const std::string& url : urls) {
    store::clickhouse::ShardClient shard(Shard(url, std::chrono::minutes(10)));
    Result<std::string> tables = shard.Run("SELECT DISTINCT table" + where + " FORMAT TSV");
    if (!tables.ok()) return tables.status();
    std::istringstream lines(*tables);
    for (std::string table; std::getline(lines, table);) {
      if (g_interrupted) return Interrupted();
      Result<std::string> r =
          shard.Run("OPTIMIZE TABLE " + std::string(kDatabase) + ".`" + table + "` FINAL");
      if (!r.ok()) return r.status();
    }
    Result<std::string> bytes = shard.Run(
        "SELECT sum(bytes_on_disk), sumIf(bytes_on_disk, table = 'records_local'), "
        "sumIf(rows, table = 'records_local'), sumIf(rows, table = '.inner.rollup_minute_mv'), "
        "sumIf(rows, table = '.inner.rollup_minute_coarse_mv')" +
        where + " FORMAT TSV");
    if (!bytes.ok()) return bytes.status();
    std::istringstream fields(*bytes);
    uint64_t total = 0, records_table = 0, rows = 0, rollup = 0, coarse = 0;
    fields >> total >> records_table >> rows >> rollup >> coarse;
    out.rollup_rows += rollup;
    out.coarse_rollup_rows += coarse;
    out.total += total;
    out.records_table += records_table;
    out.rows_per_shard.push_back(rows);
  }
  return out;
}

// DetachDatabase() — takes `database` out of the servers' work (merges, the
// caches) at once; its files go with the temp dir. DROP would delete the
// serve pass's tens of thousands of part files first, minutes on a busy disk.
Status DetachDatabase(const std::vector<std::string>& urls, const char* database) {
  for (const std::string& url : urls) {
    store::clickhouse::ShardClient shard(Shard(url, std::chrono::minutes(5)));
    if (Result<std::string> r = shard.Run("DETACH DATABASE " + std::string(database)); !r.ok())
      return r.status();
  }
  return OkStatus();
}

// ---- 4. query latency ----

struct Shape {
  std::string name;
  store::QuerySpec spec;
};

std::vector<Shape> QueryShapes(int64_t end_s) {
  using store::Dimension;
  using store::DimensionRef;
  const int64_t to = end_s * kUs, day = to - 86400 * kUs, hour = to - 3600 * kUs;
  auto spec = [&](std::vector<DimensionRef> by, int64_t from, store::Bucket bucket) {
    store::QuerySpec s;
    s.group_by = std::move(by);
    s.from_us = from;
    s.to_us = to;
    s.bucket = bucket;
    if (bucket != store::Bucket::kNone) s.limit = 100'000;  // as the dashboard's series
    return s;
  };
  const DimensionRef endpoint{Dimension::kEndpoint, {}};
  return {
      {"by endpoint, last day", spec({endpoint}, day, store::Bucket::kNone)},
      {"by endpoint x commit, last hour",
       spec({endpoint, {Dimension::kCommit, {}}}, hour, store::Bucket::kNone)},
      {"p99 bill by host, last day", spec({{Dimension::kHost, {}}}, day, store::Bucket::kNone)},
      {"series by service, 1-min step, last day",
       spec({{Dimension::kService, {}}}, day, store::Bucket::kMinute)},
      {"by endpoint x flag new_search, last day",
       spec({endpoint, {Dimension::kFlag, "new_search"}}, day, store::Bucket::kNone)},
  };
}

struct Latency {
  double p50_ms = 0, p99_ms = 0;
  size_t runs = 0, rows = 0;
  uint64_t samples = 0;
  bool rollups = false;
};

Result<Latency> Measure(store::Store& store, const store::QuerySpec& spec, const Options& o) {
  Latency l;
  std::vector<double> ms;
  const auto t0 = Clock::now();
  for (int i = 0; i <= o.runs; ++i) {
    if (g_interrupted) return Interrupted();
    if (i > 3 && SecondsSince(t0) > o.query_budget_s) break;
    const auto q0 = Clock::now();
    Result<store::QueryResult> r = store.Query(spec);
    const double elapsed = SecondsSince(q0) * 1e3;
    if (!r.ok()) return r.status();
    if (i == 0) {  // warms the page cache and ClickHouse's mark cache; not counted
      l.rows = r->rows.size();
      for (const store::QueryRow& row : r->rows) l.samples += row.samples;
      l.rollups = r->used_rollups;
      continue;
    }
    ms.push_back(elapsed);
  }
  l.runs = ms.size();
  l.p50_ms = Percentile(ms, 0.5);
  l.p99_ms = Percentile(ms, 0.99);
  return l;
}

// ---- the table ----

struct Row {
  std::string figure, clickhouse, sqlite, target, verdict;
};

void PrintTable(const std::vector<Row>& rows) {
  std::printf("\n%-46s  %-40s  %-30s  %-34s  %s\n", "figure", "ClickHouse (2 shards)", "SQLite",
              "target", "ClickHouse / SQLite");
  for (const Row& r : rows)
    std::printf("%-46s  %-40s  %-30s  %-34s  %s\n", r.figure.c_str(), r.clickhouse.c_str(),
                r.sqlite.c_str(), r.target.c_str(), r.verdict.c_str());
}

const char* Verdict(bool met) { return met ? "met" : "MISSED"; }

std::string Ratio(double clickhouse, double sqlite) {
  return sqlite > 0 ? Format("(%.2fx SQLite)", clickhouse / sqlite) : "";
}

struct Fleet {
  double peak_records_per_s = 0, records_per_day = 0;
};

Fleet FleetNeed(const Options& o) {
  Fleet f;
  f.peak_records_per_s = o.hosts * o.host_rps * 0.01;
  f.records_per_day = f.peak_records_per_s * kDiurnalMean * 86400;
  return f;
}

Row IngestRow(const std::string& name, double ch, double sq, const Fleet& need) {
  const std::string target = Thousands(need.peak_records_per_s) + " records/s (fleet peak)";
  return {name, Thousands(ch) + " records/s " + Ratio(ch, sq), Thousands(sq) + " records/s",
          ">= " + target,
          std::string(Verdict(ch >= need.peak_records_per_s)) + " / " +
              Verdict(sq >= need.peak_records_per_s)};
}

std::string LatencyText(const Latency& l) {
  return Format("p50 %.0f ms, p99 %.0f ms", l.p50_ms, l.p99_ms) + " (" + std::to_string(l.runs) +
         ")";
}

// ---- the run ----

struct Stores {
  std::unique_ptr<store::Store> sqlite, clickhouse;
};

Result<Stores> OpenStores(const std::string& sqlite_path, const std::vector<std::string>& urls) {
  Stores stores;
  Result<std::unique_ptr<store::Store>> s = store::OpenSqliteStore({.path = sqlite_path});
  if (!s.ok()) return s.status();
  stores.sqlite = std::move(*s);
  store::ClickHouseOptions options;
  for (const std::string& url : urls) options.shards.push_back(Shard(url));
  options.database = kDatabase;
  Result<std::unique_ptr<store::Store>> c = store::OpenClickHouseStore(options);
  if (!c.ok()) return c.status();
  stores.clickhouse = std::move(*c);
  return stores;
}

// Serve — both backends' serve passes.
struct Serve {
  ServeFigures sqlite, clickhouse;
};

Result<Serve> ServePasses(const Options& o, const fs::path& root,
                          const std::vector<std::string>& urls, const IngestFigures& ingest) {
  std::printf("2. through cpuledger serve: %s records, %d connections, into each backend ...\n",
              Thousands(static_cast<double>(ingest.serve_records)).c_str(), kServeSenders);
  std::fflush(stdout);
  Result<ServeFigures> sqlite =
      IngestThroughServe(o, root / "serve-sqlite", "", ingest.serve_bodies, ingest.serve_records);
  if (!sqlite.ok()) return sqlite.status();
  fs::remove_all(root / "serve-sqlite");
  Result<ServeFigures> clickhouse =
      IngestThroughServe(o, root / "serve-clickhouse", ClickHouseConfig(urls, kServeDatabase),
                         ingest.serve_bodies, ingest.serve_records);
  if (!clickhouse.ok()) return clickhouse.status();
  if (Status s = DetachDatabase(urls, kServeDatabase); !s.ok()) return s;
  return Serve{*sqlite, *clickhouse};
}

// Bytes — bytes on disk of each backend's in-process store.
struct Bytes {
  uint64_t sqlite = 0;
  ClickHouseBytes clickhouse;
  double merge_s = 0;  // OPTIMIZE FINAL's time
};

// MeasureBytes() — closes and reopens the SQLite store (closing checkpoints
// its WAL into the file); merges ClickHouse's parts.
Result<Bytes> MeasureBytes(const std::string& sqlite_path, const std::vector<std::string>& urls,
                           Stores& stores) {
  std::printf("3. bytes on disk (ClickHouse: OPTIMIZE FINAL first) ...\n");
  std::fflush(stdout);
  Bytes b;
  stores.sqlite.reset();
  b.sqlite = SqliteBytes(sqlite_path);
  Result<std::unique_ptr<store::Store>> s = store::OpenSqliteStore({.path = sqlite_path});
  if (!s.ok()) return s.status();
  stores.sqlite = std::move(*s);
  const auto m0 = Clock::now();
  Result<ClickHouseBytes> ch = MergeAndMeasure(urls);
  if (!ch.ok()) return ch.status();
  b.clickhouse = *ch;
  b.merge_s = SecondsSince(m0);
  return b;
}

std::vector<Row> IngestAndBytesRows(double n, const IngestFigures& ingest, const Serve& serve,
                                    const Bytes& bytes, const Fleet& need) {
  std::vector<Row> rows;
  rows.push_back(IngestRow("ingest, in process (AppendBatches)", n / ingest.clickhouse_s,
                           n / ingest.sqlite_s, need));
  rows.push_back(IngestRow("ingest, 1 cpuledger serve, 8 connections",
                           serve.clickhouse.records_per_s, serve.sqlite.records_per_s, need));
  rows.push_back(
      {"  ack per POST of 1000 records",
       Format("p50 %.0f ms, p99 %.0f ms", serve.clickhouse.ack_p50_ms, serve.clickhouse.ack_p99_ms),
       Format("p50 %.0f ms, p99 %.0f ms", serve.sqlite.ack_p50_ms, serve.sqlite.ack_p99_ms),
       "(info)", ""});
  const double ch_bpr = static_cast<double>(bytes.clickhouse.total) / n;
  const double sq_bpr = static_cast<double>(bytes.sqlite) / n;
  rows.push_back({"bytes a record on disk, all tables",
                  Format("%.1f B ", ch_bpr) + Ratio(ch_bpr, sq_bpr), Format("%.1f B", sq_bpr),
                  "(info: sizing below)", ""});
  rows.push_back({"  of which the records table",
                  Format("%.1f B", static_cast<double>(bytes.clickhouse.records_table) / n), "-",
                  "(info)", ""});
  return rows;
}

Result<std::vector<Row>> QueryRows(const Options& o, int64_t end_s, Stores& stores) {
  std::printf("4. queries (%d runs each after a warm-up, at most %.0f s a shape) ...\n", o.runs,
              o.query_budget_s);
  std::fflush(stdout);
  std::vector<Row> rows;
  for (const Shape& shape : QueryShapes(end_s)) {
    Result<Latency> ch = Measure(*stores.clickhouse, shape.spec, o);
    if (!ch.ok()) return ch.status();
    Result<Latency> sq = Measure(*stores.sqlite, shape.spec, o);
    if (!sq.ok()) return sq.status();
    if (ch->samples != sq->samples)
      std::printf("  NOTE %s: ClickHouse counted %llu samples, SQLite %llu\n", shape.name.c_str(),
                  static_cast<unsigned long long>(ch->samples),
                  static_cast<unsigned long long>(sq->samples));
    rows.push_back({"query: " + shape.name, LatencyText(*ch) + (ch->rollups ? " rollups" : " raw"),
                    LatencyText(*sq), "p99 <= 1000 ms (dashboard page)",
                    std::string(Verdict(ch->p99_ms <= kQueryTargetMs)) + " / " +
                        Verdict(sq->p99_ms <= kQueryTargetMs)});
    std::printf("  %s: %zu rows, %s samples\n", shape.name.c_str(), ch->rows,
                Thousands(static_cast<double>(ch->samples)).c_str());
    std::fflush(stdout);
  }
  return rows;
}

void PrintNotes(double n, const IngestFigures& ingest, const Bytes& bytes) {
  std::printf(
      "\n%s plain request records (no tallies, no profiles) over one simulated day; the same "
      "records in both stores.\nIn process: AppendBatches() of %zu batches of 1000; generating "
      "them took %.0f s more (not counted).\nServe: the first %s records, %d connections posting "
      "protobuf at once to one `cpuledger serve`; ClickHouse and the server share this machine.\n"
      "ClickHouse rows per shard: ",
      Thousands(n).c_str(), kGroup, ingest.generate_s,
      Thousands(static_cast<double>(ingest.serve_records)).c_str(), kServeSenders);
  for (uint64_t r : bytes.clickhouse.rows_per_shard)
    std::printf("%s ", Thousands(static_cast<double>(r)).c_str());
  std::printf(
      "(OPTIMIZE FINAL took %.0f s); minute rollup rows %s, coarse (no host, cluster, region) "
      "%s.\nQuery latency: (N) = runs counted; p99 of few runs is their max.\n",
      bytes.merge_s, Thousands(static_cast<double>(bytes.clickhouse.rollup_rows)).c_str(),
      Thousands(static_cast<double>(bytes.clickhouse.coarse_rollup_rows)).c_str());
}

// PrintSizing() — what the fleet of --hosts needs, from the figures measured.
void PrintSizing(const Options& o, const Fleet& need, double n, const Serve& serve,
                 const Bytes& bytes) {
  const double ch_bpr = static_cast<double>(bytes.clickhouse.total) / n;
  const double sq_bpr = static_cast<double>(bytes.sqlite) / n;
  const double per_instance = serve.clickhouse.records_per_s;
  std::printf(
      "\nsizing: %d web hosts x %.0f requests/s at peak x 1%% sampling = %s records/s at peak, "
      "%s records a day (mean = %.2f x peak)\n",
      o.hosts, o.host_rps, Thousands(need.peak_records_per_s).c_str(),
      Thousands(need.records_per_day).c_str(), kDiurnalMean);
  std::printf(
      "  ClickHouse: %.0f B a record -> %.1f GB a day on disk, %.0f GB for 14 days of "
      "raw records; ingest instances at %s records/s each: %.0f\n",
      ch_bpr, need.records_per_day * ch_bpr / 1e9, 14 * need.records_per_day * ch_bpr / 1e9,
      Thousands(per_instance).c_str(),
      std::ceil(need.peak_records_per_s / std::max(per_instance, 1.0)));
  std::printf("  SQLite:     %.0f B a record -> %.1f GB a day on disk (one file, one writer)\n",
              sq_bpr, need.records_per_day * sq_bpr / 1e9);
}

Status Run(const Options& o) {
  TempRoot root;
  std::printf("scratch dir %s; starting a 2-shard ClickHouse cluster ...\n", root.path().c_str());
  std::fflush(stdout);
  Result<std::unique_ptr<Cluster>> cluster = Cluster::Start(root.path() / "clickhouse");
  if (!cluster.ok()) return cluster.status();
  const std::vector<std::string>& urls = (*cluster)->urls();
  fs::create_directories(root.path() / "sqlite");
  const std::string sqlite_path = (root.path() / "sqlite" / "cpuledger.sqlite").string();
  Result<Stores> stores = OpenStores(sqlite_path, urls);
  if (!stores.ok()) return stores.status();

  const int64_t end_s = DayEnd();
  std::printf("1. in process: %s simulated records (one day) into both stores ...\n",
              Thousands(static_cast<double>(o.records)).c_str());
  std::fflush(stdout);
  Result<IngestFigures> ingest = IngestInProcess(o, end_s, *stores->sqlite, *stores->clickhouse);
  if (!ingest.ok()) return ingest.status();
  const double n = static_cast<double>(ingest->records);
  if (ingest->bounded)
    std::printf("  stopped by --ingest-budget %.0f s at %s records\n", o.ingest_budget_s,
                Thousands(n).c_str());
  Result<Serve> serve = ServePasses(o, root.path(), urls, *ingest);
  if (!serve.ok()) return serve.status();
  ingest->serve_bodies = {};
  Result<Bytes> bytes = MeasureBytes(sqlite_path, urls, *stores);
  if (!bytes.ok()) return bytes.status();
  Result<std::vector<Row>> queries = QueryRows(o, end_s, *stores);
  if (!queries.ok()) return queries.status();

  const Fleet need = FleetNeed(o);
  std::vector<Row> rows = IngestAndBytesRows(n, *ingest, *serve, *bytes, need);
  rows.insert(rows.end(), queries->begin(), queries->end());
  PrintTable(rows);
  PrintNotes(n, *ingest, *bytes);
  PrintSizing(o, need, n, *serve, *bytes);
  std::printf("stopping the servers and removing %s ...\n", root.path().c_str());
  std::fflush(stdout);  // the figures before the slow clean-up
  return OkStatus();
}

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    if (a == "--cpuledger")
      o.cpuledger = v;
    else if (a == "--records")
      o.records = std::strtoull(v, nullptr, 10);
    else if (a == "--serve-records")
      o.serve_records = std::strtoull(v, nullptr, 10);
    else if (a == "--runs")
      o.runs = std::atoi(v);
    else if (a == "--query-budget")
      o.query_budget_s = std::atof(v);
    else if (a == "--ingest-budget")
      o.ingest_budget_s = std::atof(v);
    else if (a == "--hosts")
      o.hosts = std::atoi(v);
    else if (a == "--host-rps")
      o.host_rps = std::atof(v);
    else
      return false;
  }
  return !o.cpuledger.empty() && o.records >= 1000 && o.runs >= 1;
}

}  // namespace
}  // namespace cpuledger::bench

int main(int argc, char** argv) {
  cpuledger::bench::Options options;
  if (!cpuledger::bench::ParseArgs(argc, argv, options)) {
    std::fprintf(stderr,
                 "usage: store_compare_bench --cpuledger PATH [--records N] [--serve-records N] "
                 "[--runs N] [--query-budget S] [--ingest-budget S] [--hosts N] [--host-rps R]\n");
    return 2;
  }
  signal(SIGINT, cpuledger::bench::OnSignal);
  signal(SIGTERM, cpuledger::bench::OnSignal);
  signal(SIGPIPE, SIG_IGN);
  cpuledger::Status s = cpuledger::bench::Run(options);
  if (!s.ok()) {
    std::fprintf(stderr, "store_compare_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
