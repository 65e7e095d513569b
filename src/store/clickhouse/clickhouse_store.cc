#include "store/clickhouse/clickhouse_store.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "store/clickhouse/alerts.h"
#include "store/clickhouse/lease.h"
#include "store/clickhouse/profiles.h"
#include "store/clickhouse/row_binary.h"
#include "store/clickhouse/sql.h"
#include "store/clickhouse/tsv.h"
#include "store/profile_sums.h"

namespace cpuledger::store {
namespace {

using clickhouse::RowBinary;
using clickhouse::SchemaNames;
using clickhouse::ShardClient;
using BatchId = std::pair<std::string, uint64_t>;

void AppendRecord(const record::RequestRecord& r, const record::Batch& batch, RowBinary& out) {
  std::vector<std::pair<std::string, std::string>> flags(r.flags().begin(), r.flags().end());
  std::sort(flags.begin(), flags.end());
  const record::CpuBill& cpu = r.cpu();
  out.Date(clickhouse::DayOf(r.start_time_unix_us()))
      .Int64(r.start_time_unix_us())
      .String(r.service())
      .String(r.endpoint())
      .String(r.method())
      .UInt16(static_cast<uint16_t>(std::min<uint32_t>(r.status(), 65535)))
      .String(r.host())
      .String(r.cluster())
      .String(r.region())
      .String(r.commit());
  out.Length(flags.size());
  for (const auto& f : flags) out.String(f.first);
  out.Length(flags.size());
  for (const auto& f : flags) out.String(f.second);
  out.String(r.user())
      .Float64(r.sample_rate())
      .UInt64(r.wall_us())
      .NullableUInt64(cpu.has_instructions() ? std::optional(cpu.instructions()) : std::nullopt)
      .NullableUInt64(cpu.has_cycles() ? std::optional(cpu.cycles()) : std::nullopt)
      .UInt64(cpu.cpu_ns())
      .String(cpu.counter_source())
      .UInt64(r.db().wall_us())
      .UInt32(r.db().calls())
      .UInt64(r.cache().wall_us())
      .UInt32(r.cache().calls())
      .String(r.request_id())
      .String(batch.sender())
      .UInt64(batch.sequence())
      .String("");  // profile: its sums are in profile_sums
}

void AppendTally(const record::WorkerTally& t, const record::Batch& batch, RowBinary& counts,
                 RowBinary& users) {
  const int64_t us = t.minute_unix() * 1'000'000;
  auto head = [&](RowBinary& out) {
    out.Date(clickhouse::DayOf(us))
        .DateTime(clickhouse::SecondsOf(us))
        .String(t.service())
        .String(t.host())
        .String(t.cluster())
        .String(t.region())
        .String(t.commit())
        .String(t.sender());
  };
  for (const record::EndpointCount& e : t.endpoints()) {
    head(counts);
    counts.String(e.endpoint()).UInt64(e.requests()).UInt64(e.sampled());
    counts.String(batch.sender()).UInt64(batch.sequence());
  }
  head(users);
  users.String(t.active_users_hll()).UInt8(static_cast<uint8_t>(t.hll_precision()));
  users.String(batch.sender()).UInt64(batch.sequence());
}

// ParseRow() — one line of QuerySql()'s answer (its column order).
QueryRow ParseRow(const clickhouse::TsvRow& f, size_t groups) {
  QueryRow row;
  size_t i = 0;
  for (; i < groups; ++i) row.keys.push_back(clickhouse::Unescape(f[i]));
  row.bucket_start_us = clickhouse::TsvInt64(f[i++]);
  row.samples = clickhouse::TsvUInt64(f[i++]);
  row.est_requests = clickhouse::TsvDouble(f[i++]);
  for (Distribution* d : {&row.instructions, &row.cycles, &row.cpu_ns, &row.wall_us}) {
    d->n = clickhouse::TsvUInt64(f[i]);
    d->mean = clickhouse::TsvDouble(f[i + 1]);
    // f[i + 2] is the quantile array; its elements follow.
    d->p50 = clickhouse::TsvDouble(f[i + 3]);
    d->p90 = clickhouse::TsvDouble(f[i + 4]);
    d->p99 = clickhouse::TsvDouble(f[i + 5]);
    d->est_total = clickhouse::TsvDouble(f[i + 6]);
    i += 7;
    if (d->n == 0) d->mean = d->p50 = d->p90 = d->p99 = d->est_total = std::nan("");
  }
  row.db_us_mean = clickhouse::TsvDouble(f[i++]);
  row.db_calls_mean = clickhouse::TsvDouble(f[i++]);
  row.cache_us_mean = clickhouse::TsvDouble(f[i++]);
  row.cache_calls_mean = clickhouse::TsvDouble(f[i++]);
  return row;
}

constexpr size_t kQueryColumns = 3 + 4 * 7 + 4;  // beside the keys (QuerySql)

class ClickHouseStore final : public Store {
 public:
  ClickHouseStore(ClickHouseOptions options, std::vector<std::unique_ptr<ShardClient>> shards)
      : options_(std::move(options)),
        names_{.database = options_.database, .cluster = options_.cluster},
        shards_(std::move(shards)) {}

  Status CreateSchema() {
    for (auto& shard : shards_) {
      for (const std::string& sql : clickhouse::SchemaStatements(names_))
        if (Result<std::string> r = shard->Run(sql); !r.ok()) return r.status();
      Result<std::string> v = shard->Run("SELECT max(version) FROM " + names_.database +
                                         ".schema_version FORMAT TabSeparated");
      if (!v.ok()) return v.status();
      if (clickhouse::TsvUInt64(*v) < clickhouse::kSchemaVersion) {
        Result<std::string> r =
            shard->Run("INSERT INTO " + names_.database + ".schema_version VALUES (" +
                       std::to_string(clickhouse::kSchemaVersion) + ", now())");
        if (!r.ok()) return r.status();
      }
      Result<std::string> hours = shard->Run(clickhouse::HourRollupsFromSql(names_));
      if (!hours.ok()) return hours.status();
      std::vector<clickhouse::TsvRow> row = clickhouse::SplitTsv(*hours);
      if (row.size() != 1 || row[0].size() != 2)
        return Internal("ClickHouse answered an odd schema_version summary");
      hours_from_us_ =
          std::max(hours_from_us_, clickhouse::HourRollupsFrom(clickhouse::TsvUInt64(row[0][0]),
                                                               clickhouse::TsvUInt64(row[0][1])));
    }
    return OkStatus();
  }

  Result<std::vector<AppendOutcome>> AppendBatches(
      std::span<const record::Batch* const> batches) override {
    std::vector<AppendOutcome> out(batches.size());
    std::vector<std::vector<size_t>> by_shard(shards_.size());
    for (size_t i = 0; i < batches.size(); ++i)
      by_shard[ShardOf(batches[i]->sender())].push_back(i);
    for (size_t s = 0; s < shards_.size(); ++s) {
      if (by_shard[s].empty()) continue;
      if (Status st = AppendToShard(s, batches, by_shard[s], out); !st.ok()) return st;
    }
    return out;
  }

  Result<QueryResult> Query(const QuerySpec& spec) override {
    if (Status s = clickhouse::ValidateQueryDimensions(spec); !s.ok()) return s;
    clickhouse::QueryPlan plan = clickhouse::QuerySql(names_, spec, hours_from_us_);
    Result<std::string> body = shards_[0]->Run(plan.sql);
    if (!body.ok()) return body.status();
    std::vector<QueryRow> rows;
    for (const clickhouse::TsvRow& f : clickhouse::SplitTsv(*body)) {
      if (f.size() != spec.group_by.size() + kQueryColumns)
        return Internal("ClickHouse answered a query row of " + std::to_string(f.size()) +
                        " columns");
      rows.push_back(ParseRow(f, spec.group_by.size()));
    }
    QueryResult result = RankQueryRows(std::move(rows), spec);
    result.used_rollups = plan.used_rollups;
    return result;
  }

  Result<std::vector<ServiceEfficiency>> Efficiency(const EfficiencySpec& spec) override {
    return clickhouse::ReadEfficiency(*shards_[0], names_, spec);
  }
  Result<std::vector<DeployEntry>> Deploys(const std::string& service) override {
    Result<std::string> body = shards_[0]->Run(clickhouse::DeploysSql(names_, service));
    if (!body.ok()) return body.status();
    std::vector<DeployEntry> out;
    for (const clickhouse::TsvRow& f : clickhouse::SplitTsv(*body)) {
      if (f.size() != 6) return Internal("unexpected Deploys answer");
      out.push_back({clickhouse::Unescape(f[0]), clickhouse::Unescape(f[1]),
                     clickhouse::Unescape(f[2]), clickhouse::TsvInt64(f[3]),
                     clickhouse::TsvInt64(f[4]), clickhouse::TsvUInt64(f[5])});
    }
    return out;
  }
  Result<FunctionReport> Functions(const FunctionQuery& query) override {
    Result<profile::CallTree> tree = FunctionTree(query);
    if (!tree.ok()) return tree.status();
    if (tree->requests() == 0) return FunctionReport{};
    return ReportFromTree(*tree, query);
  }
  Result<profile::CallTree> FunctionTree(const FunctionQuery& query) override {
    if (Status s = CheckProfileFlag(options_.profile_flags, query); !s.ok()) return s;
    return clickhouse::ReadFunctionTree(*shards_[0], names_, query);
  }
  Result<uint64_t> ApplyRetention(int64_t now_us) override {
    uint64_t dropped = 0;
    const std::pair<const char*, int64_t> tables[] = {
        {"records_local", options_.raw_retention_us},
        {"tallies_local", options_.tally_retention_us},
        {"tally_users_local", options_.tally_retention_us},
        {"profile_sums_local", options_.profile_retention_us},
        {"function_codes_local", options_.profile_retention_us}};
    for (auto& shard : shards_)
      for (const auto& [table, keep_us] : tables) {
        if (keep_us <= 0) continue;
        Result<uint64_t> rows = DropDaysBefore(*shard, table, now_us - keep_us);
        if (!rows.ok()) return rows.status();
        if (std::string_view(table) == "records_local") dropped += *rows;
      }
    return dropped;
  }
  Status Checkpoint() override { return OkStatus(); }  // the engine keeps its rollups

  Result<StoreStats> Stats() override {
    const std::string& db = names_.database;
    Result<std::string> counts = shards_[0]->Run(
        "SELECT (SELECT count() FROM " + db + ".records), (SELECT count() FROM " + db +
        ".rollup_minute), (SELECT count() FROM " + db + ".tally_users) FORMAT TabSeparated");
    if (!counts.ok()) return counts.status();
    std::vector<clickhouse::TsvRow> rows = clickhouse::SplitTsv(*counts);
    if (rows.size() != 1 || rows[0].size() != 3) return Internal("unexpected Stats answer");
    StoreStats stats;
    stats.raw_samples = clickhouse::TsvUInt64(rows[0][0]);
    stats.rollup_rows = clickhouse::TsvUInt64(rows[0][1]);
    stats.tallies = clickhouse::TsvUInt64(rows[0][2]);
    for (auto& shard : shards_) {  // system.parts is each server's own
      Result<std::string> bytes =
          shard->Run("SELECT sum(bytes) FROM system.parts WHERE active AND database = " +
                     clickhouse::Quote(db) + " FORMAT TabSeparated");
      if (!bytes.ok()) return bytes.status();
      stats.file_bytes += clickhouse::TsvUInt64(*bytes);
    }
    return stats;
  }

  Result<SampleSet> Samples(const SampleQuery& query) override {
    Result<std::string> body =
        shards_[0]->Run(clickhouse::SamplesSql(names_, query, query.max_samples + 1));
    if (!body.ok()) return body.status();
    std::vector<clickhouse::TsvRow> rows = clickhouse::SplitTsv(*body);
    if (rows.size() > query.max_samples)
      return ResourceExhausted("more than " + std::to_string(query.max_samples) +
                               " samples in the range: narrow it");
    return ToSampleSet(rows);
  }
  Result<std::vector<FunctionMoments>> FunctionMomentsOf(
      const FunctionMomentsQuery& query) override {
    return clickhouse::ReadFunctionMoments(*shards_[0], names_, query);
  }
  Result<std::vector<FunctionCode>> FunctionCodesOf(const FunctionCodesQuery& query) override {
    return clickhouse::ReadFunctionCodes(*shards_[0], names_, query);
  }
  Status AppendEffects(std::span<const EffectRecord> effects) override {
    if (effects.empty()) return OkStatus();
    RowBinary rows;
    for (const EffectRecord& e : effects)
      rows.Date(clickhouse::DayOf(e.at_us))
          .Int64(e.at_us)
          .String(e.service)
          .String(e.endpoint)
          .String(e.function)
          .String(e.kind)
          .String(e.cause)
          .Float64(e.estimate)
          .Float64(e.lo)
          .Float64(e.hi)
          .UInt8(e.alerted ? 1 : 0);
    // Detection tables are small: they live on the first shard.
    return shards_[0]->Insert("INSERT INTO " + names_.database + ".effects_local FORMAT RowBinary",
                              rows.data());
  }
  Result<std::vector<EffectRecord>> EffectHistory(const EffectHistoryQuery& query) override {
    Result<std::string> body = shards_[0]->Run(clickhouse::EffectHistorySql(names_, query));
    if (!body.ok()) return body.status();
    std::vector<EffectRecord> out;
    for (const clickhouse::TsvRow& f : clickhouse::SplitTsv(*body)) {
      if (f.size() != 6) return Internal("unexpected EffectHistory answer");
      EffectRecord e;
      e.at_us = clickhouse::TsvInt64(f[0]);
      e.service = query.service;
      e.endpoint = query.endpoint;
      e.function = query.function;
      e.kind = query.kind;
      e.cause = clickhouse::Unescape(f[1]);
      e.estimate = clickhouse::TsvDouble(f[2]);
      e.lo = clickhouse::TsvDouble(f[3]);
      e.hi = clickhouse::TsvDouble(f[4]);
      e.alerted = clickhouse::TsvUInt64(f[5]) != 0;
      out.push_back(std::move(e));
    }
    return out;
  }
  // The alerts and the lease live on the first shard (alerts.h, lease.h).
  Result<UpsertOutcome> UpsertAlert(const Alert& a) override {
    return clickhouse::UpsertAlert(*shards_[0], names_, a);
  }
  Result<std::vector<Alert>> Alerts(const AlertQuery& q) override {
    return clickhouse::Alerts(*shards_[0], names_, q);
  }
  Result<Alert> AlertById(int64_t id) override {
    return clickhouse::AlertById(*shards_[0], names_, id);
  }
  Result<TransitionOutcome> TransitionAlert(const AlertTransition& t) override {
    return clickhouse::TransitionAlert(*shards_[0], names_, t);
  }
  Result<std::vector<AlertEvent>> AlertEvents(int64_t id) override {
    return clickhouse::AlertEvents(*shards_[0], names_, id);
  }
  Result<bool> HoldLease(const std::string& name, const std::string& holder, int64_t now_us,
                         int64_t ttl_us) override {
    return clickhouse::HoldLease(*shards_[0], names_, name, holder, now_us, ttl_us);
  }

 private:
  // DropDaysBefore() — drops the shard's day partitions of `table` that end
  // at or before `cutoff_us`. RETURNS: the rows dropped.
  Result<uint64_t> DropDaysBefore(ShardClient& shard, const char* table, int64_t cutoff_us) {
    const int64_t cutoff_day = cutoff_us / (86400LL * 1'000'000);  // the first day kept
    Result<std::string> parts = shard.Run(clickhouse::PartitionsSql(names_, table));
    if (!parts.ok()) return parts.status();
    uint64_t rows = 0;
    for (const clickhouse::TsvRow& f : clickhouse::SplitTsv(*parts)) {
      if (f.size() != 2) return Internal("unexpected system.parts answer");
      const std::string day = clickhouse::Unescape(f[0]);
      std::tm tm{};
      if (strptime(day.c_str(), "%Y-%m-%d", &tm) == nullptr) continue;  // not a day partition
      if (timegm(&tm) / 86400 >= cutoff_day) continue;
      if (Result<std::string> r = shard.Run(clickhouse::DropPartitionSql(names_, table, day));
          !r.ok())
        return r.status();
      rows += clickhouse::TsvUInt64(f[1]);
    }
    return rows;
  }

  static SampleSet ToSampleSet(const std::vector<clickhouse::TsvRow>& rows) {
    struct Row {
      SampleSeries series;
      int64_t start_us;
      bool has_instructions;
      double instructions, cpu_ns, rate;
    };
    std::vector<Row> raw;
    std::map<std::string, std::pair<size_t, size_t>> counts;  // service -> (with, all)
    for (const clickhouse::TsvRow& f : rows) {
      if (f.size() != 15) continue;
      Row r;
      r.series = {clickhouse::Unescape(f[0]),
                  clickhouse::Unescape(f[1]),
                  clickhouse::Unescape(f[2]),
                  clickhouse::Unescape(f[4]),
                  clickhouse::Unescape(f[5]),
                  clickhouse::Unescape(f[6]),
                  clickhouse::Unescape(f[7]),
                  static_cast<int>(clickhouse::TsvInt64(f[3])),
                  {}};
      std::vector<std::string> names = clickhouse::TsvStringArray(f[8]);
      std::vector<std::string> values = clickhouse::TsvStringArray(f[9]);
      for (size_t i = 0; i < names.size() && i < values.size(); ++i)
        r.series.flags.emplace_back(std::move(names[i]), std::move(values[i]));
      r.start_us = clickhouse::TsvInt64(f[10]);
      r.has_instructions = clickhouse::TsvUInt64(f[11]) != 0;
      r.instructions = clickhouse::TsvDouble(f[12]);
      r.cpu_ns = clickhouse::TsvDouble(f[13]);
      r.rate = clickhouse::TsvDouble(f[14]);
      auto& [with, all] = counts[r.series.service];
      with += r.has_instructions;
      ++all;
      raw.push_back(std::move(r));
    }
    // The unit per service, as SQLite's: instructions when at least half have them.
    SampleSet out;
    std::map<std::string, bool> instructions;
    for (const auto& [service, n] : counts) {
      out.units.emplace_back(service, CostUnit(n.first, n.second));
      instructions[service] = out.units.back().second == std::string("instructions");
    }
    std::map<std::tuple<std::string, std::string, std::string, int, std::string, std::string,
                        std::string, std::string, std::vector<std::pair<std::string, std::string>>>,
             uint32_t>
        index;
    for (Row& r : raw) {
      const bool use_instr = instructions[r.series.service];
      if (use_instr && !r.has_instructions) continue;
      const SampleSeries& s = r.series;
      auto [it, added] =
          index.try_emplace(std::tuple(s.service, s.endpoint, s.method, s.status, s.host, s.cluster,
                                       s.region, s.commit, s.flags),
                            static_cast<uint32_t>(out.series.size()));
      if (added) out.series.push_back(r.series);
      out.samples.push_back(
          {it->second, r.start_us, use_instr ? r.instructions : r.cpu_ns, r.rate});
    }
    return out;
  }

  size_t ShardOf(const std::string& sender) const {
    return XXH64(sender.data(), sender.size(), 0) % shards_.size();
  }

  // The tables a batch's rows go to, in insert order. Each carries the batch
  // id (profile_sums_local: on its marker rows, one per day), so a pending
  // batch's rows can be counted table by table.
  static constexpr size_t kTables = 4;
  static constexpr const char* kBatchTables[kTables] = {"tallies_local", "tally_users_local",
                                                        "records_local", "profile_sums_local"};
  using TableFlags = std::array<bool, kTables>;

  // BatchRows() — the rows batch `b` puts into each of kBatchTables that
  // carry its id.
  static std::array<size_t, kTables> BatchRows(const record::Batch& b) {
    size_t endpoints = 0;
    for (const record::WorkerTally& t : b.tallies()) endpoints += t.endpoints_size();
    return {endpoints, static_cast<size_t>(b.tallies_size()), static_cast<size_t>(b.records_size()),
            clickhouse::ProfileDays(b)};
  }

  // BatchStates() — the state of each of `ids` the shard holds (1 applied, 0 pending).
  Result<std::map<BatchId, int>> BatchStates(size_t shard, const std::vector<BatchId>& ids) {
    std::map<BatchId, int> states;
    if (ids.empty()) return states;
    Result<std::string> body = shards_[shard]->Run(clickhouse::BatchIdsSql(names_, ids));
    if (!body.ok()) return body.status();
    for (const clickhouse::TsvRow& f : clickhouse::SplitTsv(*body))
      if (f.size() == 3)
        states[{clickhouse::Unescape(f[0]), clickhouse::TsvUInt64(f[1])}] =
            static_cast<int>(clickhouse::TsvUInt64(f[2]));
    return states;
  }

  // PendingRows() — for batches an earlier append left pending: per table,
  // true when its rows are all in already (write none), false when none are.
  // RETURNS: Internal when a table holds part of a batch (one INSERT over
  // several days failed midway): not repaired automatically.
  Result<std::map<BatchId, TableFlags>> PendingRows(
      size_t shard, const std::vector<const record::Batch*>& pending) {
    std::map<BatchId, TableFlags> done;
    if (pending.empty()) return done;
    std::vector<BatchId> ids;
    for (const record::Batch* b : pending) ids.emplace_back(b->sender(), b->sequence());
    for (size_t t = 0; t < kTables; ++t) {
      Result<std::string> body =
          shards_[shard]->Run(clickhouse::StoredRowsSql(names_, kBatchTables[t], ids));
      if (!body.ok()) return body.status();
      std::map<BatchId, uint64_t> stored;
      for (const clickhouse::TsvRow& f : clickhouse::SplitTsv(*body))
        if (f.size() == 3)
          stored[{clickhouse::Unescape(f[0]), clickhouse::TsvUInt64(f[1])}] =
              clickhouse::TsvUInt64(f[2]);
      for (const record::Batch* b : pending) {
        const uint64_t have = stored[{b->sender(), b->sequence()}];
        const uint64_t want = BatchRows(*b)[t];
        if (have != 0 && have != want)
          return Internal("batch (" + b->sender() + ", " + std::to_string(b->sequence()) +
                          ") is partly stored in " + kBatchTables[t] + ": " + std::to_string(have) +
                          " of " + std::to_string(want) + " rows");
        done[{b->sender(), b->sequence()}][t] = have == want && want != 0;
      }
    }
    return done;
  }

  // AppendToShard() — the batches at `indexes`, all of senders on `shard`:
  // (1) their ids as pending, (2) their rows, (3) their ids as applied. A
  // batch found pending (a failed earlier append) gets only the rows it lacks.
  Status AppendToShard(size_t shard, std::span<const record::Batch* const> batches,
                       const std::vector<size_t>& indexes, std::vector<AppendOutcome>& out) {
    std::vector<BatchId> ids;
    for (size_t i : indexes)
      if (!batches[i]->sender().empty())
        ids.emplace_back(batches[i]->sender(), batches[i]->sequence());
    Result<std::map<BatchId, int>> states = BatchStates(shard, ids);
    if (!states.ok()) return states.status();

    std::vector<size_t> taken;
    std::vector<const record::Batch*> pending;
    std::set<BatchId> seen;
    for (size_t i : indexes) {
      const record::Batch& b = *batches[i];
      if (!b.sender().empty()) {
        auto it = states->find({b.sender(), b.sequence()});
        if ((it != states->end() && it->second == 1) ||
            !seen.emplace(b.sender(), b.sequence()).second) {
          out[i].duplicate = true;  // applied before, or earlier in this call
          continue;
        }
        if (it != states->end()) pending.push_back(&b);
      }
      taken.push_back(i);
    }
    Result<std::map<BatchId, TableFlags>> done = PendingRows(shard, pending);
    if (!done.ok()) return done.status();

    const uint32_t now =
        clickhouse::SecondsOf(std::chrono::duration_cast<std::chrono::microseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
    RowBinary rows[kTables], codes, pending_ids, applied_ids;
    for (size_t i : taken) {
      const record::Batch& b = *batches[i];
      auto d = done->find({b.sender(), b.sequence()});
      const TableFlags skip = d == done->end() ? TableFlags{} : d->second;
      RowBinary scratch;  // a table's rows that are in already go nowhere
      for (const record::WorkerTally& t : b.tallies())
        AppendTally(t, b, skip[0] ? scratch : rows[0], skip[1] ? scratch : rows[1]);
      for (const record::RequestRecord& r : b.records())
        AppendRecord(r, b, skip[2] ? scratch : rows[2]);
      if (!skip[3])
        if (Status s = clickhouse::AppendProfileRows(b, options_.profile_flags, rows[3]); !s.ok())
          return s;
      // No batch id, so no skip: a retried batch's rows answer the same.
      clickhouse::AppendFunctionCodeRows(b, codes);
      out[i].records = static_cast<size_t>(b.records_size());
      out[i].tallies = static_cast<size_t>(b.tallies_size());
      if (b.sender().empty()) continue;
      auto id = [&](RowBinary& to, uint8_t state) {
        to.String(b.sender())
            .UInt64(b.sequence())
            .UInt32(static_cast<uint32_t>(b.records_size()))
            .UInt32(static_cast<uint32_t>(b.tallies_size()))
            .DateTime(now)
            .UInt8(state);
      };
      if (d == done->end()) id(pending_ids, 0);
      id(applied_ids, 1);
    }
    const std::pair<const char*, const RowBinary*> inserts[] = {
        {"batches_local", &pending_ids}, {kBatchTables[0], &rows[0]},
        {kBatchTables[1], &rows[1]},     {kBatchTables[2], &rows[2]},
        {kBatchTables[3], &rows[3]},     {"function_codes_local", &codes},
        {"batches_local", &applied_ids}};
    for (const auto& [table, data] : inserts) {
      if (data->empty()) continue;
      Status s = shards_[shard]->Insert(
          "INSERT INTO " + names_.database + "." + table + " FORMAT RowBinary", data->data());
      if (!s.ok()) return s;
    }
    return OkStatus();
  }

  const ClickHouseOptions options_;
  const SchemaNames names_;
  std::vector<std::unique_ptr<ShardClient>> shards_;
  // Since when every shard's hour rollups are whole (HourRollupsFrom()).
  int64_t hours_from_us_ = 0;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenClickHouseStore(const ClickHouseOptions& options) {
  if (options.shards.empty()) return InvalidArgument("the ClickHouse store needs a shard URL");
  if (!clickhouse::ValidIdentifier(options.database))
    return InvalidArgument("ClickHouse database name must be [A-Za-z_][A-Za-z0-9_]*, got '" +
                           options.database + "'");
  if (!clickhouse::ValidIdentifier(options.cluster))
    return InvalidArgument("ClickHouse cluster name must be [A-Za-z_][A-Za-z0-9_]*, got '" +
                           options.cluster + "'");
  std::vector<std::unique_ptr<ShardClient>> shards;
  for (const clickhouse::ShardOptions& s : options.shards)
    shards.push_back(std::make_unique<ShardClient>(s));
  auto store = std::make_unique<ClickHouseStore>(options, std::move(shards));
  if (Status s = store->CreateSchema(); !s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace cpuledger::store
