// tests/cpp/store/sqlite_store_test.cc — the SQLite store on real files.
//
// Most tests generate records with a seeded RNG, append them, and compare
// every query answer with a brute-force computation over the same records
// done here, independently of the store (exact nearest-rank quantiles from
// sorted values; sums in long double).
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <unistd.h>
#include "temp_dir.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "record/hll.h"
#include "store/histogram.h"
#include "store/sqlite/raw_chunk.h"
#include "store/sqlite/reader.h"
#include "store/sqlite/schema.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace cpuledger::store {
namespace {

using record::Batch;
using record::RequestRecord;
using record::WorkerTally;

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kT0 = 1704067200;  // 2024-01-01T00:00:00Z, unix seconds
constexpr int64_t kT0Us = kT0 * kUs;
constexpr int64_t kHourUs = 3600 * kUs;
constexpr int64_t kDayUs = 86400 * kUs;

// ---- fixtures ----

using cpuledger::test_support::TempDir;

std::unique_ptr<Store> Open(const SqliteOptions& options) {
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

// RecordGen — realistic-ish records: 2 services x 4 endpoints, 4 hosts (one
// without a PMU, so its records lack instructions and cycles), 2 commits,
// two flags (one not always present), per-endpoint sample rates, skewed costs.
class RecordGen {
 public:
  explicit RecordGen(uint64_t seed) : rng_(seed) {}

  RequestRecord Make(int64_t start_us) {
    RequestRecord r;
    const int s = Pick(2);
    const int e = Pick(4);
    const int h = Pick(4);
    r.set_start_time_unix_us(start_us);
    r.set_service(s == 0 ? "shop" : "api");
    r.set_endpoint((s == 0 ? "/shop/" : "/api/") + std::to_string(e));
    r.set_method(e % 2 == 0 ? "GET" : "POST");
    const int st = Pick(20);
    r.set_status(st < 17 ? 200 : st < 19 ? 404 : 500);
    r.set_host("h" + std::to_string(h));
    r.set_cluster(h < 2 ? "c1" : "c2");
    r.set_region("eu");
    r.set_commit(start_us < kT0Us + kDayUs + 12 * kHourUs ? "aaa111" : "bbb222");
    (*r.mutable_flags())["new_ui"] = Pick(3) == 0 ? "on" : "off";
    if (Pick(2) == 0) (*r.mutable_flags())["exp"] = Pick(2) == 0 ? "a" : "b";
    r.set_user(Pick(10) == 0 ? "" : "u" + std::to_string(Pick(60)));
    static constexpr double kRates[] = {1.0, 0.5, 0.1, 0.01};
    r.set_sample_rate(kRates[(s + e) % 4]);
    r.set_request_id("req-" + std::to_string(next_id_++));
    const double scale = (e + 1) * (s + 1);
    std::lognormal_distribution<double> cost(std::log(2e6 * scale), 0.7);
    const uint64_t instructions = static_cast<uint64_t>(cost(rng_));
    r.mutable_cpu()->set_cpu_ns(instructions / 3 + Pick(1000));
    if (h != 3) {
      r.mutable_cpu()->set_instructions(instructions);
      r.mutable_cpu()->set_cycles(instructions * 2 / 3 + Pick(5000));
      r.mutable_cpu()->set_counter_source("hardware");
    } else {
      r.mutable_cpu()->set_counter_source("thread_cputime");
    }
    r.set_wall_us(instructions / 1000 + Pick(20000));
    if (Pick(3) != 0) {
      r.mutable_db()->set_wall_us(Pick(5000));
      r.mutable_db()->set_calls(static_cast<uint32_t>(Pick(8)));
    }
    if (Pick(2) == 0) {
      r.mutable_cache()->set_wall_us(Pick(700));
      r.mutable_cache()->set_calls(static_cast<uint32_t>(Pick(4)));
    }
    return r;
  }

  // Records at random times in [from_us, to_us), sorted by time.
  std::vector<RequestRecord> MakeSorted(size_t n, int64_t from_us, int64_t to_us) {
    std::vector<int64_t> times(n);
    std::uniform_int_distribution<int64_t> t(from_us, to_us - 1);
    for (int64_t& x : times) x = t(rng_);
    std::sort(times.begin(), times.end());
    std::vector<RequestRecord> out;
    for (int64_t x : times) out.push_back(Make(x));
    return out;
  }

  uint64_t Pick(uint64_t n) { return rng_() % n; }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
  uint64_t next_id_ = 0;
};

// Appends `records` in batches of `per_batch`, `batches_per_call` batches a call.
void AppendAll(Store& store, const std::vector<RequestRecord>& records, size_t per_batch = 50,
               size_t batches_per_call = 2, const std::string& sender = "",
               uint64_t* sequence = nullptr) {
  std::vector<Batch> batches;
  for (size_t i = 0; i < records.size(); i += per_batch) {
    Batch b;
    for (size_t j = i; j < std::min(records.size(), i + per_batch); ++j)
      *b.add_records() = records[j];
    if (!sender.empty()) {
      b.set_sender(sender);
      b.set_sequence((*sequence)++);
    }
    batches.push_back(std::move(b));
  }
  for (size_t i = 0; i < batches.size(); i += batches_per_call) {
    std::vector<const Batch*> call;
    for (size_t j = i; j < std::min(batches.size(), i + batches_per_call); ++j)
      call.push_back(&batches[j]);
    Result<std::vector<AppendOutcome>> out = store.AppendBatches(call);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    for (const AppendOutcome& o : *out) EXPECT_FALSE(o.duplicate);
  }
}

// ---- brute force ----

std::string KeyOf(const RequestRecord& r, const DimensionRef& d) {
  switch (d.dim) {
    case Dimension::kService:
      return r.service();
    case Dimension::kEndpoint:
      return r.endpoint();
    case Dimension::kMethod:
      return r.method();
    case Dimension::kStatus:
      return std::to_string(r.status());
    case Dimension::kHost:
      return r.host();
    case Dimension::kCluster:
      return r.cluster();
    case Dimension::kRegion:
      return r.region();
    case Dimension::kCommit:
      return r.commit();
    case Dimension::kFlag: {
      auto it = r.flags().find(d.flag);
      return it == r.flags().end() ? "" : it->second;
    }
    case Dimension::kUser:
      return r.user();
  }
  return "?";
}

bool Selected(const RequestRecord& r, const QuerySpec& spec) {
  if (r.start_time_unix_us() < spec.from_us || r.start_time_unix_us() >= spec.to_us) return false;
  // Same dimension: OR; different dimensions: AND.
  std::map<std::string, bool> any_match;
  for (const Filter& f : spec.filters) {
    bool& m = any_match[DimensionName(f.dim)];
    m = m || KeyOf(r, f.dim) == f.value;
  }
  for (const auto& [dim, m] : any_match)
    if (!m) return false;
  return true;
}

struct MeasureRef {
  std::vector<uint64_t> values;
  long double sum = 0, wsum = 0;
};

struct GroupRef {
  uint64_t samples = 0;
  long double est_requests = 0;
  MeasureRef instr, cycles, cpu, wall;
  long double db_us = 0, db_calls = 0, cache_us = 0, cache_calls = 0;
};

using GroupKey = std::pair<std::vector<std::string>, int64_t>;  // keys, bucket start

std::map<GroupKey, GroupRef> BruteForce(const std::vector<RequestRecord>& records,
                                        const QuerySpec& spec) {
  std::map<GroupKey, GroupRef> out;
  const int64_t bucket_us = BucketSeconds(spec.bucket) * kUs;
  for (const RequestRecord& r : records) {
    if (!Selected(r, spec)) continue;
    GroupKey key;
    for (const DimensionRef& d : spec.group_by) key.first.push_back(KeyOf(r, d));
    key.second = bucket_us == 0 ? 0 : r.start_time_unix_us() / bucket_us * bucket_us;
    GroupRef& g = out[key];
    const long double w = 1.0L / r.sample_rate();
    g.samples += 1;
    g.est_requests += w;
    auto add = [&](MeasureRef& m, uint64_t v) {
      m.values.push_back(v);
      m.sum += v;
      m.wsum += v * w;
    };
    if (r.cpu().has_instructions()) add(g.instr, r.cpu().instructions());
    if (r.cpu().has_cycles()) add(g.cycles, r.cpu().cycles());
    add(g.cpu, r.cpu().cpu_ns());
    add(g.wall, r.wall_us());
    g.db_us += r.db().wall_us();
    g.db_calls += r.db().calls();
    g.cache_us += r.cache().wall_us();
    g.cache_calls += r.cache().calls();
  }
  return out;
}

double NearestRank(std::vector<uint64_t> v, double q) {
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]);
}

void ExpectRel(double actual, long double expected, double rel, const std::string& what) {
  const long double tol = rel * std::max<long double>(std::fabs(expected), 1e-9L);
  EXPECT_LE(std::fabs(actual - expected), tol)
      << what << ": got " << actual << ", want " << static_cast<double>(expected);
}

void ExpectDistribution(const Distribution& d, const MeasureRef& m, const std::string& what) {
  ASSERT_EQ(d.n, m.values.size()) << what;
  if (m.values.empty()) {
    EXPECT_TRUE(std::isnan(d.mean)) << what;
    EXPECT_TRUE(std::isnan(d.p50)) << what;
    EXPECT_TRUE(std::isnan(d.est_total)) << what;
    return;
  }
  const double n = static_cast<double>(m.values.size());
  ExpectRel(d.mean, m.sum / n, 1e-9, what + " mean");
  ExpectRel(d.est_total, m.wsum, 1e-9, what + " est_total");
  // The histogram's bound, 0.99%, against the exact nearest-rank quantile.
  const double q_tol = LogHistogram::kRelativeError + 1e-9;
  ExpectRel(d.p50, NearestRank(m.values, 0.50), q_tol, what + " p50");
  ExpectRel(d.p90, NearestRank(m.values, 0.90), q_tol, what + " p90");
  ExpectRel(d.p99, NearestRank(m.values, 0.99), q_tol, what + " p99");
}

std::string Describe(const GroupKey& k) {
  std::string s = "[";
  for (const std::string& x : k.first) s += x + ",";
  return s + "] @" + std::to_string(k.second);
}

// ExpectMatches() — every row of `result` equals the brute force, and no group is missing.
void ExpectMatches(const QueryResult& result, const std::vector<RequestRecord>& records,
                   const QuerySpec& spec) {
  const std::map<GroupKey, GroupRef> want = BruteForce(records, spec);
  ASSERT_FALSE(want.empty()) << "a test query should select something";
  ASSERT_EQ(result.rows.size(), want.size());
  EXPECT_FALSE(result.truncated);
  std::set<GroupKey> seen;
  for (const QueryRow& row : result.rows) {
    const GroupKey key{row.keys, row.bucket_start_us};
    ASSERT_TRUE(seen.insert(key).second) << "duplicate row " << Describe(key);
    auto it = want.find(key);
    ASSERT_NE(it, want.end()) << "unexpected row " << Describe(key);
    const GroupRef& g = it->second;
    const std::string what = Describe(key);
    EXPECT_EQ(row.samples, g.samples) << what;
    ExpectRel(row.est_requests, g.est_requests, 1e-9, what + " est_requests");
    ExpectDistribution(row.instructions, g.instr, what + " instructions");
    ExpectDistribution(row.cycles, g.cycles, what + " cycles");
    ExpectDistribution(row.cpu_ns, g.cpu, what + " cpu_ns");
    ExpectDistribution(row.wall_us, g.wall, what + " wall_us");
    const double n = static_cast<double>(g.samples);
    ExpectRel(row.db_us_mean, g.db_us / n, 1e-9, what + " db_us_mean");
    ExpectRel(row.db_calls_mean, g.db_calls / n, 1e-9, what + " db_calls_mean");
    ExpectRel(row.cache_us_mean, g.cache_us / n, 1e-9, what + " cache_us_mean");
    ExpectRel(row.cache_calls_mean, g.cache_calls / n, 1e-9, what + " cache_calls_mean");
  }
  if (spec.bucket == Bucket::kNone) {
    for (size_t i = 1; i < result.rows.size(); ++i) {
      EXPECT_GE(result.rows[i - 1].cpu_ns.est_total, result.rows[i].cpu_ns.est_total)
          << "rows must be heaviest first";
    }
  }
}

DimensionRef Dim(const std::string& name) {
  Result<DimensionRef> d = ParseDimension(name);
  EXPECT_TRUE(d.ok()) << name;
  return *d;
}

Filter Where(const std::string& dim, const std::string& value) { return Filter{Dim(dim), value}; }

// ---- a shared data set: 3 days of records, some of them late ----

class StoreDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.path = dir_.File("ledger.sqlite");
    store_ = Open(options_);
    ASSERT_NE(store_, nullptr);
    RecordGen gen(42);
    records_ = gen.MakeSorted(3000, kT0Us, kT0Us + 3 * kDayUs);
    AppendAll(*store_, records_);
    // Late arrivals (a replayed spool): random times over the whole range,
    // so they land in sealed days, hours and minutes alike.
    std::vector<RequestRecord> late;
    std::uniform_int_distribution<int64_t> t(kT0Us, kT0Us + 3 * kDayUs - 1);
    for (int i = 0; i < 300; ++i) late.push_back(gen.Make(t(gen.rng())));
    AppendAll(*store_, late, 100, 1);
    records_.insert(records_.end(), late.begin(), late.end());
  }

  QuerySpec Spec(std::vector<std::string> group_by, int64_t from_us = kT0Us,
                 int64_t to_us = kT0Us + 3 * kDayUs) {
    QuerySpec spec;
    for (const std::string& g : group_by) spec.group_by.push_back(Dim(g));
    spec.from_us = from_us;
    spec.to_us = to_us;
    return spec;
  }

  QueryResult Run(const QuerySpec& spec) {
    Result<QueryResult> r = store_->Query(spec);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : QueryResult{};
  }

  TempDir dir_;
  SqliteOptions options_;
  std::unique_ptr<Store> store_;
  std::vector<RequestRecord> records_;
};

TEST_F(StoreDataTest, SealPointsTrailTheNewestSample) {
  auto* sqlite = dynamic_cast<sqlite::SqliteStore*>(store_.get());
  ASSERT_NE(sqlite, nullptr);
  Result<sqlite::TierSealPoints> sealed = sqlite->SealPoints();
  ASSERT_TRUE(sealed.ok());
  int64_t newest = 0;
  for (const RequestRecord& r : records_) newest = std::max(newest, r.start_time_unix_us());
  const int64_t point = newest / kUs - sqlite::kSealLagSeconds;
  EXPECT_EQ((*sealed)[0], point / 60 * 60);
  EXPECT_EQ((*sealed)[1], point / 3600 * 3600);
  EXPECT_EQ((*sealed)[2], point / 86400 * 86400);
}

TEST_F(StoreDataTest, WholeRangeGroupedByEndpointMatchesBruteForce) {
  const QuerySpec spec = Spec({"endpoint"});
  const QueryResult r = Run(spec);
  EXPECT_TRUE(r.used_rollups);
  ExpectMatches(r, records_, spec);
}

TEST_F(StoreDataTest, NoGroupingGivesOneRowForEverything) {
  const QuerySpec spec = Spec({});
  const QueryResult r = Run(spec);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].samples, records_.size());
  ExpectMatches(r, records_, spec);
}

TEST_F(StoreDataTest, RangesCuttingThroughDaysHoursAndMinutesMatchBruteForce) {
  // A range inside one minute, around a sample of day 2 (samples are ~1 a minute).
  int64_t in_minute = 0;
  for (const RequestRecord& r : records_) {
    const int64_t t = r.start_time_unix_us(), m = t / (60 * kUs) * (60 * kUs);
    if (t > kT0Us + 40 * kHourUs && t - m > 10 && t + 10 < m + 60 * kUs) {
      in_minute = t;
      break;
    }
  }
  ASSERT_GT(in_minute, 0);
  const std::vector<std::pair<int64_t, int64_t>> ranges = {
      // mid-minute to mid-minute across a day boundary
      {kT0Us + kDayUs - 2 * kHourUs - 17 * 60 * kUs - 23'456'789,
       kT0Us + 2 * kDayUs + 5 * kHourUs + 41 * 60 * kUs + 7'250'000},
      // inside one hour, ragged both ends
      {kT0Us + 30 * kHourUs + 90 * kUs + 1, kT0Us + 30 * kHourUs + 47 * 60 * kUs + 59 * kUs},
      // inside one minute
      {in_minute - 5, in_minute + 5},
      // exactly whole hours
      {kT0Us + 5 * kHourUs, kT0Us + 29 * kHourUs},
      // into the unsealed end of the data, and an open end
      {kT0Us + 3 * kDayUs - 3 * kHourUs - 123, std::numeric_limits<int64_t>::max()},
      // from the beginning of time
      {0, kT0Us + kDayUs + 1},
  };
  for (const auto& [from, to] : ranges) {
    SCOPED_TRACE("range " + std::to_string(from) + " .. " + std::to_string(to));
    for (const std::vector<std::string>& group :
         std::vector<std::vector<std::string>>{{}, {"endpoint"}, {"service", "status"}}) {
      const QuerySpec spec = Spec(group, from, to);
      const QueryResult r = Run(spec);
      ExpectMatches(r, records_, spec);
    }
  }
  // Ranges that select nothing: empty, inverted, before all data.
  EXPECT_TRUE(Run(Spec({"endpoint"}, in_minute + 1, in_minute + 2)).rows.empty());
  EXPECT_TRUE(Run(Spec({"endpoint"}, kT0Us + kDayUs, kT0Us)).rows.empty());
  EXPECT_TRUE(Run(Spec({}, 0, kT0Us)).rows.empty());
}

TEST_F(StoreDataTest, GroupingByOneTwoThreeDimensionsAndAFlag) {
  for (const std::vector<std::string>& group :
       std::vector<std::vector<std::string>>{{"host"},
                                             {"service", "commit"},
                                             {"cluster", "method", "status"},
                                             {"flag:exp"},
                                             {"flags.new_ui", "endpoint"},
                                             {"region", "flag:exp", "commit"}}) {
    SCOPED_TRACE(group.empty() ? "" : group[0]);
    const QuerySpec spec = Spec(group, kT0Us + 7 * kHourUs + 12345, kT0Us + 2 * kDayUs + 999);
    ExpectMatches(Run(spec), records_, spec);
  }
  // The flag that is not always present has a "" group.
  const QueryResult r = Run(Spec({"flag:exp"}));
  std::set<std::string> values;
  for (const QueryRow& row : r.rows) values.insert(row.keys[0]);
  EXPECT_EQ(values, (std::set<std::string>{"", "a", "b"}));
}

TEST_F(StoreDataTest, FiltersOrWithinADimensionAndAcrossDimensions) {
  std::vector<std::vector<Filter>> cases = {
      {Where("endpoint", "/shop/1"), Where("endpoint", "/api/2")},  // OR
      {Where("service", "shop"), Where("status", "200")},           // AND
      {Where("service", "shop"), Where("status", "404"), Where("status", "500"),
       Where("host", "h3")},  // AND of ORs
      {Where("flag:exp", "a")},
      {Where("flag:exp", "")},  // records without the flag
      {Where("flags.new_ui", "on"), Where("commit", "bbb222")},
  };
  for (const std::vector<Filter>& filters : cases) {
    SCOPED_TRACE(DimensionName(filters[0].dim) + "=" + filters[0].value);
    QuerySpec spec = Spec({"endpoint", "host"}, kT0Us + 3 * kHourUs + 1, kT0Us + 3 * kDayUs - 1);
    spec.filters = filters;
    ExpectMatches(Run(spec), records_, spec);
  }
  // A value nobody has selects nothing, and user text never reaches SQL.
  QuerySpec none = Spec({"endpoint"});
  none.filters = {Where("endpoint", "x' OR 1=1; --")};
  EXPECT_TRUE(Run(none).rows.empty());
}

TEST_F(StoreDataTest, TimeBucketsMinuteHourDay) {
  struct Case {
    Bucket bucket;
    int64_t from, to;
  };
  for (const Case& c : {Case{Bucket::kMinute, kT0Us + 10 * kHourUs + 7 * kUs,
                             kT0Us + 13 * kHourUs + 5 * 60 * kUs + 11 * kUs},
                        Case{Bucket::kHour, kT0Us + 3 * kHourUs + 11 * kUs, kT0Us + 2 * kDayUs + 7},
                        Case{Bucket::kDay, kT0Us + 1234, kT0Us + 3 * kDayUs}}) {
    SCOPED_TRACE(BucketSeconds(c.bucket));
    QuerySpec spec = Spec({"service"}, c.from, c.to);
    spec.bucket = c.bucket;
    spec.limit = 100000;
    const QueryResult r = Run(spec);
    ExpectMatches(r, records_, spec);
    for (size_t i = 1; i < r.rows.size(); ++i)
      EXPECT_LE(r.rows[i - 1].bucket_start_us, r.rows[i].bucket_start_us) << "time order";
  }
}

TEST_F(StoreDataTest, UserDimensionReadsRawSamples) {
  QuerySpec spec = Spec({"user"}, kT0Us + 5 * kHourUs, kT0Us + 2 * kDayUs);
  QueryResult r = Run(spec);
  EXPECT_FALSE(r.used_rollups);
  ExpectMatches(r, records_, spec);

  QuerySpec filtered = Spec({"endpoint"}, kT0Us, kT0Us + 3 * kDayUs);
  filtered.filters = {Where("user", "u7"), Where("user", "u8"), Where("service", "shop")};
  r = Run(filtered);
  EXPECT_FALSE(r.used_rollups);
  ExpectMatches(r, records_, filtered);
}

TEST_F(StoreDataTest, RawBaseAndCoarseRollupPathsGiveTheSameAnswer) {
  // Three ways to the same rows: filtering by every user there is (and the
  // anonymous "") selects every record but forces raw samples; filtering by
  // every host forces the base tiers; no filter lets hours and days come
  // from the coarse (host-less) tiers. Counts and quantiles must agree
  // exactly, sums to rounding.
  std::set<std::string> users, hosts;
  for (const RequestRecord& r : records_) {
    users.insert(r.user());
    hosts.insert(r.host());
  }
  QuerySpec coarse = Spec({"endpoint", "status"}, kT0Us + 2 * kHourUs + 7, kT0Us + 50 * kHourUs);
  QuerySpec base = coarse;
  for (const std::string& h : hosts) base.filters.push_back(Where("host", h));
  QuerySpec raw = coarse;
  for (const std::string& u : users) raw.filters.push_back(Where("user", u));
  const QueryResult a = Run(coarse);
  const QueryResult b = Run(base);
  const QueryResult c = Run(raw);
  EXPECT_TRUE(a.used_rollups);
  EXPECT_TRUE(b.used_rollups);
  EXPECT_FALSE(c.used_rollups);
  ASSERT_EQ(a.rows.size(), b.rows.size());
  ASSERT_EQ(a.rows.size(), c.rows.size());
  for (const QueryResult* other : {&b, &c}) {
    for (size_t i = 0; i < a.rows.size(); ++i) {
      const QueryRow& x = a.rows[i];
      const QueryRow& y = other->rows[i];
      EXPECT_EQ(x.keys, y.keys);
      EXPECT_EQ(x.samples, y.samples);
      EXPECT_EQ(x.instructions.n, y.instructions.n);
      EXPECT_EQ(x.instructions.p50, y.instructions.p50);
      EXPECT_EQ(x.cycles.p90, y.cycles.p90);
      EXPECT_EQ(x.cpu_ns.p99, y.cpu_ns.p99);
      EXPECT_EQ(x.wall_us.p90, y.wall_us.p90);
      ExpectRel(x.cpu_ns.est_total, y.cpu_ns.est_total, 1e-12, "est_total");
      ExpectRel(x.db_us_mean, y.db_us_mean, 1e-12, "db_us_mean");
    }
  }
  ExpectMatches(a, records_, coarse);
}

TEST_F(StoreDataTest, LimitKeepsTheHeaviestAndSaysTruncated) {
  QuerySpec spec = Spec({"endpoint"});
  spec.limit = 3;
  const QueryResult r = Run(spec);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_TRUE(r.truncated);
  // The three heaviest of the full answer, in order.
  spec.limit = 1000;
  const QueryResult all = Run(spec);
  ASSERT_EQ(all.rows.size(), 8u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(r.rows[i].keys, all.rows[i].keys);

  // With buckets: whole groups, heaviest first.
  QuerySpec series = Spec({"service"});
  series.bucket = Bucket::kDay;
  series.limit = 4;  // 2 services x 3 days = 6 rows; only the heaviest service fits
  const QueryResult s = Run(series);
  EXPECT_TRUE(s.truncated);
  ASSERT_EQ(s.rows.size(), 3u);
  const QueryResult totals = Run(Spec({"service"}));
  ASSERT_EQ(totals.rows.size(), 2u);
  for (const QueryRow& row : s.rows) EXPECT_EQ(row.keys[0], totals.rows[0].keys[0]);
  for (size_t i = 1; i < s.rows.size(); ++i)
    EXPECT_LT(s.rows[i - 1].bucket_start_us, s.rows[i].bucket_start_us);
}

TEST_F(StoreDataTest, InvalidFlagDimensionIsRejected) {
  QuerySpec spec = Spec({});
  spec.group_by.push_back(DimensionRef{Dimension::kFlag, ""});
  Result<QueryResult> r = store_->Query(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(StoreDataTest, ReopeningTheFileKeepsEverythingAndAppendsContinue) {
  const QuerySpec spec =
      Spec({"endpoint", "commit"}, kT0Us + 1, std::numeric_limits<int64_t>::max());
  store_.reset();
  store_ = Open(options_);
  ASSERT_NE(store_, nullptr);
  ExpectMatches(Run(spec), records_, spec);
  // Open buckets were rebuilt: new samples in them, and ones that seal them, still add up.
  RecordGen gen(99);
  std::vector<RequestRecord> more =
      gen.MakeSorted(400, kT0Us + 3 * kDayUs - 5 * 60 * kUs, kT0Us + 3 * kDayUs + 2 * kHourUs);
  AppendAll(*store_, more);
  records_.insert(records_.end(), more.begin(), more.end());
  ExpectMatches(Run(spec), records_, spec);
  QuerySpec hours = spec;
  hours.bucket = Bucket::kHour;
  hours.limit = 100000;
  ExpectMatches(Run(hours), records_, hours);
}

TEST_F(StoreDataTest, StatsCountWhatIsStored) {
  Result<StoreStats> stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->raw_samples, records_.size());
  EXPECT_GT(stats->rollup_rows, 1000u);
  EXPECT_EQ(stats->tallies, 0u);
  EXPECT_GT(stats->file_bytes, 100'000u);
  // rollup_rows is exact: it equals the rows of all the tiers.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(options_.path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT (SELECT count(*) FROM rollup_minute) + (SELECT count(*)"
                               " FROM rollup_hour) + (SELECT count(*) FROM rollup_day) +"
                               " (SELECT count(*) FROM rollup_hour_coarse) +"
                               " (SELECT count(*) FROM rollup_day_coarse)",
                               -1, &st, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(static_cast<uint64_t>(sqlite3_column_int64(st, 0)), stats->rollup_rows);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_F(StoreDataTest, RetentionDeletesOldRawSamplesButKeepsRollups) {
  options_.raw_retention_us = kDayUs + 30 * 60 * kUs + 17 * kUs;  // cuts through a minute
  store_.reset();
  store_ = Open(options_);
  ASSERT_NE(store_, nullptr);
  const int64_t now = kT0Us + 3 * kDayUs;
  const int64_t cutoff = now - options_.raw_retention_us;
  uint64_t old = 0;
  for (const RequestRecord& r : records_) old += r.start_time_unix_us() < cutoff ? 1 : 0;
  ASSERT_GT(old, 0u);
  Result<uint64_t> deleted = store_->ApplyRetention(now);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, old);
  EXPECT_EQ(store_->Stats()->raw_samples, records_.size() - old);
  EXPECT_EQ(*store_->ApplyRetention(now), 0u);  // idempotent

  // Raw paths see only what is left...
  std::vector<RequestRecord> kept;
  for (const RequestRecord& r : records_)
    if (r.start_time_unix_us() >= cutoff) kept.push_back(r);
  QuerySpec users = Spec({"user"}, kT0Us, kT0Us + 3 * kDayUs);
  ExpectMatches(Run(users), kept, users);
  // ...rollups still answer for whole sealed hours of the deleted past.
  const QuerySpec hours = Spec({"endpoint"}, kT0Us, kT0Us + kDayUs);
  const QueryResult r = Run(hours);
  EXPECT_TRUE(r.used_rollups);
  ExpectMatches(r, records_, hours);
}

// ---- appends: de-duplication, atomicity ----

class StoreAppendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.path = dir_.File("append.sqlite");
    options_.dedup_window = 3;
    store_ = Open(options_);
    ASSERT_NE(store_, nullptr);
  }

  Batch MakeBatch(const std::string& sender, uint64_t sequence, size_t n, int64_t start_us) {
    Batch b;
    b.set_sender(sender);
    b.set_sequence(sequence);
    for (size_t i = 0; i < n; ++i)
      *b.add_records() = gen_.Make(start_us + static_cast<int64_t>(i) * kUs);
    return b;
  }

  Result<std::vector<AppendOutcome>> Append(std::vector<const Batch*> batches) {
    return store_->AppendBatches(batches);
  }

  uint64_t TotalSamples() {
    QuerySpec spec;
    Result<QueryResult> r = store_->Query(spec);
    EXPECT_TRUE(r.ok());
    return r->rows.empty() ? 0 : r->rows[0].samples;
  }

  TempDir dir_;
  SqliteOptions options_;
  std::unique_ptr<Store> store_;
  RecordGen gen_{5};
};

TEST_F(StoreAppendTest, ReplayedBatchIsCountedOnce) {
  const Batch a = MakeBatch("w1", 1, 10, kT0Us);
  const Batch b = MakeBatch("w1", 2, 5, kT0Us + 60 * kUs);
  Result<std::vector<AppendOutcome>> out = Append({&a, &b});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].records, 10u);
  EXPECT_FALSE((*out)[1].duplicate);
  EXPECT_EQ(TotalSamples(), 15u);

  out = Append({&b, &a});  // a replayed spool
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].duplicate);
  EXPECT_TRUE((*out)[1].duplicate);
  EXPECT_EQ((*out)[0].records, 0u);
  EXPECT_EQ(TotalSamples(), 15u);
  EXPECT_EQ(store_->Stats()->raw_samples, 15u);

  // The same batch twice in one call; another sender's sequence 1 is not a duplicate.
  const Batch c = MakeBatch("w1", 3, 4, kT0Us + 120 * kUs);
  const Batch other = MakeBatch("w2", 1, 2, kT0Us + 120 * kUs);
  out = Append({&c, &c, &other});
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE((*out)[0].duplicate);
  EXPECT_TRUE((*out)[1].duplicate);
  EXPECT_FALSE((*out)[2].duplicate);
  EXPECT_EQ(TotalSamples(), 21u);

  // Empty sender: no de-duplication.
  const Batch anon = MakeBatch("", 0, 1, kT0Us);
  ASSERT_TRUE(Append({&anon}).ok());
  ASSERT_TRUE(Append({&anon}).ok());
  EXPECT_EQ(TotalSamples(), 23u);
}

TEST_F(StoreAppendTest, DedupWindowKeepsTheLatestSequencesPerSender) {
  std::vector<Batch> batches;
  for (uint64_t seq = 1; seq <= 5; ++seq) batches.push_back(MakeBatch("w1", seq, 1, kT0Us));
  for (const Batch& b : batches) ASSERT_TRUE(Append({&b}).ok());
  EXPECT_EQ(TotalSamples(), 5u);
  // Window 3: sequences 3, 4, 5 are remembered; 1 was forgotten and is applied again.
  Result<std::vector<AppendOutcome>> out = Append({&batches[4], &batches[2], &batches[0]});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].duplicate);
  EXPECT_TRUE((*out)[1].duplicate);
  EXPECT_FALSE((*out)[2].duplicate);
  EXPECT_EQ(TotalSamples(), 6u);
}

TEST_F(StoreAppendTest, AFailingBatchStoresNothingOfTheCall) {
  const Batch first = MakeBatch("w1", 1, 20, kT0Us);
  ASSERT_TRUE(Append({&first}).ok());
  auto* sqlite = dynamic_cast<sqlite::SqliteStore*>(store_.get());
  ASSERT_NE(sqlite, nullptr);
  const sqlite::TierSealPoints sealed_before = *sqlite->SealPoints();

  // A call whose last batch is bad (a tally with a broken HyperLogLog): the
  // good batches before it, the (sender, sequence) pairs and the deploy log
  // must all roll back.
  const Batch good = MakeBatch("w1", 2, 30, kT0Us + 10 * kDayUs);  // seals everything before
  Batch bad = MakeBatch("w9", 1, 5, kT0Us + 10 * kDayUs);
  WorkerTally* t = bad.add_tallies();
  t->set_minute_unix(kT0 + 60);
  t->set_service("shop");
  t->set_host("h1");
  t->set_sender("1");
  t->set_active_users_hll(std::string(100, '\x01'));  // not 2^12 registers
  t->set_hll_precision(12);
  Result<std::vector<AppendOutcome>> out = Append({&good, &bad});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);

  EXPECT_EQ(TotalSamples(), 20u);
  EXPECT_EQ(store_->Stats()->raw_samples, 20u);
  EXPECT_EQ(store_->Stats()->tallies, 0u);
  Result<std::vector<DeployEntry>> deploys = store_->Deploys("");
  ASSERT_TRUE(deploys.ok());
  uint64_t deployed = 0;
  for (const DeployEntry& d : *deploys) deployed += d.samples;
  EXPECT_EQ(deployed, 20u);
  EXPECT_EQ(*sqlite->SealPoints(), sealed_before) << "the seal points must not move either";

  // The good batch was not remembered as applied: it can be sent again, and
  // the in-memory open buckets still agree with the file.
  out = Append({&good});
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE((*out)[0].duplicate);
  EXPECT_EQ(TotalSamples(), 50u);
  QuerySpec first_day;
  first_day.to_us = kT0Us + kDayUs;
  Result<QueryResult> r = store_->Query(first_day);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->used_rollups);
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0].samples, 20u);
  // Seal day 10 too: its rollups must hold the 30 samples once, not the
  // rolled-back copy as well.
  const Batch later = MakeBatch("w1", 3, 1, kT0Us + 20 * kDayUs);
  ASSERT_TRUE(Append({&later}).ok());
  QuerySpec day10;
  day10.from_us = kT0Us + 10 * kDayUs;
  day10.to_us = kT0Us + 11 * kDayUs;
  r = store_->Query(day10);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->used_rollups);
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0].samples, 30u);
}

// Past max_dimension_values distinct values of a dimension in a service, new
// values are stored as "<other>" and counted; values already stored keep
// passing, also after a reopen (the guard is rebuilt from the series).
TEST(StoreCardinalityTest, ValuesPastTheCapAreFoldedIntoOtherAndCounted) {
  TempDir dir;
  SqliteOptions options{.path = dir.File("cap.sqlite")};
  options.max_dimension_values = 3;
  std::vector<std::string> logged;
  options.log = [&logged](const std::string& line) { logged.push_back(line); };
  auto record = [](int i, const std::string& endpoint, const std::string& service) {
    RequestRecord r;
    r.set_service(service);
    r.set_endpoint(endpoint);
    r.set_method("GET");
    r.set_status(200);
    r.set_host("h1");
    r.set_commit("c1");
    r.set_sample_rate(1.0);
    r.set_start_time_unix_us(kT0Us + i * kUs);
    r.set_wall_us(100);
    r.mutable_cpu()->set_cpu_ns(1000);
    (*r.mutable_flags())["beta"] = "v" + std::to_string(i % 5);
    return r;
  };
  auto endpoints = [](Store& store, const std::string& service) {
    QuerySpec spec;
    spec.group_by = {Dim("endpoint")};
    spec.filters = {{Dim("service"), service}};
    spec.from_us = kT0Us;
    spec.to_us = kT0Us + kDayUs;
    Result<QueryResult> r = store.Query(spec);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::map<std::string, uint64_t> out;
    if (r.ok())
      for (const QueryRow& row : r->rows) out[row.keys[0]] = row.samples;
    return out;
  };
  {
    std::unique_ptr<Store> store = Open(options);
    ASSERT_NE(store, nullptr);
    record::Batch b;
    for (int i = 0; i < 10; ++i)
      *b.add_records() = record(i, "/e" + std::to_string(i) + "/", "shop");
    *b.add_records() = record(10, "/e0/", "shop");  // a value already kept
    *b.add_records() = record(11, "/x/", "api");    // another service has its own cap
    const record::Batch* batches[] = {&b};
    ASSERT_TRUE(store->AppendBatches(batches).ok());
    EXPECT_EQ(
        endpoints(*store, "shop"),
        (std::map<std::string, uint64_t>{{"/e0/", 2}, {"/e1/", 1}, {"/e2/", 1}, {"<other>", 7}}));
    EXPECT_EQ(endpoints(*store, "api"), (std::map<std::string, uint64_t>{{"/x/", 1}}));
    Result<StoreStats> stats = store->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->folded_values.at("endpoint"), 7u);
    EXPECT_EQ(stats->folded_values.at("flag_value"), 4u);  // beta=v3, v4, twice each
  }
  ASSERT_EQ(logged.size(), 2u);  // once per (service, dimension) that filled
  EXPECT_NE(logged[0].find("service 'shop' has 3 distinct endpoint values"), std::string::npos)
      << logged[0];
  std::unique_ptr<Store> reopened = Open(options);
  ASSERT_NE(reopened, nullptr);
  record::Batch b;
  *b.add_records() = record(20, "/e2/", "shop");   // kept before: still itself
  *b.add_records() = record(21, "/new/", "shop");  // still past the cap
  const record::Batch* batches[] = {&b};
  ASSERT_TRUE(reopened->AppendBatches(batches).ok());
  EXPECT_EQ(
      endpoints(*reopened, "shop"),
      (std::map<std::string, uint64_t>{{"/e0/", 2}, {"/e1/", 1}, {"/e2/", 2}, {"<other>", 8}}));
}

TEST(StoreOpenTest, ForeignFilesAreRefused) {
  TempDir dir;
  const std::string text = dir.File("notes.txt");
  std::ofstream(text) << "this is not a database, it is a text file of some length.........";
  Result<std::unique_ptr<Store>> a = OpenSqliteStore({.path = text});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kIo);

  const std::string other = dir.File("other.sqlite");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  Result<std::unique_ptr<Store>> b = OpenSqliteStore({.path = other});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kIo);
  EXPECT_NE(b.status().message().find("not a cpuledger store"), std::string::npos);

  // A store file is recognised, and its schema version is set.
  const std::string mine = dir.File("mine.sqlite");
  ASSERT_NE(Open({.path = mine}), nullptr);
  ASSERT_NE(Open({.path = mine}), nullptr);
  ASSERT_EQ(sqlite3_open(mine.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), sqlite::kSchemaVersion);
  sqlite3_finalize(st);
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  Result<std::unique_ptr<Store>> newer = OpenSqliteStore({.path = mine});
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("newer"), std::string::npos);
}

// ---- deploy log ----

TEST(StoreDeployTest, FirstAndLastSeenPerServiceClusterCommit) {
  TempDir dir;
  std::unique_ptr<Store> store = Open({.path = dir.File("deploys.sqlite")});
  ASSERT_NE(store, nullptr);
  RecordGen gen(3);
  auto rec = [&](const std::string& service, const std::string& cluster, const std::string& commit,
                 int64_t t) {
    RequestRecord r = gen.Make(t);
    r.set_service(service);
    r.set_cluster(cluster);
    r.set_commit(commit);
    return r;
  };
  Batch b1, b2;
  *b1.add_records() = rec("shop", "c1", "v1", kT0Us + 100);
  *b1.add_records() = rec("shop", "c1", "v1", kT0Us + 50);
  *b1.add_records() = rec("shop", "c2", "v1", kT0Us + 70);
  *b2.add_records() = rec("shop", "c1", "v1", kT0Us + 5000);
  *b2.add_records() = rec("shop", "c1", "v2", kT0Us + 4000);
  *b2.add_records() = rec("shop", "c1", "v2", kT0Us + 9000);
  *b2.add_records() = rec("api", "c1", "v7", kT0Us + 1);
  ASSERT_TRUE(store->AppendBatches(std::vector<const Batch*>{&b1}).ok());
  ASSERT_TRUE(store->AppendBatches(std::vector<const Batch*>{&b2}).ok());

  Result<std::vector<DeployEntry>> shop = store->Deploys("shop");
  ASSERT_TRUE(shop.ok());
  ASSERT_EQ(shop->size(), 3u);
  // Newest first.
  EXPECT_EQ((*shop)[0].commit, "v2");
  EXPECT_EQ((*shop)[0].first_seen_us, kT0Us + 4000);
  EXPECT_EQ((*shop)[0].last_seen_us, kT0Us + 9000);
  EXPECT_EQ((*shop)[0].samples, 2u);
  EXPECT_EQ((*shop)[1].cluster, "c2");
  EXPECT_EQ((*shop)[1].first_seen_us, kT0Us + 70);
  EXPECT_EQ((*shop)[2].cluster, "c1");
  EXPECT_EQ((*shop)[2].commit, "v1");
  EXPECT_EQ((*shop)[2].first_seen_us, kT0Us + 50);
  EXPECT_EQ((*shop)[2].last_seen_us, kT0Us + 5000);
  EXPECT_EQ((*shop)[2].samples, 3u);
  Result<std::vector<DeployEntry>> all = store->Deploys("");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 4u);
  EXPECT_EQ(store->Deploys("nope")->size(), 0u);
}

// ---- efficiency ----

class StoreEfficiencyTest : public ::testing::Test {
 protected:
  static constexpr int64_t kM0 = kT0 + 600;  // three minutes of a crafted data set
  static constexpr int64_t kM1 = kM0 + 60;
  static constexpr int64_t kM2 = kM0 + 120;

  RequestRecord MakeRecord(const std::string& endpoint, int64_t minute, uint64_t instructions,
                           double rate, const std::string& user, bool pmu = true) {
    RequestRecord r;
    r.set_service("shop");
    r.set_endpoint(endpoint);
    r.set_method("GET");
    r.set_status(200);
    r.set_host("h1");
    r.set_cluster("c1");
    r.set_region("eu");
    r.set_commit("v1");
    r.set_start_time_unix_us(minute * kUs + static_cast<int64_t>(next_++ % 59) * kUs);
    r.set_sample_rate(rate);
    r.set_user(user);
    if (pmu) r.mutable_cpu()->set_instructions(instructions);
    r.mutable_cpu()->set_cpu_ns(instructions / 4);
    r.set_wall_us(1000);
    return r;
  }

  static WorkerTally Tally(int64_t minute, const std::string& host,
                           std::vector<std::pair<std::string, uint64_t>> endpoints, int first_user,
                           int users, int precision = 12) {
    WorkerTally t;
    t.set_minute_unix(minute);
    t.set_service("shop");
    t.set_host(host);
    t.set_cluster("c1");
    t.set_region("eu");
    t.set_commit("v1");
    t.set_sender("w-" + host);
    for (const auto& [e, n] : endpoints) {
      record::EndpointCount* c = t.add_endpoints();
      c->set_endpoint(e);
      c->set_requests(n);
    }
    record::HyperLogLog hll(precision);
    for (int u = first_user; u < first_user + users; ++u) hll.Add("user-" + std::to_string(u));
    t.set_active_users_hll(hll.registers());
    t.set_hll_precision(static_cast<uint32_t>(precision));
    return t;
  }

  // Samples: "home" costs 1e6 instructions in M0 and M1 and has no sample in
  // M2; "cart" costs 5e6 everywhere.
  Batch Samples() {
    Batch b;
    for (int i = 0; i < 10; ++i) {
      *b.add_records() = MakeRecord("home", kM0, 1'000'000, 0.1, "s" + std::to_string(i));
      *b.add_records() = MakeRecord("home", kM1, 1'000'000, 0.1, "s" + std::to_string(i));
      *b.add_records() = MakeRecord("cart", kM0, 5'000'000, 0.1, "s" + std::to_string(i));
      *b.add_records() = MakeRecord("cart", kM1, 5'000'000, 0.1, "s" + std::to_string(i + 10));
      *b.add_records() = MakeRecord("cart", kM2, 5'000'000, 0.1, "s" + std::to_string(i % 3));
    }
    return b;
  }

  // Users() — what a sketch of users first..first+n-1 estimates.
  static double Users(int first, int n, int precision) {
    record::HyperLogLog hll(precision);
    for (int u = first; u < first + n; ++u) hll.Add("user-" + std::to_string(u));
    return hll.Estimate();
  }

  Result<std::vector<ServiceEfficiency>> Run(Store& store, int64_t from_us = kM0 * kUs,
                                             int64_t to_us = (kM2 + 60) * kUs) {
    EfficiencySpec spec;
    spec.from_us = from_us;
    spec.to_us = to_us;
    return store.Efficiency(spec);
  }

  TempDir dir_;
  uint64_t next_ = 0;
};

TEST_F(StoreEfficiencyTest, PeakMinuteFromTalliesWithMergedActiveUsers) {
  std::unique_ptr<Store> store = Open({.path = dir_.File("eff.sqlite")});
  ASSERT_NE(store, nullptr);
  Batch b = Samples();
  // Tallies of two workers. CPU per minute = requests x mean:
  //   M0: home 100 x 1e6 + cart 50 x 5e6 = 3.5e8
  //   M1: home 300 x 1e6 + cart 20 x 5e6 = 4.0e8
  //   M2: home 50 x 1e6 (window mean: no home sample in M2) + cart 200 x 5e6 = 1.05e9  <- peak
  *b.add_tallies() = Tally(kM0, "h1", {{"home", 60}, {"cart", 30}}, 0, 20);
  *b.add_tallies() = Tally(kM0, "h2", {{"home", 40}, {"cart", 20}}, 10, 20);
  *b.add_tallies() = Tally(kM1, "h1", {{"home", 300}, {"cart", 20}}, 0, 60);
  *b.add_tallies() = Tally(kM2, "h1", {{"home", 30}, {"cart", 120}}, 0, 25);
  // Another worker at a lower precision: folded, then merged. Users 15..39
  // overlap: 40 distinct in M2.
  *b.add_tallies() = Tally(kM2, "h2", {{"home", 20}, {"cart", 80}}, 15, 25, 10);
  ASSERT_TRUE(store->AppendBatches(std::vector<const Batch*>{&b}).ok());
  EXPECT_EQ(store->Stats()->tallies, 5u);

  Result<std::vector<ServiceEfficiency>> eff = Run(*store);
  ASSERT_TRUE(eff.ok()) << eff.status().ToString();
  ASSERT_EQ(eff->size(), 1u);
  const ServiceEfficiency& s = (*eff)[0];
  EXPECT_EQ(s.service, "shop");
  EXPECT_EQ(s.unit, "instructions");
  EXPECT_TRUE(s.from_tallies);
  EXPECT_TRUE(s.users_from_tallies);
  EXPECT_EQ(s.peak_minute_unix, kM2);
  EXPECT_DOUBLE_EQ(s.requests, 250);
  ExpectRel(s.cpu_total, 1.05e9, 1e-9, "cpu_total");
  // The union at the lower precision, as a p10 sketch of users 0..39 estimates it.
  ExpectRel(s.active_users, Users(0, 40, 10), 1e-9, "active_users");
  ExpectRel(s.active_users, 40, 0.05, "active_users near the truth");
  ExpectRel(s.per_active_user, 1.05e9 / s.active_users, 1e-9, "per_active_user");
  ASSERT_EQ(s.endpoints.size(), 2u);
  EXPECT_EQ(s.endpoints[0].endpoint, "cart");
  EXPECT_DOUBLE_EQ(s.endpoints[0].requests, 200);
  ExpectRel(s.endpoints[0].cpu_total, 1e9, 1e-9, "cart cpu");
  ExpectRel(s.endpoints[0].per_active_user, 1e9 / s.active_users, 1e-9, "cart per user");
  EXPECT_EQ(s.endpoints[1].endpoint, "home");
  ExpectRel(s.endpoints[1].cpu_total, 5e7, 1e-9, "home cpu");

  // A window without M2: the peak is M1, with its own users (60).
  eff = Run(*store, kM0 * kUs, kM2 * kUs);
  ASSERT_TRUE(eff.ok());
  EXPECT_EQ((*eff)[0].peak_minute_unix, kM1);
  ExpectRel((*eff)[0].cpu_total, 4e8, 1e-9, "M1 cpu");
  ExpectRel((*eff)[0].active_users, Users(0, 60, 12), 1e-9, "M1 users");
  ExpectRel((*eff)[0].active_users, 60, 0.05, "M1 users near the truth");
  // The same tallies again (a second flush of the same worker-minute) add up.
  Batch again;
  *again.add_tallies() = Tally(kM1, "h1", {{"home", 300}, {"cart", 20}}, 50, 20);
  ASSERT_TRUE(store->AppendBatches(std::vector<const Batch*>{&again}).ok());
  EXPECT_EQ(store->Stats()->tallies, 5u);
  eff = Run(*store, kM0 * kUs, kM2 * kUs);
  ASSERT_TRUE(eff.ok());
  EXPECT_DOUBLE_EQ((*eff)[0].requests, 640);
  ExpectRel((*eff)[0].active_users, Users(0, 70, 12), 1e-9, "merged M1 users");
}

TEST_F(StoreEfficiencyTest, WithoutTalliesFallsBackToSamples) {
  std::unique_ptr<Store> store = Open({.path = dir_.File("eff2.sqlite")});
  ASSERT_NE(store, nullptr);
  const Batch b = Samples();
  ASSERT_TRUE(store->AppendBatches(std::vector<const Batch*>{&b}).ok());
  // Per minute, sum of instructions / rate: M0 10x1e7 + 10x5e7 = 6e8; M1 6e8;
  // M2 10 x 5e7 = 5e8. Tie between M0 and M1: the earliest.
  Result<std::vector<ServiceEfficiency>> eff = Run(*store);
  ASSERT_TRUE(eff.ok()) << eff.status().ToString();
  ASSERT_EQ(eff->size(), 1u);
  const ServiceEfficiency& s = (*eff)[0];
  EXPECT_FALSE(s.from_tallies);
  EXPECT_FALSE(s.users_from_tallies);
  EXPECT_EQ(s.unit, "instructions");
  EXPECT_EQ(s.peak_minute_unix, kM0);
  ExpectRel(s.cpu_total, 6e8, 1e-9, "cpu_total");
  ExpectRel(s.requests, 200, 1e-9, "requests");
  EXPECT_DOUBLE_EQ(s.active_users, 10);  // s0..s9 in M0
  ExpectRel(s.per_active_user, 6e7, 1e-9, "per user");
  ASSERT_EQ(s.endpoints.size(), 2u);
  EXPECT_EQ(s.endpoints[0].endpoint, "cart");
  ExpectRel(s.endpoints[0].cpu_total, 5e8, 1e-9, "cart");
  ExpectRel(s.endpoints[1].requests, 100, 1e-9, "home requests");
}

TEST_F(StoreEfficiencyTest, ServicesWithoutAPmuAreBilledInCpuNs) {
  std::unique_ptr<Store> store = Open({.path = dir_.File("eff3.sqlite")});
  ASSERT_NE(store, nullptr);
  Batch b;
  for (int i = 0; i < 4; ++i) {
    *b.add_records() = MakeRecord("home", kM0, 4'000'000, 0.5, "x", /*pmu=*/false);
    *b.add_records() = MakeRecord("home", kM1, 8'000'000, 0.5, "y", /*pmu=*/false);
  }
  ASSERT_TRUE(store->AppendBatches(std::vector<const Batch*>{&b}).ok());
  Result<std::vector<ServiceEfficiency>> eff = Run(*store);
  ASSERT_TRUE(eff.ok());
  ASSERT_EQ(eff->size(), 1u);
  EXPECT_EQ((*eff)[0].unit, "cpu_ns");
  EXPECT_EQ((*eff)[0].peak_minute_unix, kM1);
  ExpectRel((*eff)[0].cpu_total, 4 * 2e6 / 0.5, 1e-9, "cpu_ns total");
  EXPECT_DOUBLE_EQ((*eff)[0].active_users, 1);
}

// ---- internals worth their own checks ----

TEST(StoreHllFoldTest, FoldingIsExactlyTheLowerPrecisionSketch) {
  record::HyperLogLog p12(12), p9(9);
  for (int i = 0; i < 5000; ++i) {
    p12.Add("k" + std::to_string(i));
    p9.Add("k" + std::to_string(i));
  }
  EXPECT_EQ(sqlite::FoldHllRegisters(p12.registers(), 12, 9), p9.registers());
}

TEST(StoreRawChunkTest, RoundTripsEverySampleField) {
  sqlite::ChunkWriter w(kT0 + 60);
  sqlite::StoredRecord a;
  a.start_us = (kT0 + 60) * kUs + 59'999'999;
  a.series = 123456;
  a.wall_us = 77;
  a.has_instructions = true;
  a.instructions = std::numeric_limits<uint64_t>::max();
  a.cpu_ns = 5;
  a.counter_source = 3;
  a.db_us = 1, a.db_calls = 2, a.cache_us = 3, a.cache_calls = 4;
  a.sample_rate = 0.015625;
  a.user = std::string_view("user\0with nul", 13);
  a.request_id = "";
  sqlite::StoredRecord b = a;
  b.start_us = (kT0 + 60) * kUs;
  b.has_instructions = false;
  b.has_cycles = true;
  b.cycles = 9;
  w.Add(a);
  w.Add(b);
  const std::string data(w.Finish());
  std::vector<sqlite::StoredRecord> got;
  std::vector<std::string> users;
  ASSERT_TRUE(sqlite::ForEachSample(data, kT0 + 60, [&](const sqlite::StoredRecord& s) {
                got.push_back(s);
                users.emplace_back(s.user);
              }).ok());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].start_us, a.start_us);
  EXPECT_EQ(got[0].series, a.series);
  EXPECT_EQ(got[0].instructions, a.instructions);
  EXPECT_FALSE(got[0].has_cycles);
  EXPECT_EQ(got[0].counter_source, 3);
  EXPECT_EQ(got[0].cache_calls, 4u);
  EXPECT_EQ(got[0].sample_rate, 0.015625);
  EXPECT_EQ(users[0], std::string(a.user));
  EXPECT_EQ(got[1].start_us, b.start_us);
  EXPECT_FALSE(got[1].has_instructions);
  EXPECT_EQ(got[1].cycles, 9u);
  // Truncation anywhere is detected.
  for (size_t cut = 0; cut < data.size(); ++cut)
    EXPECT_FALSE(
        sqlite::ForEachSample(data.substr(0, cut), kT0, [](const sqlite::StoredRecord&) {}).ok())
        << cut;
}

// ---- concurrency ----

TEST(StoreConcurrencyTest, QueriesOnTwoThreadsWhileAppending) {
  TempDir dir;
  std::unique_ptr<Store> store = Open({.path = dir.File("concurrent.sqlite")});
  ASSERT_NE(store, nullptr);
  constexpr size_t kPerCall = 100;
  constexpr int kCalls = 150;
  RecordGen gen(11);
  std::vector<RequestRecord> records =
      gen.MakeSorted(kPerCall * kCalls, kT0Us, kT0Us + 6 * kHourUs);

  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::atomic<int> during_appends{0};  // queries that finished while appends went on
  auto reader = [&](bool by_endpoint) {
    uint64_t last = 0;
    for (int n = 0; !done.load() || n < 5; ++n) {
      QuerySpec spec;
      if (by_endpoint) spec.group_by = {DimensionRef{Dimension::kEndpoint, {}}};
      Result<QueryResult> r = store->Query(spec);
      if (!r.ok()) {
        failures++;
        continue;
      }
      uint64_t total = 0;
      for (const QueryRow& row : r->rows) total += row.samples;
      // One snapshot per query, one transaction per append: always whole calls,
      // never going backwards.
      if (total % kPerCall != 0 || total < last) failures++;
      last = total;
      if (!done.load()) during_appends++;
      if (!store->Stats().ok()) failures++;
    }
  };
  std::thread r1(reader, false), r2(reader, true);
  for (int c = 0; c < kCalls; ++c) {
    Batch b;
    for (size_t i = 0; i < kPerCall; ++i) *b.add_records() = records[c * kPerCall + i];
    Result<std::vector<AppendOutcome>> out = store->AppendBatches(std::vector<const Batch*>{&b});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
  }
  done = true;
  r1.join();
  r2.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(during_appends.load(), 0);
  QuerySpec all;
  all.group_by = {DimensionRef{Dimension::kEndpoint, {}}};
  ExpectMatches(*store->Query(all), records, all);
}

}  // namespace
}  // namespace cpuledger::store
