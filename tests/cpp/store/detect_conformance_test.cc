// tests/cpp/store/detect_conformance_test.cc — the detectors give the same
// findings on every Store backend (issue 17's conformance suite, "detectors
// included"): one simulated data set (src/sim) appended to a fresh SQLite
// store and to a fresh ClickHouse database on the two-shard cluster that
// ctest's clickhouse_cluster fixture starts (backends.h), then
// RunDetectors() and RecordRun() — the lease-free entry that the server's
// schedule and /v1/detect wrap — with the same options and `now` on both.
//
// Both stores hold the same samples and function moments, so every
// comparison is made on the same numbers: the same alerts, skips and
// reasons, the same culprits, the same sample counts and windows, exactly;
// effects, means and p-values to 1e-9 relative. Endpoint-level findings
// come out bit-identical (the same bills, in start order); function-level
// ones differ in the last bits, because ClickHouse adds the function
// moments' sums of doubles in another order than SQLite. The stored alerts,
// their states and keys agree after a run, and a second run opens nothing.
// Checked to fail when one side differs: one minute's batch left out of the
// ClickHouse store fails all three tests, one history effect changed fails
// the learned threshold.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "backends.h"
#include "detect/detect.h"
#include "sim/fleet.h"
#include "store/store.h"

namespace cpuledger::detect {
namespace {

using test_support::ClickHouseBackend;
using test_support::SqliteBackend;

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kHour = 3600 * kUs;
constexpr int64_t kStartS = 1767614400;  // 2026-01-05 12:00 UTC: the day's busy half
constexpr int kHours = 4;
constexpr int64_t kNowUs = (kStartS + kHours * 3600) * kUs;  // the run's end

// ShopWeb() — the default fleet's shop-web alone, four hours of it: the
// rollout 9f3c2a1 -> b7e41d0 at 2 h makes /checkout/ 20% costlier (culprit
// checkout_render), new_search=on makes /search/ 35% costlier (culprit
// search_load), and /, /product/<int:id>/ and /cart/ are unchanged. About
// 70k sampled records, a fifth profiled: seconds to store and to detect.
sim::FleetConfig ShopWeb() {
  sim::FleetConfig c = sim::DefaultFleet();
  c.services.resize(1);
  c.start_unix_s = kStartS;
  c.duration_s = kHours * 3600;
  c.peak_rps = 20;
  c.sample_rate = 0.25;
  c.profile_rate = 0.2;
  c.rollouts[0].at_s = 2 * 3600;
  return c;
}

std::vector<record::Batch> Simulate(const sim::FleetConfig& config) {
  std::vector<record::Batch> batches;
  sim::FleetSimulator sim(config);
  while (std::optional<record::Batch> b = sim.NextMinute()) batches.push_back(std::move(*b));
  return batches;
}

// Append() — the batches in groups of 30 minutes, as a busy server's writer
// would hand them over (one call per minute is slow on ClickHouse).
void Append(store::Store& s, const std::vector<record::Batch>& batches) {
  std::vector<const record::Batch*> ptrs;
  for (const record::Batch& b : batches) ptrs.push_back(&b);
  for (size_t i = 0; i < ptrs.size(); i += 30) {
    std::span<const record::Batch* const> group(ptrs.data() + i,
                                                std::min<size_t>(30, ptrs.size() - i));
    Result<std::vector<store::AppendOutcome>> out = s.AppendBatches(group);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
  }
}

// Options() — the defaults, but before/after windows that fill within the
// run's two hours after the rollout (/checkout/ gets ~1k samples an hour).
DetectOptions Options(int64_t now_us) {
  DetectOptions o;
  o.now_us = now_us;
  o.before_after.samples = 1000;
  return o;
}

// ---- comparing findings ----

void ExpectClose(double sqlite, double clickhouse, const std::string& what) {
  EXPECT_NEAR(sqlite, clickhouse, 1e-9 * std::max({1.0, std::fabs(sqlite), std::fabs(clickhouse)}))
      << what;
}

std::string Id(const Finding& f) { return f.kind + " " + f.Key(); }

std::vector<Finding> Sorted(std::vector<Finding> v) {
  std::sort(v.begin(), v.end(), [](const Finding& a, const Finding& b) {
    return std::tie(a.kind, a.service, a.endpoint, a.function, a.cause, a.from_us) <
           std::tie(b.kind, b.service, b.endpoint, b.function, b.cause, b.from_us);
  });
  return v;
}

void ExpectSameFinding(const Finding& a, const Finding& b) {
  const std::string id = Id(a);
  EXPECT_EQ(Id(a), Id(b));
  EXPECT_EQ(a.base_commit, b.base_commit) << id;
  EXPECT_EQ(a.target_commit, b.target_commit) << id;
  EXPECT_EQ(a.commits, b.commits) << id;
  EXPECT_EQ(std::tie(a.flag, a.flag_value, a.flag_reference),
            std::tie(b.flag, b.flag_value, b.flag_reference))
      << id;
  EXPECT_EQ(a.method, b.method) << id;
  EXPECT_EQ(a.unit, b.unit) << id;
  EXPECT_EQ(a.alert, b.alert) << id;
  EXPECT_EQ(a.reason, b.reason) << id;
  EXPECT_EQ(a.threshold_source, b.threshold_source) << id;
  EXPECT_EQ(a.samples_before, b.samples_before) << id;
  EXPECT_EQ(a.samples_after, b.samples_after) << id;
  EXPECT_EQ(a.from_us, b.from_us) << id;
  EXPECT_EQ(a.to_us, b.to_us) << id;
  EXPECT_EQ(a.effect.ok, b.effect.ok) << id;
  ExpectClose(a.effect.estimate, b.effect.estimate, id + " estimate");
  ExpectClose(a.effect.lo, b.effect.lo, id + " lo");
  ExpectClose(a.effect.hi, b.effect.hi, id + " hi");
  ExpectClose(a.mean_before, b.mean_before, id + " mean_before");
  ExpectClose(a.mean_after, b.mean_after, id + " mean_after");
  ExpectClose(a.threshold, b.threshold, id + " threshold");
  ExpectClose(a.p_value, b.p_value, id + " p");
  ExpectClose(a.q_value, b.q_value, id + " q");
  ExpectClose(a.explained_share, b.explained_share, id + " explained_share");
  ASSERT_EQ(a.top_functions.size(), b.top_functions.size()) << id;
  for (size_t i = 0; i < a.top_functions.size(); ++i) {
    EXPECT_EQ(a.top_functions[i].function, b.top_functions[i].function) << id << " #" << i;
    EXPECT_EQ(a.top_functions[i].path, b.top_functions[i].path) << id << " #" << i;
    ExpectClose(a.top_functions[i].added, b.top_functions[i].added, id + " added");
  }
}

void ExpectSameFindings(const std::vector<Finding>& sqlite, const std::vector<Finding>& ch,
                        const std::string& list) {
  std::vector<Finding> a = Sorted(sqlite), b = Sorted(ch);
  std::vector<std::string> ids_a, ids_b;
  for (const Finding& f : a) ids_a.push_back(Id(f));
  for (const Finding& f : b) ids_b.push_back(Id(f));
  ASSERT_EQ(ids_a, ids_b) << list;
  for (size_t i = 0; i < a.size(); ++i) ExpectSameFinding(a[i], b[i]);
}

void ExpectSameReports(const DetectReport& sqlite, const DetectReport& ch) {
  EXPECT_EQ(sqlite.tests, ch.tests);
  ExpectSameFindings(sqlite.alerts, ch.alerts, "alerts");
  ExpectSameFindings(sqlite.skipped, ch.skipped, "skipped");
  ExpectSameFindings(sqlite.evaluated, ch.evaluated, "evaluated");
  ASSERT_EQ(sqlite.rechecks.size(), ch.rechecks.size());
  // Alert ids are each store's own; keys and verdicts are the detectors'.
  auto verdicts = [](const DetectReport& r) {
    std::vector<std::tuple<std::string, std::string, int>> v;
    for (const Recheck& c : r.rechecks) v.emplace_back(c.key, c.state, static_cast<int>(c.verdict));
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(verdicts(sqlite), verdicts(ch));
}

// StoredAlerts() — (key, kind, service, endpoint, state, reopens != 0), by key.
std::vector<std::tuple<std::string, std::string, std::string, std::string, std::string, bool>>
StoredAlerts(store::Store& s) {
  Result<std::vector<store::Alert>> alerts = s.Alerts({});
  EXPECT_TRUE(alerts.ok()) << alerts.status().ToString();
  std::vector<std::tuple<std::string, std::string, std::string, std::string, std::string, bool>>
      out;
  if (!alerts.ok()) return out;
  for (const store::Alert& a : *alerts)
    out.emplace_back(a.key, a.kind, a.service, a.endpoint, a.state, a.reopens != 0);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::pair<std::string, std::string>> Changes(const std::vector<AlertChange>& changes) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const AlertChange& c : changes) out.emplace_back(c.finding.Key(), c.change);
  std::sort(out.begin(), out.end());
  return out;
}

const Finding* Find(const std::vector<Finding>& v, const std::string& kind,
                    const std::string& endpoint) {
  for (const Finding& f : v)
    if (f.kind == kind && f.endpoint == endpoint && f.function.empty()) return &f;
  return nullptr;
}

// ---- the suite ----

class DetectConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test_support::ClickHouseClusterConfigured())
      GTEST_SKIP() << test_support::kNoClusterMessage;
    ch_.emplace(std::nullopt, "detect");
    ASSERT_TRUE(sqlite_.s && ch_->s);
    const std::vector<record::Batch> batches = Simulate(ShopWeb());
    ASSERT_NO_FATAL_FAILURE(Append(*sqlite_.s, batches));
    ASSERT_NO_FATAL_FAILURE(Append(*ch_->s, batches));
  }
  store::Store& sqlite() { return *sqlite_.s; }
  store::Store& clickhouse() { return *ch_->s; }

  // Detect() — one run (RunDetectors + RecordRun) on a store.
  static std::pair<DetectReport, std::vector<AlertChange>> Detect(store::Store& s, int64_t now_us) {
    Result<DetectReport> report = RunDetectors(s, Options(now_us));
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    if (!report.ok()) return {};
    Result<std::vector<AlertChange>> changes = RecordRun(s, *report);
    EXPECT_TRUE(changes.ok()) << changes.status().ToString();
    return {*report, changes.ok() ? *changes : std::vector<AlertChange>{}};
  }

  SqliteBackend sqlite_;
  std::optional<ClickHouseBackend> ch_;
};

// Read-only, at 2 h 25 min: the rollout's spread is over but its
// after-windows are still filling, so every endpoint of it is a skip.
TEST_F(DetectConformanceTest, SameSkipReasonsWhileTheRolloutFills) {
  const int64_t now_us = (kStartS + 2 * 3600 + 25 * 60) * kUs;
  Result<DetectReport> lite = RunDetectors(sqlite(), Options(now_us));
  Result<DetectReport> ch = RunDetectors(clickhouse(), Options(now_us));
  ASSERT_TRUE(lite.ok() && ch.ok());
  ExpectSameReports(*lite, *ch);
  const Finding* cart = Find(ch->skipped, "rollout", "/cart/");
  ASSERT_NE(cart, nullptr) << ToJson(*ch).dump(2);
  EXPECT_NE(cart->reason.find("waiting for the after-window"), std::string::npos) << cart->reason;
}

TEST_F(DetectConformanceTest, SameFindingsAndStoredAlertsOnBothBackends) {
  auto [lite, lite_changes] = Detect(sqlite(), kNowUs);
  auto [ch, ch_changes] = Detect(clickhouse(), kNowUs);
  ExpectSameReports(lite, ch);

  // The data set does what it is for: both regressions alert, with their
  // culprits first, and the unchanged endpoint is tested and quiet.
  const Finding* rollout = Find(ch.alerts, "rollout", "/checkout/");
  ASSERT_NE(rollout, nullptr) << ToJson(ch).dump(2);
  EXPECT_EQ(rollout->target_commit, "b7e41d0");
  ASSERT_FALSE(rollout->top_functions.empty());
  EXPECT_EQ(rollout->top_functions[0].function, "shop/web/logic.py:210:checkout_render");
  const Finding* flag = Find(ch.alerts, "flag", "/search/");
  ASSERT_NE(flag, nullptr) << ToJson(ch).dump(2);
  EXPECT_EQ(flag->flag, "new_search");
  ASSERT_FALSE(flag->top_functions.empty());
  EXPECT_EQ(flag->top_functions[0].function, "shop/web/logic.py:160:search_load");
  const Finding* cart = Find(ch.evaluated, "rollout", "/cart/");
  ASSERT_NE(cart, nullptr) << ToJson(ch).dump(2);
  EXPECT_FALSE(cart->alert);

  EXPECT_EQ(Changes(lite_changes), Changes(ch_changes));
  EXPECT_FALSE(ch_changes.empty());
  const auto stored = StoredAlerts(clickhouse());
  EXPECT_EQ(StoredAlerts(sqlite()), stored);
  EXPECT_EQ(stored.size(), ch.alerts.size());

  // Again, the same `now`: the live alerts are updated, none opened again.
  auto [lite2, lite2_changes] = Detect(sqlite(), kNowUs);
  auto [ch2, ch2_changes] = Detect(clickhouse(), kNowUs);
  ExpectSameReports(lite2, ch2);
  EXPECT_EQ(Changes(lite2_changes), Changes(ch2_changes));
  for (const AlertChange& c : ch2_changes) EXPECT_NE(c.change, "opened") << c.finding.Key();
  EXPECT_EQ(StoredAlerts(sqlite()), stored);
  EXPECT_EQ(StoredAlerts(clickhouse()), stored);
}

// Effects of earlier runs on both stores (the same history of five quiet
// earlier deploys and flags per endpoint, and a real run an hour before):
// the thresholds learned from it agree, and so does everything they gate.
TEST_F(DetectConformanceTest, LearnedThresholdsAgreeWithEffectHistory) {
  std::vector<store::EffectRecord> history;
  const char* endpoints[] = {"/", "/product/<int:id>/", "/search/", "/cart/", "/checkout/"};
  for (const char* endpoint : endpoints)
    for (const char* kind : {"rollout", "flag"})
      for (int i = 0; i < 6; ++i)
        history.push_back({.at_us = kNowUs - (30 - i) * kHour,
                           .service = "shop-web",
                           .endpoint = endpoint,
                           .function = "",
                           .kind = kind,
                           .cause = "earlier " + std::to_string(i),
                           .estimate = 0.02 + 0.005 * i,
                           .lo = 0.015 + 0.005 * i,
                           .hi = 0.025 + 0.005 * i,
                           .alerted = false});
  ASSERT_TRUE(sqlite().AppendEffects(history).ok());
  ASSERT_TRUE(clickhouse().AppendEffects(history).ok());
  auto [lite_early, lite_early_changes] = Detect(sqlite(), kNowUs - kHour);
  auto [ch_early, ch_early_changes] = Detect(clickhouse(), kNowUs - kHour);
  ExpectSameReports(lite_early, ch_early);

  auto [lite, lite_changes] = Detect(sqlite(), kNowUs);
  auto [ch, ch_changes] = Detect(clickhouse(), kNowUs);
  ExpectSameReports(lite, ch);
  EXPECT_EQ(Changes(lite_changes), Changes(ch_changes));
  EXPECT_EQ(StoredAlerts(sqlite()), StoredAlerts(clickhouse()));
  // The history did its work: learned, not the floor.
  const Finding* cart = Find(ch.evaluated, "rollout", "/cart/");
  ASSERT_NE(cart, nullptr) << ToJson(ch).dump(2);
  EXPECT_EQ(cart->threshold_source, "learned");
  EXPECT_GT(cart->threshold, Options(kNowUs).threshold_floor);

  for (const char* endpoint : endpoints) {
    store::EffectHistoryQuery q{
        .service = "shop-web", .endpoint = endpoint, .function = "", .kind = "rollout"};
    Result<std::vector<store::EffectRecord>> a = sqlite().EffectHistory(q);
    Result<std::vector<store::EffectRecord>> b = clickhouse().EffectHistory(q);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->size(), b->size()) << endpoint;
    for (size_t i = 0; i < a->size(); ++i) {
      EXPECT_EQ(std::tie((*a)[i].at_us, (*a)[i].cause, (*a)[i].alerted),
                std::tie((*b)[i].at_us, (*b)[i].cause, (*b)[i].alerted))
          << endpoint << " #" << i;
      ExpectClose((*a)[i].estimate, (*b)[i].estimate, endpoint);
    }
  }
}

}  // namespace
}  // namespace cpuledger::detect
