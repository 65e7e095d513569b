#include "store/clickhouse/sql.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <utility>

#include "store/clickhouse/alerts.h"
#include "store/profile_sums.h"

namespace cpuledger::store::clickhouse {

namespace {

constexpr std::string_view kRecordColumns =
    "day Date, start_us Int64, service String, endpoint String, method String, status UInt16, "
    "host String, cluster String, region String, commit String, "
    "flag_names Array(String), flag_values Array(String), user String, sample_rate Float64, "
    "wall_us UInt64, instructions Nullable(UInt64), cycles Nullable(UInt64), cpu_ns UInt64, "
    "counter_source String, db_us UInt64, db_calls UInt32, cache_us UInt64, cache_calls UInt32, "
    "request_id String, sender String, sequence UInt64, profile String";

constexpr std::string_view kTallyColumns =
    "day Date, minute DateTime, service String, host String, cluster String, region String, "
    "commit String, sender String, endpoint String, requests UInt64, sampled UInt64, "
    "batch_sender String, batch_sequence UInt64";

constexpr std::string_view kTallyUserColumns =
    "day Date, minute DateTime, service String, host String, cluster String, region String, "
    "commit String, sender String, hll String, hll_precision UInt8, "
    "batch_sender String, batch_sequence UInt64";

constexpr std::string_view kProfileSumColumns =
    "day Date, hour DateTime, service String, endpoint String, commit String, unit String, "
    "flag String, flag_value String, kind UInt8, id UInt64, parent UInt64, function String, "
    "rows UInt64, requests UInt64, calls UInt64, primitive_calls UInt64, self_cost UInt64, "
    "total_cost UInt64, sum Float64, sum_sq Float64, share_sum Float64, share_sq Float64, "
    "batch_sender String, batch_sequence UInt64";

constexpr std::string_view kFunctionCodeColumns =
    "day Date, service String, commit String, function String, code_hash UInt64, "
    "seen_us UInt64";

// The measures of a QueryRow's Distributions, in QuerySql()'s column order.
constexpr std::string_view kMeasures[] = {"instructions", "cycles", "cpu_ns", "wall_us"};

std::string Local(const SchemaNames& n, std::string_view table) {
  return n.database + "." + std::string(table);
}

// Distributed() — `table` over every shard's `local`, same columns.
std::string Distributed(const SchemaNames& n, std::string_view table, std::string_view local) {
  return "CREATE TABLE IF NOT EXISTS " + Local(n, table) + " AS " + Local(n, local) +
         " ENGINE = Distributed(" + n.cluster + ", " + n.database + ", " + std::string(local) +
         ", rand())";
}

// RollupTier — one materialized view of rollups: its Distributed table, its
// time column (the start of the row's minute or hour) and the columns it
// groups by beside it.
struct RollupTier {
  std::string_view table;  // the view is table + "_mv"
  std::string_view dims;
  std::string_view unit;  // "minute" or "hour", the time column's name
  int64_t seconds;        // 60 or 3600
};
constexpr std::string_view kFineDims =
    "day, service, endpoint, method, status, host, cluster, region, commit";
// Without host, cluster and region: ~hosts times fewer rows for the rest.
constexpr std::string_view kCoarseDims = "day, service, endpoint, method, status, commit";
// Every dimension; Deploys() and queries by host, cluster or region read it.
constexpr RollupTier kFineTier = {"rollup_minute", kFineDims, "minute", 60};
constexpr RollupTier kCoarseTier = {"rollup_minute_coarse", kCoarseDims, "minute", 60};
// The same per hour: a day is ~24 rows a group instead of ~1,440, and the
// quantile states' merge, most of a day-long query's time, shrinks with it.
constexpr RollupTier kFineHourTier = {"rollup_hour", kFineDims, "hour", 3600};
constexpr RollupTier kCoarseHourTier = {"rollup_hour_coarse", kCoarseDims, "hour", 3600};

// RollupStates() — the aggregate states of one rollup row, over records'
// columns: the materialized view's and the raw edges' of a rollup query
// (QuerySql), which UNION ALL needs identical.
std::string RollupStates() {
  std::string out = "countState() AS samples, sumState(1 / sample_rate) AS est_requests";
  for (std::string_view m : kMeasures) {
    std::string c(m), v = "ifNull(" + c + ", 0)", has = "isNotNull(" + c + ")";
    out += ", countIfState(" + has + ") AS " + c + "_n";
    out += ", sumState(toFloat64(" + v + ")) AS " + c + "_sum";
    out += ", sumState(" + v + " / sample_rate) AS " + c + "_est";
    out += ", quantilesTDigestIfState(0.5, 0.9, 0.99)(" + v + ", " + has + ") AS " + c + "_q";
  }
  return out +
         ", sumState(db_us) AS db_us, sumState(toUInt64(db_calls)) AS db_calls,"
         " sumState(cache_us) AS cache_us, sumState(toUInt64(cache_calls)) AS cache_calls,"
         " uniqCombinedIfState(user, user != '') AS users,"
         " minState(start_us) AS first_us, maxState(start_us) AS last_us";
}

// RollupSelect() — records grouped into a tier's rows: the view's query.
std::string RollupSelect(const RollupTier& tier, const std::string& from,
                         const std::string& where) {
  const std::string unit(tier.unit);
  return "SELECT toDateTime(intDiv(start_us, " + std::to_string(tier.seconds * 1'000'000) + ") * " +
         std::to_string(tier.seconds) + ") AS " + unit + ", " + std::string(tier.dims) + ", " +
         RollupStates() + " FROM " + from + where + " GROUP BY " + unit + ", " +
         std::string(tier.dims);
}

// A rollup row is the same whatever shard it was inserted on; the tier's
// Distributed table merges the states across shards at read.
std::string RollupView(const SchemaNames& n, const RollupTier& tier) {
  std::string order(tier.dims.substr(tier.dims.find(", ") + 2));  // without day
  order.insert(order.find(", endpoint") + 10, ", " + std::string(tier.unit));
  return "CREATE MATERIALIZED VIEW IF NOT EXISTS " + Local(n, std::string(tier.table) + "_mv") +
         " ENGINE = AggregatingMergeTree PARTITION BY day ORDER BY (" + order + ") AS " +
         RollupSelect(tier, Local(n, "records_local"), "");
}

// EfficiencyView() — the sample sums of the peak-minute metric per minute,
// service and endpoint (efficiency.h's EfficiencyCell).
std::string EfficiencyView(const SchemaNames& n) {
  return "CREATE MATERIALIZED VIEW IF NOT EXISTS " + Local(n, "efficiency_minute_mv") +
         " ENGINE = SummingMergeTree((samples, instr_n, weight, instr_weight, instr_wsum,"
         " cpu_ns_wsum)) PARTITION BY day ORDER BY (service, minute, endpoint) AS SELECT day,"
         " toDateTime(intDiv(start_us, 60000000) * 60) AS minute, service, endpoint,"
         " count() AS samples, countIf(isNotNull(instructions)) AS instr_n,"
         " sum(1 / sample_rate) AS weight,"
         " sumIf(1 / sample_rate, isNotNull(instructions)) AS instr_weight,"
         " sum(ifNull(instructions, 0) / sample_rate) AS instr_wsum,"
         " sum(cpu_ns / sample_rate) AS cpu_ns_wsum FROM " +
         Local(n, "records_local") + " GROUP BY day, minute, service, endpoint";
}

// DimensionSql() — the column expression of a validated dimension.
std::string DimensionSql(const DimensionRef& d) {
  switch (d.dim) {
    case Dimension::kService:
      return "service";
    case Dimension::kEndpoint:
      return "endpoint";
    case Dimension::kMethod:
      return "method";
    case Dimension::kStatus:
      return "toString(status)";
    case Dimension::kHost:
      return "host";
    case Dimension::kCluster:
      return "cluster";
    case Dimension::kRegion:
      return "region";
    case Dimension::kCommit:
      return "commit";
    // A record without the flag: indexOf is 0 and element 0 is "".
    case Dimension::kFlag:
      return "flag_values[indexOf(flag_names, " + Quote(d.flag) + ")]";
    case Dimension::kUser:
      return "user";
  }
  return "''";
}

// DateLiteral() — the UTC day of unix microseconds `us`, as 'YYYY-MM-DD'.
std::string DateLiteral(int64_t us) {
  std::time_t s = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return Quote(buf);
}

// TimeWhere() — start_us in [from, to), with the days around it so that
// ClickHouse reads only the partitions in range (Date holds 1970..2105).
std::string TimeWhere(int64_t from_us, int64_t to_us) {
  constexpr int64_t kMaxDateUs = 4'000'000'000LL * 1'000'000;  // 2096
  std::string w =
      "start_us >= " + std::to_string(from_us) + " AND start_us < " + std::to_string(to_us);
  if (from_us > 0 && from_us < kMaxDateUs) w += " AND day >= toDate(" + DateLiteral(from_us) + ")";
  if (to_us > 0 && to_us < kMaxDateUs) w += " AND day <= toDate(" + DateLiteral(to_us) + ")";
  return w;
}

// FilterWhere() — filters on one dimension OR together (IN), different
// dimensions AND together.
std::string FilterWhere(const std::vector<Filter>& filters) {
  std::string out;
  std::vector<bool> done(filters.size(), false);
  for (size_t i = 0; i < filters.size(); ++i) {
    if (done[i]) continue;
    std::string values;
    for (size_t j = i; j < filters.size(); ++j) {
      if (done[j] || !(filters[j].dim == filters[i].dim)) continue;
      done[j] = true;
      values += (values.empty() ? "" : ", ") + Quote(filters[j].value);
    }
    out += " AND " + DimensionSql(filters[i].dim) + " IN (" + values + ")";
  }
  return out;
}

}  // namespace

std::string Quote(std::string_view text) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 2);
  out += '\'';
  for (unsigned char c : text) {
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '\'';
  return out;
}

bool ValidIdentifier(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string_view RecordColumns() { return kRecordColumns; }
std::string_view TallyColumns() { return kTallyColumns; }
std::string_view TallyUserColumns() { return kTallyUserColumns; }
std::string_view ProfileSumColumns() { return kProfileSumColumns; }
std::string_view FunctionCodeColumns() { return kFunctionCodeColumns; }

std::vector<std::string> SchemaStatements(const SchemaNames& n) {
  auto table = [&](std::string_view name, std::string_view columns, std::string_view engine) {
    return "CREATE TABLE IF NOT EXISTS " + Local(n, name) + " (" + std::string(columns) +
           ") ENGINE = " + std::string(engine);
  };
  std::vector<std::string> s = {
      "CREATE DATABASE IF NOT EXISTS " + n.database,
      table("schema_version", "version UInt32, applied DateTime", "MergeTree ORDER BY version"),
      table("records_local", kRecordColumns,
            "MergeTree PARTITION BY day ORDER BY (service, endpoint, start_us)"),
      table("tallies_local", kTallyColumns,
            "MergeTree PARTITION BY day ORDER BY (service, endpoint, minute)"),
      table("tally_users_local", kTallyUserColumns,
            "MergeTree PARTITION BY day ORDER BY (service, minute)"),
      // `rows` (1 a row inserted) keeps a row whose sums are all 0 from being
      // dropped by the merges; parent and function follow from id.
      table("profile_sums_local", kProfileSumColumns,
            "SummingMergeTree((rows, requests, calls, primitive_calls, self_cost, total_cost, "
            "sum, sum_sq, share_sum, share_sq)) PARTITION BY day ORDER BY (service, endpoint, "
            "commit, flag, flag_value, hour, unit, kind, id, batch_sender, batch_sequence)"),
      // The version column must be unsigned in 18.16. The engine keeps one
      // row per key and day (partition); reads take the newest across them.
      table("function_codes_local", kFunctionCodeColumns,
            "ReplacingMergeTree(seen_us) PARTITION BY day ORDER BY (service, commit, function)"),
      table(
          "effects_local",
          "day Date, at_us Int64, service String, endpoint String, function String, "
          "kind String, cause String, estimate Float64, lo Float64, hi Float64, alerted UInt8",
          "MergeTree PARTITION BY day ORDER BY (service, endpoint, function, kind, cause, at_us)"),
      table("batches_local",
            "sender String, sequence UInt64, records UInt32, tallies UInt32, applied DateTime, "
            "state UInt8",
            "MergeTree ORDER BY (sender, sequence)"),
      RollupView(n, kFineTier),
      RollupView(n, kCoarseTier),
      EfficiencyView(n),
      RollupView(n, kFineHourTier),
      RollupView(n, kCoarseHourTier),
  };
  for (std::string_view t :
       {"records", "tallies", "tally_users", "profile_sums", "function_codes", "effects"})
    s.push_back(Distributed(n, t, std::string(t) + "_local"));
  s.push_back(Distributed(n, "efficiency_minute", "efficiency_minute_mv"));
  for (const RollupTier& tier : {kFineTier, kCoarseTier, kFineHourTier, kCoarseHourTier})
    s.push_back(Distributed(n, tier.table, std::string(tier.table) + "_mv"));
  for (std::string& t : AlertSchemaStatements(n)) s.push_back(std::move(t));  // alerts.h
  return s;
}

Status ValidateQueryDimensions(const QuerySpec& spec) {
  for (const DimensionRef& d : spec.group_by)
    if (d.dim == Dimension::kFlag && d.flag.empty())
      return InvalidArgument("a flag dimension needs a name (flag:NAME)");
  for (const Filter& f : spec.filters)
    if (f.dim.dim == Dimension::kFlag && f.dim.flag.empty())
      return InvalidArgument("a flag filter needs a name (flag:NAME)");
  return OkStatus();
}

namespace {

// Rollups hold no user and no flags: those queries read raw records.
bool RollupsServe(const QuerySpec& spec) {
  auto raw_only = [](const DimensionRef& d) {
    return d.dim == Dimension::kUser || d.dim == Dimension::kFlag;
  };
  if (std::any_of(spec.group_by.begin(), spec.group_by.end(), raw_only)) return false;
  return std::none_of(spec.filters.begin(), spec.filters.end(),
                      [&](const Filter& f) { return raw_only(f.dim); });
}

// KeysAndGroup() — "expr AS k0, ..., bucket AS bucket_us, " and "k0, ..., bucket_us".
std::pair<std::string, std::string> KeysAndGroup(const QuerySpec& spec, const std::string& us) {
  std::string keys, group;
  for (size_t i = 0; i < spec.group_by.size(); ++i) {
    std::string k = "k" + std::to_string(i);
    keys += DimensionSql(spec.group_by[i]) + " AS " + k + ", ";
    group += k + ", ";
  }
  const int64_t step = BucketSeconds(spec.bucket) * 1'000'000;
  keys += step > 0 ? "intDiv(" + us + ", " + std::to_string(step) + ") * " + std::to_string(step)
                   : std::string("toInt64(0)");
  return {keys + " AS bucket_us, ", group + "bucket_us"};
}

constexpr int64_t kMinuteUs = 60'000'000;
constexpr int64_t kMaxMinuteUs = 4'000'000'000LL * 1'000'000;  // DateTime's range, 2096

int64_t CeilMinute(int64_t us) {
  return us <= 0 ? 0 : std::min(kMaxMinuteUs, (us + kMinuteUs - 1) / kMinuteUs * kMinuteUs);
}
int64_t FloorMinute(int64_t us) {
  return us <= 0 ? 0 : std::min(kMaxMinuteUs, us / kMinuteUs * kMinuteUs);
}
// On whole minutes (CeilMinute's, FloorMinute's), so within DateTime's range.
constexpr int64_t kHourUs = 3'600'000'000;
int64_t CeilHour(int64_t us) { return us <= 0 ? 0 : (us + kHourUs - 1) / kHourUs * kHourUs; }
int64_t FloorHour(int64_t us) { return us <= 0 ? 0 : us / kHourUs * kHourUs; }

QueryPlan RawQuery(const SchemaNames& n, const QuerySpec& spec) {
  auto [keys, group] = KeysAndGroup(spec, "start_us");
  std::string measures;
  for (std::string_view m : kMeasures) {
    std::string c(m), q = "q_" + std::string(m);
    measures += ", count(" + c + "), avg(" + c + "), quantilesTDigest(0.5, 0.9, 0.99)(" + c +
                ") AS " + q + ", " + q + "[1], " + q + "[2], " + q + "[3], sum(" + c +
                " / sample_rate)";
  }
  // Each quantile array is a column (after avg()), then its elements. HAVING:
  // grouped by constants only, ClickHouse answers one empty group, SQLite none.
  return {"SELECT " + keys + "count(), sum(1 / sample_rate)" + measures +
              ", avg(db_us), avg(db_calls), avg(cache_us), avg(cache_calls)"
              " FROM " +
              Local(n, "records") + " WHERE " + TimeWhere(spec.from_us, spec.to_us) +
              FilterWhere(spec.filters) + " GROUP BY " + group +
              " HAVING count() > 0 FORMAT TabSeparated",
          false};
}

// RollupRows() — `tier`'s rows (its time column as `minute`) in the
// [lo, hi) ranges of `spans` (unix us, on the tier's boundaries), or "" when
// every span is empty.
std::string RollupRows(const SchemaNames& n, const QuerySpec& spec, const RollupTier& tier,
                       std::initializer_list<std::pair<int64_t, int64_t>> spans) {
  const std::string unit(tier.unit);
  std::string where;
  int64_t first = 0, last = 0;
  for (auto [lo, hi] : spans) {
    if (lo >= hi) continue;
    if (where.empty()) first = lo;
    last = hi;
    where += (where.empty() ? "(" : " OR (") + unit + " >= toDateTime(" +
             std::to_string(lo / 1'000'000) + ") AND " + unit + " < toDateTime(" +
             std::to_string(hi / 1'000'000) + "))";
  }
  if (where.empty()) return "";
  std::string out =
      "SELECT " + unit + " AS minute, " + std::string(tier.dims) + ", samples, est_requests";
  for (std::string_view m : kMeasures)
    for (const char* part : {"_n", "_sum", "_est", "_q"}) out += ", " + std::string(m) + part;
  return out + ", db_us, db_calls, cache_us, cache_calls, users, first_us, last_us FROM " +
         Local(n, tier.table) + " WHERE (" + where + ") AND day >= toDate(" + DateLiteral(first) +
         ") AND day <= toDate(" + DateLiteral(last) + ")" + FilterWhere(spec.filters);
}

// RollupQuery() — the whole hours [hour_lo, hour_hi) from the hour tier (none
// when hour_lo >= hour_hi), the other whole minutes of [lo, hi) from the
// minute tier, the edges (before the first whole minute, from the last on)
// from records as minute rollup rows; merged.
QueryPlan RollupQuery(const SchemaNames& n, const QuerySpec& spec, const RollupTier& tier,
                      const RollupTier& hour_tier, int64_t lo, int64_t hi, int64_t hour_lo,
                      int64_t hour_hi) {
  // The raw edges that are not empty (none for a range of whole minutes;
  // none past 2096, where Date and DateTime end: no record is kept there).
  std::string edges;
  if (spec.from_us < lo) edges = "(" + TimeWhere(spec.from_us, lo) + ")";
  if (hi < spec.to_us && hi < kMaxMinuteUs)
    edges += (edges.empty() ? "(" : " OR (") + TimeWhere(hi, spec.to_us) + ")";
  std::vector<std::string> parts;
  if (hour_lo < hour_hi) {
    parts.push_back(RollupRows(n, spec, hour_tier, {{hour_lo, hour_hi}}));
    std::string minutes = RollupRows(n, spec, tier, {{lo, hour_lo}, {hour_hi, hi}});
    if (!minutes.empty()) parts.push_back(std::move(minutes));
  } else {
    parts.push_back(RollupRows(n, spec, tier, {{lo, hi}}));
  }
  if (!edges.empty())
    parts.push_back(RollupSelect(tier, Local(n, "records"),
                                 " WHERE (" + edges + ")" + FilterWhere(spec.filters)));
  std::string from;
  for (const std::string& p : parts) from += (from.empty() ? "" : " UNION ALL ") + p;

  auto [keys, group] = KeysAndGroup(spec, "toInt64(toUInt32(minute)) * 1000000");
  std::string measures;
  for (std::string_view m : kMeasures) {
    std::string c(m), cnt = "n_" + c, q = "q_" + c;
    measures += ", countIfMerge(" + c + "_n) AS " + cnt + ", sumMerge(" + c + "_sum) / " + cnt +
                ", quantilesTDigestIfMerge(0.5, 0.9, 0.99)(" + c + "_q) AS " + q + ", " + q +
                "[1], " + q + "[2], " + q + "[3], sumMerge(" + c + "_est)";
  }
  return {"SELECT " + keys + "countMerge(samples) AS n_samples, sumMerge(est_requests)" + measures +
              ", sumMerge(db_us) / n_samples, sumMerge(db_calls) / n_samples,"
              " sumMerge(cache_us) / n_samples, sumMerge(cache_calls) / n_samples FROM (" +
              from + ") GROUP BY " + group + " HAVING n_samples > 0 FORMAT TabSeparated",
          true};
}

}  // namespace

QueryPlan QuerySql(const SchemaNames& n, const QuerySpec& spec, int64_t hours_from_us) {
  const int64_t lo = CeilMinute(spec.from_us), hi = FloorMinute(spec.to_us);
  if (!RollupsServe(spec) || lo >= hi) return RawQuery(n, spec);
  auto placed = [](const DimensionRef& d) {
    return d.dim == Dimension::kHost || d.dim == Dimension::kCluster || d.dim == Dimension::kRegion;
  };
  const bool fine = std::any_of(spec.group_by.begin(), spec.group_by.end(), placed) ||
                    std::any_of(spec.filters.begin(), spec.filters.end(),
                                [&](const Filter& f) { return placed(f.dim); });
  // Hour rows fit a bucket only when the bucket is whole hours (or none).
  const int64_t step = BucketSeconds(spec.bucket);
  int64_t hour_lo = 0, hour_hi = 0;
  if (step % 3600 == 0) {
    hour_lo = std::max(CeilHour(lo), CeilHour(hours_from_us));
    hour_hi = FloorHour(hi);
  }
  return RollupQuery(n, spec, fine ? kFineTier : kCoarseTier,
                     fine ? kFineHourTier : kCoarseHourTier, lo, hi, hour_lo, hour_hi);
}

std::string HourRollupsFromSql(const SchemaNames& n) {
  return "SELECT min(version), toUInt32(minIf(applied, version >= 3)) FROM " +
         Local(n, "schema_version") + " FORMAT TabSeparated";
}

int64_t HourRollupsFrom(uint64_t lowest_version, uint64_t v3_applied_s) {
  if (lowest_version >= 3) return 0;
  // The view was created before version 3's row was inserted: the records of
  // the hours after that row were all inserted after the view (but for ones
  // stamped in the future by their sender's clock).
  return CeilHour(static_cast<int64_t>(v3_applied_s) * 1'000'000);
}

namespace {

std::string IdList(const std::vector<std::pair<std::string, uint64_t>>& ids) {
  std::string list;
  for (const auto& [sender, sequence] : ids)
    list += (list.empty() ? "(" : ", (") + Quote(sender) + ", " + std::to_string(sequence) + ")";
  return list;
}

}  // namespace

std::string BatchIdsSql(const SchemaNames& n,
                        const std::vector<std::pair<std::string, uint64_t>>& ids) {
  return "SELECT sender, sequence, max(state) FROM " + Local(n, "batches_local") +
         " WHERE (sender, sequence) IN (" + IdList(ids) +
         ") GROUP BY sender, sequence FORMAT TabSeparated";
}

std::string StoredRowsSql(const SchemaNames& n, std::string_view table,
                          const std::vector<std::pair<std::string, uint64_t>>& ids) {
  const bool records = table == "records_local";
  const std::string sender = records ? "sender" : "batch_sender";
  const std::string sequence = records ? "sequence" : "batch_sequence";
  return "SELECT " + sender + ", " + sequence + ", count() FROM " + Local(n, table) + " WHERE (" +
         sender + ", " + sequence + ") IN (" + IdList(ids) + ") GROUP BY " + sender + ", " +
         sequence + " FORMAT TabSeparated";
}

std::string DeploysSql(const SchemaNames& n, const std::string& service) {
  return "SELECT service, cluster, commit, minMerge(first_us) AS first, maxMerge(last_us),"
         " countMerge(samples) FROM " +
         Local(n, "rollup_minute") + (service.empty() ? "" : " WHERE service = " + Quote(service)) +
         " GROUP BY service, cluster, commit ORDER BY first DESC, service, cluster, commit"
         " FORMAT TabSeparated";
}

std::string SamplesSql(const SchemaNames& n, const SampleQuery& q, size_t limit) {
  std::string where = TimeWhere(q.from_us, q.to_us);
  if (q.service) where += " AND service = " + Quote(*q.service);
  if (q.endpoint) where += " AND endpoint = " + Quote(*q.endpoint);
  return "SELECT service, endpoint, method, status, host, cluster, region, commit, flag_names,"
         " flag_values, start_us, isNotNull(instructions), ifNull(instructions, 0), cpu_ns,"
         " sample_rate FROM " +
         Local(n, "records") + " WHERE " + where + " ORDER BY start_us LIMIT " +
         std::to_string(limit) + " FORMAT TabSeparated";
}

std::string FunctionCodesSql(const SchemaNames& n, const FunctionCodesQuery& q) {
  return "SELECT function, argMax(code_hash, seen_us) FROM " + Local(n, "function_codes") +
         " WHERE service = " + Quote(q.service) + " AND commit = " + Quote(q.commit) +
         " GROUP BY function ORDER BY function FORMAT TabSeparated";
}

std::string EffectHistorySql(const SchemaNames& n, const EffectHistoryQuery& q) {
  return "SELECT max(at_us) AS at, cause, argMax(estimate, at_us), argMax(lo, at_us),"
         " argMax(hi, at_us), argMax(alerted, at_us) FROM " +
         Local(n, "effects") + " WHERE service = " + Quote(q.service) +
         " AND endpoint = " + Quote(q.endpoint) + " AND function = " + Quote(q.function) +
         " AND kind = " + Quote(q.kind) + " GROUP BY cause HAVING at < " +
         std::to_string(q.before_us) + " ORDER BY at DESC, cause LIMIT " + std::to_string(q.limit) +
         " FORMAT TabSeparated";
}

namespace {

constexpr int64_t kMaxDateTimeS = 4'000'000'000LL;  // 2096, as kMaxMinuteUs

// SecondsWhere() — `column` (a DateTime) in [lo_s, hi_s), with the days
// around it so that ClickHouse reads only the partitions in range.
std::string SecondsWhere(std::string_view column, int64_t lo_s, int64_t hi_s) {
  std::string c(column), w = "1";
  if (hi_s <= 0 || lo_s >= kMaxDateTimeS) return "0";  // nothing is kept there
  if (lo_s > 0)
    w = c + " >= toDateTime(" + std::to_string(lo_s) + ") AND day >= toDate(" +
        DateLiteral(lo_s * 1'000'000) + ")";
  if (hi_s < kMaxDateTimeS)
    w += " AND " + c + " < toDateTime(" + std::to_string(hi_s) + ") AND day <= toDate(" +
         DateLiteral(hi_s * 1'000'000) + ")";
  return w;
}

// ProfileWhere() — the rows of `kind` in `slice`.
std::string ProfileWhere(const ProfileSlice& slice, ProfileKind kind) {
  const auto [lo, hi] = HourBuckets(slice.from_us, slice.to_us);
  std::string w = " WHERE kind = " + std::to_string(static_cast<int>(kind)) + " AND " +
                  SecondsWhere("hour", lo, hi) + " AND flag = " + Quote(slice.flag);
  if (slice.flag_value) w += " AND flag_value = " + Quote(*slice.flag_value);
  if (slice.service) w += " AND service = " + Quote(*slice.service);
  if (slice.endpoint) w += " AND endpoint = " + Quote(*slice.endpoint);
  if (slice.commit) w += " AND commit = " + Quote(*slice.commit);
  if (slice.unit) w += " AND unit = " + Quote(*slice.unit);
  return w;
}

// kTallyMinute — a tally's minute column floored to its minute (unix s), as
// SQLite keeps it.
constexpr std::string_view kTallyMinute = "intDiv(toUInt32(minute), 60) * 60";

std::string TallyWhere(const std::string& service, int64_t lo_s, int64_t hi_s) {
  std::string w = " WHERE " + std::string(kTallyMinute) + " >= " + std::to_string(lo_s) + " AND " +
                  std::string(kTallyMinute) + " < " + std::to_string(hi_s);
  if (!service.empty()) w += " AND service = " + Quote(service);
  return w;
}

}  // namespace

std::string ProfileUnitsSql(const SchemaNames& n, const ProfileSlice& slice) {
  return "SELECT unit, sum(requests) FROM " + Local(n, "profile_sums") +
         ProfileWhere(slice, ProfileKind::kRequests) +
         " GROUP BY unit ORDER BY unit FORMAT TabSeparated";
}

std::string ProfilePathsSql(const SchemaNames& n, const ProfileSlice& slice, size_t limit) {
  return "SELECT id, any(parent), any(function), sum(calls), sum(primitive_calls),"
         " sum(self_cost), sum(total_cost) FROM " +
         Local(n, "profile_sums") + ProfileWhere(slice, ProfileKind::kPath) +
         " GROUP BY id LIMIT " + std::to_string(limit) + " FORMAT TabSeparated";
}

std::string MomentRequestsSql(const SchemaNames& n, const ProfileSlice& slice) {
  return "SELECT service, endpoint, commit, unit, flag_value, sum(requests) FROM " +
         Local(n, "profile_sums") + ProfileWhere(slice, ProfileKind::kRequests) +
         " GROUP BY service, endpoint, commit, unit, flag_value FORMAT TabSeparated";
}

std::string MomentsSql(const SchemaNames& n, const ProfileSlice& slice) {
  return "SELECT service, endpoint, commit, unit, flag_value, function, sum(sum), sum(sum_sq),"
         " sum(share_sum), sum(share_sq) FROM " +
         Local(n, "profile_sums") + ProfileWhere(slice, ProfileKind::kMoment) +
         " GROUP BY service, endpoint, commit, unit, flag_value, function"
         " ORDER BY service, endpoint, commit, unit, flag_value, function FORMAT TabSeparated";
}

std::string EfficiencySamplesSql(const SchemaNames& n, const std::string& service, int64_t lo_s,
                                 int64_t hi_s) {
  return "SELECT service, toUInt32(minute) AS m, endpoint, sum(samples), sum(instr_n),"
         " sum(weight), sum(instr_weight), sum(instr_wsum), sum(cpu_ns_wsum) FROM " +
         Local(n, "efficiency_minute") + " WHERE " + SecondsWhere("minute", lo_s, hi_s) +
         (service.empty() ? "" : " AND service = " + Quote(service)) +
         " GROUP BY service, m, endpoint FORMAT TabSeparated";
}

std::string TallyRequestsSql(const SchemaNames& n, const std::string& service, int64_t lo_s,
                             int64_t hi_s) {
  return "SELECT service, " + std::string(kTallyMinute) + " AS m, endpoint, sum(requests) FROM " +
         Local(n, "tallies") + TallyWhere(service, lo_s, hi_s) +
         " GROUP BY service, m, endpoint FORMAT TabSeparated";
}

std::string TallyServicesSql(const SchemaNames& n, const std::string& service, int64_t lo_s,
                             int64_t hi_s) {
  return "SELECT DISTINCT service FROM " + Local(n, "tally_users") +
         TallyWhere(service, lo_s, hi_s) + " FORMAT TabSeparated";
}

std::string TallySketchesSql(const SchemaNames& n, const std::string& service, int64_t minute_s) {
  return "SELECT hex(hll), hll_precision FROM " + Local(n, "tally_users") +
         TallyWhere(service, minute_s, minute_s + 60) + " AND hll != '' FORMAT TabSeparated";
}

std::string DistinctUsersSql(const SchemaNames& n, const std::string& service, int64_t minute_s) {
  return "SELECT uniqExact(user) FROM " + Local(n, "records") + " WHERE " +
         TimeWhere(minute_s * 1'000'000, (minute_s + 60) * 1'000'000) +
         " AND service = " + Quote(service) + " AND user != '' FORMAT TabSeparated";
}

std::string PartitionsSql(const SchemaNames& n, std::string_view table) {
  return "SELECT partition, sum(rows) FROM system.parts WHERE active AND database = " +
         Quote(n.database) + " AND table = " + Quote(table) +
         " GROUP BY partition ORDER BY partition FORMAT TabSeparated";
}

std::string DropPartitionSql(const SchemaNames& n, std::string_view table,
                             std::string_view partition) {
  return "ALTER TABLE " + Local(n, table) + " DROP PARTITION " + Quote(partition);
}

}  // namespace cpuledger::store::clickhouse
