// src/sim/function_regressions.h — a fleet for judging function-level
// detection (bench/detect/function_bench), with the truth of each case.
//
//   FunctionFleet fleet = MakeFunctionFleet(/*seed=*/6, /*hours=*/16);
//   FleetSimulator sim(fleet.config);
//   for (const FunctionCase& c : fleet.cases) ...
//
// The services, endpoints, call trees, traffic, sampling and profiling are
// the detection fleet's before its injections (MakeDetectionServices(),
// detection_fleet.h) for the same seed; instead of its rollouts, flags and
// mix shifts come these, each on one of a service's five busiest endpoints:
//  * "new-function": a rollout adds a helper that did not run before (a
//    frame of weight 0 under the endpoint's logic, AddNewHelper()) costing
//    `size` of the endpoint's request (0.5% or 2%).
//  * "grown-function": a rollout makes one helper cost 0.5% of the request more.
//  * "cost-shift": a rollout moves `size` (2%) of the request from one
//    helper to another function (a new one: a split or rename; or an
//    existing one: inlining); the request's total is unchanged on average.
//  * "population-shift": a flag whose "on" users' requests cost more in
//    every function (x1.2), or in the slow frames (db and cache, x1.15 each
//    of the request): the population differs, no function's code changed.
//  * "noop": a rollout that changes nothing.
// Rollouts run every ~3 h per service from 2 h on, each with 2 h of data after.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/fleet.h"

namespace cpuledger::sim {

// FunctionCase — one injected change and its ground truth.
struct FunctionCase {
  std::string kind;  // "new-function", "grown-function", "cost-shift", "population-shift", "noop"
  std::string service, endpoint;
  std::string function;       // FunctionKey() of the subject (cost-shift: where the cost went)
  std::string from_function;  // cost-shift: where it came from
  std::string commit_from, commit_to;  // rollouts
  std::string flag;                    // population-shift
  double size = 0;                     // share of the endpoint's request
  int64_t start_s = 0;
};

struct FunctionFleet {
  FleetConfig config;
  std::vector<FunctionCase> cases;
};

// MakeFunctionFleet() — `hours` (>= 8) simulated hours; same seed, same records.
FunctionFleet MakeFunctionFleet(uint64_t seed, int hours);

}  // namespace cpuledger::sim
