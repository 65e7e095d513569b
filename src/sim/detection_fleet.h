// src/sim/detection_fleet.h — the fleet the detectors are measured on
// (bench/detect), with the ground truth of what was injected into it.
//
//   DetectionFleet fleet = MakeDetectionFleet(/*seed=*/1, /*days=*/2);
//   FleetSimulator sim(fleet.config);
//   for (const InjectedRegression& r : fleet.truth.regressions) ...
//
// The fleet (issue 6, "Detector quality, measured"): 5 services x 10
// endpoints, Zipf traffic within a service, lognormal main modes (sigma
// 0.2-0.3) with a slow mode (5-15% of requests at 2-5x) whose share follows
// the daily load, diurnal traffic; each service deploys every ~4 h (about 30
// rollouts a day), each rollout spreading over 15-45 min; 20 flags (4 per
// service) on 10-50% of users, each carried by 1-3 endpoints; traffic-mix
// shifts. Volume: about 2.5M sampled records a simulated day (peak_rps 105,
// sample_rate 0.5): the heaviest endpoints get 5k+ sampled requests an hour
// at the daily peak, the lightest a few hundred. 5% of sampled requests carry
// a profile (11-15 frames over 4-6 levels, a shared decorator at two paths).
//
// Injected (all multiplicative on a request's cost, persistent: a
// regression stays in every later commit):
//  * "rollout": a rollout makes one endpoint 1, 2, 3, 5 or 10% costlier; the
//    added cost lands on one endpoint-specific function (the culprit).
//  * "function-rollout": a rollout multiplies one function's self cost by
//    1 + 0.5% / (its share of the endpoint): worth 0.5% of the endpoint (a
//    grown function).
//  * "new-function-rollout": a rollout adds a helper that did not run
//    before (AddNewHelper(): a frame of weight 0 under the endpoint's
//    logic) costing 0.5% of the endpoint's request: new code.
//  * "flag" / "function-flag": as "rollout" / "function-rollout", on the
//    flag-on requests of one endpoint.
//  * no-ops: rollouts with no effect, flags with no effect, and mix shifts.
// Function kinds land on one of the service's five busiest endpoints.
// Every rollout changes the code (a new code hash in profiles) of the
// function its regression lies in, if any, and of 2-10 other functions of
// its service chosen at random, which cost what they cost before.
// Rollouts get regressions only when the run holds 2 h before them and 2 h
// after their spread (24-27 of the ~30 a day): half regress an endpoint, a sixth
// grow a function, a sixth add a new one; the rest are no-ops. Of the 20
// flags, 8 regress an endpoint and 4 a function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/fleet.h"

namespace cpuledger::sim {

// InjectedRegression — one regression put into the fleet.
struct InjectedRegression {
  // "rollout", "flag" (endpoint kinds); "function-rollout", "function-flag",
  // "new-function-rollout" (function kinds).
  std::string kind;
  std::string service, endpoint;
  // function kinds: the subject; endpoint kinds: the culprit that carries the
  // added cost in profiles. As FunctionKey(): "file:line:name".
  std::string function;
  std::string commit_from, commit_to;  // rollout kinds: the commit that brought it is commit_to
  std::string flag, flag_value;        // flag kinds: requests with flag_value ("on") vs "off"
  // nominal size: 0.01 .. 0.10 for the endpoint kinds, 0.005 for function kinds.
  double size = 0;
  // The true relative change of the endpoint's mean cost per request (flags:
  // of the flag-on requests against the flag-off ones), and of the
  // function's self cost per request (from the model's expected shares;
  // +infinity for a new function, which cost nothing before).
  double endpoint_change = 0;
  double function_change = 0;
  int64_t start_s = 0;   // offset into the run: the first host switches / the flag appears
  int64_t spread_s = 0;  // rollouts: until the last host has switched
};

// NoopChange — a rollout or flag that changes no cost.
struct NoopChange {
  std::string kind;  // "rollout" or "flag"
  std::string service;
  std::string commit_from, commit_to;  // rollouts
  std::string flag;                    // flags
  int64_t start_s = 0;
};

// DetectionTruth — everything that was injected.
struct DetectionTruth {
  std::vector<InjectedRegression> regressions;
  std::vector<NoopChange> noops;
  std::vector<MixShift> mix_shifts;  // as in the config
};

struct DetectionFleet {
  FleetConfig config;
  DetectionTruth truth;
};

// MakeDetectionFleet() — `days` simulated days (>= 1) starting at
// 2026-01-05 00:00 UTC (a fixed start: same seed, same records). The config
// may be adjusted (peak_rps, sample_rate, profile_rate, cost_diurnal) before
// simulating; the truth stays valid (sizes are relative).
DetectionFleet MakeDetectionFleet(uint64_t seed, int days);

// MakeDetectionServices() — the same seed's fleet before anything is
// injected: its services and call trees (the drawn ones: no new functions),
// traffic, sampling and profiling; no rollouts, flags or mix shifts.
FleetConfig MakeDetectionServices(uint64_t seed, int days);

// ExpectedFunctionShare() — the model's share of `endpoint`'s mean cost per
// request spent in `function`'s self cost (all of its frames), before any
// effect; 0 when it has no such frame.
double ExpectedFunctionShare(const EndpointSpec& endpoint, const std::string& function);

// AddNewHelper() — adds to `endpoint` a helper that its code so far never
// runs: a frame named `name` of weight 0 under the endpoint's logic (its
// first frame in a "/logic.py" file, as MakeDetectionFleet's call trees
// have; else its first frame), 200 lines below it. It costs nothing until
// an effect names it as its culprit (RolloutSpec::culprit, FlagSpec::culprit),
// from then on the effect's added cost: new code.
// RETURNS: its FunctionKey().
// REQUIRES: `endpoint` has calls.
// NOTE: the frame is in every profile of the endpoint, with self cost 0 on
// the requests no effect reaches.
std::string AddNewHelper(EndpointSpec& endpoint, const std::string& name);

}  // namespace cpuledger::sim
