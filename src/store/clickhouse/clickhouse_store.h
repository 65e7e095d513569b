// src/store/clickhouse/clickhouse_store.h — the Store (store.h) over a
// ClickHouse cluster: N servers, each one shard, reached over HTTP.
//
//   Result<std::unique_ptr<Store>> store = OpenClickHouseStore(
//       {.shards = {{.url = "http://10.0.0.1:8123"}, {.url = "http://10.0.0.2:8123"}}});
//   (*store)->AppendBatches(batches);     // one writer thread
//   (*store)->Query(spec);                // any thread
//
// Layout (sql.h has the tables): every shard holds local MergeTree tables
// partitioned by UTC day and a materialized view keeping per-minute rollups
// (AggregatingMergeTree); Distributed tables over all shards serve reads, from
// the first shard. A sender's batches all go to one shard, xxHash64(sender)
// modulo the shard count, inserted into its local tables directly: so the
// sender's applied (sender, sequence) pairs are on that shard, where the next
// batch is checked. Changing the shard list moves senders (their old pairs
// stay where they were): add shards with new senders in mind.
//
// Durability (numbered as store.h's; what differs from SQLite):
//  1. AppendBatches() is not one transaction. Per shard it inserts the
//     batches' ids as pending, then their tallies, tally HyperLogLogs,
//     records and profile sums, then their ids as applied, each one INSERT
//     (atomic per partition, i.e. per UTC day). A failed call may have
//     stored part of its batches, which stay pending.
//  2. When AppendBatches() returns OK, ClickHouse has written every row
//     (fsync is ClickHouse's business: 18.16 does not fsync parts by default).
//  3. A batch whose (sender, sequence) is applied on its shard is skipped: a
//     replayed batch is counted once. A pending batch (a call failed midway)
//     gets only the tables it has no rows in yet: retries after a failure
//     store each row once. Not guaranteed: a table holding part of a batch
//     (one INSERT spanning several days failed between its days) is refused
//     with Internal, not repaired. Two writers appending the same batch at
//     the same moment may both store it (no lock: one writer per sender).
//  4. Rollups are kept by the engine in the INSERT that brings the records.
//  5. Function entities (profile_sums, profiles.h) are summed per batch and
//     inserted beside its records with a marker row per UTC day carrying
//     the batch id, so (3) holds for them too: a retried batch stores its
//     profile sums once. The engine (SummingMergeTree) sums the rows of
//     different batches in the background; reads sum what is not merged yet.
//  6. Function codes (function_codes, FunctionCodesOf()) are inserted beside
//     the profile sums, deduplicated per batch, without a batch id: a row
//     stored twice answers the same, so a retried batch writes them again.
// Deploys(): from the rollups (first/last sample start, sample count).
// Samples(): as SQLite's (start order; ties in start order in any order).
// Effects live on the first shard; the newest row per cause wins at read.
// ApplyRetention(): drops day partitions on every shard, so it deletes a day
// only once all of it is past the window (SQLite deletes to the microsecond);
// profile sums and function codes by profile_retention_us (SQLite: whole
// hours; a function code lives in the day of the newest record of a batch
// that carried it), tallies by tally_retention_us, rollups and
// efficiency_minute are kept.
// Functions(), FunctionTree(), FunctionMomentsOf(): as SQLite's (per hour,
// per flag value, profile_flags, the several-units InvalidArgument, the
// same tree node order and ranking: store/profile_sums.h and functions.h),
// keyed by hashes in place of interned ids: a function by XXH64 of its key,
// a call path by XXH64 of (parent path, function); a 64-bit collision
// (~n^2/2^65 for n paths) would merge two paths. Checkpoint() has nothing
// to fold: the engine sums.
// FunctionCodesOf(): the hash of the newest record start that carried it
// (SQLite: one seen in the newest hour; ties: either), across shards through
// the Distributed table.
// Efficiency(): as SQLite's (efficiency.h computes it for both) from
// efficiency_minute (a view the engine keeps per minute, service and
// endpoint) and the tallies; distinct user keys, when no tally has a
// sketch, are counted exactly (uniqExact) over the raw records, with no
// dimension cap folding them (SqliteOptions::max_dimension_values).
// NOTE: a database made by schema version 1 gets efficiency_minute from the
// first start of version 2 on: only records inserted after it.
// The alerts (UpsertAlert, Alerts, AlertById, TransitionAlert, AlertEvents)
// and HoldLease(): append-only tables on the first shard; alerts.h and
// lease.h say what is not atomic there and what the lease guarantees.
//
// Query semantics: as sqlite_store.h's (exact time ranges, ordering and limit
// by RankQueryRows, means over samples having the measure, NaN when none),
// except quantiles: ClickHouse's t-digest (quantilesTDigest), whose rank
// error is about 1% (not the log histogram's 1% relative value error).
// Queries without user or flag dimensions read the engine's minute rollups
// for whole minutes and raw records for the edges (sql.h, QuerySql).
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/clickhouse/http.h"
#include "store/store.h"

namespace cpuledger::store {

// ClickHouseOptions — the cluster.
struct ClickHouseOptions {
  std::vector<clickhouse::ShardOptions> shards;  // one server per shard, in remote_servers order
  std::string database = "cpuledger";
  std::string cluster = "cpuledger";  // the remote_servers entry naming these shards
  // ApplyRetention() drops whole UTC days (partitions) that ended before
  // now - the window; <= 0: kept forever. Rollups are kept, as SQLite's.
  int64_t raw_retention_us = 14LL * 86400 * 1'000'000;
  int64_t profile_retention_us = 90LL * 86400 * 1'000'000;
  int64_t tally_retention_us = 90LL * 86400 * 1'000'000;
  // The flags whose values keep call-path sums of their own, as
  // SqliteOptions::profile_flags (unset: every flag; function moments are
  // kept per flag value for every flag regardless).
  std::optional<std::set<std::string>> profile_flags = std::nullopt;
};

// OpenClickHouseStore() — connects to every shard and creates the schema
// there if missing (idempotent), recording its version in schema_version.
// RETURNS: InvalidArgument for no shard or a bad database/cluster name;
// Unavailable when a shard cannot be reached; Io when the schema is refused.
Result<std::unique_ptr<Store>> OpenClickHouseStore(const ClickHouseOptions& options);

}  // namespace cpuledger::store
