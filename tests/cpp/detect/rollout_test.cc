// tests/cpp/detect/rollout_test.cc — the rollout detector on small
// constructed fleets: a plain restart (every host at once, no side by side)
// of a busy and two quiet endpoints. Windows scale with traffic and per
// service, a waiting comparison says until when in UTC, and the quiet
// endpoints go to the sequential test, which catches a regression within
// hours and stays silent on a no-op however often it is looked at.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>

#include "detect/detect.h"
#include "profile/call_tree.h"
#include "store/store.h"
#include "temp_dir.h"

namespace cpuledger::detect {
namespace {

using cpuledger::test_support::TempDir;

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kMin = 60 * kUs;
constexpr int64_t kHour = 3600 * kUs;
constexpr int64_t kT0 = 1767225600LL * kUs;    // 2026-01-01T00:00:00Z
constexpr int64_t kRestart = kT0 + 6 * kHour;  // "a" -> "b", every host at once

// EndpointSpec — name, requests a minute, the cost factor commit b brings,
// how much a request's cost varies (a lognormal's sigma), the share of
// requests with flag "beta" on (1.5 times the cost) before and after the
// restart (no flag when both are 0), and from how many minutes after the
// restart the endpoint's requests get cheaper by `factor` again, for a
// reason of their own (0: never).
struct EndpointSpec {
  const char* name;
  int per_minute;
  double factor;
  double noise = 0.25;
  double beta_before = 0, beta_after = 0;
  int cheaper_from_min = 0;
};
constexpr EndpointSpec kEndpoints[] = {
    {"/busy/", 200, 1.10}, {"/quiet/", 3, 1.10}, {"/quiet-noop/", 3, 1.0}};

record::RequestRecord Record(const EndpointSpec& e, int64_t t, std::mt19937_64& rng) {
  std::lognormal_distribution<double> noise(0, e.noise);
  record::RequestRecord r;
  r.set_service("svc");
  r.set_endpoint(e.name);
  r.set_method("GET");
  r.set_status(200);
  r.set_host("svc-1");
  const bool b = t >= kRestart;
  r.set_commit(b ? "b" : "a");
  r.set_start_time_unix_us(t);
  r.set_sample_rate(1.0);
  const bool cheaper = e.cheaper_from_min > 0 && t >= kRestart + e.cheaper_from_min * kMin;
  double cost = 10e6 * noise(rng) * (b && !cheaper ? e.factor : 1.0);
  if (e.beta_before > 0 || e.beta_after > 0) {
    const bool on =
        std::uniform_real_distribution<double>(0, 1)(rng) < (b ? e.beta_after : e.beta_before);
    (*r.mutable_flags())["beta"] = on ? "on" : "off";
    if (on) cost *= 1.5;
  }
  record::CpuBill* bill = r.mutable_cpu();
  bill->set_counter_source("hardware");
  bill->set_instructions(static_cast<uint64_t>(cost));
  bill->set_cpu_ns(static_cast<uint64_t>(cost / 3));
  r.set_wall_us(static_cast<uint64_t>(cost / 1000) + 1);
  return r;
}

class RolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::OpenSqliteStore({.path = dir_.File("s.sqlite")});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(*opened);
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(0, 1);
    for (int64_t minute = 0; minute < 20 * 60; ++minute) {
      record::Batch batch;
      batch.set_sender("test");
      batch.set_sequence(static_cast<uint64_t>(minute + 1));
      for (const EndpointSpec& e : kEndpoints)
        for (int i = 0; i < e.per_minute; ++i)
          *batch.add_records() =
              Record(e, kT0 + minute * kMin + static_cast<int64_t>(u(rng) * 60e6), rng);
      const record::Batch* one[] = {&batch};
      ASSERT_TRUE(store_->AppendBatches(one).ok());
    }
  }

  // Findings() — every rollout finding of one endpoint at `now_us`.
  std::vector<Finding> Findings(int64_t now_us, const std::string& endpoint) {
    options_.now_us = now_us;
    Result<DetectReport> report = RunDetectors(*store_, options_);
    EXPECT_TRUE(report.ok()) << report.status().message();
    std::vector<Finding> out;
    if (!report.ok()) return out;
    for (const auto* list : {&report->evaluated, &report->skipped})
      for (const Finding& f : *list)
        if (f.kind == "rollout" && f.endpoint == endpoint) out.push_back(f);
    return out;
  }

  // Busy() — /busy/'s one rollout finding at `now_us`.
  Finding Busy(int64_t now_us) {
    const std::vector<Finding> busy = Findings(now_us, "/busy/");
    EXPECT_EQ(busy.size(), 1u);
    return busy.empty() ? Finding{} : busy[0];
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  DetectOptions options_;
};

TEST_F(RolloutTest, ABusyEndpointIsJudgedMinutesAfterAPlainRestart) {
  // 5000 a side at 200 a minute: 25 minutes a side.
  const Finding f = Busy(kRestart + 40 * kMin);
  EXPECT_TRUE(f.alert) << f.reason;
  EXPECT_EQ(f.method, "before/after, first of two looks");
  // Centred on the first request of b (a moment after the restart), whole minutes.
  EXPECT_GE(f.from_us, kRestart - 26 * kMin);
  EXPECT_LE(f.to_us, kRestart + 27 * kMin);
  EXPECT_EQ((f.to_us - f.from_us) % (2 * kMin), 0);
  EXPECT_GE(f.samples_before, 5000u);
  EXPECT_GE(f.samples_after, 5000u);
  EXPECT_LT(f.effect.lo, 0.10);
  EXPECT_GT(f.effect.hi, 0.10);
}

TEST_F(RolloutTest, ASecondLookOnTwiceTheSamplesHasANarrowerInterval) {
  // 10,000 a side at 200 a minute: 50 minutes a side, complete at 51.
  const Finding first = Busy(kRestart + 40 * kMin);
  const Finding f = Busy(kRestart + 60 * kMin);
  EXPECT_TRUE(f.alert) << f.reason;
  EXPECT_EQ(f.method, "before/after, second of two looks");
  EXPECT_GE(f.from_us, kRestart - 51 * kMin);
  EXPECT_LE(f.from_us, first.from_us - 20 * kMin);
  EXPECT_GE(f.samples_before, 10000u);
  EXPECT_GE(f.samples_after, 10000u);
  // Twice the samples: the interval narrower by about a square root of two.
  const double ratio = (f.effect.hi - f.effect.lo) / (first.effect.hi - first.effect.lo);
  EXPECT_GT(ratio, 0.6);
  EXPECT_LT(ratio, 0.8);
}

TEST_F(RolloutTest, AComparisonIsJudgedOnceOnEachLooksWindows) {
  // Looked at every 10 minutes for 3 hours: once judged, a look's windows
  // and effect never change (later requests do not move them), so looking
  // again is not another chance of a false alert; only the second look,
  // once its windows have passed, replaces the first.
  std::vector<Finding> looks;
  for (int64_t now = kRestart + 10 * kMin; now <= kRestart + 3 * kHour; now += 10 * kMin) {
    const std::vector<Finding> busy = Findings(now, "/busy/");
    ASSERT_EQ(busy.size(), 1u);
    if (!busy[0].reason.empty()) continue;  // still waiting
    if (looks.empty() || busy[0].from_us != looks.back().from_us) {
      looks.push_back(busy[0]);
      continue;
    }
    EXPECT_EQ(busy[0].to_us, looks.back().to_us);
    EXPECT_EQ(busy[0].effect.estimate, looks.back().effect.estimate);
    EXPECT_EQ(busy[0].alert, looks.back().alert);
  }
  ASSERT_EQ(looks.size(), 2u);
  EXPECT_EQ(looks[0].method, "before/after, first of two looks");
  EXPECT_EQ(looks[1].method, "before/after, second of two looks");
  EXPECT_LT(looks[1].from_us, looks[0].from_us);
}

TEST_F(RolloutTest, AWaitingComparisonSaysUntilWhenInUtc) {
  const std::vector<Finding> busy = Findings(kRestart + 10 * kMin, "/busy/");
  ASSERT_EQ(busy.size(), 1u);
  EXPECT_FALSE(busy[0].alert);
  // 2000 so far; the widest windows (3 h) close at 09:00.
  EXPECT_NE(busy[0].reason.find("waiting for the after-window to fill ("), std::string::npos);
  EXPECT_NE(busy[0].reason.find("of 5000 samples so far); judged by 2026-01-01 09:00 UTC at the "
                                "latest (in 2 h 50 min)"),
            std::string::npos)
      << busy[0].reason;
}

TEST_F(RolloutTest, WindowsAreConfigurablePerService) {
  options_.before_after_by_service["svc"] = {
      .samples = 2000, .min_side_us = 15 * kMin, .max_side_us = kHour};
  const std::vector<Finding> busy = Findings(kRestart + 20 * kMin, "/busy/");
  ASSERT_EQ(busy.size(), 1u);
  // 2000 a side take 10 minutes; never narrower than 15.
  EXPECT_EQ(busy[0].to_us - busy[0].from_us, 30 * kMin);
  EXPECT_TRUE(busy[0].alert);
  options_.before_after_by_service["other"] = {};  // another service's settings change nothing
  EXPECT_EQ(Findings(kRestart + 20 * kMin, "/busy/")[0].to_us - busy[0].from_us, 30 * kMin);
}

TEST_F(RolloutTest, QuietEndpointsAccumulateEvidenceSequentially) {
  // Every hour for 12 hours: the regressed quiet endpoint alerts at some
  // look, the no-op one at none; before it alerts, each look is a skip
  // saying how far the evidence has come.
  int64_t first_alert = 0;
  for (int64_t now = kRestart + kHour; now <= kRestart + 12 * kHour; now += kHour) {
    for (const Finding& f : Findings(now, "/quiet-noop/")) {
      EXPECT_FALSE(f.alert) << "a no-op alerted at " << (now - kRestart) / kHour << " h";
      EXPECT_EQ(f.method, "before/after, sequential");
    }
    const std::vector<Finding> quiet = Findings(now, "/quiet/");
    ASSERT_EQ(quiet.size(), 1u);
    const Finding& f = quiet[0];
    EXPECT_EQ(f.method, "before/after, sequential");
    if (f.alert && first_alert == 0) {
      first_alert = now;
      EXPECT_LT(f.effect.lo, 0.10);
      EXPECT_GT(f.effect.hi, 0.10);
      EXPECT_EQ(f.to_us - f.from_us, 2 * (now + 1 - f.to_us + (f.to_us - f.from_us) / 2))
          << "mirror windows: as long before the first request of b as since";
    }
    if (!f.alert && first_alert == 0) {
      EXPECT_NE(f.reason.find("accumulating evidence"), std::string::npos) << f.reason;
    }
  }
  EXPECT_GT(first_alert, 0);
  EXPECT_LE(first_alert, kRestart + 6 * kHour);
}

TEST_F(RolloutTest, PastTheHorizonTheSequentialVerdictIsFinal) {
  // Looked at after its horizon, the quiet endpoints' comparison is the
  // final look: a verdict on the whole horizon a side, not a skip.
  options_.sequential_horizon_us = 2 * kHour;
  for (const char* endpoint : {"/quiet/", "/quiet-noop/"}) {
    const std::vector<Finding> quiet = Findings(kRestart + 5 * kHour, endpoint);
    ASSERT_EQ(quiet.size(), 1u) << endpoint;
    const Finding& f = quiet[0];
    EXPECT_EQ(f.method.rfind("before/after, sequential", 0), 0u) << f.method;
    EXPECT_TRUE(f.reason.empty()) << endpoint << ": " << f.reason;
    EXPECT_EQ(f.to_us - f.from_us, 2 * 2 * kHour) << endpoint;  // the horizon a side
    EXPECT_GE(f.samples_before, 300u);
    EXPECT_GE(f.samples_after, 300u);
  }
  EXPECT_FALSE(Findings(kRestart + 5 * kHour, "/quiet-noop/")[0].alert);
}

TEST_F(RolloutTest, PastTheHorizonWithoutItsDataTheSequentialTestSaysItEnded) {
  // The horizon (5 h) is longer than the data read before the rollout
  // (10 h back from 6 h after it: 4 h): no shorter look is taken.
  options_.sequential_horizon_us = 5 * kHour;
  options_.window_us = 7 * kHour;
  const std::vector<Finding> quiet = Findings(kRestart + 6 * kHour, "/quiet/");
  ASSERT_EQ(quiet.size(), 1u);
  EXPECT_FALSE(quiet[0].alert);
  EXPECT_NE(quiet[0].reason.find("sequential test ended at 2026-01-01 11:00"), std::string::npos)
      << quiet[0].reason;
}

// Touch — a change made to each record before it is stored.
using Touch = std::function<void(record::RequestRecord&)>;

// FillDrifting() — 10 hours of `endpoints` (a plain restart at kRestart,
// and from `c_from_us` commit "c", as costly as b), every request's cost
// drifting by `per_hour` an hour (load, time of day), each `touch`ed.
void FillDrifting(store::Store& st, std::span<const EndpointSpec> endpoints, double per_hour,
                  int64_t c_from_us, const Touch& touch) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t minute = 0; minute < 10 * 60; ++minute) {
    record::Batch batch;
    batch.set_sender("test");
    batch.set_sequence(static_cast<uint64_t>(minute + 1));
    for (const EndpointSpec& e : endpoints)
      for (int i = 0; i < e.per_minute; ++i) {
        const int64_t t = kT0 + minute * kMin + static_cast<int64_t>(u(rng) * 60e6);
        record::RequestRecord r = Record(e, t, rng);
        if (t >= c_from_us) r.set_commit("c");
        const double drift = 1 + per_hour * static_cast<double>(t - kT0) / kHour;
        const auto cost =
            static_cast<uint64_t>(static_cast<double>(r.cpu().instructions()) * drift);
        r.mutable_cpu()->set_instructions(cost);
        r.mutable_cpu()->set_cpu_ns(cost / 3);
        if (touch) touch(r);
        *batch.add_records() = r;
      }
    const record::Batch* one[] = {&batch};
    ASSERT_TRUE(st.AppendBatches(one).ok());
  }
}

// RolloutFindings() — the rollout findings (evaluated, then skipped) at
// `now_us` of `endpoints` drifting by `per_hour` an hour, commit c from
// `c_from_us`, each record `touch`ed.
std::vector<Finding> RolloutFindings(std::span<const EndpointSpec> endpoints, double per_hour,
                                     int64_t now_us, int64_t c_from_us = INT64_MAX,
                                     const Touch& touch = nullptr) {
  TempDir dir;
  auto opened = store::OpenSqliteStore({.path = dir.File("s.sqlite")});
  EXPECT_TRUE(opened.ok()) << opened.status().message();
  if (!opened.ok()) return {};
  FillDrifting(**opened, endpoints, per_hour, c_from_us, touch);
  DetectOptions options;
  options.now_us = now_us;
  Result<DetectReport> report = RunDetectors(**opened, options);
  EXPECT_TRUE(report.ok()) << report.status().message();
  std::vector<Finding> out;
  if (report.ok())
    for (const auto* list : {&report->evaluated, &report->skipped})
      for (const Finding& f : *list)
        if (f.kind == "rollout") out.push_back(f);
  return out;
}

// DriftingRollout() — the rollout findings judged 4 h after the restart, of
// four endpoints of 40 requests a minute drifting by `per_hour` an hour,
// where the restart makes /e3/ `e3_factor` costlier.
std::vector<Finding> DriftingRollout(double per_hour, double e3_factor) {
  const EndpointSpec endpoints[] = {
      {"/e1/", 40, 1.0}, {"/e2/", 40, 1.0}, {"/e3/", 40, e3_factor}, {"/e4/", 40, 1.0}};
  std::vector<Finding> out = RolloutFindings(endpoints, per_hour, kRestart + 4 * kHour);
  std::erase_if(out, [](const Finding& f) { return !f.reason.empty(); });
  return out;
}

// Every endpoint of a service grows 2% costlier an hour (a drift in time:
// load, time of day), and a plain restart changes one of them by 10%.
// Before/after windows hours apart read the drift as a regression of
// every endpoint; the other endpoints' median change takes it out.
TEST(RolloutDriftTest, ADriftEveryEndpointSawIsNotARegression) {
  const std::vector<Finding> findings = DriftingRollout(0.02, 1.10);
  EXPECT_EQ(findings.size(), 4u);
  for (const Finding& f : findings) {
    // The second look's windows, 3 h a side (the widest): a drift of about
    // 6%, seen by the three others.
    EXPECT_EQ(f.method.rfind("before/after, second of two looks, less a drift of +", 0), 0u)
        << f.method;
    EXPECT_NE(f.method.find("% (median of 3 other endpoints)"), std::string::npos) << f.method;
    EXPECT_EQ(f.alert, f.endpoint == "/e3/") << f.endpoint << " " << f.effect.estimate;
    if (f.endpoint == "/e3/") {
      EXPECT_LT(f.effect.lo, 0.10);
      EXPECT_GT(f.effect.hi, 0.10);
    } else {
      EXPECT_LT(f.effect.lo, 0);
      EXPECT_GT(f.effect.hi, 0);
    }
  }
}

// /busy/ is 3% costlier under b, and from 26 minutes after the restart its
// requests get 3% cheaper for a reason of their own (a cache warming up):
// the second look's windows (50 minutes a side) take that in and read half
// the regression, the first look's (25) do not. Both have passed by the
// first run, an hour after the restart: the look with the higher lower
// bound speaks, as the first would have had a run fallen between them.
TEST(RolloutLooksTest, BothLooksPassedBeforeARunTheHigherLowerBoundSpeaks) {
  const EndpointSpec endpoints[] = {{"/busy/", 200, 1.03, 0.25, 0, 0, 26}, {"/other/", 200, 1.0}};
  const std::vector<Finding> findings = RolloutFindings(endpoints, 0, kRestart + 60 * kMin);
  const auto busy = std::find_if(findings.begin(), findings.end(),
                                 [](const Finding& f) { return f.endpoint == "/busy/"; });
  ASSERT_NE(busy, findings.end());
  EXPECT_EQ(busy->method, "before/after, first of two looks");
  EXPECT_TRUE(busy->alert) << busy->effect.lo;
  EXPECT_LT(busy->effect.lo, 0.03);
  EXPECT_GT(busy->effect.hi, 0.03);
}

// A quiet endpoint of very steady cost doubles at a restart. A handful of
// requests a side cannot carry the sequential test's normal error: it
// waits for 30 a side, then alerts.
TEST(RolloutSequentialTest, AHandfulOfRequestsIsNotJudged) {
  const EndpointSpec endpoints[] = {{"/steady/", 1, 2.0, 0.02}, {"/busy/", 200, 1.0}};
  auto steady = [&](int64_t now_us) {
    std::vector<Finding> out = RolloutFindings(endpoints, 0, now_us);
    std::erase_if(out, [](const Finding& f) { return f.endpoint != "/steady/"; });
    EXPECT_EQ(out.size(), 1u);
    return out.empty() ? Finding{} : out[0];
  };
  const Finding early = steady(kRestart + 5 * kMin);
  EXPECT_FALSE(early.alert);
  EXPECT_LT(early.samples_after, 30u);
  EXPECT_NE(early.reason.find("too few samples to accumulate yet"), std::string::npos)
      << early.reason;
  const Finding later = steady(kRestart + 40 * kMin);
  EXPECT_TRUE(later.alert) << later.reason;
  EXPECT_GE(later.samples_after, 30u);
}

// A quiet endpoint 4% costlier under b, which commit c replaces 3 hours
// later: b's few hundred requests a side never clear the always-valid
// interval, and will not grow. Once b is gone, the last look judges b's whole
// life (against as long of a before it) on the fixed-sample interval, once.
TEST(RolloutSequentialTest, ABuildReplacedWithinHoursGetsALastFixedSampleLook) {
  const EndpointSpec endpoints[] = {{"/quiet/", 3, 1.04}, {"/busy/", 200, 1.0}};
  const int64_t c_from = kRestart + 3 * kHour;
  auto quiet = [&](int64_t now_us) {
    std::vector<Finding> out = RolloutFindings(endpoints, 0, now_us, c_from);
    std::erase_if(out, [](const Finding& f) {
      return f.endpoint != "/quiet/" || f.cause != "commit b vs a";
    });
    EXPECT_EQ(out.size(), 1u);
    return out.empty() ? Finding{} : out[0];
  };
  const Finding during = quiet(c_from);
  EXPECT_FALSE(during.alert) << during.method << " " << during.effect.lo << " "
                             << during.effect.estimate << " n " << during.samples_after;
  EXPECT_NE(during.reason.find("accumulating evidence"), std::string::npos) << during.reason;
  const Finding last = quiet(c_from + kHour);
  EXPECT_TRUE(last.alert) << last.reason << " " << last.effect.lo;
  EXPECT_EQ(last.method, "before/after, sequential, last look");
  // b's whole life (its first and last request are within a minute of the
  // restarts), and as long a side before it.
  EXPECT_LT(std::abs(last.to_us - c_from), kMin);
  EXPECT_LT(std::abs((last.from_us + last.to_us) / 2 - kRestart), kMin);
  EXPECT_LT(last.effect.lo, 0.04);
  EXPECT_GT(last.effect.hi, 0.04);
  // Looked at again later: the same data, the same verdict.
  const Finding again = quiet(c_from + 2 * kHour);
  EXPECT_EQ(again.effect.estimate, last.effect.estimate);
  EXPECT_TRUE(again.alert);
}

// QuietWithSuccessor() — the rollout findings on /quiet/ (15 requests a
// minute, 6% costlier under b, profiled) for commit b at `now_us`, where
// commit c replaced b 3 minutes after the restart, running the same code
// for /quiet/ or not (`c_same_code`: its one function's code hash).
std::vector<Finding> QuietWithSuccessor(bool c_same_code, int64_t now_us) {
  const EndpointSpec endpoints[] = {{"/quiet/", 15, 1.06}, {"/busy/", 200, 1.0}};
  auto profiled = [&](record::RequestRecord& r) {
    if (r.endpoint() != "/quiet/") return;
    profile::CallTree tree("instructions", "hardware", "fast");
    const auto n = tree.Child(profile::kRoot, tree.Intern({"svc/views.py", 10, "quiet"}));
    tree.AddCall(n, r.cpu().instructions(), r.cpu().instructions(), true);
    tree.ToProto(r.mutable_profile());
    const bool changed = r.commit() == "c" && !c_same_code;
    r.mutable_profile()->mutable_functions(0)->set_code_hash(changed ? 2 : 1);
  };
  std::vector<Finding> out = RolloutFindings(endpoints, 0, now_us, kRestart + 3 * kMin, profiled);
  std::erase_if(
      out, [](const Finding& f) { return f.endpoint != "/quiet/" || f.cause != "commit b vs a"; });
  return out;
}

// A build replaced after 3 minutes: its 45 requests cannot show its 6%
// above the threshold. When the next build ran the same code for the
// endpoint (its profiles' code hashes), the sequential test pools its
// requests with b's (a's side as long before) and alerts, on b; when the
// next build changed that code, b stands alone and the last look on its 3
// minutes does not alert.
TEST(RolloutSequentialTest, AQuietBuildIsPooledWithTheNextOneWhenItRanTheSameCode) {
  const int64_t now = kT0 + 10 * kHour;
  const std::vector<Finding> pooled = QuietWithSuccessor(true, now);
  ASSERT_EQ(pooled.size(), 1u);
  EXPECT_TRUE(pooled[0].alert) << pooled[0].reason << " " << pooled[0].effect.lo;
  EXPECT_NE(pooled[0].method.find("pooled over 1 commit(s) before and 2 after"), std::string::npos)
      << pooled[0].method;
  EXPECT_GT(pooled[0].samples_after, 1000u);
  EXPECT_EQ(pooled[0].target_commit, "b");
  const std::vector<Finding> alone = QuietWithSuccessor(false, now);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_FALSE(alone[0].alert) << alone[0].method << " " << alone[0].effect.lo << " est "
                               << alone[0].effect.estimate << " n " << alone[0].samples_after << " "
                               << alone[0].samples_before;
  EXPECT_LT(alone[0].samples_after, 100u);
}

// A no-op restart while a flag that makes /e3/ 1.5 times dearer goes from
// 10% of its requests to 60%: before/after holds the flag's values on both
// sides, so compared as one population it reads the change of mix as a
// regression of the commit. Compared within each value, it reads none.
TEST(RolloutStrataTest, AFlagRampingAcrossTheRestartIsNotBilledToTheCommit) {
  const EndpointSpec endpoints[] = {
      {"/e1/", 40, 1.0}, {"/e2/", 40, 1.0}, {"/e3/", 40, 1.0, 0.25, 0.1, 0.6}, {"/e4/", 40, 1.0}};
  const std::vector<Finding> findings = RolloutFindings(endpoints, 0, kRestart + 4 * kHour);
  const auto e3 = std::find_if(findings.begin(), findings.end(),
                               [](const Finding& f) { return f.endpoint == "/e3/"; });
  ASSERT_NE(e3, findings.end());
  EXPECT_FALSE(e3->alert) << e3->effect.estimate;
  EXPECT_EQ(e3->method.rfind("before/after", 0), 0u) << e3->method;
  EXPECT_NE(e3->method.find(", within 2 flag strata"), std::string::npos) << e3->method;
  EXPECT_LT(e3->effect.lo, 0);
  EXPECT_GT(e3->effect.hi, 0);
  EXPECT_GE(e3->samples_before, 5000u);
}

}  // namespace
}  // namespace cpuledger::detect
