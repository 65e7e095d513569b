// src/store/store.h — keeping and querying the books.
//
// One interface, `Store`; the embedded SQLite store (sqlite/) is the default
// and the ClickHouse store (clickhouse/, later) scales out behind the same
// calls. The server owns one Store: a single writer thread calls Append*,
// any number of HTTP threads call the queries concurrently.
//
// Durability (SQLite store; numbered invariants):
//  1. AppendBatches() applies all its batches in one transaction, or none.
//  2. When AppendBatches() returns OK, its batches are durable against a
//     process crash (WAL, synchronous=NORMAL); an OS crash or power loss may
//     lose the last transactions (not guaranteed: synchronous=FULL is not used).
//  3. A batch whose (sender, sequence) was already applied is skipped, so a
//     replayed batch is counted once. Senders' sequences are kept for
//     `dedup_window` batches per sender.
//  4. Rollups are updated in the same transaction as the raw samples they
//     summarise: a query never sees one without the other.
//  5. Function entities (functions.h) are written in the same transaction as
//     the records whose profiles they sum.
// Retention deletes raw samples, function entities and moments, and worker
// tallies older than their windows (SqliteOptions); rollups and the deploy log
// are kept. Not guaranteed: queries running during an append may or may not
// see it (snapshot isolation per query).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "profile/call_tree.h"
#include "record/record.pb.h"
#include "store/detection.h"
#include "store/functions.h"
#include "store/query.h"

namespace cpuledger::store {

// AppendOutcome — what happened to one batch.
struct AppendOutcome {
  size_t records = 0;      // stored
  size_t tallies = 0;      // stored
  bool duplicate = false;  // (sender, sequence) seen before: nothing stored
};

// StoreStats — for /metrics and `doctor`.
struct StoreStats {
  uint64_t raw_samples = 0;
  uint64_t rollup_rows = 0;
  uint64_t tallies = 0;
  uint64_t file_bytes = 0;
  std::map<std::string, uint64_t> folded_values;  // by dimension (sqlite/cardinality.h)
};

class Store {
 public:
  virtual ~Store() = default;

  // Store::AppendBatches() — stores every batch in one transaction.
  // REQUIRES: batches already validated (record::DecodeBatch); one calling
  // thread at a time. RETURNS: one outcome per batch, or an error with nothing stored.
  virtual Result<std::vector<AppendOutcome>> AppendBatches(
      std::span<const record::Batch* const> batches) = 0;

  // Store::Query() — slice and dice. Thread-safe.
  virtual Result<QueryResult> Query(const QuerySpec& spec) = 0;

  // Store::Efficiency() — the peak-minute metric per service. Thread-safe.
  virtual Result<std::vector<ServiceEfficiency>> Efficiency(const EfficiencySpec& spec) = 0;

  // Store::Deploys() — the deploy log, newest first; `service` empty for all.
  virtual Result<std::vector<DeployEntry>> Deploys(const std::string& service) = 0;

  // Store::Functions() — per function (file:line:name) of the profiled
  // requests in the slice: calls, self and total cost per profiled request,
  // and its top call paths (functions.h). Thread-safe. RETURNS:
  // InvalidArgument when the slice holds profiles in more than one unit
  // (narrow it by service or commit); an empty report when it holds none.
  virtual Result<FunctionReport> Functions(const FunctionQuery& query) = 0;

  // Store::FunctionTree() — the slice's profiles merged into one call-path
  // tree, requests() = its profiled requests (0 and unit "" when none): the
  // input of profile::DiffTrees. Thread-safe. RETURNS: as Functions().
  virtual Result<profile::CallTree> FunctionTree(const FunctionQuery& query) = 0;

  // Store::ApplyRetention() — deletes raw samples that started before
  // now_us - raw retention, and the profile aggregates and tallies past
  // their own windows, in one transaction. RETURNS: how many raw samples
  // were deleted.
  virtual Result<uint64_t> ApplyRetention(int64_t now_us) = 0;

  // Store::Checkpoint() — fold what appends keep in a write-fast form into
  // the tables reads scan (SQLite: recent appends' profile sums). Reads that
  // need it do it first themselves; the server calls it every minute so the
  // write-fast part stays small. Thread-safe. RETURNS: the store's error
  // (nothing lost: it is retried by the next call).
  virtual Status Checkpoint() = 0;

  virtual Result<StoreStats> Stats() = 0;

  // ---- for the detectors (detection.h) ----

  // Store::Samples() — the raw samples of a slice with their dimensions.
  // RETURNS: ResourceExhausted beyond query.max_samples. Thread-safe.
  virtual Result<SampleSet> Samples(const SampleQuery& query) = 0;
  // Store::FunctionMomentsOf() — per function of the slice: profiled
  // requests, sum and sum of squares of its self cost per request. Thread-safe.
  virtual Result<std::vector<FunctionMoments>> FunctionMomentsOf(
      const FunctionMomentsQuery& query) = 0;
  // Store::FunctionCodesOf() — each function with a known code hash (not 0)
  // in the commit's profiles still kept, once (the latest hash, should one
  // commit have carried two), in function order. Thread-safe.
  virtual Result<std::vector<FunctionCode>> FunctionCodesOf(const FunctionCodesQuery& query) = 0;
  // Store::AppendEffects() / EffectHistory() — the detectors' measured
  // effects, newest first. Thread-safe (writes serialize with appends).
  virtual Status AppendEffects(std::span<const EffectRecord> effects) = 0;
  virtual Result<std::vector<EffectRecord>> EffectHistory(const EffectHistoryQuery& query) = 0;
  // Store::UpsertAlert() — opens an alert (state open, with its first
  // event: open by "detector" at updated_us; alert.reopens kept), or updates
  // the body and updated_us of the live (open or acknowledged) alert with the
  // same key. Thread-safe.
  virtual Result<UpsertOutcome> UpsertAlert(const Alert& alert) = 0;
  // Store::Alerts() — stored alerts, newest first. Thread-safe.
  virtual Result<std::vector<Alert>> Alerts(const AlertQuery& query) = 0;
  // Store::AlertById() — one alert. RETURNS: NotFound for an unknown id.
  virtual Result<Alert> AlertById(int64_t id) = 0;
  // Store::TransitionAlert() — moves an alert to t.to and keeps the event,
  // in one transaction, if AlertTransitionRefusal() allows it from the state
  // it is in then; else nothing changes and the outcome says why.
  // RETURNS: NotFound for an unknown id. Thread-safe.
  virtual Result<TransitionOutcome> TransitionAlert(const AlertTransition& t) = 0;
  // Store::AlertEvents() — one alert's events, oldest first. Thread-safe.
  virtual Result<std::vector<AlertEvent>> AlertEvents(int64_t id) = 0;

  // ---- for several servers on one store ----

  // Store::HoldLease() — takes lease `name` for `holder` until now_us +
  // ttl_us when it is free or expired, or renews it when `holder` holds it;
  // leaves another holder's unexpired lease alone. The detector schedule
  // runs where this answers true (server.h). RETURNS: whether `holder` holds
  // the lease now; the store's error when it cannot tell (treat as not held).
  // NOTE: SQLite decides in one transaction; the ClickHouse store's weaker
  // guarantee is in clickhouse/lease.h. Thread-safe.
  virtual Result<bool> HoldLease(const std::string& name, const std::string& holder, int64_t now_us,
                                 int64_t ttl_us) = 0;
};

// SqliteOptions — where and how long.
struct SqliteOptions {
  std::string path;                                     // the database file (created if missing)
  int64_t raw_retention_us = 14LL * 86400 * 1'000'000;  // raw samples kept this long
  // Profile aggregates (function entities and moments) kept this long, in
  // whole hours; worker tallies, in whole minutes. <= 0: kept forever.
  int64_t profile_retention_us = 90LL * 86400 * 1'000'000;
  int64_t tally_retention_us = 90LL * 86400 * 1'000'000;
  size_t dedup_window = 4096;  // (sender, sequence) pairs kept per sender
  // Distinct values kept per service and dimension (sqlite/cardinality.h);
  // 0: no cap. `log` hears when a dimension fills (nullptr: stderr).
  size_t max_dimension_values = 2000;
  // The flags whose values keep call-path sums of their own (flame graphs
  // and diffs by flag value); unset: every flag. Each flag a record carries
  // adds its whole profile once more to the sums (bench/store: two flags
  // cost ~2.4x AppendBatches CPU and ~4.5x checkpoint time on a 1,400-path
  // app). Function moments, which the detectors use, are kept per flag value
  // for every flag regardless.
  std::optional<std::set<std::string>> profile_flags = std::nullopt;
  std::function<void(const std::string&)> log = nullptr;
};

// OpenSqliteStore() — opens or creates the file, migrates the schema.
// RETURNS: Io when the file cannot be opened or is not a cpuledger store.
Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

}  // namespace cpuledger::store
