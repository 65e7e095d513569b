// src/store/functions.h — function entities: what the store keeps of the
// request profiles (record.Profile) and how they are queried.
//
// The tailer (SqliteStore::AppendBatches, in the records' transaction) adds
// every profiled record's call-path tree into rows keyed by
// (hour bucket of the start time, service, endpoint, commit, unit, call path),
// once for all requests and once per value of each flag the record carries:
// sums of calls, primitive calls, self cost and total cost. A separate row per
// (hour, service, endpoint, commit, unit[, flag value]) counts the profiled requests (each
// record adds its profile's `requests`, 0 read as 1). Per-request numbers are
// those sums divided by the profiled requests of the slice.
//
//   FunctionQuery q{.from_us = t0, .to_us = t1, .service = "shop", .commit = "abc"};
//   Result<FunctionReport> r = store->Functions(q);        // per function, per request
//   Result<profile::CallTree> tree = store->FunctionTree(q);  // for profile::DiffTrees
//
// Functions and call paths are interned (store/sqlite/profile_ids.h): a
// function is an id for its key "file:line:name", a call path an id for
// (parent path, function); the sums are integer rows keyed by those ids.
// The text form of a call path (CallPathText) is the frames' keys, outermost
// first, joined by "\n": what schema version 3 stored, and a readable name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "profile/call_tree.h"
#include "profile/function_key.h"

namespace cpuledger::store {

// FunctionSort — how Functions() ranks.
enum class FunctionSort : uint8_t {
  kSelf,   // self (exclusive) cost per request, descending
  kTotal,  // total (inclusive) cost per request, descending
};
// ParseFunctionSort() — "self" or "total". RETURNS: InvalidArgument otherwise.
Result<FunctionSort> ParseFunctionSort(std::string_view text);

// FunctionQuery — one slice of the function entities.
// NOTE: entities are kept per hour, so the range is widened to whole hours: an
// hour counts when it overlaps [from_us, to_us).
struct FunctionQuery {
  int64_t from_us = 0;                                  // inclusive, unix microseconds
  int64_t to_us = std::numeric_limits<int64_t>::max();  // exclusive
  std::optional<std::string> service = std::nullopt;    // exact match; unset: any
  std::optional<std::string> endpoint = std::nullopt;
  std::optional<std::string> commit = std::nullopt;
  // Only the requests carrying feature flag `flag` with value `flag_value`
  // (unset: all requests). A flag outside SqliteOptions::profile_flags is
  // InvalidArgument. NOTE: hours stored by a cpuledger older than the flag
  // slices of call paths count the flag's requests but hold no paths.
  std::optional<std::string> flag = std::nullopt;
  std::string flag_value = {};
  size_t limit = 50;  // functions kept by Functions(), heaviest first
  FunctionSort sort = FunctionSort::kSelf;
};

// FunctionPathCost — one call path of a function, costs per profiled request.
struct FunctionPathCost {
  std::vector<profile::Function> path;  // outermost first; the last is the function itself
  double calls = 0, self = 0, total = 0;
};

// FunctionCost — one function (file:line:name) over the slice, per profiled
// request. total counts once per outermost activation (profile::TotalsByFunction).
struct FunctionCost {
  profile::Function function;
  double calls = 0, primitive_calls = 0, self = 0, total = 0;
  std::vector<FunctionPathCost> top_paths;  // at most 3, most self cost first
};

// FunctionReport — Functions()'s answer.
struct FunctionReport {
  std::string unit;                     // the profiles' unit; empty when none matched
  uint64_t profiled_requests = 0;       // the divisor of every per-request number
  std::vector<FunctionCost> functions;  // ranked by FunctionQuery::sort
  bool truncated = false;               // more functions than FunctionQuery::limit
};

// kFunctionTopPaths — paths kept per function in FunctionCost::top_paths.
inline constexpr size_t kFunctionTopPaths = 3;

// CallPathText() / ParseCallPath() — the text form of a call path.
// ParseCallPath RETURNS: InvalidArgument for a frame without ":LINE:".
std::string CallPathText(const std::vector<profile::Function>& path);
Result<std::vector<profile::Function>> ParseCallPath(std::string_view text);
// CallPathHash() — 64-bit FNV-1a of the text, as SQLite's signed INTEGER.
int64_t CallPathHash(std::string_view text);

// ReportFromTree() — Functions()'s numbers from a merged tree (requests() is
// the divisor). Shared by the store and its tests.
FunctionReport ReportFromTree(const profile::CallTree& tree, const FunctionQuery& query);

}  // namespace cpuledger::store
