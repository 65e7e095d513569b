// src/server/api_json.h — JSON forms of the store's answers, as the query API
// returns them (and `cpuledger report` reads them).
#pragma once

#include <nlohmann/json.hpp>

#include <vector>

#include "profile/diff.h"
#include "store/detection.h"
#include "store/functions.h"
#include "store/query.h"

namespace cpuledger::server {

// QueryResultJson() — {"group_by": [...], "bucket": "...", "from_us", "to_us",
// "used_rollups", "truncated", "rows": [{"keys": {dim: value}, "bucket_start_us",
// "samples", "est_requests", "instructions": {n, mean, p50, p90, p99, est_total}
// or null when no sample had it, "cycles", "cpu_ns", "wall_us", "db_us_mean",
// "db_calls_mean", "cache_us_mean", "cache_calls_mean"}]}
nlohmann::json QueryResultJson(const store::QuerySpec& spec, const store::QueryResult& result);

// EfficiencyJson() — {"services": [{service, unit, peak_minute_unix, cpu_total,
// requests, active_users, per_active_user, from_tallies, users_from_tallies,
// endpoints: [...]}]}
nlohmann::json EfficiencyJson(const std::vector<store::ServiceEfficiency>& services);

// DeploysJson() — {"deploys": [{service, cluster, commit, first_seen_us, last_seen_us, samples}]}
nlohmann::json DeploysJson(const std::vector<store::DeployEntry>& deploys);

// FunctionReportJson() — {"unit", "profiled_requests", "from_us", "to_us",
// "sort", "truncated", "functions": [{file, line, name, calls,
// primitive_calls, self, total, top_paths: [{path: [{file, line, name}]
// (outermost first), calls, self, total}]}]}; every number per profiled request.
nlohmann::json FunctionReportJson(const store::FunctionQuery& query,
                                  const store::FunctionReport& report);

// DiffSide — one side of a diff, for DiffJson(): a commit, or a flag's value
// (flag set; commit then the slice's commit, or "" for any).
struct DiffSide {
  std::string commit;
  std::string flag, flag_value;
  uint64_t profiled_requests = 0;
};

// DiffJson() — {"unit", "base": {commit, [flag, flag_value,] profiled_requests},
// "target": {...},
// "truncated", "functions": [{file, line, name, before_calls, after_calls,
// before_self, after_self, before_total, after_total, delta_self,
// delta_total, paths: [{path: [{file, line, name}], before_self, after_self,
// before_total, after_total, delta_self, delta_total}]}]}, at most `limit`
// functions in the order given (the function that grew most first).
nlohmann::json DiffJson(const std::string& unit, const DiffSide& base, const DiffSide& target,
                        const std::vector<profile::FunctionDiff>& diffs, size_t limit);

// CallTreeJson() — {"unit", "source", "mode", "profiled_requests", "from_us",
// "to_us", "nodes", "root": {name, file, line, calls, self, total, children:
// [...]}}: the merged tree as nested nodes (d3-flame-graph's shape), costs
// summed over the profiled requests (divide by profiled_requests for a per-
// request figure); the root has name "all" and the tree's total. An empty
// slice has profiled_requests 0 and a root without children.
// At most `max_nodes` call paths are shown ("nodes_shown"; "nodes" counts the
// tree's): the heaviest by total cost; the cost of the paths left out under a
// shown node is one child named kTrimmedFrame, so every width stays right.
nlohmann::json CallTreeJson(const store::FunctionQuery& query, const profile::CallTree& tree,
                            size_t max_nodes);

// kTrimmedFrame — the name of the frame standing for trimmed call paths.
inline constexpr const char* kTrimmedFrame = "(smaller frames)";

// AlertJson() — a stored alert: its finding (detect::ToJson form) with
// "id", "state", "opened", "updated" (unix s) and "reopens" (the resolved
// alert it reopens; 0 none).
nlohmann::json AlertJson(const store::Alert& alert);

// AlertEventsJson() — [{"at" (unix s), "state", "by", "note", "detail"
// (the detector's comparison as JSON, or null)}], oldest first.
nlohmann::json AlertEventsJson(const std::vector<store::AlertEvent>& events);

}  // namespace cpuledger::server
