// src/store/sqlite/rollup.h — one sample, the aggregate of many (RollupAcc),
// and how an aggregate is stored as a rollup row.
//
// A rollup row keeps, for one (bucket, series): sample count; weight = sum of
// 1/sample_rate (the estimated request count); per measure the number of
// samples that had it, the plain sum (for means), the weighted sum (value /
// sample_rate: the estimated total) and a LogHistogram blob (quantiles).
// instructions and cycles are optional per sample (no PMU: absent, never 0),
// so they carry their own counts, and instr_weight (sum of 1/sample_rate over
// the samples that had instructions) for the per-request instruction rate the
// efficiency metric needs. cpu_ns and wall_us are on every sample. DB and
// cache time and calls keep plain sums (their means are per sample).
//
// Every measure has a histogram, cycles included: the rows get ~25% larger
// but cycles quantiles are real, not NaN, and both query paths agree.
//
// Row columns: bucket, series, samples, sums, h_instr, h_cycles, h_cpu_ns,
// h_wall_us. `sums` packs the other 16 figures into one blob, because every
// SQLite column costs ~20 ns on every read and write of a row and a 7-day
// query reads ~10^5 rows. Sums blob (version 1): byte 1; varint instr_n,
// varint cycles_n; then weight, instr_sum, instr_wsum, instr_weight,
// cycles_sum, cycles_wsum, cpu_ns_sum, cpu_ns_wsum, wall_us_sum,
// wall_us_wsum, db_us_sum, db_calls_sum, cache_us_sum, cache_calls_sum, each
// a varint 2v for an integral 0 <= v < 2^62 (most sums are), else varint 1
// and the 8 bytes of the IEEE double, little-endian. NOTE: part of the file
// format; change only with a schema migration.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "record/record.pb.h"
#include "store/histogram.h"
#include "store/sqlite/db.h"

namespace cpuledger::store::sqlite {

// StoredRecord — what the store keeps of one sampled request.
struct StoredRecord {
  int64_t start_us = 0;
  int64_t series = 0;
  uint64_t wall_us = 0;
  bool has_instructions = false;
  bool has_cycles = false;
  uint64_t instructions = 0;  // meaningful only when has_instructions
  uint64_t cycles = 0;        // meaningful only when has_cycles
  uint64_t cpu_ns = 0;
  uint8_t counter_source = 0;  // CounterSourceCode()
  uint64_t db_us = 0, db_calls = 0, cache_us = 0, cache_calls = 0;
  double sample_rate = 1;  // (0, 1]
  std::string_view user;   // views into the record or the chunk blob
  std::string_view request_id;
};

// StoredFromRecord() — REQUIRES: r outlives the sample (views into it).
StoredRecord StoredFromRecord(const record::RequestRecord& r, int64_t series);
// CounterSourceCode() — counters::SourceCode(): 1 hardware, 2 task_clock,
// 3 thread_cputime, 0 other (the codes on disk; src/counters keeps the table).
uint8_t CounterSourceCode(std::string_view source);

// RollupAcc — the aggregate of a set of samples; merges by addition.
struct RollupAcc {
  uint64_t samples = 0;
  double weight = 0;  // sum of 1 / sample_rate
  uint64_t instr_n = 0;
  double instr_sum = 0, instr_wsum = 0, instr_weight = 0;
  uint64_t cycles_n = 0;
  double cycles_sum = 0, cycles_wsum = 0;
  double cpu_ns_sum = 0, cpu_ns_wsum = 0;
  double wall_us_sum = 0, wall_us_wsum = 0;
  double db_us_sum = 0, db_calls_sum = 0, cache_us_sum = 0, cache_calls_sum = 0;
  LogHistogram h_instr, h_cycles, h_cpu_ns, h_wall_us;

  // RollupAcc::Add() — one sample. COST: four logarithms with histograms.
  void Add(const StoredRecord& s, bool histograms = true);
  // RollupAcc::Merge() — every sample of `other`.
  void Merge(const RollupAcc& other);
};

// Tier — a rollup table. The names are constants, never user text.
//
// The base tiers (minute, hour, day) are keyed by the full series. The coarse
// tiers hold the same hours and days keyed by the series without host,
// cluster and region: with hosts in the key an hour row holds a few samples,
// and a 7-day query would read every one of them; without, a few hundred
// rows an hour answer every query that neither groups nor filters by those
// three dimensions. They are written when the base hour or day is sealed,
// from its rows, so they share the base tier's seal point.
enum class Tier : uint8_t { kMinute = 0, kHour = 1, kDay = 2, kHourCoarse = 3, kDayCoarse = 4 };
inline constexpr Tier kTiers[] = {Tier::kMinute, Tier::kHour, Tier::kDay};  // the base tiers
inline constexpr Tier kAllTiers[] = {Tier::kMinute, Tier::kHour, Tier::kDay, Tier::kHourCoarse,
                                     Tier::kDayCoarse};
inline constexpr size_t kNumTiers = 5;
int64_t TierSeconds(Tier t);           // 60, 3600, 86400
const char* TierTable(Tier t);         // "rollup_minute", ..., "rollup_hour_coarse", ...
const char* TierWatermarkKey(Tier t);  // "sealed_minute", ... (meta keys; coarse share the base's)
Tier BaseTier(Tier t);                 // kHourCoarse -> kHour, kDayCoarse -> kDay
Tier CoarseTier(Tier t);  // kHour -> kHourCoarse, kDay -> kDayCoarse (REQUIRES: one of them)

// Rollup row SQL for tier `t`.
//   InsertSql: INSERT a new row; parameters ?1 bucket, ?2 series, then BindRollup().
//   MergeSql: the same row added into an existing one (ON CONFLICT ... DO
//     UPDATE; sums and histograms merged by the cpuledger_sums_add() and
//     cpuledger_hist_merge() SQL functions).
//   ExistsSql: SELECT 1 for ?1 bucket, ?2 series.
//   SelectSql: rows with ?1 <= bucket < ?2; columns: bucket, series, then
//     ReadRollup()'s columns; without histograms when !histograms.
std::string InsertSql(Tier t);
std::string MergeSql(Tier t);
std::string ExistsSql(Tier t);
std::string SelectSql(Tier t, bool histograms);

// RollupBlobs — encoded sums and histograms that must outlive the statement
// they are bound to.
struct RollupBlobs {
  std::string sums, instr, cycles, cpu_ns, wall_us;
};
// BindRollup() — binds `a` to parameters ?3 .. ?8.
void BindRollup(StmtUse& use, const RollupAcc& a, RollupBlobs* blobs);
// ReadRollup() — adds the row's columns 2 .. into `into` (histograms too when
// asked and selected). RETURNS: Io for a corrupt blob.
Status ReadRollup(const StmtUse& use, bool histograms, RollupAcc* into);

// EncodeSums() / AddSums() — the `sums` blob of `a` / added into `into`.
void EncodeSums(const RollupAcc& a, std::string* out);
Status AddSums(std::string_view blob, RollupAcc* into);

// RegisterSqlFunctions() — cpuledger_hist_merge(a, b) and
// cpuledger_sums_add(a, b) on a writer connection.
Status RegisterSqlFunctions(Db& db);

}  // namespace cpuledger::store::sqlite
