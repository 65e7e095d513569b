// src/detect/function_tests.h — function-level change: which function of an
// endpoint added cost between base and target, per request, in the terms an
// endpoint alert uses (share of the request), net of cost that only moved.
//
//   EndpointProfiles base = ..., target = ...;  // one endpoint, each side's moments
//   for (const FunctionChange& c : CompareFunctions(base, target, {}))
//     if (c.tested) ...  // c.share: added cost / base request cost; c.se its standard error
//
// The model: every function's share of each profiled request's cost (self /
// the profile's total) is compared, side by side. A function absent on a
// side has share 0 there: base zero is a valid base, so new code is tested.
// If function f alone grew by d (cost added, as a share of the base
// request), its share goes from s_a to (s_a + d) / (1 + d), so
// d = (s_b - s_a) / (1 - s_b), and every other function's share shrinks in
// proportion, by (1 - s_b) / (1 - s_a). Shares are free of the request's
// own swings (slow modes, time of day, a population that costs more
// everywhere), where absolute costs are not.
// Two patterns are not code added to f, and are filtered:
//  * cost shift — some function g lost share well beyond proportion (cost
//    moved: a split, rename or inlining): g is merged into f and the pair's
//    net change is what is judged (0 when the total did not change);
//  * population shift — two or more functions that exist on both sides
//    grew beyond proportion at once: the request population changed (more
//    slow-mode requests, another time of day), not one function. Those
//    functions are not tested (the endpoint-level test judges the whole
//    request); a new function still is: a population does not add code.
#pragma once

#include <string>
#include <vector>

namespace cpuledger::detect {

// FunctionSample — one function's moments over one side's profiled
// requests: sums of its self cost and of its share of each request's cost.
struct FunctionSample {
  std::string function;  // "file:line:name"
  double sum = 0, sum_sq = 0;
  double share_sum = 0, share_sq = 0;
};

// EndpointProfiles — one side of an endpoint comparison.
struct EndpointProfiles {
  double requests = 0;                    // profiled requests (each function's divisor)
  std::vector<FunctionSample> functions;  // a function missing here never ran on this side
  double MeanCost() const;                // profiled cost per request (sum of self costs)
};

// FunctionChangeOptions — what is tested and what counts as a shift.
struct FunctionChangeOptions {
  double min_requests = 200;  // per side; below, nothing is tested ...
  // ... but a new function: a base that never ran it has no variance to
  // estimate, and a path run by a few requests only is held off by min_share
  // and the threshold.
  double min_requests_new = 50;
  double min_share = 0.002;  // a function below this share on both sides is not tested
  double shift_z = 3;        // a function "lost share beyond proportion" at this z
  double shift_part = 0.25;  // ... and by at least this part of f's gain
  double rise_z = 2;         // population shift: two functions rising beyond proportion at this z
};

// FunctionChange — one function's change, target against base.
struct FunctionChange {
  std::string function;
  bool tested = false;                  // false: too small, too few requests, or a population shift
  std::string reason;                   // why not tested
  bool too_few = false;                 // not tested: too few profiled requests a side
  bool is_new = false;                  // no cost on the base side
  double before = 0, after = 0;         // self cost per profiled request, each side
  double share = 0, se = 0;             // d: added cost / base request cost, and its standard error
  double added = 0;                     // d * base request cost: per request, in the profiles' unit
  std::vector<std::string> moved_from;  // functions it took cost from (merged into it)
};

// CompareFunctions() — every function of either side, base against target.
// RETURNS: one FunctionChange per function with any cost, in name order.
// COST: O(functions^2) for the shift search (an endpoint has tens).
std::vector<FunctionChange> CompareFunctions(const EndpointProfiles& base,
                                             const EndpointProfiles& target,
                                             const FunctionChangeOptions& options);

}  // namespace cpuledger::detect
