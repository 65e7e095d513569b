// bench/ingest_bench.cc — records per second through POST /v1/ingest into
// the SQLite store, with the server pinned to one core.
//
// Target (issue 3): >= 300k records/s, protobuf batches of 1000, server on
// one core. Printed beside it, measured in the same run: NDJSON batches of
// 1000 through the same server, and the store alone (AppendBatches in
// process, no HTTP) as the ceiling. Eight senders post at once, as eight
// web workers' recorders would (issue 13): per pass, the ack latency of a
// POST (p50/p99) and the server's RSS before and after.
//
// Usage: ingest_bench CPULEDGER_BINARY [--batches N]
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "record/codec.h"
#include "sim/fleet.h"
#include "store/store.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
using namespace cpuledger;

void PinSelfTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

// MakeBatches() — `n` batches of 1000 simulated records, each with its own sequence.
std::vector<record::Batch> MakeBatches(size_t n) {
  sim::FleetConfig config = sim::DefaultFleet();
  config.peak_rps = 4000;
  config.sample_rate = 1.0;
  config.duration_s = 7 * 86400;
  sim::FleetSimulator fleet(config);
  std::vector<record::Batch> out;
  record::Batch current;
  while (out.size() < n) {
    std::optional<record::Batch> minute = fleet.NextMinute();
    if (!minute) break;
    for (auto& r : *minute->mutable_records()) {
      *current.add_records() = std::move(r);
      if (current.records_size() == 1000) {
        current.set_sender("bench");
        current.set_sequence(out.size() + 1);
        out.push_back(std::move(current));
        current = record::Batch();
        if (out.size() == n) break;
      }
    }
  }
  return out;
}

struct Figure {
  const char* name;
  double records_per_s;
  std::string detail;  // ack latency and RSS, for the HTTP passes
};

constexpr int kSenders = 8;

// PostOutcome — what PostAll() saw: the rate (0 on a failure) and each POST's ack latency.
struct PostOutcome {
  double records_per_s = 0;
  std::vector<double> ack_ms;
};

PostOutcome PostAll(int port, const std::vector<std::string>& bodies, const char* content_type,
                    int connections) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::vector<double>> ack_ms(static_cast<size_t>(connections));
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c)
    threads.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(60, 0);
      for (size_t i; (i = next.fetch_add(1)) < bodies.size();) {
        const auto sent = Clock::now();
        auto res = client.Post("/v1/ingest", bodies[i], content_type);
        ack_ms[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
        if (!res || res->status != 200) {
          std::fprintf(stderr, "ingest failed: %s\n", res ? res->body.c_str() : "no connection");
          failed = true;
          return;
        }
      }
    });
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  PostOutcome out;
  for (const auto& v : ack_ms) out.ack_ms.insert(out.ack_ms.end(), v.begin(), v.end());
  std::sort(out.ack_ms.begin(), out.ack_ms.end());
  out.records_per_s = failed ? 0 : bodies.size() * 1000.0 / secs;
  return out;
}

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()))];
}

// RssMiB() — VmRSS of `pid` in MiB, from /proc (0 when unreadable).
double RssMiB(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (f == nullptr) return 0;
  char line[256];
  double kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "VmRSS: %lf kB", &kib) == 1) break;
  std::fclose(f);
  return kib / 1024;
}

pid_t StartServer(const std::string& binary, const fs::path& dir, int port) {
  pid_t pid = fork();
  if (pid == 0) {
    PinSelfTo(0);  // the server, its HTTP pool and its writer share core 0
    execl(binary.c_str(), binary.c_str(), "serve", "--port", std::to_string(port).c_str(),
          "--data-dir", dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  httplib::Client probe("127.0.0.1", port);
  for (int i = 0; i < 200; ++i) {
    if (auto r = probe.Get("/healthz"); r && r->status == 200) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGTERM);
  return -1;
}

void StopServer(pid_t pid) {
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ingest_bench CPULEDGER_BINARY [--batches N]\n");
    return 2;
  }
  const std::string binary = argv[1];
  size_t n = 200;
  if (argc >= 4 && std::string(argv[2]) == "--batches") n = std::stoul(argv[3]);

  std::printf("generating %zu batches of 1000 simulated records...\n", n);
  std::vector<record::Batch> batches = MakeBatches(n);
  std::vector<std::string> proto, ndjson;
  for (auto& b : batches) proto.push_back(b.SerializeAsString());
  for (auto& b : batches) {
    record::Batch copy = b;
    copy.set_sender("bench-ndjson");
    ndjson.push_back(record::EncodeNdjson(copy));
  }

  const fs::path root =
      fs::temp_directory_path() / ("cpuledger-ingest-bench-" + std::to_string(getpid()));
  std::vector<Figure> figures;

  // The store alone: the ceiling for the HTTP path.
  {
    PinSelfTo(0);
    store::SqliteOptions options;
    options.path = (root / "direct" / "cpuledger.sqlite").string();
    fs::create_directories(root / "direct");
    auto store = store::OpenSqliteStore(options);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    const auto t0 = Clock::now();
    for (size_t i = 0; i < batches.size(); i += 8) {
      std::vector<const record::Batch*> group;
      for (size_t j = i; j < std::min(i + 8, batches.size()); ++j) group.push_back(&batches[j]);
      if (auto r = (*store)->AppendBatches(group); !r.ok()) {
        std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
        return 1;
      }
    }
    figures.push_back(
        {"store alone (AppendBatches, no HTTP)",
         batches.size() * 1000.0 / std::chrono::duration<double>(Clock::now() - t0).count(), ""});
  }
  PinSelfTo(1);  // the client on the other core

  const int port = 18750 + getpid() % 1000;
  for (int pass = 0; pass < 2; ++pass) {
    const bool pb = pass == 0;
    fs::create_directories(root / (pb ? "pb" : "ndjson"));
    pid_t pid = StartServer(binary, root / (pb ? "pb" : "ndjson"), port);
    if (pid < 0) {
      std::fprintf(stderr, "server did not start\n");
      return 1;
    }
    const double rss_before = RssMiB(pid);
    const PostOutcome posted =
        PostAll(port, pb ? proto : ndjson, pb ? "application/x-protobuf" : "application/x-ndjson",
                kSenders);
    const double rss_after = RssMiB(pid);
    StopServer(pid);
    char detail[160];
    std::snprintf(detail, sizeof detail,
                  "%d senders; ack p50 %.0f ms, p99 %.0f ms; server RSS %.0f -> %.0f MiB", kSenders,
                  Percentile(posted.ack_ms, 0.5), Percentile(posted.ack_ms, 0.99), rss_before,
                  rss_after);
    figures.push_back(
        {pb ? "HTTP ingest, protobuf, server on 1 core" : "HTTP ingest, NDJSON, server on 1 core",
         posted.records_per_s, detail});
  }
  fs::remove_all(root);

  std::printf("\n%-44s %14s   %s\n", "figure", "records/s", "target");
  for (const Figure& f : figures) {
    const bool is_target = std::string(f.name).find("protobuf") != std::string::npos;
    std::printf("%-44s %14.0f   %-16s %s\n", f.name, f.records_per_s,
                is_target ? (f.records_per_s >= 300000 ? ">= 300k: met" : ">= 300k: MISSED") : "-",
                f.detail.c_str());
  }
  return 0;
}
