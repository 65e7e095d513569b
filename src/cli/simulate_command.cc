// `cpuledger simulate --server URL [--hours H] [--seed N] [--fleet F] ...` —
// sends a simulated fleet's records and tallies through the real ingest
// endpoint. `--fleet default` is the demo's shop (sim::DefaultFleet);
// `--fleet detection` the detector benchmark's 50-endpoint fleet with its
// injected regressions (sim::MakeDetectionFleet). The traffic ends now, or at
// `--end TIME`: the fleet's day follows UTC hours (peak 15:00), so pinning the
// end pins which hour a rollout lands in.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <thread>

#include "base/delivery.h"
#include "base/duration.h"
#include "base/time_text.h"
#include "cli/commands.h"
#include "cli/http_client.h"
#include "record/codec.h"
#include "sim/detection_fleet.h"
#include "sim/fleet.h"

namespace cpuledger::cli {
namespace {

struct SimulateFlags {
  std::string server = "http://127.0.0.1:8750";
  std::string token;
  uint64_t seed = 1;
  double hours = 24;
  double peak_rps = 40;
  double sample_rate = 0.1;
  int users = 20000;
  bool no_pmu = false;
  size_t batch_records = 1000;
  std::string fleet = "default";
  double profile_rate = -1;  // < 0: the fleet's own
  std::string end;           // base/time_text.h forms; empty: now
};

// PostWithRetry() — base/delivery.h's rule: a busy or unreachable server
// is tried again, with back-off, a bounded number of times.
Status PostWithRetry(ServerClient& client, const record::Batch& batch) {
  constexpr int kTries = 8;
  const delivery::Backoff backoff{std::chrono::milliseconds(50), std::chrono::seconds(5)};
  const std::string body = batch.SerializeAsString();
  for (int tries = 1;; ++tries) {
    Result<std::pair<int, std::string>> res =
        client.Post("/v1/ingest", body, "application/x-protobuf");
    const int status = res.ok() ? res->first : 0;
    const delivery::Verdict verdict = delivery::Classify(status);
    if (verdict == delivery::Verdict::kDelivered) return OkStatus();
    if (verdict == delivery::Verdict::kRefused || tries >= kTries)
      return res.ok() ? InvalidArgument("ingest answered " + std::to_string(res->first) + ": " +
                                        res->second)
                      : res.status();
    std::this_thread::sleep_for(backoff.Delay(tries, std::chrono::milliseconds(0)));
  }
}

int RunSimulate(const SimulateFlags& f) {
  int64_t end_s = NowUnixUs() / 1'000'000;
  if (!f.end.empty()) {
    Result<int64_t> end = ParseTimeUs(f.end, NowUnixUs());
    if (!end.ok()) {
      std::cerr << "cpuledger simulate: --end: " << end.status().message() << "\n";
      return 2;
    }
    end_s = *end / 1'000'000;
  }
  sim::FleetConfig config;
  if (f.fleet == "detection") {
    // Its own volume, rollouts and flags over whole days; it ends now.
    const int days = std::max(1, static_cast<int>(std::ceil(f.hours / 24)));
    config = sim::MakeDetectionFleet(f.seed, days).config;
    config.with_pmu = !f.no_pmu;
  } else {
    config = sim::DefaultFleet();
    config.seed = f.seed;
    config.duration_s = static_cast<int64_t>(f.hours * 3600);
    config.peak_rps = f.peak_rps;
    config.sample_rate = f.sample_rate;
    config.users = f.users;
    config.with_pmu = !f.no_pmu;
    // Roll out halfway through whatever window is simulated.
    for (auto& r : config.rollouts) r.at_s = config.duration_s * 7 / 12;
  }
  config.start_unix_s = (end_s - config.duration_s) / 60 * 60;
  if (f.profile_rate >= 0) config.profile_rate = f.profile_rate;
  sim::FleetSimulator sim(config);
  ServerClient client(f.server, f.token);

  record::Batch pending;
  pending.set_sender("simulate-" + std::to_string(f.seed) + "-" +
                     std::to_string(sim.config().start_unix_s));
  uint64_t sequence = 0, records = 0, tallies = 0, batches = 0;
  auto flush = [&]() -> Status {
    if (pending.records_size() == 0 && pending.tallies_size() == 0) return OkStatus();
    pending.set_sequence(++sequence);
    record::ShareProfileFunctions(&pending);
    Status s = PostWithRetry(client, pending);
    records += pending.records_size();
    tallies += pending.tallies_size();
    ++batches;
    pending.clear_records();
    pending.clear_tallies();
    pending.clear_functions();
    return s;
  };
  const auto t0 = std::chrono::steady_clock::now();
  while (std::optional<record::Batch> minute = sim.NextMinute()) {
    for (auto& r : *minute->mutable_records()) {
      *pending.add_records() = std::move(r);
      if (static_cast<size_t>(pending.records_size()) >= f.batch_records) {
        if (Status s = flush(); !s.ok()) {
          std::cerr << "cpuledger simulate: " << s.message() << "\n";
          return 1;
        }
      }
    }
    for (auto& t : *minute->mutable_tallies()) *pending.add_tallies() = std::move(t);
  }
  if (Status s = flush(); !s.ok()) {
    std::cerr << "cpuledger simulate: " << s.message() << "\n";
    return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "simulated " << sim.requests() << " requests over "
            << static_cast<double>(config.duration_s) / 3600 << " h; sent " << records
            << " sampled records and " << tallies << " worker tallies in " << batches
            << " batches in " << secs << " s\n";
  return 0;
}

}  // namespace

void AddSimulateCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<SimulateFlags>();
  CLI::App* cmd = app.add_subcommand(
      "simulate",
      "Send a simulated fleet's traffic (ending now, or --end) through a server's ingest API");
  cmd->add_option("--server", f->server, "Server URL (default http://127.0.0.1:8750)");
  cmd->add_option("--token", f->token, "Bearer token (default $CPULEDGER_TOKEN)");
  cmd->add_option("--seed", f->seed, "RNG seed: the same seed gives the same records");
  cmd->add_option("--hours", f->hours, "Hours of traffic (default 24)");
  cmd->add_option("--end", f->end,
                  "When the traffic ends: unix seconds, 2026-12-04T18:00Z, or 18:00 (its latest "
                  "occurrence); default now");
  cmd->add_option("--peak-rps", f->peak_rps, "Fleet requests per second at the daily peak");
  cmd->add_option("--sample-rate", f->sample_rate, "Share of requests sampled (default 0.1)")
      ->check(CLI::Range(0.0001, 1.0));
  cmd->add_option("--users", f->users, "Distinct users in the pool");
  cmd->add_flag("--no-pmu", f->no_pmu, "Records without instructions (a fleet without a PMU)");
  cmd->add_option("--batch-records", f->batch_records, "Records per POST (default 1000)");
  cmd->add_option("--fleet", f->fleet,
                  "default: the demo shop; detection: the detector benchmark's fleet (whole "
                  "days; its own rps and sample rate)")
      ->check(CLI::IsMember({"default", "detection"}));
  cmd->add_option("--profile-rate", f->profile_rate,
                  "Share of sampled requests that carry a function profile (detection: 0.05)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->callback([f, exit_code] { *exit_code = RunSimulate(*f); });
}

}  // namespace cpuledger::cli
