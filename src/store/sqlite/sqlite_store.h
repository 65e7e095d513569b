// src/store/sqlite/sqlite_store.h — the embedded SQLite store: how it keeps
// the books and what its answers mean, beyond the contract in store.h.
//
//   Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = "ledger.sqlite"});
//   Result<std::vector<AppendOutcome>> out = (*store)->AppendBatches(batches);
//   Result<QueryResult> rows = (*store)->Query(spec);   // from any thread
//
// Layout (schema.h has the tables): dimension tuples are interned as
// `series`; raw samples are kept in per-minute chunks (raw_chunk.h); rollup
// tiers of minute, hour and day buckets keep counts, sums and histograms per
// (bucket, series), and coarse hour and day tiers the same per series without
// host, cluster and region (rollup.h, Tier); worker tallies, the deploy log
// and the applied (sender, sequence) pairs have their own tables.
//
// Sealing (how appends stay cheap). A rollup bucket is written once, when it
// is sealed: the writer keeps the rollups of the open buckets of each tier in
// memory and seals every bucket that ends before the seal point, which is
// kSealLagSeconds before the newest sample start seen (never later than the
// wall clock). `meta.sealed_minute/hour/day` record the seal points in the
// same transaction as the rows, so at every commit: a tier holds exactly the
// samples that started before its seal point; the samples after it are in the
// raw chunks only. Samples that arrive after their bucket was sealed ("late",
// e.g. replayed from a spool) are merged into the sealed rows in the append
// that brings them. Hours are rolled up from sealed minutes, days from sealed
// hours. After a restart (or a failed append) the open buckets are rebuilt
// from the raw chunks after the minute seal point and the sealed minute/hour
// rows after the hour/day seal points: bounded by a day of hour rows, an
// hour of minute rows and ~2 minutes of raw samples.
//
// Query semantics (the points query.h leaves to the store):
//  * Time ranges are exact to the microsecond: a sample counts when
//    from_us <= start < to_us. Rollups serve the whole sealed buckets inside
//    the range (day, then hour, then minute), raw chunks serve the rest (the
//    sub-minute edges and the unsealed last ~2 minutes). No rounding. Hours
//    and days come from the coarse tiers unless the query groups or filters
//    by host, cluster or region. A query grouping or filtering by user reads
//    raw samples only (used_rollups false).
//    Time buckets are aligned to UTC (unix time multiples of 60/3600/86400).
//  * Distribution.mean and the quantiles are over the sampled requests that
//    had the measure, unweighted (each sample counts once, whatever its
//    sample_rate); est_total = sum(value / sample_rate) over those samples.
//    Quantiles are nearest-rank through LogHistogram (histogram.h): within
//    0.99% relative error of the exact nearest-rank quantile of the samples,
//    identical on the raw and rollup paths. cycles have quantiles too.
//    db/cache means are per sample (a sample without DB work counts 0).
//    A measure no sample had: n = 0 and NaN for mean, quantiles and est_total.
//  * Order: bucket kNone — heaviest first by cpu_ns.est_total (cpu_ns is on
//    every sample, so groups with and without a PMU compare), ties by keys.
//    `limit` keeps the first `limit` rows. With time buckets — groups are ranked
//    the same way over the whole range and whole groups are kept (every bucket
//    of the kept groups, heaviest groups first) while the row count stays
//    within `limit`; if even the heaviest group has more buckets than `limit`,
//    its first `limit` buckets. Rows are ordered by bucket start, then group
//    rank. truncated = some row was left out.
//  * Status keys and filter values are decimal text ("200"); a flag's value
//    is its text, "" when the sample's flags lack it.
//
// Efficiency (ServiceEfficiency in query.h), decisions the comment leaves open:
//  * The window is the minutes whose start lies in [from_us, to_us).
//  * A service with at least one tally in the window is estimated from
//    tallies: the candidate minutes are those with tallies; an endpoint's
//    mean CPU per request is the sample ratio sum(v/rate) / sum(1/rate) over
//    that minute's samples having the unit's measure, else over the window's,
//    else 0. A service without tallies uses the samples alone
//    (from_tallies = false). from_tallies is also false when the peak
//    minute's tallies carry no HyperLogLog and the users are counted from
//    samples. HyperLogLogs of different precisions are folded to the lowest.
//  * unit is "instructions" when at least half of the service's samples in the
//    window have instructions, else "cpu_ns".
//  * per_active_user is 0 when no active user was seen. Services are listed
//    by name; endpoints heaviest first. Ties between minutes: the earliest.
//  * COST: it needs every minute of the window, so it reads minute rows (sums
//    only, ~0.3 us each): a day of the 10M-record bench data set is ~1M rows.
//
// Functions() / FunctionTree() (functions.h): entities are kept per UTC hour
// of the records' start times, so a range selects the hours that overlap it.
// They are integer rows keyed by interned ids (profile_ids.h): per hour and
// slice, a row per call path and a row per function's moments, ~20-40 bytes
// each, written whatever the depth of the path; an append adds to the rows of
// the hours it touches (a stable code base writes no new ids). The tree is
// rebuilt from the slice's path sums and their ancestors in call_paths, its
// nodes in path text order (as schema version 3 gave them); a slice over
// record::kMaxProfileNodes paths or kMaxProfileFunctions functions is refused
// (InvalidArgument: narrow it).
// COST: one read of the slice's path rows (~1 us a row) and one lookup per
// distinct path and function (~1 us each).
//
// Profile checkpoints: an append does not upsert its profile rows (a real
// app's 2,000 profiles a second touch ~100k rows, every second). It writes
// them as one ProfileDelta row (profile_rows.h) in its transaction, so an
// acknowledged profile is stored, and adds them to the pending rows in
// memory. Checkpoint() upserts the pending rows and deletes the deltas in one
// transaction: one upsert per distinct row per checkpoint, not per append.
// Functions(), FunctionTree(), FunctionMomentsOf() and ApplyRetention()
// checkpoint first, so they always see every committed profile; opening a
// file folds the deltas a crash left.
//
// FunctionCodesOf(): an append records, in its transaction, each function
// with a code hash (not 0) of its profiled records as a function_codes row
// per (service, commit, function id) with the newest hour it was seen in.
// "The latest hash" of a commit that carried two is one seen in the newest
// hour it was seen in (two versions within one hour: the one an append
// noted last; the append noted each entry of its batch's table once an
// hour). COST: per profiled record, a
// look at each node's table entry (an array check) and a hash lookup per
// function new to the (service, commit) and hour in the call; the call then
// upserts only the rows whose hash or hour the file does not hold yet (the
// writer remembers what it wrote, up to kMaxCodesKept rows): at steady state
// a call writes nothing but in the first call of each hour.
//
// Deploys(): first/last seen are sample start times; the samples count is
// records only (tallies do not move the deploy log). Newest first = by
// first_seen_us descending.
//
// Retention: ApplyRetention() deletes, in one transaction, raw samples that
// started before now_us - raw_retention_us, but never samples after the
// minute seal point (they are the only copy of the open buckets); the hours
// of path costs, function moments and profiled request counts that ended
// before now_us - profile_retention_us, and the function codes last seen in
// those hours; and the worker tallies (both tables)
// of the minutes before now_us - tally_retention_us. Rollups, series, the
// deploy log and the interned functions, paths and slices (bounded by the
// code base, not by time) are kept.
//
// Thread-safety: AppendBatches() and ApplyRetention() serialize on one writer
// connection; Query(), Efficiency(), Deploys() and Stats() run on pooled read
// connections (WAL: readers never block the writer), one transaction each, so
// every answer comes from one snapshot.
//
// COST (2-core VM, bench/store): AppendBatches ~1.5 us a record at production
// density (thousands of records per series-minute), ~4 us when every record
// is its own minute row (1000 records a minute). A query costs ~0.3-0.6 us a
// rollup row and ~0.15 us a raw sample: group by endpoint over 10M records
// and 7 days reads ~60k rows, ~45 ms; the last hour ~16 ms.
// A profiled record costs one XXH3-128 of its shape (profile_shapes.h) and an
// addition per node (store_profile_bench has the figures), and adds no bytes
// to the file once its hour's rows exist and a checkpoint has run.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "store/sqlite/cardinality.h"
#include "store/sqlite/db.h"
#include "store/sqlite/pair_map.h"
#include "store/sqlite/profile_ids.h"
#include "store/sqlite/profile_rows.h"
#include "store/sqlite/profile_shapes.h"
#include "store/sqlite/reader.h"
#include "store/sqlite/rollup.h"
#include "store/sqlite/series.h"
#include "store/store.h"

namespace cpuledger::store::sqlite {

// kSealLagSeconds — how long after the newest sample start a bucket stays
// open for samples still in flight.
inline constexpr int64_t kSealLagSeconds = 120;

// SqliteStore — its member functions are defined by job, one file each
// (sqlite_store_internal.h lists which file holds what).
class SqliteStore final : public Store {
 public:
  // SqliteStore::Open() — what OpenSqliteStore() does, with the concrete type.
  static Result<std::unique_ptr<SqliteStore>> Open(const SqliteOptions& options);
  ~SqliteStore() override;

  Result<std::vector<AppendOutcome>> AppendBatches(
      std::span<const record::Batch* const> batches) override;
  Result<QueryResult> Query(const QuerySpec& spec) override;
  Result<std::vector<ServiceEfficiency>> Efficiency(const EfficiencySpec& spec) override;
  Result<std::vector<DeployEntry>> Deploys(const std::string& service) override;
  Result<FunctionReport> Functions(const FunctionQuery& query) override;
  Result<profile::CallTree> FunctionTree(const FunctionQuery& query) override;
  Result<uint64_t> ApplyRetention(int64_t now_us) override;
  Status Checkpoint() override;
  Result<StoreStats> Stats() override;
  // detection.h — in detection_store.cc.
  Result<SampleSet> Samples(const SampleQuery& query) override;
  Result<std::vector<FunctionMoments>> FunctionMomentsOf(
      const FunctionMomentsQuery& query) override;
  Result<std::vector<FunctionCode>> FunctionCodesOf(const FunctionCodesQuery& query) override;
  Status AppendEffects(std::span<const EffectRecord> effects) override;
  Result<std::vector<EffectRecord>> EffectHistory(const EffectHistoryQuery& query) override;
  Result<UpsertOutcome> UpsertAlert(const Alert& alert) override;
  Result<std::vector<Alert>> Alerts(const AlertQuery& query) override;
  Result<Alert> AlertById(int64_t id) override;
  Result<TransitionOutcome> TransitionAlert(const AlertTransition& t) override;
  Result<std::vector<AlertEvent>> AlertEvents(int64_t id) override;
  Result<bool> HoldLease(const std::string& name, const std::string& holder, int64_t now_us,
                         int64_t ttl_us) override;

  // SqliteStore::SealPoints() — the committed seal points (unix seconds) of
  // the minute, hour and day tiers. For tests and `doctor`.
  Result<TierSealPoints> SealPoints();

 private:
  struct WriterStatements;
  struct CallState;
  struct DeploySeen;
  struct ProfileSums;
  // CodeSeen — a function's code hash in a (service, commit) and the newest
  // hour (unix s) it was seen in.
  struct CodeSeen {
    uint64_t hash = 0;
    int64_t hour = 0;
  };
  // kMaxCodesKept — past this many rows, the writer forgets which function
  // codes the file holds (and rewrites them once).
  static constexpr size_t kMaxCodesKept = 1 << 16;
  // (bucket start, series) -> rollup of the samples in it.
  using OpenBuckets = std::map<int64_t, std::unordered_map<int64_t, RollupAcc>>;
  using TierKey = std::pair<int64_t, int64_t>;  // (bucket start s, series)

  explicit SqliteStore(const SqliteOptions& options);
  // Init() = OpenWriter() (connection, migrations, statements), then LoadState().
  Status Init();
  Status OpenWriter();
  Status LoadState();
  // The writer's statements, each beside the SQL it is prepared from.
  static std::vector<std::pair<Stmt*, std::string>> WriterSql(WriterStatements& w);
  Status LoadSeries();
  Status RebuildOpenBuckets();

  // The steps of one AppendBatches() transaction, in order.
  Result<std::vector<AppendOutcome>> AppendInTransaction(
      std::span<const record::Batch* const> batches);
  Status ApplyBatch(const record::Batch& batch, size_t index, CallState& call,
                    AppendOutcome& outcome);
  void Route(const StoredRecord& sample, CallState& call);
  Status AddProfile(const record::RequestRecord& rec, CallState& call);
  static void SelfByFunction(const record::Profile& p, const ProfileShape& shape,
                             std::vector<double>& self);
  void AddToSlice(const record::RequestRecord& rec, int64_t hour, const ProfileShape& shape,
                  const std::string& flag, const std::string& value, bool with_paths,
                  CallState& call);
  // Function codes: the code hashes of a profiled record's functions noted
  // in `call` (`marks`: per entry of its function table, the (group, hour)
  // noted last), the noted rows the file lacks upserted, then remembered.
  int64_t CodeGroup(std::string_view service, std::string_view commit);
  void NoteCodes(const record::RequestRecord& rec, int64_t hour, FunctionIds& functions,
                 std::vector<std::pair<int64_t, int64_t>>& marks, CallState& call);
  Status WriteFunctionCodes(CallState& call);
  void RememberFunctionCodes(const CallState& call);
  Status StoreTally(const record::WorkerTally& tally, CallState& call);
  Status WriteChunks(CallState& call);
  Status MergeLate(CallState& call);
  Status Seal(CallState& call);
  Status WriteSeries();
  Status WriteDeploys(const CallState& call);
  Status WriteProfileDelta(const ProfileRows& rows);
  // Profile checkpoints: the pending rows into the hourly tables, deltas deleted.
  Status CheckpointProfilesLocked();
  Status WriteProfileRows(const ProfileRows& rows);
  Status LoadProfileDeltas();
  Status PruneApplied(const CallState& call);
  // The steps of ApplyRetention(), in its transaction; each deletes what
  // started before `before_us` (nothing when it is <= 0).
  Result<uint64_t> DeleteRawSamples(int64_t before_us);
  Status DeleteProfiles(int64_t before_us);
  Result<uint64_t> DeleteTallies(int64_t before_us);
  Status WriteMeta(const CallState& call);
  // A new row of a tier / rows added into existing ones (late samples).
  Status InsertRow(Tier t, int64_t bucket, int64_t series, const RollupAcc& acc, CallState& call);
  Status MergeRows(Tier t, const std::map<TierKey, RollupAcc>& rows, CallState& call);

  const SqliteOptions options_;
  std::mutex write_mu_;  // AppendBatches, ApplyRetention, the detection writes
  Db writer_;
  std::unique_ptr<WriterStatements> stmts_;  // prepared on writer_
  SeriesInterner interner_;
  ProfileInterner profile_ids_;  // functions, call paths, profile slices
  ProfileShapes shapes_;         // profile shapes -> their ids in profile_ids_
  CardinalityGuard guard_;       // distinct values per service and dimension
  SeriesCatalog catalog_;
  std::unique_ptr<ReaderPool> readers_;

  // Writer state, guarded by write_mu_; rebuilt from the file after a failure.
  std::array<int64_t, 3> sealed_{};  // seal points, unix seconds, per Tier
  std::array<OpenBuckets, 3> open_;  // open buckets per Tier
  int64_t max_seen_us_ = 0;          // newest sample start seen since open
  bool needs_rebuild_ = false;       // a rebuild after a failed append failed too
  uint64_t raw_samples_ = 0, rollup_rows_ = 0, tallies_ = 0;  // meta counters
  ProfileRows pending_profiles_;  // the sums of the rows in profile_deltas
  size_t pending_deltas_ = 0;     // rows in profile_deltas
  ProfileDelta delta_scratch_;    // WriteProfileDelta()'s, kept for capacity
  std::string delta_bytes_;
  // Function codes: (service, commit) -> a group id (dense from 0), its
  // names by id, and per (group, function id) what the file holds.
  std::map<std::string, std::map<std::string, int64_t, std::less<>>, std::less<>> code_groups_;
  std::vector<std::pair<std::string, std::string>> code_group_names_;
  PairMap<CodeSeen> codes_stored_;
};

}  // namespace cpuledger::store::sqlite
