// tests/cpp/store/store_conformance_test.cc — the same batches and queries
// on every Store backend give the same answers: SQLite (a temp file) and
// ClickHouse (the two-shard 18.16 cluster that ctest's clickhouse_cluster
// fixture starts, tests/clickhouse/cluster.py; CPULEDGER_CLICKHOUSE_CLUSTER
// names its cluster.json).
//
// Counts, sums, means and the ranking are compared with the truth computed
// here from the records (exact, up to float summation order); quantiles are
// checked against the exact nearest-rank quantiles of each group's samples
// within each backend's stated error: a rank error of max(2%, 1.5/n) (the
// t-digest's) and 1% of value (the log histogram's).
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "backends.h"
#include "profile/call_tree.h"
#include "record/codec.h"
#include "record/hll.h"
#include "store/clickhouse/clickhouse_store.h"
#include "store/clickhouse/http.h"
#include "store/store.h"
#include "temp_dir.h"

namespace cpuledger::store {
namespace {

using record::Batch;
using record::RequestRecord;

constexpr int64_t kMinuteUs = 60'000'000;
// 2026-12-04 22:30 UTC: the data crosses midnight, so two day partitions.
constexpr int64_t kStartUs = 1'796'423'400'000'000;
constexpr int kMinutes = 180;

using test_support::Backend;
using test_support::ClickHouseBackend;
using test_support::SqliteBackend;

// ---- the data ----

RequestRecord MakeRecord(std::mt19937_64& rng, int i) {
  static const char* kServices[] = {"shop", "search"};
  static const char* kEndpoints[] = {"cart", "checkout", "home", "it's \\ odd\t"};
  static const char* kCommits[] = {"b7e41d0", "9f3c2a1"};
  RequestRecord r;
  std::uniform_int_distribution<int64_t> offset(0, kMinutes * kMinuteUs - 1);
  r.set_start_time_unix_us(kStartUs + offset(rng));
  r.set_service(kServices[i % 2]);
  r.set_endpoint(kEndpoints[(i / 2) % 4]);
  r.set_method(i % 7 == 0 ? "POST" : "GET");
  r.set_status(i % 11 == 0 ? 500 : 200);
  r.set_host("web-" + std::to_string(i % 5));
  r.set_cluster(i % 3 == 0 ? "east-a" : "west-b");
  r.set_region(i % 3 == 0 ? "us-east" : "us-west");
  r.set_commit(kCommits[(i / 8) % 2]);
  if (i % 4 != 0) (*r.mutable_flags())["new_checkout"] = i % 3 == 0 ? "on" : "off";
  r.set_user("u" + std::to_string(i % 97));
  r.set_sample_rate(i % 5 == 0 ? 0.5 : 0.01);
  std::lognormal_distribution<double> cost(std::log(2e6), 0.8);
  const uint64_t cpu_ns = static_cast<uint64_t>(cost(rng));
  r.mutable_cpu()->set_cpu_ns(cpu_ns);
  r.mutable_cpu()->set_counter_source(i % 3 == 0 ? "hardware" : "thread_cputime");
  if (i % 3 == 0) {  // a PMU on a third of the hosts
    r.mutable_cpu()->set_instructions(cpu_ns * 3 + static_cast<uint64_t>(i));
    r.mutable_cpu()->set_cycles(cpu_ns * 2);
  }
  r.set_wall_us(cpu_ns / 1000 + 500 + static_cast<uint64_t>(i % 13) * 100);
  r.mutable_db()->set_wall_us(static_cast<uint64_t>(i % 9) * 1000);
  r.mutable_db()->set_calls(static_cast<uint32_t>(i % 4));
  r.mutable_cache()->set_wall_us(static_cast<uint64_t>(i % 6) * 100);
  r.mutable_cache()->set_calls(static_cast<uint32_t>(i % 3));
  r.set_request_id("r" + std::to_string(i));
  return r;
}

// Data — batches from four senders (so both shards get some) and the records.
struct Data {
  std::vector<Batch> batches;
  std::vector<RequestRecord> records;
};

Data MakeData(int records, int per_batch) {
  Data d;
  std::mt19937_64 rng(17);
  for (int i = 0; i < records; ++i) {
    if (i % per_batch == 0) {
      Batch b;
      b.set_sender("sender-" + std::to_string((i / per_batch) % 4));
      b.set_sequence(static_cast<uint64_t>(i / per_batch / 4 + 1));
      d.batches.push_back(std::move(b));
    }
    RequestRecord r = MakeRecord(rng, i);
    *d.batches.back().add_records() = r;
    d.records.push_back(std::move(r));
  }
  return d;
}

// ---- the truth ----

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
  return "";
}

bool Selected(const RequestRecord& r, const QuerySpec& q) {
  if (r.start_time_unix_us() < q.from_us || r.start_time_unix_us() >= q.to_us) return false;
  std::map<std::string, bool> matched;  // by dimension: any of its filters
  for (const Filter& f : q.filters) {
    bool& m = matched[DimensionName(f.dim)];
    m = m || KeyOf(r, f.dim) == f.value;
  }
  return std::all_of(matched.begin(), matched.end(), [](const auto& m) { return m.second; });
}

// Group — one (keys, bucket)'s records.
using GroupKey = std::pair<std::vector<std::string>, int64_t>;

std::map<GroupKey, std::vector<const RequestRecord*>> GroupRecords(const Data& d,
                                                                   const QuerySpec& q) {
  std::map<GroupKey, std::vector<const RequestRecord*>> groups;
  const int64_t step = BucketSeconds(q.bucket) * 1'000'000;
  for (const RequestRecord& r : d.records) {
    if (!Selected(r, q)) continue;
    GroupKey k;
    for (const DimensionRef& g : q.group_by) k.first.push_back(KeyOf(r, g));
    k.second = step > 0 ? r.start_time_unix_us() / step * step : 0;
    groups[k].push_back(&r);
  }
  return groups;
}

// ExpectQuantile() — `got` within the stated error of the q-quantile of `v`.
void ExpectQuantile(std::vector<double> v, double q, double got, const std::string& what) {
  ASSERT_FALSE(v.empty());
  std::sort(v.begin(), v.end());
  const double n = static_cast<double>(v.size());
  const double delta = std::max(0.02, 1.5 / n);
  auto at = [&](double p) {
    double rank = std::ceil(std::clamp(p, 0.0, 1.0) * n) - 1;
    return v[static_cast<size_t>(std::clamp(rank, 0.0, n - 1))];
  };
  EXPECT_GE(got, at(q - delta) * 0.99) << what << " p" << q * 100;
  EXPECT_LE(got, at(q + delta) * 1.01) << what << " p" << q * 100;
}

void ExpectNear(double want, double got, const std::string& what) {
  EXPECT_NEAR(got, want, std::abs(want) * 1e-9 + 1e-9) << what;
}

// ExpectAnswers() — the store's rows against the truth, row by row.
void ExpectAnswers(Store& store, const Data& d, const QuerySpec& q, const std::string& name) {
  Result<QueryResult> got = store.Query(q);
  ASSERT_TRUE(got.ok()) << name << ": " << got.status().ToString();
  auto groups = GroupRecords(d, q);
  // The ranking is the shared rule (RankQueryRows), fed the exact totals.
  std::vector<QueryRow> truth_rows;
  for (const auto& [key, recs] : groups) {
    QueryRow row;
    row.keys = key.first;
    row.bucket_start_us = key.second;
    for (const RequestRecord* r : recs)
      row.cpu_ns.est_total += r->cpu().cpu_ns() / r->sample_rate();
    truth_rows.push_back(row);
  }
  QueryResult truth = RankQueryRows(truth_rows, q);
  ASSERT_EQ(got->rows.size(), truth.rows.size()) << name;
  EXPECT_EQ(got->truncated, truth.truncated) << name;
  for (size_t i = 0; i < truth.rows.size(); ++i) {
    const QueryRow& row = got->rows[i];
    const std::string what = name + " row " + std::to_string(i);
    ASSERT_EQ(row.keys, truth.rows[i].keys) << what;
    ASSERT_EQ(row.bucket_start_us, truth.rows[i].bucket_start_us) << what;
    const auto& recs = groups.at({row.keys, row.bucket_start_us});
    EXPECT_EQ(row.samples, recs.size()) << what;
    double est = 0, db = 0, db_calls = 0, cache = 0, cache_calls = 0;
    for (const RequestRecord* r : recs) {
      est += 1 / r->sample_rate();
      db += r->db().wall_us();
      db_calls += r->db().calls();
      cache += r->cache().wall_us();
      cache_calls += r->cache().calls();
    }
    const double n = static_cast<double>(recs.size());
    ExpectNear(est, row.est_requests, what + " est_requests");
    ExpectNear(db / n, row.db_us_mean, what + " db_us");
    ExpectNear(db_calls / n, row.db_calls_mean, what + " db_calls");
    ExpectNear(cache / n, row.cache_us_mean, what + " cache_us");
    ExpectNear(cache_calls / n, row.cache_calls_mean, what + " cache_calls");

    struct Measure {
      const char* name;
      const Distribution* got;
      std::function<std::optional<double>(const RequestRecord&)> value;
    };
    const Measure measures[] = {
        {"instructions", &row.instructions,
         [](const RequestRecord& r) {
           return r.cpu().has_instructions() ? std::optional<double>(r.cpu().instructions())
                                             : std::nullopt;
         }},
        {"cycles", &row.cycles,
         [](const RequestRecord& r) {
           return r.cpu().has_cycles() ? std::optional<double>(r.cpu().cycles()) : std::nullopt;
         }},
        {"cpu_ns", &row.cpu_ns,
         [](const RequestRecord& r) { return std::optional<double>(r.cpu().cpu_ns()); }},
        {"wall_us", &row.wall_us,
         [](const RequestRecord& r) { return std::optional<double>(r.wall_us()); }},
    };
    for (const Measure& m : measures) {
      std::vector<double> values;
      double sum = 0, est_total = 0;
      for (const RequestRecord* r : recs)
        if (std::optional<double> v = m.value(*r)) {
          values.push_back(*v);
          sum += *v;
          est_total += *v / r->sample_rate();
        }
      const std::string mw = what + " " + m.name;
      EXPECT_EQ(m.got->n, values.size()) << mw;
      if (values.empty()) {
        EXPECT_TRUE(std::isnan(m.got->mean)) << mw;
        EXPECT_TRUE(std::isnan(m.got->p50)) << mw;
        continue;
      }
      ExpectNear(sum / static_cast<double>(values.size()), m.got->mean, mw + " mean");
      ExpectNear(est_total, m.got->est_total, mw + " est_total");
      ExpectQuantile(values, 0.5, m.got->p50, mw);
      ExpectQuantile(values, 0.9, m.got->p90, mw);
      ExpectQuantile(values, 0.99, m.got->p99, mw);
    }
  }
}

// ---- the suite ----

class StoreConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      backend_ = std::make_unique<SqliteBackend>();
    } else {
      if (!test_support::ClickHouseClusterConfigured())
        GTEST_SKIP() << test_support::kNoClusterMessage;
      backend_ = std::make_unique<ClickHouseBackend>();
    }
    ASSERT_TRUE(HasStore());
  }
  bool HasStore() {
    if (auto* s = dynamic_cast<SqliteBackend*>(backend_.get())) return s->s != nullptr;
    if (auto* c = dynamic_cast<ClickHouseBackend*>(backend_.get())) return c->s != nullptr;
    return false;
  }
  Store& store() { return backend_->store(); }

  std::vector<AppendOutcome> Append(const std::vector<Batch>& batches) {
    std::vector<const Batch*> ptrs;
    for (const Batch& b : batches) ptrs.push_back(&b);
    Result<std::vector<AppendOutcome>> out = store().AppendBatches(ptrs);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : std::vector<AppendOutcome>{};
  }

  std::unique_ptr<Backend> backend_;
};

TEST_P(StoreConformanceTest, ReplayedBatchesAreStoredOnce) {
  Data d = MakeData(400, 50);
  std::vector<AppendOutcome> first = Append(d.batches);
  ASSERT_EQ(first.size(), d.batches.size());
  for (const AppendOutcome& o : first) {
    EXPECT_FALSE(o.duplicate);
    EXPECT_EQ(o.records, 50u);
  }
  // The same batches again, and one twice in one call: all duplicates.
  std::vector<Batch> again = d.batches;
  again.push_back(d.batches[0]);
  for (const AppendOutcome& o : Append(again)) {
    EXPECT_TRUE(o.duplicate);
    EXPECT_EQ(o.records, 0u);
  }
  QuerySpec all;
  Result<QueryResult> r = store().Query(all);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0].samples, 400u);
  Result<StoreStats> stats = store().Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->raw_samples, 400u);
}

TEST_P(StoreConformanceTest, QueriesAnswerAlike) {
  Data d = MakeData(3000, 250);
  Append(d.batches);
  const DimensionRef service{Dimension::kService, ""}, endpoint{Dimension::kEndpoint, ""},
      commit{Dimension::kCommit, ""}, status{Dimension::kStatus, ""},
      flag{Dimension::kFlag, "new_checkout"}, user{Dimension::kUser, ""},
      host{Dimension::kHost, ""};
  auto spec = [](std::vector<DimensionRef> group_by, std::vector<Filter> filters = {},
                 Bucket bucket = Bucket::kNone, size_t limit = 1000) {
    QuerySpec q;
    q.group_by = std::move(group_by);
    q.filters = std::move(filters);
    q.bucket = bucket;
    q.limit = limit;
    return q;
  };
  std::vector<std::pair<std::string, QuerySpec>> queries = {
      {"everything", spec({})},
      {"by endpoint", spec({endpoint})},
      {"by service and commit, per minute, limited",
       spec({service, commit}, {}, Bucket::kMinute, 500)},
      {"by flag, status 200 or 500", spec({flag, status}, {{status, "200"}, {status, "500"}})},
      {"by user, top 5", spec({user}, {}, Bucket::kNone, 5)},
      {"sub-minute edges, by host per hour", spec({host}, {}, Bucket::kHour)},
      {"flag absent, odd endpoint", spec({service}, {{flag, ""}, {endpoint, "it's \\ odd\t"}})},
      {"hostile filter values, one a flag's", spec({}, {{endpoint, "x') OR 1=1 --"}, {flag, "'"}})},
  };
  queries[5].second.from_us = kStartUs + 17 * kMinuteUs + 123'457;
  queries[5].second.to_us = kStartUs + 151 * kMinuteUs + 999;
  for (const auto& [name, q] : queries) ExpectAnswers(store(), d, q, name);

  if (GetParam() != "clickhouse") return;
  // ClickHouse reads its rollups unless a query needs users or flags.
  for (const auto& [name, q] : queries) {
    const bool raw_only =
        name.find("user") != std::string::npos || name.find("flag") != std::string::npos;
    Result<QueryResult> r = store().Query(q);
    ASSERT_TRUE(r.ok()) << name;
    EXPECT_EQ(r->used_rollups, !raw_only) << name;
  }
}

TEST_P(StoreConformanceTest, DeploysSamplesAndRetentionAlike) {
  Data d = MakeData(1200, 200);
  Append(d.batches);

  // Deploys: per (service, cluster, commit), first and last start, newest first.
  std::map<std::tuple<std::string, std::string, std::string>, DeployEntry> truth;
  for (const RequestRecord& r : d.records) {
    DeployEntry& e = truth[{r.service(), r.cluster(), r.commit()}];
    if (e.samples == 0) {
      e = {r.service(), r.cluster(), r.commit(), r.start_time_unix_us(), r.start_time_unix_us(), 0};
    }
    e.first_seen_us = std::min(e.first_seen_us, r.start_time_unix_us());
    e.last_seen_us = std::max(e.last_seen_us, r.start_time_unix_us());
    ++e.samples;
  }
  Result<std::vector<DeployEntry>> deploys = store().Deploys("shop");
  ASSERT_TRUE(deploys.ok()) << deploys.status().ToString();
  size_t shop = 0;
  int64_t previous = std::numeric_limits<int64_t>::max();
  for (const DeployEntry& e : *deploys) {
    const DeployEntry& want = truth.at({e.service, e.cluster, e.commit});
    EXPECT_EQ(e.service, "shop");
    EXPECT_EQ(e.first_seen_us, want.first_seen_us);
    EXPECT_EQ(e.last_seen_us, want.last_seen_us);
    EXPECT_EQ(e.samples, want.samples);
    EXPECT_LE(e.first_seen_us, previous);
    previous = e.first_seen_us;
    ++shop;
  }
  EXPECT_EQ(shop, static_cast<size_t>(std::count_if(truth.begin(), truth.end(), [](auto& t) {
              return t.second.service == "shop";
            })));

  // Samples: one endpoint's, in start order, billed in cpu_ns (a third have
  // instructions: fewer than half), with their dimensions.
  SampleQuery sq;
  sq.from_us = kStartUs + 10 * kMinuteUs;
  sq.to_us = kStartUs + 100 * kMinuteUs;
  sq.service = "search";
  sq.endpoint = "it's \\ odd\t";
  Result<SampleSet> samples = store().Samples(sq);
  ASSERT_TRUE(samples.ok()) << samples.status().ToString();
  std::vector<std::pair<int64_t, double>> want, got;
  for (const RequestRecord& r : d.records)
    if (r.service() == *sq.service && r.endpoint() == *sq.endpoint &&
        r.start_time_unix_us() >= sq.from_us && r.start_time_unix_us() < sq.to_us)
      want.emplace_back(r.start_time_unix_us(), static_cast<double>(r.cpu().cpu_ns()));
  std::sort(want.begin(), want.end());
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(samples->UnitOf("search"), "cpu_ns");
  for (const RecordBill& b : samples->samples) {
    got.emplace_back(b.start_us, b.bill);
    const SampleSeries& series = samples->series.at(b.series);
    EXPECT_EQ(series.endpoint, *sq.endpoint);
    for (const auto& [name, value] : series.flags) EXPECT_EQ(name, "new_checkout") << value;
  }
  EXPECT_TRUE(
      std::is_sorted(got.begin(), got.end(), [](auto& a, auto& b) { return a.first < b.first; }));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
  sq.max_samples = want.size() - 1;
  EXPECT_EQ(store().Samples(sq).status().code(), StatusCode::kResourceExhausted);

  // Retention at a midnight + 14 days: the first day's records go, the second's stay.
  const int64_t midnight = (kStartUs / 86'400'000'000 + 1) * 86'400'000'000;
  const int64_t before = std::count_if(d.records.begin(), d.records.end(),
                                       [&](auto& r) { return r.start_time_unix_us() < midnight; });
  ASSERT_GT(before, 0);
  Result<uint64_t> dropped = store().ApplyRetention(midnight + 14 * 86'400'000'000);
  ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
  EXPECT_EQ(*dropped, static_cast<uint64_t>(before));
  QuerySpec after;
  after.group_by = {{Dimension::kUser, ""}};  // raw records only (rollups are kept)
  Result<QueryResult> left = store().Query(after);
  ASSERT_TRUE(left.ok());
  uint64_t n = 0;
  for (const QueryRow& row : left->rows) n += row.samples;
  EXPECT_EQ(n, d.records.size() - static_cast<size_t>(before));
}

TEST_P(StoreConformanceTest, NewestEffectPerCauseWins) {
  auto effect = [](int64_t at, const char* cause, double estimate) {
    EffectRecord e;
    e.at_us = at;
    e.service = "shop";
    e.endpoint = "cart";
    e.kind = "rollout";
    e.cause = cause;
    e.estimate = estimate;
    e.lo = estimate - 0.01;
    e.hi = estimate + 0.01;
    e.alerted = estimate > 0.05;
    return e;
  };
  std::vector<EffectRecord> first = {effect(kStartUs, "commit a vs b", 0.02),
                                     effect(kStartUs + 10, "commit b vs c", 0.07)};
  ASSERT_TRUE(store().AppendEffects(first).ok());
  std::vector<EffectRecord> second = {effect(kStartUs + 20, "commit a vs b", 0.03)};
  ASSERT_TRUE(store().AppendEffects(second).ok());
  EffectHistoryQuery q;
  q.service = "shop";
  q.endpoint = "cart";
  q.kind = "rollout";
  Result<std::vector<EffectRecord>> h = store().EffectHistory(q);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[0].cause, "commit a vs b");
  EXPECT_EQ((*h)[0].at_us, kStartUs + 20);
  EXPECT_DOUBLE_EQ((*h)[0].estimate, 0.03);
  EXPECT_EQ((*h)[1].cause, "commit b vs c");
  EXPECT_TRUE((*h)[1].alerted);
  q.before_us = kStartUs + 15;  // the newest of "a vs b" is later: only "b vs c"
  h = store().EffectHistory(q);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 1u);
  EXPECT_EQ((*h)[0].cause, "commit b vs c");
}

// ---- profiles: function entities, moments and the peak-minute metric ----

const profile::Function kView{"app/views.py", 10, "view"};
const profile::Function kHelper{"app/helpers.py", 20, "helper"};
const profile::Function kQuery{"db/query.py", 5, "run: query"};  // a name with a colon
const profile::Function kSlow{"app/views.py", 99, "slow"};

// TreeOf() — request i's profile: view -> helper -> query and view -> query
// (a node that costs nothing on odd i), and view -> slow when `slow`.
profile::CallTree TreeOf(int i, const std::string& unit, bool slow) {
  profile::CallTree t(unit, "test", "exact");
  const uint64_t k = static_cast<uint64_t>(i % 13) + 1;
  const auto view = t.Child(profile::kRoot, t.Intern(kView));
  const auto helper = t.Child(view, t.Intern(kHelper));
  const auto q1 = t.Child(helper, t.Intern(kQuery));
  const auto q2 = t.Child(view, t.Intern(kQuery));
  t.AddCall(q1, 30 * k, 30 * k, true);
  t.AddCall(helper, 20, 20 + 30 * k, true);
  const uint64_t q2_cost = i % 2 == 0 ? 7 * k : 0;
  if (q2_cost > 0) t.AddCall(q2, q2_cost, q2_cost, true);
  const uint64_t slow_cost = slow ? 500 : 0;
  if (slow) t.AddCall(t.Child(view, t.Intern(kSlow)), slow_cost, slow_cost, true);
  t.AddCall(view, 100 + k, 100 + k + 20 + 30 * k + q2_cost + slow_cost, true);
  return t;
}

// ProfiledData() — MakeData's records, four in five profiled: shop's in
// instructions, search's in cpu_ns (two units), commit b7e41d0 calling a
// slow helper on every third; some profiles standing for two requests or
// saying 0 (read as 1); odd batches share their function tables. Tallies
// (own senders): shop, two hosts, its first 30 minutes, minute 17 the
// busiest by far; the hosts' sketches at precisions 14 and 12 overlap.
Data MakeProfiledData(int records, int per_batch) {
  Data d = MakeData(records, per_batch);
  d.records.clear();
  for (size_t b = 0; b < d.batches.size(); ++b) {
    Batch& batch = d.batches[b];
    for (RequestRecord& r : *batch.mutable_records()) {
      const int i = std::stoi(r.request_id().substr(1));
      if (i % 5 == 4) continue;
      profile::CallTree t = TreeOf(i, r.service() == "shop" ? "instructions" : "cpu_ns",
                                   r.commit() == "b7e41d0" && i % 3 == 0);
      t.ToProto(r.mutable_profile());
      if (i % 7 == 0) r.mutable_profile()->set_requests(2);
      if (i % 7 == 3) r.mutable_profile()->set_requests(0);
    }
    for (const RequestRecord& r : batch.records()) d.records.push_back(r);
    if (b % 2 == 1) record::ShareProfileFunctions(&batch);
  }
  for (int host = 0; host < 2; ++host) {
    Batch b;
    b.set_sender("tallies-" + std::to_string(host));
    b.set_sequence(1);
    for (int m = 0; m < 30; ++m) {
      record::WorkerTally* t = b.add_tallies();
      t->set_minute_unix(kStartUs / 1'000'000 + 60 * m);
      t->set_service("shop");
      t->set_host("web-" + std::to_string(host));
      t->set_sender(b.sender());
      for (const char* endpoint : {"cart", "checkout"}) {
        record::EndpointCount* e = t->add_endpoints();
        e->set_endpoint(endpoint);
        e->set_requests(m == 17 ? 5000 : 100 + static_cast<uint64_t>(m));
        e->set_sampled(1);
      }
      const int users = m == 17 ? 2000 : 40 + m;  // host 0 the first 60%, host 1 the last 60%
      record::HyperLogLog h(host == 0 ? 14 : 12);
      for (int u = host == 0 ? 0 : users * 2 / 5; u < (host == 0 ? users * 3 / 5 : users); ++u)
        h.Add("user-" + std::to_string(m) + "-" + std::to_string(u));
      t->set_active_users_hll(h.registers());
      t->set_hll_precision(static_cast<uint32_t>(h.precision()));
    }
    d.batches.push_back(std::move(b));
  }
  return d;
}

bool HourSelected(const RequestRecord& r, int64_t from_us, int64_t to_us) {
  constexpr int64_t kHourUs = 3'600'000'000;
  const int64_t hour = r.start_time_unix_us() / kHourUs * kHourUs;
  return hour < to_us && hour + kHourUs > from_us;
}

bool InSlice(const RequestRecord& r, const FunctionQuery& q) {
  if (!r.has_profile() || !HourSelected(r, q.from_us, q.to_us)) return false;
  if ((q.service && r.service() != *q.service) || (q.endpoint && r.endpoint() != *q.endpoint) ||
      (q.commit && r.commit() != *q.commit))
    return false;
  if (!q.flag) return true;
  auto it = r.flags().find(*q.flag);
  return it != r.flags().end() && it->second == q.flag_value;
}

// TruthTree() — the slice's profiles merged here (requests 0 when none).
profile::CallTree TruthTree(const Data& d, const FunctionQuery& q) {
  std::optional<profile::CallTree> acc;
  for (const RequestRecord& r : d.records) {
    if (!InSlice(r, q)) continue;
    Result<profile::CallTree> t = profile::CallTree::FromProto(r.profile());
    EXPECT_TRUE(t.ok());
    if (!acc) {
      acc.emplace(t->unit(), "store", "exact");
      acc->set_requests(0);
    }
    EXPECT_TRUE(acc->Merge(*t).ok());
  }
  if (!acc) {
    profile::CallTree empty("", "store", "exact");
    empty.set_requests(0);
    return empty;
  }
  return *acc;
}

// PathSums() — per call path's text: calls, primitive calls, self and total cost.
std::map<std::string, std::array<uint64_t, 4>> PathSums(const profile::CallTree& t) {
  std::map<std::string, std::array<uint64_t, 4>> out;
  for (profile::NodeId i = 1; i < t.nodes().size(); ++i) {
    std::vector<profile::Function> path;
    for (profile::FunctionId f : t.Path(i)) path.push_back(t.functions()[f]);
    const profile::Node& n = t.nodes()[i];
    std::array<uint64_t, 4>& s = out[CallPathText(path)];
    s = {s[0] + n.calls, s[1] + n.primitive_calls, s[2] + n.self_cost, s[3] + n.total_cost};
  }
  return out;
}

// ExpectSameReport() — two reports alike, top paths included (`exact`:
// their order too, which ties leave to node order).
void ExpectSameReport(const FunctionReport& got, const FunctionReport& want, bool exact,
                      const std::string& what) {
  EXPECT_EQ(got.unit, want.unit) << what;
  EXPECT_EQ(got.profiled_requests, want.profiled_requests) << what;
  EXPECT_EQ(got.truncated, want.truncated) << what;
  ASSERT_EQ(got.functions.size(), want.functions.size()) << what;
  for (size_t i = 0; i < want.functions.size(); ++i) {
    const FunctionCost &g = got.functions[i], &w = want.functions[i];
    const std::string fw = what + " " + profile::FunctionKeyText(w.function);
    EXPECT_EQ(g.function, w.function) << fw;
    EXPECT_EQ(g.calls, w.calls) << fw;
    EXPECT_EQ(g.primitive_calls, w.primitive_calls) << fw;
    EXPECT_EQ(g.self, w.self) << fw;
    EXPECT_EQ(g.total, w.total) << fw;
    ASSERT_EQ(g.top_paths.size(), w.top_paths.size()) << fw;
    for (size_t p = 0; p < w.top_paths.size(); ++p) {
      EXPECT_EQ(g.top_paths[p].self, w.top_paths[p].self) << fw;
      if (exact) {
        EXPECT_EQ(CallPathText(g.top_paths[p].path), CallPathText(w.top_paths[p].path)) << fw;
      }
    }
  }
}

// FunctionQueries() — slices of every kind over MakeProfiledData's records.
std::vector<std::pair<std::string, FunctionQuery>> FunctionQueries() {
  std::vector<std::pair<std::string, FunctionQuery>> q(6);
  q[0] = {"shop", {.service = "shop"}};
  q[1] = {"shop cart at b7e41d0", {.service = "shop", .endpoint = "cart", .commit = "b7e41d0"}};
  q[2] = {"shop, new_checkout on", {.service = "shop", .flag = "new_checkout", .flag_value = "on"}};
  q[3] = {"search, new_checkout off, hours 2 and 3",
          {.from_us = kStartUs + 70 * kMinuteUs,
           .to_us = kStartUs + 130 * kMinuteUs,
           .service = "search",
           .flag = "new_checkout",
           .flag_value = "off"}};
  q[4] = {
      "search by total, top 2",
      {.service = "search", .endpoint = "it's \\ odd\t", .limit = 2, .sort = FunctionSort::kTotal}};
  q[5] = {"no such service", {.service = "none"}};
  return q;
}

// Moments — (requests, sum, sum_sq, share_sum, share_sq) by
// (service, endpoint, commit, unit, flag value, function).
using MomentKey =
    std::tuple<std::string, std::string, std::string, std::string, std::string, std::string>;
using MomentSums = std::map<MomentKey, std::array<double, 5>>;

MomentSums TruthMoments(const Data& d, const FunctionMomentsQuery& q) {
  MomentSums out;
  std::map<std::tuple<std::string, std::string, std::string, std::string, std::string>, double>
      requests;
  for (const RequestRecord& r : d.records) {
    if (!r.has_profile() || !HourSelected(r, q.from_us, q.to_us)) continue;
    if (q.service && r.service() != *q.service) continue;
    std::string value;
    if (q.flag) {
      auto it = r.flags().find(*q.flag);
      if (it == r.flags().end()) continue;
      value = it->second;
    }
    const record::Profile& p = r.profile();
    requests[{r.service(), r.endpoint(), r.commit(), p.unit(), value}] +=
        p.requests() == 0 ? 1 : static_cast<double>(p.requests());
    std::map<std::string, double> self;
    double total = 0;
    for (int i = 1; i < p.nodes_size(); ++i) {
      const record::ProfileFunction& f = p.functions(static_cast<int>(p.nodes(i).function()));
      self[profile::FunctionKeyText({f.file(), f.line(), f.name()})] += p.nodes(i).self_cost();
      total += static_cast<double>(p.nodes(i).self_cost());
    }
    for (const auto& [key, cost] : self) {
      if (cost == 0) continue;
      std::array<double, 5>& m = out[{r.service(), r.endpoint(), r.commit(), p.unit(), value, key}];
      const double share = cost / total;
      m = {0, m[1] + cost, m[2] + cost * cost, m[3] + share, m[4] + share * share};
    }
  }
  for (auto& [k, m] : out)
    m[0] =
        requests[{std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k), std::get<4>(k)}];
  return out;
}

// MomentsQuery() — a FunctionMomentsQuery (no endpoint or commit).
FunctionMomentsQuery MomentsQuery(std::optional<std::string> service,
                                  std::optional<std::string> flag, int64_t from_us = 0,
                                  int64_t to_us = std::numeric_limits<int64_t>::max()) {
  FunctionMomentsQuery q;
  q.from_us = from_us;
  q.to_us = to_us;
  q.service = std::move(service);
  q.flag = std::move(flag);
  return q;
}

void ExpectMoments(const std::vector<FunctionMoments>& got, const MomentSums& want,
                   const std::string& flag, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  auto w = want.begin();
  for (const FunctionMoments& m : got) {  // in key order
    const MomentKey key{m.service, m.endpoint, m.commit, m.unit, m.flag_value, m.function};
    ASSERT_EQ(key, w->first) << what;
    EXPECT_EQ(m.flag, flag) << what;
    EXPECT_EQ(m.requests, w->second[0]) << what;
    ExpectNear(w->second[1], m.sum, what + " sum");
    ExpectNear(w->second[2], m.sum_sq, what + " sum_sq");
    ExpectNear(w->second[3], m.share_sum, what + " share_sum");
    ExpectNear(w->second[4], m.share_sq, what + " share_sq");
    ++w;
  }
}

TEST_P(StoreConformanceTest, FunctionsAndTreesAnswerAlike) {
  Data d = MakeProfiledData(1600, 100);
  Append(d.batches);
  // Both services: two units.
  EXPECT_EQ(store().Functions({}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store().FunctionTree({.endpoint = "cart"}).status().code(),
            StatusCode::kInvalidArgument);
  for (const auto& [name, q] : FunctionQueries()) {
    const profile::CallTree truth = TruthTree(d, q);
    Result<profile::CallTree> tree = store().FunctionTree(q);
    ASSERT_TRUE(tree.ok()) << name << ": " << tree.status().ToString();
    EXPECT_EQ(tree->requests(), truth.requests()) << name;
    EXPECT_EQ(tree->unit(), truth.unit()) << name;
    EXPECT_EQ(PathSums(*tree), PathSums(truth)) << name;
    Result<FunctionReport> report = store().Functions(q);
    ASSERT_TRUE(report.ok()) << name << ": " << report.status().ToString();
    if (truth.requests() == 0) {
      EXPECT_TRUE(report->functions.empty() && report->unit.empty()) << name;
      continue;
    }
    EXPECT_GT(truth.requests(), 10u) << name;
    ExpectSameReport(*report, ReportFromTree(truth, q), /*exact=*/false, name);
  }
  // The slow helper is commit b7e41d0's alone.
  Result<FunctionReport> other = store().Functions({.service = "shop", .commit = "9f3c2a1"});
  ASSERT_TRUE(other.ok());
  for (const FunctionCost& c : other->functions) EXPECT_NE(c.function, kSlow);
}

TEST_P(StoreConformanceTest, FunctionMomentsAnswerAlike) {
  Data d = MakeProfiledData(1600, 100);
  Append(d.batches);
  const std::vector<std::pair<std::string, FunctionMomentsQuery>> queries = {
      {"shop", MomentsQuery("shop", std::nullopt)},
      {"every service by new_checkout", MomentsQuery(std::nullopt, "new_checkout")},
      {"search by new_checkout, hours 2 and 3",
       MomentsQuery("search", "new_checkout", kStartUs + 70 * kMinuteUs,
                    kStartUs + 130 * kMinuteUs)},
  };
  for (const auto& [name, q] : queries) {
    Result<std::vector<FunctionMoments>> got = store().FunctionMomentsOf(q);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status().ToString();
    const MomentSums want = TruthMoments(d, q);
    EXPECT_GT(want.size(), 8u) << name;
    ExpectMoments(*got, want, q.flag.value_or(""), name);
  }
}

TEST_P(StoreConformanceTest, ReplayedBatchesCountProfilesOnce) {
  Data d = MakeProfiledData(600, 100);
  Append(d.batches);
  for (const AppendOutcome& o : Append(d.batches)) EXPECT_TRUE(o.duplicate);
  const FunctionQuery shop{.service = "shop"};
  Result<profile::CallTree> tree = store().FunctionTree(shop);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  const profile::CallTree truth = TruthTree(d, shop);
  EXPECT_EQ(tree->requests(), truth.requests());
  EXPECT_EQ(PathSums(*tree), PathSums(truth));
  const FunctionMomentsQuery mq = MomentsQuery("shop", std::nullopt);
  Result<std::vector<FunctionMoments>> moments = store().FunctionMomentsOf(mq);
  ASSERT_TRUE(moments.ok());
  ExpectMoments(*moments, TruthMoments(d, mq), "", "replayed");
}

TEST_P(StoreConformanceTest, ProfileFlagsKeepPathsOfTheirFlagsOnly) {
  Data d = MakeProfiledData(400, 100);
  std::unique_ptr<Backend> b;
  if (GetParam() == "sqlite") {
    b = std::make_unique<SqliteBackend>(std::set<std::string>{"beta"});
  } else {
    b = std::make_unique<ClickHouseBackend>(std::set<std::string>{"beta"});
  }
  std::vector<const Batch*> ptrs;
  for (const Batch& batch : d.batches) ptrs.push_back(&batch);
  ASSERT_TRUE(b->store().AppendBatches(ptrs).ok());
  FunctionQuery q{.service = "shop", .flag = "new_checkout", .flag_value = "on"};
  EXPECT_EQ(b->store().FunctionTree(q).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b->store().Functions(q).status().code(), StatusCode::kInvalidArgument);
  q.flag = "beta";  // kept, and no request has it
  Result<profile::CallTree> none = b->store().FunctionTree(q);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->requests(), 0u);
  Result<profile::CallTree> all = b->store().FunctionTree({.service = "shop"});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->requests(), TruthTree(d, {.service = "shop"}).requests());
  // Moments are kept per value of every flag.
  const FunctionMomentsQuery mq = MomentsQuery("shop", "new_checkout");
  Result<std::vector<FunctionMoments>> moments = b->store().FunctionMomentsOf(mq);
  ASSERT_TRUE(moments.ok());
  ExpectMoments(*moments, TruthMoments(d, mq), "new_checkout", "profile_flags");
}

TEST_P(StoreConformanceTest, ProfileRetentionDropsPastDays) {
  Data d = MakeProfiledData(800, 100);
  Append(d.batches);
  // At a midnight + the 90-day window: the first day's profiles go (SQLite
  // deletes whole hours, ClickHouse whole days: here the same), the second's stay.
  const int64_t midnight = (kStartUs / 86'400'000'000 + 1) * 86'400'000'000;
  ASSERT_TRUE(store().ApplyRetention(midnight + 90 * 86'400'000'000).ok());
  const FunctionQuery shop{.service = "shop"};
  Data kept;
  for (const RequestRecord& r : d.records)
    if (r.start_time_unix_us() >= midnight) kept.records.push_back(r);
  const profile::CallTree truth = TruthTree(kept, shop);
  ASSERT_GT(truth.requests(), 0u);
  ASSERT_LT(truth.requests(), TruthTree(d, shop).requests());
  Result<profile::CallTree> tree = store().FunctionTree(shop);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->requests(), truth.requests());
  EXPECT_EQ(PathSums(*tree), PathSums(truth));
  const FunctionMomentsQuery mq = MomentsQuery("shop", "new_checkout");
  Result<std::vector<FunctionMoments>> moments = store().FunctionMomentsOf(mq);
  ASSERT_TRUE(moments.ok());
  ExpectMoments(*moments, TruthMoments(kept, mq), "new_checkout", "after retention");
}

// ---- function code hashes ----

// CodedFunction — a profile's function and its code hash (0: unknown).
struct CodedFunction {
  profile::Function f;
  uint64_t code_hash = 0;
};

// CodedRecord() — a profiled record of `service` on `commit` starting at
// `at_us` whose profile calls each of `functions` from the root; its own
// table lists them in that order.
RequestRecord CodedRecord(const std::string& service, const std::string& commit, int64_t at_us,
                          const std::vector<CodedFunction>& functions) {
  RequestRecord r;
  r.set_start_time_unix_us(at_us);
  r.set_service(service);
  r.set_endpoint("cart");
  r.set_method("GET");
  r.set_status(200);
  r.set_host("web-0");
  r.set_commit(commit);
  r.set_sample_rate(1);
  r.mutable_cpu()->set_cpu_ns(1000);
  profile::CallTree t("cpu_ns", "test", "exact");
  for (const CodedFunction& c : functions)
    t.AddCall(t.Child(profile::kRoot, t.Intern(c.f)), 10, 10, true);
  t.ToProto(r.mutable_profile());
  for (size_t i = 0; i < functions.size(); ++i)
    r.mutable_profile()
        ->mutable_functions(static_cast<int>(i))
        ->set_code_hash(functions[i].code_hash);
  return r;
}

Batch CodedBatch(const std::string& sender, uint64_t sequence, std::vector<RequestRecord> records) {
  Batch b;
  b.set_sender(sender);
  b.set_sequence(sequence);
  for (RequestRecord& r : records) *b.add_records() = std::move(r);
  return b;
}

using Codes = std::vector<std::pair<std::string, uint64_t>>;

// Each function's code of one service and commit (as function key, hash)
// and the backend's answer, with `what` in the failure message.
void ExpectCodes(Store& store, const std::string& service, const std::string& commit,
                 const Codes& want, const std::string& what) {
  Result<std::vector<FunctionCode>> got = store.FunctionCodesOf({service, commit});
  ASSERT_TRUE(got.ok()) << what << ": " << got.status().ToString();
  Codes have;
  for (const FunctionCode& c : *got) have.emplace_back(c.function, c.code_hash);
  EXPECT_EQ(have, want) << what << ": " << service << " " << commit;
}

// Code hashes are kept per (service, commit) whether a profile lists its
// functions itself or in the batch; hash 0 (unknown) is never listed; a
// commit that carried two versions of a function answers the newest; and
// the rows go with the profiles' retention.
TEST_P(StoreConformanceTest, FunctionCodesPerServiceAndCommit) {
  constexpr int64_t kHourUs = 3'600'000'000;
  const profile::Function view{"app.py", 10, "view"}, helper{"app.py", 20, "helper"},
      parse{"lib.py", 5, "parse"}, builtin{"<builtin>", 0, "len"};
  // 22:30 and 23:30 of the first day, 00:30 of the next.
  const int64_t t0 = kStartUs, t1 = kStartUs + kHourUs, t2 = kStartUs + 2 * kHourUs;
  const Batch first =
      CodedBatch("coder-1", 1,
                 {CodedRecord("svc", "a", t0, {{view, 7}, {builtin, 0}}),
                  CodedRecord("svc", "b", t0, {{view, 9}, {helper, 11}, {builtin, 0}}),
                  CodedRecord("other", "a", t0, {{view, 99}})});
  Batch shared = CodedBatch("coder-2", 1,
                            {CodedRecord("svc", "a", t1, {{view, 7}, {parse, 3}, {builtin, 0}}),
                             CodedRecord("svc", "b", t1, {{builtin, 0}, {view, 9}})});
  record::ShareProfileFunctions(&shared);
  ASSERT_TRUE(shared.records(0).profile().functions_in_batch());
  ASSERT_EQ(shared.functions_size(), 4);  // view's two versions are two entries
  // Commit a carried a second version of parse: the newest wins, and a late
  // record of the older version does not win it back.
  const Batch newer = CodedBatch("coder-3", 1, {CodedRecord("svc", "a", t2, {{parse, 4}})});
  const Batch late = CodedBatch("coder-4", 1, {CodedRecord("svc", "a", t0, {{parse, 5}})});
  for (const Batch* b : std::initializer_list<const Batch*>{&first, &shared, &newer, &late})
    Append({*b});

  ExpectCodes(store(), "svc", "a", {{"app.py:10:view", 7}, {"lib.py:5:parse", 4}}, "stored");
  ExpectCodes(store(), "svc", "b", {{"app.py:10:view", 9}, {"app.py:20:helper", 11}}, "stored");
  ExpectCodes(store(), "other", "a", {{"app.py:10:view", 99}}, "stored");
  ExpectCodes(store(), "svc", "c", {}, "stored");

  // The first day past the 90-day window: what was last seen on it goes
  // (SQLite: by the hour, ClickHouse: by the day; here the same).
  const int64_t midnight = (kStartUs / 86'400'000'000 + 1) * 86'400'000'000;
  ASSERT_TRUE(store().ApplyRetention(midnight + 90 * 86'400'000'000).ok());
  ExpectCodes(store(), "svc", "a", {{"lib.py:5:parse", 4}}, "first day dropped");
  ExpectCodes(store(), "svc", "b", {}, "first day dropped");
  ExpectCodes(store(), "other", "a", {}, "first day dropped");
  // Seen again after retention: stored again (no writer remembers the rows gone).
  Batch again = first;
  again.set_sequence(2);
  Append({again});
  ExpectCodes(store(), "svc", "a", {{"app.py:10:view", 7}, {"lib.py:5:parse", 4}}, "seen again");
  ExpectCodes(store(), "svc", "b", {{"app.py:10:view", 9}, {"app.py:20:helper", 11}}, "seen again");
  // Both days past the window: nothing is left.
  ASSERT_TRUE(store().ApplyRetention(midnight + 91 * 86'400'000'000).ok());
  for (const auto& [service, commit] :
       {std::pair<std::string, std::string>{"svc", "a"}, {"svc", "b"}, {"other", "a"}})
    ExpectCodes(store(), service, commit, {}, "every day dropped");
}

// TruthPeak — a service's peak minute as the metric defines it (query.h),
// computed here from the records and tallies.
struct TruthPeak {
  int64_t minute = 0;
  double requests = 0, cpu_total = 0, users = 0;
};

TruthPeak PeakFromSamples(const Data& d, const std::string& service) {
  std::map<int64_t, double> cpu;
  for (const RequestRecord& r : d.records)
    if (r.service() == service)
      cpu[r.start_time_unix_us() / kMinuteUs * 60] += r.cpu().cpu_ns() / r.sample_rate();
  TruthPeak t;
  double best = -1;
  for (const auto& [minute, c] : cpu)
    if (c > best) {
      best = c;
      t.minute = minute;
    }
  std::set<std::string> users;
  for (const RequestRecord& r : d.records)
    if (r.service() == service && r.start_time_unix_us() / kMinuteUs * 60 == t.minute) {
      t.requests += 1 / r.sample_rate();
      t.cpu_total += r.cpu().cpu_ns() / r.sample_rate();
      if (!r.user().empty()) users.insert(r.user());
    }
  t.users = static_cast<double>(users.size());
  return t;
}

// PeakFromTallies() — shop's minute 17: tallied requests times each
// endpoint's mean cpu_ns per request in that minute (else the window's).
TruthPeak PeakFromTallies(const Data& d) {
  TruthPeak t;
  t.minute = kStartUs / 1'000'000 + 17 * 60;
  for (const char* endpoint : {"cart", "checkout"}) {
    double minute_sum = 0, minute_w = 0, window_sum = 0, window_w = 0;
    for (const RequestRecord& r : d.records) {
      if (r.service() != "shop" || r.endpoint() != endpoint) continue;
      window_sum += r.cpu().cpu_ns() / r.sample_rate();
      window_w += 1 / r.sample_rate();
      if (r.start_time_unix_us() / kMinuteUs * 60 != t.minute) continue;
      minute_sum += r.cpu().cpu_ns() / r.sample_rate();
      minute_w += 1 / r.sample_rate();
    }
    const double mean = minute_w > 0 ? minute_sum / minute_w : window_sum / window_w;
    t.requests += 2 * 5000;
    t.cpu_total += 2 * 5000 * mean;
  }
  t.users = 2000;
  return t;
}

TEST_P(StoreConformanceTest, EfficiencyAnswersAlike) {
  Data d = MakeProfiledData(3000, 250);
  Append(d.batches);
  Result<std::vector<ServiceEfficiency>> got = store().Efficiency(
      {.from_us = kStartUs, .to_us = kStartUs + kMinutes * kMinuteUs, .service = ""});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 2u);
  const ServiceEfficiency &search = (*got)[0], &shop = (*got)[1];
  ASSERT_EQ(search.service, "search");
  ASSERT_EQ(shop.service, "shop");

  const TruthPeak s = PeakFromSamples(d, "search");  // no tallies: samples alone
  EXPECT_EQ(search.unit, "cpu_ns");
  EXPECT_FALSE(search.from_tallies);
  EXPECT_FALSE(search.users_from_tallies);
  EXPECT_EQ(search.peak_minute_unix, s.minute);
  ExpectNear(s.requests, search.requests, "search requests");
  ExpectNear(s.cpu_total, search.cpu_total, "search cpu");
  EXPECT_EQ(search.active_users, s.users);
  ExpectNear(s.cpu_total / s.users, search.per_active_user, "search per user");

  const TruthPeak t = PeakFromTallies(d);
  EXPECT_TRUE(shop.from_tallies);
  EXPECT_TRUE(shop.users_from_tallies);
  EXPECT_EQ(shop.peak_minute_unix, t.minute);
  EXPECT_EQ(shop.requests, t.requests);
  ExpectNear(t.cpu_total, shop.cpu_total, "shop cpu");
  // HyperLogLog at precision 12 (the lower of the two): ~1.6% standard error.
  EXPECT_NEAR(shop.active_users, t.users, 0.05 * t.users);
  ASSERT_EQ(shop.endpoints.size(), 2u);
  EXPECT_GE(shop.endpoints[0].cpu_total, shop.endpoints[1].cpu_total);
  ExpectNear(shop.cpu_total / shop.active_users, shop.per_active_user, "shop per user");

  // One service, and a window without a whole minute.
  Result<std::vector<ServiceEfficiency>> one = store().Efficiency(
      {.from_us = kStartUs, .to_us = kStartUs + kMinutes * kMinuteUs, .service = "shop"});
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].peak_minute_unix, t.minute);
  Result<std::vector<ServiceEfficiency>> none =
      store().Efficiency({.from_us = kStartUs + 1, .to_us = kStartUs + 59'000'000, .service = ""});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// The ClickHouse store against the SQLite store on the same batches: the
// same answers to every profile read (node order and tie order included),
// the same merged sketches.
TEST(ClickHouseStoreTest, ProfilesAndEfficiencyMatchSqlite) {
  if (std::getenv("CPULEDGER_CLICKHOUSE_CLUSTER") == nullptr)
    GTEST_SKIP() << "no ClickHouse cluster (ctest's clickhouse_cluster fixture starts one)";
  SqliteBackend sqlite;
  ClickHouseBackend ch;
  ASSERT_TRUE(sqlite.s && ch.s);
  Data d = MakeProfiledData(1600, 100);
  std::vector<const Batch*> ptrs;
  for (const Batch& b : d.batches) ptrs.push_back(&b);
  ASSERT_TRUE(sqlite.s->AppendBatches(ptrs).ok());
  ASSERT_TRUE(ch.s->AppendBatches(ptrs).ok());
  for (const auto& [name, q] : FunctionQueries()) {
    Result<profile::CallTree> a = sqlite.s->FunctionTree(q), b = ch.s->FunctionTree(q);
    ASSERT_TRUE(a.ok() && b.ok()) << name;
    record::Profile pa, pb;
    a->ToProto(&pa);
    b->ToProto(&pb);
    EXPECT_EQ(pa.SerializeAsString(), pb.SerializeAsString()) << name;
    Result<FunctionReport> ra = sqlite.s->Functions(q), rb = ch.s->Functions(q);
    ASSERT_TRUE(ra.ok() && rb.ok()) << name;
    ExpectSameReport(*rb, *ra, /*exact=*/true, name);
  }
  const FunctionMomentsQuery mq = MomentsQuery(std::nullopt, "new_checkout");
  Result<std::vector<FunctionMoments>> ma = sqlite.s->FunctionMomentsOf(mq),
                                       mb = ch.s->FunctionMomentsOf(mq);
  ASSERT_TRUE(ma.ok() && mb.ok());
  MomentSums want;
  for (const FunctionMoments& m : *ma)
    want[{m.service, m.endpoint, m.commit, m.unit, m.flag_value, m.function}] = {
        m.requests, m.sum, m.sum_sq, m.share_sum, m.share_sq};
  ExpectMoments(*mb, want, "new_checkout", "moments");
  const EfficiencySpec spec{
      .from_us = kStartUs, .to_us = kStartUs + kMinutes * kMinuteUs, .service = ""};
  Result<std::vector<ServiceEfficiency>> ea = sqlite.s->Efficiency(spec),
                                         eb = ch.s->Efficiency(spec);
  ASSERT_TRUE(ea.ok() && eb.ok());
  ASSERT_EQ(ea->size(), eb->size());
  for (size_t i = 0; i < ea->size(); ++i) {
    const ServiceEfficiency &a = (*ea)[i], &b = (*eb)[i];
    EXPECT_EQ(b.service, a.service);
    EXPECT_EQ(b.unit, a.unit);
    EXPECT_EQ(b.peak_minute_unix, a.peak_minute_unix);
    EXPECT_EQ(b.from_tallies, a.from_tallies);
    EXPECT_EQ(b.users_from_tallies, a.users_from_tallies);
    EXPECT_EQ(b.active_users, a.active_users) << a.service;  // the same registers merged
    ExpectNear(a.requests, b.requests, a.service + " requests");
    ExpectNear(a.cpu_total, b.cpu_total, a.service + " cpu");
    ASSERT_EQ(b.endpoints.size(), a.endpoints.size());
    for (size_t e = 0; e < a.endpoints.size(); ++e) {
      EXPECT_EQ(b.endpoints[e].endpoint, a.endpoints[e].endpoint);
      ExpectNear(a.endpoints[e].cpu_total, b.endpoints[e].cpu_total, a.service + " endpoint");
    }
  }
}

// A call that died after storing a batch's records and profile sums (its id
// left pending): the retry stores neither again; one that died before the
// profile sums stores them once.
TEST(ClickHouseStoreTest, APendingBatchStoresItsProfilesOnce) {
  if (std::getenv("CPULEDGER_CLICKHOUSE_CLUSTER") == nullptr)
    GTEST_SKIP() << "no ClickHouse cluster (ctest's clickhouse_cluster fixture starts one)";
  ClickHouseBackend whole, with_profiles, without_profiles;
  ASSERT_TRUE(whole.s && with_profiles.s && without_profiles.s);
  Data d = MakeProfiledData(100, 100);  // one batch, over midnight: two days of profiles
  d.batches.resize(1);
  const Batch* one[] = {&d.batches[0]};
  ASSERT_TRUE(whole.s->AppendBatches(one).ok());
  for (const clickhouse::ShardOptions& o : whole.shards) {
    clickhouse::ShardClient c(o);
    for (ClickHouseBackend* torn : {&with_profiles, &without_profiles}) {
      ASSERT_TRUE(
          c.Run("INSERT INTO " + torn->database +
                ".batches_local SELECT sender, sequence, records, tallies, applied, 0 FROM " +
                whole.database + ".batches_local")
              .ok());
      ASSERT_TRUE(c.Run("INSERT INTO " + torn->database + ".records_local SELECT * FROM " +
                        whole.database + ".records_local")
                      .ok());
    }
    ASSERT_TRUE(c.Run("INSERT INTO " + with_profiles.database +
                      ".profile_sums_local SELECT * FROM " + whole.database + ".profile_sums_local")
                    .ok());
  }
  const FunctionQuery shop{.service = "shop"};
  const profile::CallTree truth = TruthTree(d, shop);
  ASSERT_GT(truth.requests(), 0u);
  for (ClickHouseBackend* torn : {&with_profiles, &without_profiles}) {
    Result<std::vector<AppendOutcome>> retry = torn->s->AppendBatches(one);
    ASSERT_TRUE(retry.ok()) << retry.status().ToString();
    EXPECT_FALSE((*retry)[0].duplicate);
    Result<profile::CallTree> tree = torn->s->FunctionTree(shop);
    ASSERT_TRUE(tree.ok()) << tree.status().ToString();
    EXPECT_EQ(tree->requests(), truth.requests()) << torn->database;
    EXPECT_EQ(PathSums(*tree), PathSums(truth)) << torn->database;
    Result<StoreStats> stats = torn->s->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->raw_samples, 100u);
  }
}

// A call that died after storing a batch's tallies (its id left pending):
// the retry stores the rest, and each row once.
TEST(ClickHouseStoreTest, APendingBatchGetsOnlyTheRowsItLacks) {
  if (std::getenv("CPULEDGER_CLICKHOUSE_CLUSTER") == nullptr)
    GTEST_SKIP() << "no ClickHouse cluster (ctest's clickhouse_cluster fixture starts one)";
  ClickHouseBackend whole, torn;
  ASSERT_TRUE(whole.s && torn.s);
  Data d = MakeData(30, 30);
  Batch& b = d.batches[0];
  for (int t = 0; t < 2; ++t) {
    record::WorkerTally* tally = b.add_tallies();
    tally->set_minute_unix(kStartUs / 1'000'000 / 60 * 60 + 60 * t);
    tally->set_service("shop");
    tally->set_sender(b.sender());
    for (const char* endpoint : {"cart", "home"}) {
      record::EndpointCount* e = tally->add_endpoints();
      e->set_endpoint(endpoint);
      e->set_requests(100);
      e->set_sampled(1);
    }
    tally->set_active_users_hll(std::string(16, '\x01'));
    tally->set_hll_precision(4);
  }
  const Batch* one[] = {&b};
  ASSERT_TRUE(whole.s->AppendBatches(one).ok());
  for (const clickhouse::ShardOptions& o : whole.shards) {
    clickhouse::ShardClient c(o);
    ASSERT_TRUE(c.Run("INSERT INTO " + torn.database +
                      ".batches_local SELECT sender, sequence, records, tallies, applied, 0 FROM " +
                      whole.database + ".batches_local")
                    .ok());
    ASSERT_TRUE(c.Run("INSERT INTO " + torn.database + ".tallies_local SELECT * FROM " +
                      whole.database + ".tallies_local")
                    .ok());
  }
  Result<std::vector<AppendOutcome>> retry = torn.s->AppendBatches(one);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_FALSE((*retry)[0].duplicate);
  EXPECT_EQ((*retry)[0].records, 30u);
  Result<StoreStats> stats = torn.s->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->raw_samples, 30u);
  EXPECT_EQ(stats->tallies, 2u);
  clickhouse::ShardClient first(whole.shards[0]);
  Result<std::string> tally_rows =
      first.Run("SELECT count() FROM " + torn.database + ".tallies FORMAT TabSeparated");
  ASSERT_TRUE(tally_rows.ok());
  EXPECT_EQ(*tally_rows, "4\n");  // two tallies of two endpoints, once
  retry = torn.s->AppendBatches(one);
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE((*retry)[0].duplicate);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformanceTest, ::testing::Values("sqlite", "clickhouse"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cpuledger::store

// ---- alerts and the detector lease (appended: ids differ between backends,
// so the answers are compared by what each alert is, not by its number) ----

namespace cpuledger::store {
namespace {

Alert MakeAlert(const std::string& key, const std::string& service, int64_t at_us,
                const std::string& body, int64_t reopens = 0) {
  Alert a;
  a.key = key;
  a.service = service;
  a.endpoint = "cart";
  a.kind = "rollout";
  a.updated_us = at_us;
  a.body = body;
  a.reopens = reopens;
  return a;
}

std::vector<int64_t> Ids(const Result<std::vector<Alert>>& alerts) {
  std::vector<int64_t> out;
  if (alerts.ok())
    for (const Alert& a : *alerts) out.push_back(a.id);
  return out;
}

TEST_P(StoreConformanceTest, AlertsUpsertTransitionAndFilterAlike) {
  // A key and body with every character SQL quoting must survive.
  const std::string key = "shop|cart|it's \\ odd\t\n|rollout";
  Result<UpsertOutcome> first = store().UpsertAlert(MakeAlert(key, "shop", kStartUs, "{\"v\":1}"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->opened);
  const int64_t id1 = first->id;
  Result<UpsertOutcome> again =
      store().UpsertAlert(MakeAlert(key, "shop", kStartUs + 10, "{\"v\":\"2\\t'\"}"));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->opened);
  EXPECT_EQ(again->id, id1);
  Result<Alert> a1 = store().AlertById(id1);
  ASSERT_TRUE(a1.ok()) << a1.status().ToString();
  EXPECT_EQ(a1->key, key);
  EXPECT_EQ(a1->state, "open");
  EXPECT_EQ(a1->body, "{\"v\":\"2\\t'\"}");
  EXPECT_EQ(a1->opened_us, kStartUs);
  EXPECT_EQ(a1->updated_us, kStartUs + 10);

  Result<UpsertOutcome> other =
      store().UpsertAlert(MakeAlert("search|home||flag", "search", kStartUs + 20, "{}"));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->opened);
  const int64_t id2 = other->id;
  EXPECT_NE(id2, id1);

  auto move = [&](int64_t id, AlertState to, int64_t at, const char* by, const char* note = "",
                  const char* detail = "") {
    return store().TransitionAlert(
        {.id = id, .to = to, .at_us = at, .by = by, .note = note, .detail = detail});
  };
  Result<TransitionOutcome> ack =
      move(id1, AlertState::kAcknowledged, kStartUs + 30, "ana", "on it");
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_TRUE(ack->applied);
  EXPECT_EQ(ack->alert.state, "acknowledged");
  for (AlertState refused : {AlertState::kAcknowledged, AlertState::kOpen}) {
    Result<TransitionOutcome> no = move(id1, refused, kStartUs + 31, "bob");
    ASSERT_TRUE(no.ok());
    EXPECT_FALSE(no->applied);
    EXPECT_EQ(no->refusal, AlertTransitionRefusal(AlertState::kAcknowledged, refused));
    EXPECT_EQ(no->alert.state, "acknowledged");
    EXPECT_EQ(no->alert.updated_us, kStartUs + 30);
  }
  // The acknowledged alert is still the live one of its key: updated, not reopened.
  Result<UpsertOutcome> live =
      store().UpsertAlert(MakeAlert(key, "shop", kStartUs + 40, "{\"v\":3}"));
  ASSERT_TRUE(live.ok());
  EXPECT_FALSE(live->opened);
  EXPECT_EQ(live->id, id1);
  a1 = store().AlertById(id1);
  ASSERT_TRUE(a1.ok());
  EXPECT_EQ(a1->state, "acknowledged");
  EXPECT_EQ(a1->body, "{\"v\":3}");

  Result<TransitionOutcome> resolved =
      move(id1, AlertState::kResolved, kStartUs + 50, "detector", "", "{\"after\":0.001}");
  ASSERT_TRUE(resolved.ok());
  EXPECT_TRUE(resolved->applied);
  Result<TransitionOutcome> stays = move(id1, AlertState::kAcknowledged, kStartUs + 51, "ana");
  ASSERT_TRUE(stays.ok());
  EXPECT_FALSE(stays->applied);
  EXPECT_EQ(stays->refusal,
            AlertTransitionRefusal(AlertState::kResolved, AlertState::kAcknowledged));
  EXPECT_EQ(stays->alert.state, "resolved");

  // The key fires again: a new alert naming the resolved one.
  Result<UpsertOutcome> reopened =
      store().UpsertAlert(MakeAlert(key, "shop", kStartUs + 60, "{\"v\":4}", id1));
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE(reopened->opened);
  const int64_t id3 = reopened->id;
  EXPECT_NE(id3, id1);
  EXPECT_NE(id3, id2);
  Result<Alert> a3 = store().AlertById(id3);
  ASSERT_TRUE(a3.ok());
  EXPECT_EQ(a3->reopens, id1);
  EXPECT_EQ(a3->state, "open");
  EXPECT_EQ(store().AlertById(id1)->state, "resolved");

  Result<std::vector<AlertEvent>> events = store().AlertEvents(id1);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 3u);  // oldest first; refusals left no trace
  EXPECT_EQ((*events)[0].state, "open");
  EXPECT_EQ((*events)[0].by, "detector");
  EXPECT_EQ((*events)[0].at_us, kStartUs);
  EXPECT_EQ((*events)[1].state, "acknowledged");
  EXPECT_EQ((*events)[1].by, "ana");
  EXPECT_EQ((*events)[1].note, "on it");
  EXPECT_EQ((*events)[2].state, "resolved");
  EXPECT_EQ((*events)[2].detail, "{\"after\":0.001}");
  events = store().AlertEvents(id3);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].note, "reopens alert " + std::to_string(id1));

  // Newest first, and every filter.
  auto with = [](auto set) {
    AlertQuery q;
    set(q);
    return q;
  };
  EXPECT_EQ(Ids(store().Alerts({})), (std::vector<int64_t>{id3, id2, id1}));
  EXPECT_EQ(Ids(store().Alerts(with([](AlertQuery& q) { q.state = "open"; }))),
            (std::vector<int64_t>{id3, id2}));
  EXPECT_EQ(Ids(store().Alerts(with([](AlertQuery& q) { q.state = "resolved"; }))),
            (std::vector<int64_t>{id1}));
  EXPECT_TRUE(Ids(store().Alerts(with([](AlertQuery& q) { q.state = "acknowledged"; }))).empty());
  EXPECT_EQ(Ids(store().Alerts(with([](AlertQuery& q) { q.service = "search"; }))),
            (std::vector<int64_t>{id2}));
  EXPECT_EQ(Ids(store().Alerts(with([&](AlertQuery& q) { q.key = key; }))),
            (std::vector<int64_t>{id3, id1}));
  EXPECT_EQ(Ids(store().Alerts(with([](AlertQuery& q) {
              q.from_us = kStartUs + 10;
              q.to_us = kStartUs + 60;
            }))),
            (std::vector<int64_t>{id2}));
  EXPECT_EQ(Ids(store().Alerts(with([](AlertQuery& q) { q.limit = 2; }))),
            (std::vector<int64_t>{id3, id2}));

  const int64_t unknown = std::max({id1, id2, id3}) + 1'000'003;
  EXPECT_EQ(store().AlertById(unknown).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(move(unknown, AlertState::kResolved, kStartUs, "ana").status().code(),
            StatusCode::kNotFound);
  Result<std::vector<AlertEvent>> none = store().AlertEvents(unknown);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreConformanceTest, LeaseIsTakenRenewedRefusedAndTakenOverAfterExpiry) {
  constexpr int64_t kTtl = 10'000'000;
  auto hold = [&](const char* name, const char* holder, int64_t at) {
    Result<bool> r = store().HoldLease(name, holder, kStartUs + at, kTtl);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() && *r;
  };
  EXPECT_TRUE(hold("detector", "a:1:x", 0));            // free: taken
  EXPECT_TRUE(hold("detector", "a:1:x", 5'000'000));    // renewed: now until 15 s
  EXPECT_FALSE(hold("detector", "b:2:y", 6'000'000));   // held by a
  EXPECT_TRUE(hold("other", "b:2:y", 6'000'000));       // names are independent
  EXPECT_FALSE(hold("detector", "b:2:y", 14'999'999));  // a's renewal still runs
  EXPECT_TRUE(hold("detector", "b:2:y", 15'000'000));   // expired: taken over
  EXPECT_FALSE(hold("detector", "a:1:x", 16'000'000));  // a came back: b holds it
  EXPECT_TRUE(hold("detector", "b:2:y", 20'000'000));
  EXPECT_FALSE(hold("detector", "a:1:x", 29'999'999));
}

}  // namespace
}  // namespace cpuledger::store

namespace cpuledger::store {
namespace {

// SecondStore() — another Store on the same file or database: what a second
// server sees.
std::unique_ptr<Store> SecondStore(Backend& backend) {
  if (auto* s = dynamic_cast<SqliteBackend*>(&backend)) {
    Result<std::unique_ptr<Store>> r = OpenSqliteStore({.path = s->dir.File("ledger.sqlite")});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }
  auto& c = dynamic_cast<ClickHouseBackend&>(backend);
  ClickHouseOptions o;
  o.shards = c.shards;
  o.database = c.database;
  o.cluster = "cpuledger";
  Result<std::unique_ptr<Store>> r = OpenClickHouseStore(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

TEST_P(StoreConformanceTest, TwoServersShareOneLeaseAndSeeEachOthersAlerts) {
  std::unique_ptr<Store> other = SecondStore(*backend_);
  ASSERT_NE(other, nullptr);
  constexpr int64_t kTtl = 3'000'000;
  Result<bool> a = store().HoldLease("detector", "host-a:1:aa", kStartUs, kTtl);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(*a);
  Result<bool> b = other->HoldLease("detector", "host-b:2:bb", kStartUs + 1'000'000, kTtl);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(*b);
  b = other->HoldLease("detector", "host-b:2:bb", kStartUs + kTtl, kTtl);  // a never renewed
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(*b);
  a = store().HoldLease("detector", "host-a:1:aa", kStartUs + kTtl + 1, kTtl);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(*a);

  // An alert one server opens, the other updates and resolves.
  Result<UpsertOutcome> opened = store().UpsertAlert(MakeAlert("k", "shop", kStartUs, "{}"));
  ASSERT_TRUE(opened.ok());
  Result<UpsertOutcome> updated = other->UpsertAlert(MakeAlert("k", "shop", kStartUs + 5, "{}"));
  ASSERT_TRUE(updated.ok());
  EXPECT_FALSE(updated->opened);
  EXPECT_EQ(updated->id, opened->id);
  Result<TransitionOutcome> resolved = other->TransitionAlert({.id = opened->id,
                                                               .to = AlertState::kResolved,
                                                               .at_us = kStartUs + 9,
                                                               .by = "api",
                                                               .note = "",
                                                               .detail = ""});
  ASSERT_TRUE(resolved.ok());
  EXPECT_TRUE(resolved->applied);
  Result<Alert> seen = store().AlertById(opened->id);
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->state, "resolved");
  EXPECT_EQ(seen->updated_us, kStartUs + 9);
}

// Hour boundaries crossed with sub-minute edges: ClickHouse answers from hour
// rollups, minute rollups and raw records at once (sql.h QuerySql); records
// on the first and last microsecond of hours, minutes and the range must be
// counted once, exactly, as SQLite does from its records.
TEST_P(StoreConformanceTest, QueriesAcrossHoursWithSubMinuteEdgesAreExact) {
  constexpr int64_t kHourUs = 60 * kMinuteUs;
  Data d = MakeData(2000, 250);
  const int64_t hour = (kStartUs / kHourUs + 1) * kHourUs;  // the data's first whole hour
  const int64_t from = hour - 23 * kMinuteUs - 1'500'000,
                to = hour + 2 * kHourUs + 11 * kMinuteUs + 250'001;
  ASSERT_LT(to, kStartUs + kMinutes * kMinuteUs);
  Batch edges;
  edges.set_sender("sender-edges");
  edges.set_sequence(1);
  std::mt19937_64 rng(29);
  int i = 0;
  for (int64_t at : {from - 1, from, hour - kMinuteUs - 1, hour - 1, hour, hour + kHourUs - 1,
                     hour + kHourUs, hour + 2 * kHourUs - 1, hour + 2 * kHourUs,
                     hour + 2 * kHourUs + 11 * kMinuteUs, to - 1, to}) {
    RequestRecord r = MakeRecord(rng, i++);
    r.set_start_time_unix_us(at);
    *edges.add_records() = r;
    d.records.push_back(std::move(r));
  }
  d.batches.push_back(std::move(edges));
  Append(d.batches);

  const DimensionRef endpoint{Dimension::kEndpoint, ""}, host{Dimension::kHost, ""},
      commit{Dimension::kCommit, ""}, service{Dimension::kService, ""};
  auto spec = [](std::vector<DimensionRef> group_by, int64_t lo, int64_t hi,
                 Bucket bucket = Bucket::kNone, std::vector<Filter> filters = {}) {
    QuerySpec q;
    q.group_by = std::move(group_by);
    q.filters = std::move(filters);
    q.from_us = lo;
    q.to_us = hi;
    q.bucket = bucket;
    q.limit = 1000;
    return q;
  };
  const std::vector<std::pair<std::string, QuerySpec>> queries = {
      {"by endpoint", spec({endpoint}, from, to)},
      {"by host, per hour", spec({host}, from, to, Bucket::kHour)},
      {"by service, per day, one commit",
       spec({service}, from, to, Bucket::kDay, {{commit, "b7e41d0"}})},
      {"by commit, per minute", spec({commit}, from, to, Bucket::kMinute)},
      {"whole hours, by endpoint", spec({endpoint}, hour, hour + 2 * kHourUs)},
      {"whole minutes across an hour", spec({}, hour - 7 * kMinuteUs, hour + kHourUs + kMinuteUs)},
  };
  for (const auto& [name, q] : queries) {
    ExpectAnswers(store(), d, q, name);
    if (GetParam() != "clickhouse") continue;
    Result<QueryResult> r = store().Query(q);
    ASSERT_TRUE(r.ok()) << name;
    EXPECT_TRUE(r->used_rollups) << name;
  }
}

}  // namespace
}  // namespace cpuledger::store
