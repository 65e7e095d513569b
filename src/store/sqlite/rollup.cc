#include "store/sqlite/rollup.h"

#include <cmath>
#include <cstring>

#include "counters/counters.h"

namespace cpuledger::store::sqlite {
namespace {

// The value columns after (bucket, series), in bind and read order.
constexpr const char* kValueColumns[] = {"samples",  "sums",     "h_instr",
                                         "h_cycles", "h_cpu_ns", "h_wall_us"};
constexpr int kNumValueColumns = sizeof(kValueColumns) / sizeof(kValueColumns[0]);
constexpr int kNumHistograms = 4;  // the last four columns
constexpr uint8_t kSumsVersion = 1;

std::string ColumnList(bool histograms) {
  std::string out = "bucket, series";
  const int n = histograms ? kNumValueColumns : kNumValueColumns - kNumHistograms;
  for (int i = 0; i < n; ++i) out.append(", ").append(kValueColumns[i]);
  return out;
}

void AppendSum(std::string* out, double v) {
  constexpr double kIntegralLimit = 4611686018427387904.0;  // 2^62
  if (v >= 0 && v < kIntegralLimit && v == std::floor(v)) {
    AppendVarint(out, static_cast<uint64_t>(v) << 1);
    return;
  }
  AppendVarint(out, 1);
  char raw[8];
  std::memcpy(raw, &v, 8);
  out->append(raw, 8);
}

bool ReadSum(const char** p, const char* end, double* v) {
  uint64_t tag = 0;
  if (!ReadVarint(p, end, &tag)) return false;
  if ((tag & 1) == 0) {
    *v = static_cast<double>(tag >> 1);
    return true;
  }
  if (tag != 1 || end - *p < 8) return false;
  std::memcpy(v, *p, 8);
  *p += 8;
  return true;
}

// cpuledger_sums_add(a, b) — the sums blob of the two rows added.
void SumsAddFunction(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  RollupAcc acc;
  for (int i = 0; i < argc; ++i) {
    const auto* p = static_cast<const char*>(sqlite3_value_blob(argv[i]));
    const int n = sqlite3_value_bytes(argv[i]);
    if (Status s = AddSums(std::string_view(p, static_cast<size_t>(n)), &acc); !s.ok()) {
      sqlite3_result_error(ctx, s.message().c_str(), -1);
      return;
    }
  }
  std::string blob;
  EncodeSums(acc, &blob);
  sqlite3_result_blob64(ctx, blob.data(), blob.size(), SQLITE_TRANSIENT);
}

void BindHistogram(StmtUse& use, int param, const LogHistogram& h, std::string* blob) {
  if (h.empty()) {
    use.BindNull(param);
    return;
  }
  blob->clear();
  h.AppendEncoded(blob);
  use.BindBlob(param, *blob);
}

Status ReadHistogram(const StmtUse& use, int col, LogHistogram* h) {
  if (use.IsNull(col)) return OkStatus();
  Status s = h->MergeEncoded(use.Blob(col));
  if (!s.ok()) return IoError("corrupt rollup row: " + s.message());
  return OkStatus();
}

// cpuledger_hist_merge(a, b) — the blob of the merged histogram; NULL is empty.
void HistMergeFunction(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  LogHistogram h;
  for (int i = 0; i < argc; ++i) {
    if (sqlite3_value_type(argv[i]) == SQLITE_NULL) continue;
    const auto* p = static_cast<const char*>(sqlite3_value_blob(argv[i]));
    const int n = sqlite3_value_bytes(argv[i]);
    if (Status s = h.MergeEncoded(std::string_view(p, static_cast<size_t>(n))); !s.ok()) {
      sqlite3_result_error(ctx, s.message().c_str(), -1);
      return;
    }
  }
  if (h.empty()) {
    sqlite3_result_null(ctx);
    return;
  }
  std::string blob = h.Encode();
  sqlite3_result_blob64(ctx, blob.data(), blob.size(), SQLITE_TRANSIENT);
}

}  // namespace

uint8_t CounterSourceCode(std::string_view source) { return counters::SourceCode(source); }

StoredRecord StoredFromRecord(const record::RequestRecord& r, int64_t series) {
  StoredRecord s;
  s.start_us = r.start_time_unix_us();
  s.series = series;
  s.wall_us = r.wall_us();
  const record::CpuBill& cpu = r.cpu();
  s.has_instructions = cpu.has_instructions();
  s.instructions = cpu.instructions();
  s.has_cycles = cpu.has_cycles();
  s.cycles = cpu.cycles();
  s.cpu_ns = cpu.cpu_ns();
  s.counter_source = CounterSourceCode(cpu.counter_source());
  s.db_us = r.db().wall_us();
  s.db_calls = r.db().calls();
  s.cache_us = r.cache().wall_us();
  s.cache_calls = r.cache().calls();
  s.sample_rate = r.sample_rate();
  s.user = r.user();
  s.request_id = r.request_id();
  return s;
}

void RollupAcc::Add(const StoredRecord& s, bool histograms) {
  const double w = 1.0 / s.sample_rate;
  samples += 1;
  weight += w;
  if (s.has_instructions) {
    const double v = static_cast<double>(s.instructions);
    instr_n += 1;
    instr_sum += v;
    instr_wsum += v * w;
    instr_weight += w;
    if (histograms) h_instr.Add(s.instructions);
  }
  if (s.has_cycles) {
    const double v = static_cast<double>(s.cycles);
    cycles_n += 1;
    cycles_sum += v;
    cycles_wsum += v * w;
    if (histograms) h_cycles.Add(s.cycles);
  }
  const double cpu = static_cast<double>(s.cpu_ns);
  cpu_ns_sum += cpu;
  cpu_ns_wsum += cpu * w;
  const double wall = static_cast<double>(s.wall_us);
  wall_us_sum += wall;
  wall_us_wsum += wall * w;
  db_us_sum += static_cast<double>(s.db_us);
  db_calls_sum += static_cast<double>(s.db_calls);
  cache_us_sum += static_cast<double>(s.cache_us);
  cache_calls_sum += static_cast<double>(s.cache_calls);
  if (histograms) {
    h_cpu_ns.Add(s.cpu_ns);
    h_wall_us.Add(s.wall_us);
  }
}

void RollupAcc::Merge(const RollupAcc& o) {
  samples += o.samples;
  weight += o.weight;
  instr_n += o.instr_n;
  instr_sum += o.instr_sum;
  instr_wsum += o.instr_wsum;
  instr_weight += o.instr_weight;
  cycles_n += o.cycles_n;
  cycles_sum += o.cycles_sum;
  cycles_wsum += o.cycles_wsum;
  cpu_ns_sum += o.cpu_ns_sum;
  cpu_ns_wsum += o.cpu_ns_wsum;
  wall_us_sum += o.wall_us_sum;
  wall_us_wsum += o.wall_us_wsum;
  db_us_sum += o.db_us_sum;
  db_calls_sum += o.db_calls_sum;
  cache_us_sum += o.cache_us_sum;
  cache_calls_sum += o.cache_calls_sum;
  h_instr.Merge(o.h_instr);
  h_cycles.Merge(o.h_cycles);
  h_cpu_ns.Merge(o.h_cpu_ns);
  h_wall_us.Merge(o.h_wall_us);
}

int64_t TierSeconds(Tier t) {
  switch (BaseTier(t)) {
    case Tier::kMinute:
      return 60;
    case Tier::kHour:
      return 3600;
    default:
      return 86400;
  }
}

const char* TierTable(Tier t) {
  switch (t) {
    case Tier::kMinute:
      return "rollup_minute";
    case Tier::kHour:
      return "rollup_hour";
    case Tier::kDay:
      return "rollup_day";
    case Tier::kHourCoarse:
      return "rollup_hour_coarse";
    case Tier::kDayCoarse:
      return "rollup_day_coarse";
  }
  return "rollup_minute";
}

const char* TierWatermarkKey(Tier t) {
  switch (BaseTier(t)) {
    case Tier::kMinute:
      return "sealed_minute";
    case Tier::kHour:
      return "sealed_hour";
    default:
      return "sealed_day";
  }
}

Tier BaseTier(Tier t) {
  if (t == Tier::kHourCoarse) return Tier::kHour;
  if (t == Tier::kDayCoarse) return Tier::kDay;
  return t;
}

Tier CoarseTier(Tier t) { return t == Tier::kHour ? Tier::kHourCoarse : Tier::kDayCoarse; }

std::string InsertSql(Tier t) {
  std::string sql =
      std::string("INSERT INTO ") + TierTable(t) + " (" + ColumnList(true) + ") VALUES (?1, ?2";
  for (int i = 0; i < kNumValueColumns; ++i) sql += ", ?" + std::to_string(i + 3);
  return sql + ")";
}

std::string MergeSql(Tier t) {
  return InsertSql(t) +
         " ON CONFLICT (bucket, series) DO UPDATE SET samples = samples + excluded.samples,"
         " sums = cpuledger_sums_add(sums, excluded.sums),"
         " h_instr = cpuledger_hist_merge(h_instr, excluded.h_instr),"
         " h_cycles = cpuledger_hist_merge(h_cycles, excluded.h_cycles),"
         " h_cpu_ns = cpuledger_hist_merge(h_cpu_ns, excluded.h_cpu_ns),"
         " h_wall_us = cpuledger_hist_merge(h_wall_us, excluded.h_wall_us)";
}

std::string ExistsSql(Tier t) {
  return std::string("SELECT 1 FROM ") + TierTable(t) + " WHERE bucket = ?1 AND series = ?2";
}

std::string SelectSql(Tier t, bool histograms) {
  return "SELECT " + ColumnList(histograms) + " FROM " + TierTable(t) +
         " WHERE bucket >= ?1 AND bucket < ?2";
}

void EncodeSums(const RollupAcc& a, std::string* out) {
  out->push_back(static_cast<char>(kSumsVersion));
  AppendVarint(out, a.instr_n);
  AppendVarint(out, a.cycles_n);
  for (double v : {a.weight, a.instr_sum, a.instr_wsum, a.instr_weight, a.cycles_sum, a.cycles_wsum,
                   a.cpu_ns_sum, a.cpu_ns_wsum, a.wall_us_sum, a.wall_us_wsum, a.db_us_sum,
                   a.db_calls_sum, a.cache_us_sum, a.cache_calls_sum})
    AppendSum(out, v);
}

Status AddSums(std::string_view blob, RollupAcc* into) {
  const char* p = blob.data();
  const char* end = p + blob.size();
  if (p == end || static_cast<uint8_t>(*p) != kSumsVersion)
    return IoError("corrupt rollup row: unknown sums version");
  ++p;
  uint64_t instr_n = 0, cycles_n = 0;
  double v[14];
  bool ok = ReadVarint(&p, end, &instr_n) && ReadVarint(&p, end, &cycles_n);
  for (double& x : v) ok = ok && ReadSum(&p, end, &x);
  if (!ok || p != end) return IoError("corrupt rollup row: bad sums blob");
  RollupAcc& a = *into;
  a.instr_n += instr_n;
  a.cycles_n += cycles_n;
  a.weight += v[0];
  a.instr_sum += v[1];
  a.instr_wsum += v[2];
  a.instr_weight += v[3];
  a.cycles_sum += v[4];
  a.cycles_wsum += v[5];
  a.cpu_ns_sum += v[6];
  a.cpu_ns_wsum += v[7];
  a.wall_us_sum += v[8];
  a.wall_us_wsum += v[9];
  a.db_us_sum += v[10];
  a.db_calls_sum += v[11];
  a.cache_us_sum += v[12];
  a.cache_calls_sum += v[13];
  return OkStatus();
}

void BindRollup(StmtUse& use, const RollupAcc& a, RollupBlobs* blobs) {
  use.Bind(3, static_cast<int64_t>(a.samples));
  blobs->sums.clear();
  EncodeSums(a, &blobs->sums);
  use.BindBlob(4, blobs->sums);
  BindHistogram(use, 5, a.h_instr, &blobs->instr);
  BindHistogram(use, 6, a.h_cycles, &blobs->cycles);
  BindHistogram(use, 7, a.h_cpu_ns, &blobs->cpu_ns);
  BindHistogram(use, 8, a.h_wall_us, &blobs->wall_us);
}

Status ReadRollup(const StmtUse& use, bool histograms, RollupAcc* into) {
  into->samples += static_cast<uint64_t>(use.Int64(2));
  if (Status s = AddSums(use.Blob(3), into); !s.ok()) return s;
  if (!histograms) return OkStatus();
  if (Status s = ReadHistogram(use, 4, &into->h_instr); !s.ok()) return s;
  if (Status s = ReadHistogram(use, 5, &into->h_cycles); !s.ok()) return s;
  if (Status s = ReadHistogram(use, 6, &into->h_cpu_ns); !s.ok()) return s;
  return ReadHistogram(use, 7, &into->h_wall_us);
}

Status RegisterSqlFunctions(Db& db) {
  int rc = sqlite3_create_function_v2(db.get(), "cpuledger_hist_merge", 2,
                                      SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                                      HistMergeFunction, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db.get(), rc, "register cpuledger_hist_merge");
  rc = sqlite3_create_function_v2(db.get(), "cpuledger_sums_add", 2,
                                  SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, SumsAddFunction,
                                  nullptr, nullptr, nullptr);
  return SqliteStatus(db.get(), rc, "register cpuledger_sums_add");
}

}  // namespace cpuledger::store::sqlite
