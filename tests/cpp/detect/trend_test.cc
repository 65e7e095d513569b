// tests/cpp/detect/trend_test.cc — the trend detector on constructed daily
// series: a recent rise of the daily mean alerts, a flat series and an old
// rise do not, and too few complete days is a skip saying how many there are.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "detect/detect.h"
#include "store/store.h"
#include "temp_dir.h"

namespace cpuledger::detect {
namespace {

using cpuledger::test_support::TempDir;

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kDay = 86'400 * kUs;
constexpr int64_t kT0 = 1767225600LL * kUs;  // 2026-01-01T00:00:00Z, a day boundary
constexpr int kDays = 28;

// Level — an endpoint's cost on day `d` (0-based) of the run.
using Level = double (*)(int d);

struct EndpointSpec {
  const char* name;
  Level level;
};

double Flat(int) { return 1.0; }
double RiseThreeDaysAgo(int d) { return d >= kDays - 3 ? 1.10 : 1.0; }
double RiseThreeWeeksAgo(int d) { return d >= 7 ? 1.10 : 1.0; }

class TrendDetectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::OpenSqliteStore({.path = dir_.File("s.sqlite")});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(*opened);
  }

  // Fill() — `per_day` requests a day of each endpoint, days [first, kDays).
  void Fill(const std::vector<EndpointSpec>& endpoints, int first, int per_day) {
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> noise(0, 0.05);
    uint64_t sequence = 0;
    for (int d = first; d < kDays; ++d) {
      record::Batch batch;
      batch.set_sender("test");
      batch.set_sequence(++sequence);
      for (const EndpointSpec& e : endpoints) {
        for (int i = 0; i < per_day; ++i) {
          record::RequestRecord& r = *batch.add_records();
          r.set_service("svc");
          r.set_endpoint(e.name);
          r.set_method("GET");
          r.set_status(200);
          r.set_host("svc-1");
          r.set_commit("a");
          r.set_start_time_unix_us(kT0 + d * kDay + (i * kDay) / per_day);
          r.set_sample_rate(1.0);
          const double cost = 10e6 * e.level(d) * noise(rng);
          r.mutable_cpu()->set_counter_source("hardware");
          r.mutable_cpu()->set_instructions(static_cast<uint64_t>(cost));
          r.mutable_cpu()->set_cpu_ns(static_cast<uint64_t>(cost / 3));
          r.set_wall_us(static_cast<uint64_t>(cost / 1000) + 1);
        }
      }
      const record::Batch* one[] = {&batch};
      ASSERT_TRUE(store_->AppendBatches(one).ok());
    }
  }

  // Trends() — the trend findings of a run just after the last whole day
  // (the partial day is never read).
  std::vector<Finding> Trends() {
    DetectOptions o;
    o.now_us = kT0 + kDays * kDay + 3600 * kUs;
    Result<DetectReport> report = RunDetectors(*store_, o);
    EXPECT_TRUE(report.ok()) << report.status().message();
    std::vector<Finding> out;
    if (!report.ok()) return out;
    for (const auto* list : {&report->evaluated, &report->skipped})
      for (const Finding& f : *list)
        if (f.kind == "trend") out.push_back(f);
    return out;
  }

  static const Finding* Of(const std::vector<Finding>& all, const std::string& endpoint) {
    for (const Finding& f : all)
      if (f.endpoint == endpoint) return &f;
    return nullptr;
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(TrendDetectorTest, ARecentRiseAlertsAndAFlatSeriesDoesNot) {
  Fill({{"/rising/", RiseThreeDaysAgo}, {"/flat/", Flat}}, 0, 200);
  const std::vector<Finding> all = Trends();
  const Finding* rising = Of(all, "/rising/");
  ASSERT_NE(rising, nullptr);
  EXPECT_TRUE(rising->alert) << rising->reason;
  EXPECT_EQ(rising->method, "change point");
  EXPECT_NEAR(rising->effect.estimate, 0.10, 0.02);
  EXPECT_NEAR(rising->weekly_change, 0.10 * 3 / 7, 0.01);  // 3 of the last 7 days risen
  EXPECT_NEAR(rising->daily_change, 0.0, 0.02);            // both of the last two days are risen
  EXPECT_EQ(rising->threshold_source, "config");

  const Finding* flat = Of(all, "/flat/");
  ASSERT_NE(flat, nullptr);
  EXPECT_FALSE(flat->alert);
  EXPECT_TRUE(flat->reason.empty()) << flat->reason;  // judged, nothing to say
}

TEST_F(TrendDetectorTest, ARiseOlderThanTheRecentDaysDoesNotAlert) {
  Fill({{"/old-rise/", RiseThreeWeeksAgo}}, 0, 200);
  const std::vector<Finding> all = Trends();
  const Finding* f = Of(all, "/old-rise/");
  ASSERT_NE(f, nullptr);
  EXPECT_FALSE(f->alert);
  EXPECT_NEAR(f->weekly_change, 0.0, 0.02);
}

TEST_F(TrendDetectorTest, TooFewDaysIsASkipSayingHowMany) {
  Fill({{"/new/", Flat}}, kDays - 4, 200);
  const std::vector<Finding> all = Trends();
  const Finding* f = Of(all, "/new/");
  ASSERT_NE(f, nullptr);
  EXPECT_FALSE(f->alert);
  EXPECT_EQ(f->reason, "too few days (4 with data; need 6)");
}

TEST_F(TrendDetectorTest, AnEmptyStoreIsOneSkip) {
  const std::vector<Finding> all = Trends();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].endpoint, "");
  EXPECT_NE(all[0].reason.find("no complete day"), std::string::npos) << all[0].reason;
}

}  // namespace
}  // namespace cpuledger::detect
