// src/sim/fleet.h — a seeded, deterministic fleet of web services that emits
// the records and worker tallies a real fleet's recorders would send.
//
// It exists for the demo, the benchmarks and the detector evaluation: several
// services with skewed, multi-modal per-request costs, diurnal traffic,
// rollouts from one commit to the next that spread over the hosts (one or a
// chain of them per service), feature flags with partial exposure, traffic-mix
// shifts, a pool of users with a few heavy ones, a sample rate, and, for a
// share of the sampled requests, a synthetic function profile. Same config +
// seed -> the same records, byte for byte.
//
//   FleetConfig config;                   // a day of 3 services, defaults
//   FleetSimulator sim(config);
//   while (auto minute = sim.NextMinute()) Post(*minute);   // one Batch per minute
//
// The cost model of one sampled request of an endpoint:
//   main = cpu_ms_median * exp(cpu_sigma * N(0,1));  slow mode (probability
//   slow_mode_share, modulated by cost_diurnal): cost = main * slow_mode_factor.
//   Then, in order, every effect that applies: each flag that is on (config
//   order), then each rollout the request's host has taken (chain order).
//   An effect's cost_factor multiplies the whole request (its added cost lands
//   on the `culprit` function in the profile); its function_factor multiplies
//   one function's self cost (the request's bill grows by the added cost).
// Endpoints with `calls` have a call tree: a request's cost is split over its
// frames by weight times lognormal noise (sigma 0.15); the slow mode's extra
// cost lands on the frames marked `slow`. The split is drawn from a second
// RNG stream, so profiles and function-level effects never perturb the main
// stream: a config without them gives the records it always gave.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "record/record.pb.h"

namespace cpuledger::sim {

// CallSpec — one call path (frame) of an endpoint's synthetic profile.
struct CallSpec {
  std::string file;
  uint32_t line = 1;
  std::string name;
  int parent = -1;    // the caller: an index into EndpointSpec::calls below this one; -1: root
  double weight = 0;  // share of the main mode's cost spent in this frame's own (self) code;
                      // an endpoint's weights are normalised to sum to 1
  bool slow = false;  // the slow mode's extra cost (cache miss, db) lands on these frames
};

// FunctionKey() — "file:line:name", how the store and the detectors name a function.
std::string FunctionKey(const CallSpec& call);
// HandlerName() — a Python-ish function name for a route:
// "/api/v2/items/<int:id>/" -> "api_v2_items_id", "/" -> "index".
std::string HandlerName(const std::string& route);

// EndpointSpec — one endpoint's traffic share and cost shape.
struct EndpointSpec {
  std::string name;              // route template, e.g. "/api/feed/"
  double traffic_share = 1;      // relative to the service's other endpoints
  double cpu_ms_median = 5;      // the main mode of thread CPU per request
  double cpu_sigma = 0.35;       // lognormal sigma of the main mode
  double slow_mode_share = 0.1;  // share of requests in a slow mode (cache miss)
  double slow_mode_factor = 4;   // how much costlier the slow mode is
  double db_calls_mean = 2;
  double cache_calls_mean = 3;
  std::vector<CallSpec> calls;  // its call tree, parents first; empty: never profiled
};

// ServiceSpec — a service and its endpoints.
struct ServiceSpec {
  std::string name;
  std::vector<EndpointSpec> endpoints;
  double traffic_share = 1;
  int hosts = 4;
};

// FlagSpec — a feature flag on for a share of users (a stable per-user coin),
// costing a factor more on the endpoints it touches (1.0: no effect).
struct FlagSpec {
  std::string name;
  double exposure = 0.3;
  double cost_factor = 1.0;
  std::vector<std::string> endpoints;  // where the effects apply; empty: every endpoint
  // Which requests evaluate (and so carry) the flag, as "on" or "off":
  std::string service;             // empty: every service
  std::vector<std::string> scope;  // endpoints; empty: every endpoint
  int64_t at_s = 0;                // carried from this many seconds into the run
  // Functions are named by FunctionKey(), or by a bare name (every frame of that name).
  std::string culprit;           // the function cost_factor's added cost lands on in
                                 // profiles; empty or unknown: spread over every frame
  std::string function;          // the function whose self cost function_factor multiplies
  double function_factor = 1.0;  // on flag-on requests to `endpoints`
};

// RolloutSpec — commit `from` replaced by `to` host by host over `spread_s`
// (host h switches at at_s + spread_s * h / hosts), starting `at_s` seconds
// into the run. A service's rollouts form a chain in at_s order (c0 -> c1 ->
// c2 ...; each `from` should be the previous `to`, and each should finish
// before the next starts); a host's commit is the `to` of the last rollout
// it has taken, or the first rollout's `from` before any. The effects of a
// rollout stay on every later commit of the chain (a regression is not
// undone by the next deploy). `cost_factor` and `function_factor` apply to
// the endpoints listed (empty: all), as FlagSpec's.
struct RolloutSpec {
  std::string service;
  std::string from;
  std::string to;
  int64_t at_s = 0;
  int64_t spread_s = 1200;
  double cost_factor = 1.0;
  std::vector<std::string> endpoints;
  std::string culprit;           // as FlagSpec's: where cost_factor's added cost lands
  std::string function;          // as FlagSpec's: whose self cost function_factor multiplies
  double function_factor = 1.0;  // on the new commit (and every later one) of `endpoints`
  // The functions whose code the new commit changed (FunctionKey()s or bare
  // names): their code hash in profiles changes from this commit on
  // (FleetConfig::with_code_hashes).
  std::vector<std::string> changed;
};

// MixShift — from at_s on, the endpoint receives traffic_factor times its
// traffic (the other endpoints keep theirs): the fleet's mix changes, no
// endpoint's cost per request does.
struct MixShift {
  std::string service, endpoint;
  int64_t at_s = 0;
  double traffic_factor = 1.0;
};

struct FleetConfig {
  uint64_t seed = 1;
  int64_t start_unix_s = 0;  // 0: the minute 24 h before now
  int64_t duration_s = 86400;
  double peak_rps = 40;  // all requests of the fleet per second at the daily peak
  double sample_rate = 0.1;
  int users = 20000;
  bool with_pmu = true;               // records carry instructions and cycles
  double profile_rate = 0;            // share of sampled requests (of endpoints with calls)
                                      // that carry a record.Profile
  double profile_floor_per_min = 0;   // > 0: each host profiles at least this many of an
                                      // endpoint's sampled requests a minute (its traffic
                                      // permitting), as the middleware's PROFILE_MIN_PER_MINUTE
                                      // does, from the endpoint's expected rate
  bool with_code_hashes = false;      // profiles' functions carry a code hash, one per version
                                      // of each function (RolloutSpec::changed)
  double cost_diurnal = 0;            // slow-mode share *= 1 + cost_diurnal * (traffic's
                                      // diurnal shape, in [-1, 1]): costs drift with load
  std::vector<ServiceSpec> services;  // empty: a default shop of three services
  std::vector<FlagSpec> flags;        // empty with default services: one flag
  std::vector<RolloutSpec> rollouts;  // empty with default services: one rollout
  std::vector<MixShift> mix_shifts;
};

// DefaultFleet() — three services (shop-web, shop-api, accounts), a rollout
// of shop-web that makes /checkout/ 20% costlier (culprit in profiles:
// checkout_render), and a flag "new_search" that makes /search/ 35% costlier
// for flag-on users (culprit: search_load). Every endpoint has a call tree,
// so a profile_rate > 0 gives profiles; with 0 (the default) the records are
// those the fleet has always given.
FleetConfig DefaultFleet();

// FleetSimulator — minute by minute, deterministic.
class FleetSimulator {
 public:
  explicit FleetSimulator(FleetConfig config);

  // FleetSimulator::NextMinute() — the sampled records and the per-host
  // worker tallies of the next minute, or nullopt when the run is over.
  std::optional<record::Batch> NextMinute();

  const FleetConfig& config() const { return config_; }
  // Totals so far: every simulated request, and those sampled and profiled.
  uint64_t requests() const { return requests_; }
  uint64_t sampled() const { return sampled_; }
  uint64_t profiled() const { return profiled_; }

  // CommitFor() — the commit host `host` (0-based) of `service` runs `t_s`
  // seconds into the run. RETURNS: "" for an unknown service.
  std::string CommitFor(const std::string& service, int host, int64_t t_s) const;

 private:
  // Effect — one flag's or rollout's effect on one endpoint, resolved to
  // frame indices of the endpoint's calls.
  struct Effect {
    double cost_factor = 1.0;
    std::vector<int> culprit;   // frames of the culprit function; empty: every frame
    std::vector<int> function;  // frames whose self cost function_factor multiplies
    double function_factor = 1.0;
    bool NeedsFrames() const { return !function.empty() && function_factor != 1.0; }
  };
  // EndpointState — what NextMinute() needs per endpoint, resolved once.
  struct EndpointState {
    std::vector<size_t> flags;            // config_.flags indices this endpoint may carry
    std::vector<Effect> flag_effects;     // parallel to `flags`
    std::vector<Effect> rollout_effects;  // per rollout of the service's chain, in order
    std::vector<size_t> shifts;           // config_.mix_shifts indices of this endpoint
    std::vector<double> weights;          // per frame, normalised to sum to 1
    double slow_weight = 0;               // sum of the slow frames' weights
    record::Profile profile;              // functions and node skeleton (costs unset)
    // Per position in the service's rollout chain, the code hash of each of
    // profile's functions (with_code_hashes; else empty).
    std::vector<std::vector<uint64_t>> code_hashes;
  };

  // The constructor's phases: an endpoint's flags, rollouts and mix shifts
  // resolved to effects on its frames; its profile skeleton and frame weights.
  EndpointState ResolveEffects(size_t service, const EndpointSpec& ep) const;
  void BuildProfileSkeleton(const EndpointSpec& ep, EndpointState& st) const;
  void AddCodeHashes(size_t service, EndpointState& st) const;

  // NextMinute()'s phases. Minute: the minute's draws and its batch; Host:
  // one host's dimensions and worker tally. The draws are made in one fixed
  // order, so a seed gives the same records whatever the phases are called.
  struct Minute;
  struct Host;
  Minute StartMinute(int64_t offset_s) const;
  void SimulateHost(Minute& m, size_t service, int host);
  void SimulateEndpoint(Minute& m, Host& h, size_t endpoint, double endpoint_rpm);
  bool SimulateRequest(Minute& m, Host& h, const EndpointSpec& ep, const EndpointState& st,
                       double slow_share, double profile_rate);
  bool CollectEffects(Minute& m, const Host& h, const EndpointState& st, size_t user_index,
                      record::RequestRecord& r) const;
  double SplitOverFrames(Minute& m, const EndpointSpec& ep, const EndpointState& st, bool slow,
                         double cpu_ms);
  uint64_t FillCosts(Minute& m, const EndpointSpec& ep, double cpu_ms, record::RequestRecord& r);
  void FillProfile(const Minute& m, const Host& h, const EndpointState& st, double cpu_ms,
                   uint64_t cpu_ns, record::RequestRecord& r);
  void FillDimensions(Minute& m, const Host& h, const EndpointSpec& ep, const std::string& user,
                      record::RequestRecord& r);

  int ChainPosition(size_t service, int host, int64_t t_s) const;
  const std::string& CommitAt(size_t service, int position) const;
  double DiurnalFactor(int64_t unix_s) const;

  FleetConfig config_;
  std::mt19937_64 rng_;
  std::mt19937_64 frame_rng_;  // profiles and function-level effects only
  int64_t minute_ = 0;         // minutes emitted so far
  uint64_t requests_ = 0;
  uint64_t sampled_ = 0;
  uint64_t profiled_ = 0;
  std::vector<double> user_weights_cdf_;
  std::vector<std::vector<size_t>> chains_;            // per service: rollout indices in at_s order
  std::vector<std::string> initial_commits_;           // per service
  std::vector<std::vector<EndpointState>> endpoints_;  // per service, per endpoint
};

}  // namespace cpuledger::sim
