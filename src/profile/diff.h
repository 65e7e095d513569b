// src/profile/diff.h — what grew between two profiles, per request.
//
// Root cause for a CPU regression: merge the profiles of each side (say the
// old commit and the new one, CallTree::Merge), then diff them. Costs are
// divided by each tree's requests(), so sides with different numbers of
// profiled requests compare fairly. Functions and paths are matched by
// file:line:name, never by id.
//
//   Result<std::vector<FunctionDiff>> diff = DiffTrees(before, after);
//   for (const FunctionDiff& d : *diff)  // the function that grew most first
//     std::cout << d.function.name << " +" << d.delta_total() << " per request\n";
//
// Paths keep wrappers apart: a decorator `wrapper` calling a cheap `f` and
// an expensive `g` has the paths ... -> wrapper -> f and ... -> wrapper -> g,
// and cost added under the second is never shown under the first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/status.h"
#include "profile/call_tree.h"

namespace cpuledger::profile {

// DiffRank — what "grew most" means.
enum class DiffRank : uint8_t {
  kByTotal,  // added total (inclusive) cost: callers of a new hot spot rank with it
  kBySelf,   // added self (exclusive) cost: where the new instructions actually run
};

// DiffOptions — how DiffTrees() ranks and how much it keeps.
struct DiffOptions {
  DiffRank rank = DiffRank::kByTotal;
  size_t max_paths = 5;  // per function: the paths with the most added cost
};

// PathDiff — one call path on either side, costs per request. A path on one
// side only has zeros on the other.
struct PathDiff {
  std::vector<Function> path;  // outermost first; the last is the path's own function
  double before_calls = 0, after_calls = 0;
  double before_self = 0, after_self = 0;
  double before_total = 0, after_total = 0;
  double delta_self() const { return after_self - before_self; }
  double delta_total() const { return after_total - before_total; }
};

// FunctionDiff — one function over the whole tree (TotalsByFunction
// semantics: total counted once per outermost activation), per request.
struct FunctionDiff {
  Function function;
  double before_calls = 0, after_calls = 0;
  double before_self = 0, after_self = 0;
  double before_total = 0, after_total = 0;
  double delta_self() const { return after_self - before_self; }
  double delta_total() const { return after_total - before_total; }
  // paths — where the added cost appears: this function's paths whose self
  // cost grew (else whose total grew), most added self cost first, at most
  // DiffOptions::max_paths. Empty when no path of it grew.
  std::vector<PathDiff> paths;
};

// DiffTrees() — every function present on either side, ranked by
// `options.rank` descending (ties: the other delta, then file:line:name), so
// the function that grew most comes first and those that shrank last.
// REQUIRES: same unit(); RETURNS: InvalidArgument otherwise. A requests() of
// 0 counts as 1. COST: O(nodes of both) time and memory.
Result<std::vector<FunctionDiff>> DiffTrees(const CallTree& before, const CallTree& after,
                                            const DiffOptions& options = {});

// DiffPaths() — every call path present on either side, ranked like
// DiffTrees (by delta total or self, descending). REQUIRES/RETURNS as DiffTrees.
Result<std::vector<PathDiff>> DiffPaths(const CallTree& before, const CallTree& after,
                                        DiffRank rank = DiffRank::kByTotal);

}  // namespace cpuledger::profile
