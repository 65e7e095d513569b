// src/sim/fleet.h — a seeded, deterministic fleet of web services that emits
// the records and worker tallies a real fleet's recorders would send.
//
// It exists for the demo, the benchmarks and the detector evaluation: several
// services with skewed, multi-modal per-request costs, diurnal traffic, a
// rollout from one commit to the next that spreads over the hosts, feature
// flags with partial exposure, a pool of users with a few heavy ones, and a
// sample rate. Same config + seed -> the same records, byte for byte.
//
//   FleetConfig config;                   // a day of 3 services, defaults
//   FleetSimulator sim(config);
//   while (auto minute = sim.NextMinute()) Post(*minute);   // one Batch per minute
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "record/record.pb.h"

namespace cpuledger::sim {

// EndpointSpec — one endpoint's traffic share and cost shape.
struct EndpointSpec {
  std::string name;              // route template, e.g. "/api/feed/"
  double traffic_share = 1;      // relative to the service's other endpoints
  double cpu_ms_median = 5;      // the main mode of thread CPU per request
  double slow_mode_share = 0.1;  // share of requests in a slow mode (cache miss)
  double slow_mode_factor = 4;   // how much costlier the slow mode is
  double db_calls_mean = 2;
  double cache_calls_mean = 3;
};

// ServiceSpec — a service and its endpoints.
struct ServiceSpec {
  std::string name;
  std::vector<EndpointSpec> endpoints;
  double traffic_share = 1;
  int hosts = 4;
};

// FlagSpec — a feature flag on for a share of users, costing a factor more
// on the endpoints it touches (1.0: no effect).
struct FlagSpec {
  std::string name;
  double exposure = 0.3;
  double cost_factor = 1.0;
  std::vector<std::string> endpoints;  // empty: every endpoint
};

// RolloutSpec — commit `from` replaced by `to` host by host over `spread_s`,
// starting `at_s` seconds into the run; `cost_factor` multiplies the CPU of
// the endpoints listed (empty: all) on the new commit.
struct RolloutSpec {
  std::string service;
  std::string from;
  std::string to;
  int64_t at_s = 0;
  int64_t spread_s = 1200;
  double cost_factor = 1.0;
  std::vector<std::string> endpoints;
};

struct FleetConfig {
  uint64_t seed = 1;
  int64_t start_unix_s = 0;  // 0: the minute 24 h before now
  int64_t duration_s = 86400;
  double peak_rps = 40;  // all requests of the fleet per second at the daily peak
  double sample_rate = 0.1;
  int users = 20000;
  bool with_pmu = true;               // records carry instructions and cycles
  std::vector<ServiceSpec> services;  // empty: a default shop of three services
  std::vector<FlagSpec> flags;        // empty with default services: one flag
  std::vector<RolloutSpec> rollouts;  // empty with default services: one rollout
};

// DefaultFleet() — three services (shop-web, shop-api, accounts), a rollout
// of shop-web that makes /checkout/ 20% costlier, and a flag "new_search".
FleetConfig DefaultFleet();

// FleetSimulator — minute by minute, deterministic.
class FleetSimulator {
 public:
  explicit FleetSimulator(FleetConfig config);

  // FleetSimulator::NextMinute() — the sampled records and the per-host
  // worker tallies of the next minute, or nullopt when the run is over.
  std::optional<record::Batch> NextMinute();

  const FleetConfig& config() const { return config_; }
  // Totals so far: every simulated request, and those sampled.
  uint64_t requests() const { return requests_; }
  uint64_t sampled() const { return sampled_; }

 private:
  std::string CommitFor(const ServiceSpec& service, int host, int64_t t_s) const;
  double DiurnalFactor(int64_t unix_s) const;

  FleetConfig config_;
  std::mt19937_64 rng_;
  int64_t minute_ = 0;  // minutes emitted so far
  uint64_t requests_ = 0;
  uint64_t sampled_ = 0;
  std::vector<double> user_weights_cdf_;
};

}  // namespace cpuledger::sim
