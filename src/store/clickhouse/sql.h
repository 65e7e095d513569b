// src/store/clickhouse/sql.h — every SQL text the ClickHouse store sends:
// the schema and the statements built from validated value types.
//
//   std::vector<std::string> ddl = SchemaStatements({.database = "cpuledger"});
//   std::string sql = QuerySql(names, spec);   // spec from store/query.h
//
// No user text reaches SQL except through Quote(), the one quoting function:
// ClickHouse 18.16 has no server-side query parameters ({name:Type} came in
// 19.x), so values are literals. Identifiers (database, cluster) are checked
// by ValidIdentifier() and never quoted.
//
// The SQL is written for both ClickHouse 18.16 (Debian's, the cluster tests)
// and current ClickHouse (chDB, tests/python/test_clickhouse_sql.py): no
// toStartOfInterval, no query parameters, no TTL, no LowCardinality.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/detection.h"
#include "store/query.h"

namespace cpuledger::store::clickhouse {

// kSchemaVersion — the version SchemaStatements() creates; stored in
// schema_version on every shard.
// Version 2: profile_sums and efficiency_minute (functions_local is no longer
// written nor read), alert_versions, alert_events and leases (alerts_local is
// no longer written nor read).
// Version 3: rollup_hour and rollup_hour_coarse, the minute rollups per hour.
// Version 4: function_codes (on a database made before it, the code hashes
// of the profiles appended from then on).
// A view sees only the records inserted after it was created, so on a
// database created at an older version the hour rollups start at the first
// whole hour after version 3 was applied (HourRollupsFromSql()); QuerySql()
// reads the minute rollups before it, so answers are whole either way.
inline constexpr uint32_t kSchemaVersion = 4;

// SchemaNames — where the tables live.
struct SchemaNames {
  std::string database = "cpuledger";
  std::string cluster = "cpuledger";  // remote_servers name of the Distributed tables
};

// Quote() — `text` as a ClickHouse string literal: in single quotes, with
// backslash, quote and every byte below 0x20 or 0x7f escaped (\\, \', \xHH).
// Bytes above 0x7f pass through (the server keeps strings as bytes).
std::string Quote(std::string_view text);

// ValidIdentifier() — [A-Za-z_][A-Za-z0-9_]*, at most 64 bytes.
bool ValidIdentifier(std::string_view name);

// SchemaStatements() — the DDL, in order, each idempotent (IF NOT EXISTS);
// run on every shard. REQUIRES: ValidIdentifier(database, cluster).
//  Local tables (one shard's part, MergeTree partitioned by day):
//   records_local       one row per sampled request
//   tallies_local       one row per (worker tally, endpoint)
//   tally_users_local   one row per worker tally: its HyperLogLog
//   profile_sums_local  function entities per hour (functions.h): a
//                       SummingMergeTree of profiled requests, call-path sums
//                       and function moments per slice (ProfileKind), and one
//                       marker row per (batch, day) for exactly-once
//   function_codes_local  each function's code hash per (service, commit)
//                       (Store::FunctionCodesOf): a ReplacingMergeTree by
//                       seen_us (the newest record start that carried it,
//                       unix us), a row per batch that saw it, in the
//                       partition of that record's day
//   effects_local       the detectors' effects (detection.h); the alerts'
//                       and the lease's tables: alerts.h, lease.h
//   batches_local       applied (sender, sequence) pairs
//   rollup_minute_mv    materialized view of records_local into an
//                       AggregatingMergeTree: count/sum states, quantile
//                       states (quantilesTDigest), distinct users
//                       (uniqCombined) and first/last start per minute and
//                       dimension tuple
//   rollup_minute_coarse_mv   the same without host, cluster and region
//   rollup_hour_mv, rollup_hour_coarse_mv   the same two per hour
//   efficiency_minute_mv      per (minute, service, endpoint) the sample sums
//                       of the peak-minute metric (efficiency.h's
//                       EfficiencyCell), a SummingMergeTree
//   schema_version      versions applied
//  Distributed tables over every shard, same names without _local / _mv:
//   records, tallies, tally_users, profile_sums, function_codes, effects, rollup_minute,
//   rollup_minute_coarse, rollup_hour, rollup_hour_coarse, efficiency_minute.
std::vector<std::string> SchemaStatements(const SchemaNames& names);

// RecordColumns() — records_local's columns in RowBinary order (row_binary.h
// writes exactly these).
std::string_view RecordColumns();
std::string_view TallyColumns();
std::string_view TallyUserColumns();
std::string_view ProfileSumColumns();
std::string_view FunctionCodeColumns();

// FunctionCodesSql() — function key, code hash per function of the service
// and commit, the hash of the row with the newest seen_us (ties: either),
// by function key (bytewise), FORMAT TabSeparated.
std::string FunctionCodesSql(const SchemaNames& names, const FunctionCodesQuery& query);

// ProfileKind — what a profile_sums row holds. Rows of one slice, hour,
// kind and id are summed by the engine; marker rows carry their batch id
// (others an empty sender), so they are never summed with another batch's.
enum class ProfileKind : uint8_t {
  kBatchMarker = 0,  // one per (batch, UTC day) of its profiled records
  kRequests = 1,     // a slice's profiled requests (requests)
  kPath = 2,         // a call path's sums (id = path hash, parent, function = key)
  kMoment = 3,       // a function's moments (id = key hash, function = key)
};

// ProfileSlice — the profile_sums rows a read selects: the hours overlapping
// [from_us, to_us) (HourBuckets), and the slice columns.
struct ProfileSlice {
  int64_t from_us = 0;
  int64_t to_us = 0;
  std::optional<std::string> service = std::nullopt;
  std::optional<std::string> endpoint = std::nullopt;
  std::optional<std::string> commit = std::nullopt;
  std::string flag = {};                                 // "" the all-requests slices
  std::optional<std::string> flag_value = std::nullopt;  // unset: every value of `flag`
  std::optional<std::string> unit = std::nullopt;        // unset: every unit
};

// ProfileUnitsSql() — unit, profiled requests of the slice, by unit.
std::string ProfileUnitsSql(const SchemaNames& names, const ProfileSlice& slice);
// ProfilePathsSql() — id, parent, function key, calls, primitive_calls,
// self_cost, total_cost per call path of the slice; at most `limit` paths.
std::string ProfilePathsSql(const SchemaNames& names, const ProfileSlice& slice, size_t limit);
// MomentRequestsSql() — service, endpoint, commit, unit, flag_value,
// profiled requests per slice.
std::string MomentRequestsSql(const SchemaNames& names, const ProfileSlice& slice);
// MomentsSql() — service, endpoint, commit, unit, flag_value, function key,
// sum, sum_sq, share_sum, share_sq per (slice, function), in that order.
std::string MomentsSql(const SchemaNames& names, const ProfileSlice& slice);

// The peak-minute metric's reads, over the minutes [lo_s, hi_s) (unix s;
// `service` empty: every service):
// EfficiencySamplesSql() — service, minute, endpoint, samples, instr_n,
// weight, instr_weight, instr_wsum, cpu_ns_wsum (efficiency_minute).
std::string EfficiencySamplesSql(const SchemaNames& names, const std::string& service, int64_t lo_s,
                                 int64_t hi_s);
// TallyRequestsSql() — service, minute, endpoint, requests (tallies).
std::string TallyRequestsSql(const SchemaNames& names, const std::string& service, int64_t lo_s,
                             int64_t hi_s);
// TallyServicesSql() — the services with a tally in the minutes.
std::string TallyServicesSql(const SchemaNames& names, const std::string& service, int64_t lo_s,
                             int64_t hi_s);
// TallySketchesSql() — hex(hll), hll_precision of one minute's tallies of
// `service` that have a sketch.
std::string TallySketchesSql(const SchemaNames& names, const std::string& service,
                             int64_t minute_s);
// DistinctUsersSql() — the distinct non-empty user keys of `service`'s
// records that started in [minute_s, minute_s + 60).
std::string DistinctUsersSql(const SchemaNames& names, const std::string& service,
                             int64_t minute_s);

// QueryPlan — the SELECT answering a QuerySpec, and whether it reads rollups.
struct QueryPlan {
  std::string sql;
  bool used_rollups = false;
};

// QuerySql() — one SELECT answering `spec`, FORMAT TabSeparated, one line
// per (group, bucket) that has samples:
//   keys..., bucket_us, samples, est_requests,
//   then per measure (instructions, cycles, cpu_ns, wall_us):
//     n, mean, [p50,p90,p99], p50, p90, p99, est_total,
//   then db_us, db_calls, cache_us, cache_calls means.
// Queries without user or flag dimensions read rollups (the coarse ones
// unless host, cluster or region is asked for): the hour rollups for the
// whole hours of the range from `hours_from_us` on when the bucket is none or
// whole hours, the minute rollups for its other whole minutes, and raw
// records for its edges (exact to the microsecond, as SQLite); others read
// raw records only. Counts and sums are exact whatever the tiers; quantiles
// are t-digest merges, so their error does not depend on the tiers either.
// The rollups hold every record inserted after their view was created (the
// view is fed by the INSERT itself), so there is no seal point; pass as
// `hours_from_us` the start of the hour rollups (HourRollupsFrom()).
// Ordering and limit are the caller's (RankQueryRows in query.h), so every
// group is returned.
// REQUIRES: ValidateQueryDimensions(spec) OK.
QueryPlan QuerySql(const SchemaNames& names, const QuerySpec& spec, int64_t hours_from_us = 0);

// HourRollupsFromSql() — on one shard: the lowest schema version applied and
// when version 3 was (unix s), FORMAT TabSeparated; HourRollupsFrom() reads
// its answer.
std::string HourRollupsFromSql(const SchemaNames& names);
// HourRollupsFrom() — since when (unix us) the shard's hour rollups hold
// every record: 0 for a database created at version 3 or later, else the
// first whole hour after version 3 was applied.
int64_t HourRollupsFrom(uint64_t lowest_version, uint64_t v3_applied_s);

// ValidateQueryDimensions() — RETURNS: InvalidArgument for a flag dimension
// without a name.
Status ValidateQueryDimensions(const QuerySpec& spec);

// BatchIdsSql() — the (sender, sequence) pairs of `ids` in batches_local and
// their state: 1 applied, 0 pending (an append that failed midway may have
// stored some of the batch's rows), FORMAT TabSeparated. REQUIRES: ids not empty.
std::string BatchIdsSql(const SchemaNames& names,
                        const std::vector<std::pair<std::string, uint64_t>>& ids);

// StoredRowsSql() — per batch id of `ids`, the rows `table` (records_local,
// tallies_local, tally_users_local or profile_sums_local, whose rows with a
// batch id are its markers) holds of it: sender, sequence, count.
// Read for pending batches only: it scans the batch id columns.
std::string StoredRowsSql(const SchemaNames& names, std::string_view table,
                          const std::vector<std::pair<std::string, uint64_t>>& ids);

// DeploysSql() — service, cluster, commit, first and last start_us, samples
// per (service, cluster, commit), from the rollups; newest first. `service`
// empty: every service.
std::string DeploysSql(const SchemaNames& names, const std::string& service);

// SamplesSql() — the records of a SampleQuery in start order, at most
// `limit` of them: service, endpoint, method, status, host, cluster, region,
// commit, flag_names, flag_values, start_us, has_instructions, instructions,
// cpu_ns, sample_rate.
std::string SamplesSql(const SchemaNames& names, const SampleQuery& query, size_t limit);

// EffectHistorySql() — the newest measurement per cause of one (service,
// endpoint, function, kind), those before `before_us`, newest first: at_us,
// cause, estimate, lo, hi, alerted. (AppendEffects() only inserts: the newest
// row of a cause replaces the older ones at read.)
std::string EffectHistorySql(const SchemaNames& names, const EffectHistoryQuery& query);

// PartitionsSql() — this server's day partitions of `table` (a local table):
// partition, rows. For retention by dropping whole days.
std::string PartitionsSql(const SchemaNames& names, std::string_view table);
// DropPartitionSql() — `partition` as PartitionsSql() printed it ("2026-12-05").
std::string DropPartitionSql(const SchemaNames& names, std::string_view table,
                             std::string_view partition);

}  // namespace cpuledger::store::clickhouse
