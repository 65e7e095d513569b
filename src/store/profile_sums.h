// src/store/profile_sums.h — what every store does with the call-path sums it
// keeps (functions.h): the hours a query selects, the checks on a
// FunctionQuery, and the merged CallTree built from one slice's path sums.
//
//   if (Status s = CheckProfileFlag(options.profile_flags, query); !s.ok()) ...
//   SliceSums sums;                       // filled from the store's rows
//   sums.units = {{"instructions", 42}};  // unit -> profiled requests
//   sums.paths[id] = {.parent = 0, .function = f, .calls = 1, ...};
//   sums.keys[f] = "app.py:10:view";
//   Result<profile::CallTree> tree = BuildCallTree(sums);
//
// Ids are the store's own (SQLite: interned integers; ClickHouse: hashes);
// only their parent links matter here. Path 0 is the root.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "profile/call_tree.h"
#include "store/functions.h"

namespace cpuledger::store {

// HourBuckets() — [lo, hi) of the hour buckets (unix s) that overlap
// [from_us, to_us): the per-hour tables' selection.
std::pair<int64_t, int64_t> HourBuckets(int64_t from_us, int64_t to_us);

// CheckProfileFlag() — RETURNS: InvalidArgument when `query` asks for a flag
// whose values keep no call paths (not in `profile_flags`; unset: every flag
// keeps them), saying how to add it.
Status CheckProfileFlag(const std::optional<std::set<std::string>>& profile_flags,
                        const FunctionQuery& query);

// SliceSums — one slice's profile as a store holds it: its units, the sums
// of its call paths with every ancestor path, and the key of every function
// those paths name.
struct SliceSums {
  std::vector<std::pair<std::string, int64_t>> units;  // unit -> profiled requests, by unit
  struct PathNode {
    int64_t parent = 0, function = 0;  // parent path id (0: the root); function id
    uint64_t calls = 0, primitive_calls = 0, self_cost = 0, total_cost = 0;
  };
  std::unordered_map<int64_t, PathNode> paths;    // path id -> its sums
  std::unordered_map<int64_t, std::string> keys;  // function id -> key
};

// OneUnit() — RETURNS: InvalidArgument when `units` holds several (the
// slice mixes units: the caller should narrow it), naming them.
Status OneUnit(const std::vector<std::pair<std::string, int64_t>>& units);

// TooManyPaths() — the InvalidArgument for a slice past
// record::kMaxProfileNodes call paths.
Status TooManyPaths();

// BuildCallTree() — the merged tree of a slice; an empty tree (0 requests,
// unit "") when it has no units. Siblings are ordered by function key, each
// followed by its subtree, whatever order the paths were read in, so every
// answer built on node order is the same from every store.
// REQUIRES: at most one unit (OneUnit). RETURNS: IoError for a path whose
// parent or function is missing or a key that does not parse;
// InvalidArgument when the tree cannot be rebuilt (too large).
Result<profile::CallTree> BuildCallTree(const SliceSums& sums);

}  // namespace cpuledger::store
