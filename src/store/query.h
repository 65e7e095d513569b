// src/store/query.h — the slice-and-dice query language of the store, as
// value types. The server maps /v1/query/... parameters onto these; the CLI's
// `report` sends the same parameters.
//
// A query picks records in [from_us, to_us), keeps those matching every
// filter, groups them by the listed dimensions (and a time bucket), and
// returns per group: sample count, estimated request count (sum of
// 1/sample_rate), and the CPU bill and latency as mean and p50/p90/p99, plus
// mean DB and cache time. Dimension names are validated here: no text from a
// user ever reaches SQL.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace cpuledger::store {

// Dimension — what a query can group or filter by.
enum class Dimension : uint8_t {
  kService,
  kEndpoint,
  kMethod,
  kStatus,
  kHost,
  kCluster,
  kRegion,
  kCommit,
  kFlag,  // one feature flag, named in DimensionRef::flag
  kUser,  // the hashed active-user key (raw samples only)
};

// DimensionRef — a dimension, and for kFlag the flag's name.
struct DimensionRef {
  Dimension dim = Dimension::kEndpoint;
  std::string flag;  // only for kFlag
  bool operator==(const DimensionRef&) const = default;
};

// ParseDimension() — "service", "endpoint", "method", "status", "host",
// "cluster", "region", "commit", "user", or "flag:NAME" / "flags.NAME".
// RETURNS: InvalidArgument listing the valid names.
Result<DimensionRef> ParseDimension(std::string_view text);
// DimensionName() — the canonical text: "endpoint", "flag:NAME".
std::string DimensionName(const DimensionRef& d);

// Bucket — the time series step; kNone gives one row per group.
enum class Bucket : uint8_t { kNone, kMinute, kHour, kDay };
Result<Bucket> ParseBucket(std::string_view text);  // "none", "minute", "hour", "day"
int64_t BucketSeconds(Bucket b);                    // 0, 60, 3600, 86400

// Filter — dimension == value. Several filters on one dimension OR together;
// filters on different dimensions AND together. A flag that a record does not
// carry has the value "" (so flag:NAME= selects records without it).
struct Filter {
  DimensionRef dim;
  std::string value;
};

// QuerySpec — one query.
struct QuerySpec {
  std::vector<DimensionRef> group_by;  // may be empty: one row for everything
  std::vector<Filter> filters;
  int64_t from_us = 0;                                  // inclusive, unix microseconds
  int64_t to_us = std::numeric_limits<int64_t>::max();  // exclusive
  Bucket bucket = Bucket::kNone;
  size_t limit = 1000;  // groups, heaviest (by estimated total cpu_ns) first; with
                        // buckets, whole groups are kept
};

// Distribution — of one measure over the sampled requests of a group.
// `n` is 0 when no sample had the measure (instructions without a PMU).
// mean and quantiles are over the samples, unweighted (each sample counts
// once); est_total is weighted by 1/sample_rate. Quantiles are nearest-rank
// on a log histogram, within 1% of the exact sample quantile; the rollup and
// raw-sample paths give identical answers. Time ranges are exact to the
// microsecond (rollups serve whole sealed buckets, raw samples the edges).
struct Distribution {
  uint64_t n = 0;  // samples that had the measure
  double mean = 0;
  double p50 = 0, p90 = 0, p99 = 0;  // quantiles within ~1% relative error (log histogram)
  double est_total = 0;  // sum of value / sample_rate: the estimated total over all requests
};

// QueryRow — one group (and bucket).
struct QueryRow {
  std::vector<std::string> keys;  // one per group_by, in order
  int64_t bucket_start_us = 0;    // when bucket != kNone
  uint64_t samples = 0;           // sampled records in the group
  double est_requests = 0;        // sum of 1 / sample_rate
  Distribution instructions;
  Distribution cycles;
  Distribution cpu_ns;
  Distribution wall_us;
  double db_us_mean = 0, db_calls_mean = 0;
  double cache_us_mean = 0, cache_calls_mean = 0;
};

// QueryResult — rows, and how they were computed.
struct QueryResult {
  std::vector<QueryRow> rows;
  bool used_rollups = false;  // false: scanned raw samples (e.g. grouping by user)
  bool truncated = false;     // more groups than spec.limit
};

// RankQueryRows() — rows of every (group, bucket) of a query, ordered and
// limited by `spec` as every store answers (sqlite_store.h, "Order"): without
// buckets heaviest first by cpu_ns.est_total, ties by keys, the first `limit`;
// with buckets whole groups, heaviest first, while the rows fit `limit`
// (else the heaviest group's first `limit` buckets), by bucket then rank.
QueryResult RankQueryRows(std::vector<QueryRow> rows, const QuerySpec& spec);

// CostUnit() — the unit a slice's CPU is read in: "instructions" when at
// least half of its samples have them, else "cpu_ns" (also with no samples).
inline const char* CostUnit(uint64_t with_instructions, uint64_t samples) {
  return samples > 0 && 2 * with_instructions >= samples ? "instructions" : "cpu_ns";
}

// EfficiencySpec — the efficiency metric over a window.
struct EfficiencySpec {
  int64_t from_us = 0;
  int64_t to_us = std::numeric_limits<int64_t>::max();
  std::string service;  // empty: every service
};

// EndpointEfficiency — one endpoint's share in the service's peak minute.
struct EndpointEfficiency {
  std::string endpoint;
  double requests = 0;         // in the peak minute (tallies, else sample estimate)
  double cpu_total = 0;        // estimated CPU of the endpoint in the peak minute (unit below)
  double per_active_user = 0;  // cpu_total / the service's active users in that minute
};

// ServiceEfficiency — "CPU instructions per active user during the peak minute".
// The peak minute is the minute of the window with the highest estimated
// total CPU of the service. Estimated CPU of a minute = sum over endpoints of
// requests (from the unsampled worker tallies) x mean CPU per sampled request
// of that endpoint (that minute's samples, else the window's); without
// tallies, sum of CPU / sample_rate. Active users = the merged HyperLogLog of
// that minute's tallies; without tallies, distinct user keys of the samples
// (an undercount, flagged).
struct ServiceEfficiency {
  std::string service;
  std::string unit;  // "instructions" when the samples have them, else "cpu_ns"
  int64_t peak_minute_unix = 0;
  double cpu_total = 0;  // estimated CPU of the service in the peak minute
  double requests = 0;
  double active_users = 0;
  double per_active_user = 0;  // the metric
  bool from_tallies = true;    // requests and CPU scaled by worker tallies; false: samples alone
  bool users_from_tallies = true;  // active users from tally HyperLogLogs; false: distinct
                                   // user keys of the samples (an undercount)
  std::vector<EndpointEfficiency> endpoints;  // heaviest first
};

// DeployEntry — when a commit was first and last seen for a service/cluster.
struct DeployEntry {
  std::string service;
  std::string cluster;
  std::string commit;
  int64_t first_seen_us = 0;
  int64_t last_seen_us = 0;
  uint64_t samples = 0;
};

}  // namespace cpuledger::store
