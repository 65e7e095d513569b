// Effect intervals: MeanRatioInterval by hand, BootstrapMeanRatio against it,
// ShiftInterval against brute force over all pairwise differences and by
// simulated coverage.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "stats/gaussian.h"
#include "stats/stats.h"

namespace cpuledger::stats {
namespace {

// a: n = 10, mean 100, variance 100; b: n = 20, mean 110, variance 400.
//   u_a = 100 / (10 * 100^2) = 0.001, u_b = 400 / (20 * 110^2) = 0.00165289
//   se = sqrt(u_a + u_b) = 0.05150624
//   df = (u_a + u_b)^2 / (u_a^2 / 9 + u_b^2 / 19) = 27.6098
//   t(0.95, 27.6098) = 1.701954 (scipy.stats.t.ppf)
//   lo = exp(log 1.1 - 1.701954 * 0.05150624) - 1 = 0.0076783
//   hi = exp(log 1.1 + 1.701954 * 0.05150624) - 1 = 0.2007801
TEST(StatsMeanRatioInterval, HandComputedExample) {
  const Moments a{.n = 10, .mean = 100, .m2 = 100 * 9};
  const Moments b{.n = 20, .mean = 110, .m2 = 400 * 19};
  const Interval r = MeanRatioInterval(a, b, 0.90);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_NEAR(r.estimate, 0.1, 1e-12);
  EXPECT_NEAR(r.lo, 0.0076783, 1e-6);
  EXPECT_NEAR(r.hi, 0.2007801, 1e-6);
  EXPECT_DOUBLE_EQ(r.confidence, 0.90);
  EXPECT_NEAR(r.width(), r.hi - r.lo, 0);
}

TEST(StatsMeanRatioInterval, NotOkWithReason) {
  const Moments good{.n = 10, .mean = 100, .m2 = 900};
  const Moments one{.n = 1, .mean = 100, .m2 = 0};
  const Moments negative{.n = 10, .mean = -3, .m2 = 900};
  for (const Interval& r :
       {MeanRatioInterval(good, one, 0.9), MeanRatioInterval(negative, good, 0.9),
        MeanRatioInterval(good, good, 1.0), MeanRatioInterval(good, good, 0)}) {
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.reason.empty());
    EXPECT_EQ(r.estimate, 0);
    EXPECT_EQ(r.lo, 0);
    EXPECT_EQ(r.hi, 0);
  }
  // No spread at all: the interval is the point.
  const Moments flat{.n = 5, .mean = 2, .m2 = 0};
  const Moments flat2{.n = 5, .mean = 3, .m2 = 0};
  const Interval r = MeanRatioInterval(flat, flat2, 0.9);
  ASSERT_TRUE(r.ok);
  EXPECT_DOUBLE_EQ(r.lo, 0.5);
  EXPECT_DOUBLE_EQ(r.hi, 0.5);
}

TEST(StatsBootstrapMeanRatio, DeterministicAndCloseToTheDeltaMethodOnLargeSamples) {
  test_util::Gaussian g(11);
  const std::vector<double> a = g.Series(400, 100, 10);
  const std::vector<double> b = g.Series(500, 105, 12);
  const Interval boot = BootstrapMeanRatio(a, b, 0.90, 2000, 42);
  const Interval delta = MeanRatioInterval(Moments::Of(a), Moments::Of(b), 0.90);
  ASSERT_TRUE(boot.ok) << boot.reason;
  ASSERT_TRUE(delta.ok);
  EXPECT_NEAR(boot.estimate, Moments::Of(b).mean / Moments::Of(a).mean - 1, 1e-12);
  EXPECT_LT(boot.lo, boot.estimate);
  EXPECT_GT(boot.hi, boot.estimate);
  // Both estimate the same sampling distribution; resampling noise is small.
  EXPECT_NEAR(boot.lo, delta.lo, 0.003);
  EXPECT_NEAR(boot.hi, delta.hi, 0.003);

  const Interval again = BootstrapMeanRatio(a, b, 0.90, 2000, 42);
  EXPECT_EQ(again.lo, boot.lo);
  EXPECT_EQ(again.hi, boot.hi);
  const Interval other = BootstrapMeanRatio(a, b, 0.90, 2000, 43);
  EXPECT_NE(other.lo, boot.lo);
}

TEST(StatsBootstrapMeanRatio, NotOkCases) {
  const std::vector<double> one = {1};
  const std::vector<double> two = {1, 2};
  const std::vector<double> negative = {-1, -2};
  EXPECT_FALSE(BootstrapMeanRatio(one, two, 0.9).ok);
  EXPECT_FALSE(BootstrapMeanRatio(negative, two, 0.9).ok);
  EXPECT_FALSE(BootstrapMeanRatio(two, two, 0.9, 0).ok);
  EXPECT_FALSE(BootstrapMeanRatio(two, two, 2).ok);
}

// The reference: every pairwise difference of logs, sorted. The
// Hodges–Lehmann estimate is their median; the interval runs from the k-th
// smallest to the k-th largest, k = floor(nm/2 - z * sd(U)), with the
// tie-corrected sd(U) computed here from the pooled sample.
struct BruteForceShift {
  double estimate, lo, hi;

  BruteForceShift(const std::vector<double>& a, const std::vector<double>& b, double confidence) {
    std::vector<double> x, y, diffs;
    for (double v : a) x.push_back(std::log(v));
    for (double v : b) y.push_back(std::log(v));
    for (double yj : y)
      for (double xi : x) diffs.push_back(yj - xi);
    std::sort(diffs.begin(), diffs.end());
    const size_t count = diffs.size();
    const double median =
        count % 2 ? diffs[count / 2] : 0.5 * (diffs[count / 2 - 1] + diffs[count / 2]);
    // Ties within each sample (cross-sample ties happen only at isolated shifts).
    auto tie_term = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      double sum = 0;
      for (size_t i = 0; i < v.size();) {
        size_t j = i;
        while (j < v.size() && v[j] == v[i]) ++j;
        const double t = static_cast<double>(j - i);
        sum += t * t * t - t;
        i = j;
      }
      return sum;
    };
    const double n = static_cast<double>(x.size()), m = static_cast<double>(y.size());
    const double total = n + m;
    const double var =
        n * m / 12 * ((total + 1) - (tie_term(x) + tie_term(y)) / (total * (total - 1)));
    const double z = NormalQuantile(0.5 + confidence / 2);
    const size_t k = static_cast<size_t>(std::max(1.0, std::floor(n * m / 2 - z * std::sqrt(var))));
    estimate = std::expm1(median);
    lo = std::expm1(diffs[k - 1]);
    hi = std::expm1(diffs[count - k]);
  }
};

std::vector<double> LogNormal(test_util::Gaussian& g, size_t n, double scale, double sigma) {
  std::vector<double> v(n);
  for (double& x : v) x = scale * std::exp(sigma * g());
  return v;
}

TEST(StatsShiftInterval, MatchesBruteForceOrderStatistics) {
  test_util::Gaussian g(3);
  const size_t sizes[][2] = {{2, 2}, {2, 3}, {5, 7}, {8, 8}, {12, 15}, {31, 24}, {60, 45}};
  for (const auto& size : sizes)
    for (double confidence : {0.5, 0.8, 0.9, 0.95, 0.99}) {
      const std::vector<double> a = LogNormal(g, size[0], 100, 0.4);
      const std::vector<double> b = LogNormal(g, size[1], 110, 0.4);
      const BruteForceShift ref(a, b, confidence);
      const Interval r = ShiftInterval(a, b, confidence);
      SCOPED_TRACE(::testing::Message() << size[0] << " vs " << size[1] << " at " << confidence);
      ASSERT_TRUE(r.ok) << r.reason;
      // The merge-count bisection returns true differences, not approximations.
      EXPECT_NEAR(r.estimate, ref.estimate, 1e-12);
      EXPECT_NEAR(r.lo, ref.lo, 1e-12);
      EXPECT_NEAR(r.hi, ref.hi, 1e-12);
      EXPECT_LE(r.lo, r.estimate);
      EXPECT_GE(r.hi, r.estimate);
    }
}

TEST(StatsShiftInterval, MatchesBruteForceWithTies) {
  // Quantised values (CPU time in whole milliseconds): many ties within and
  // across the samples, and many equal pairwise differences.
  test_util::Gaussian g(4);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> a, b;
    for (int i = 0; i < 23; ++i) a.push_back(1 + std::floor(6 * g.Uniform()));
    for (int i = 0; i < 17; ++i) b.push_back(2 + std::floor(6 * g.Uniform()));
    const BruteForceShift ref(a, b, 0.9);
    const Interval r = ShiftInterval(a, b, 0.9);
    ASSERT_TRUE(r.ok);
    EXPECT_NEAR(r.estimate, ref.estimate, 1e-12) << trial;
    EXPECT_NEAR(r.lo, ref.lo, 1e-12) << trial;
    EXPECT_NEAR(r.hi, ref.hi, 1e-12) << trial;
  }
  // Everything equal: no spread, the shift is exactly 0.
  const std::vector<double> same(10, 5.0);
  const Interval r = ShiftInterval(same, same, 0.9);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.estimate, 0);
  EXPECT_EQ(r.lo, 0);
  EXPECT_EQ(r.hi, 0);
}

TEST(StatsShiftInterval, SkipsNonPositiveValuesAndNeedsTwoPerSide) {
  const std::vector<double> a = {1, 2, 0, -4, 3};
  const std::vector<double> a_clean = {1, 2, 3};
  const std::vector<double> b = {2, 4, 6};
  const Interval r = ShiftInterval(a, b, 0.9);
  const Interval clean = ShiftInterval(a_clean, b, 0.9);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.estimate, clean.estimate);
  EXPECT_NEAR(r.estimate, 1, 1e-12);  // b = 2a exactly: every log difference is log 2
  const std::vector<double> one_positive = {0, -1, 5};
  EXPECT_FALSE(ShiftInterval(one_positive, b, 0.9).ok);
  EXPECT_FALSE(ShiftInterval(b, one_positive, 0.9).ok);
  EXPECT_FALSE(ShiftInterval(a, b, 1.5).ok);
}

// Two kinds of request, 1,000 and 3,000 units, both 5% dearer on side b,
// where b also holds five times the share of the dear kind (a flag turned
// on for more users): the strata's pooled shift reads the 5%, the plain
// rank shift over the mix reads far more. A stratum of one request a side
// has no interval and is left out.
TEST(StatsPoolShifts, AShiftOfTheMixIsNotAShiftOfCost) {
  test_util::Gaussian g(8);
  const std::vector<double> cheap_a = LogNormal(g, 900, 1000, 0.3);
  const std::vector<double> dear_a = LogNormal(g, 100, 3000, 0.3);
  std::vector<double> cheap_b = LogNormal(g, 500, 1000 * 1.05, 0.3);
  std::vector<double> dear_b = LogNormal(g, 500, 3000 * 1.05, 0.3);
  const std::vector<double> lone_a = {5000}, lone_b = {9000};
  const StratumPair strata[] = {{cheap_a, cheap_b}, {dear_a, dear_b}, {lone_a, lone_b}};
  const PooledShift pooled = PoolShifts(strata);
  ASSERT_TRUE(pooled.ok());
  EXPECT_EQ(pooled.used, (std::vector<size_t>{0, 1}));
  const Interval e = pooled.At(0.90);
  ASSERT_TRUE(e.ok);
  EXPECT_LT(e.lo, 0.05);
  EXPECT_GT(e.hi, 0.05);
  EXPECT_LT(e.hi - e.lo, 0.07);  // 2 * 1.645 * about 0.015
  EXPECT_LT(pooled.PValue(), 1e-3);

  std::vector<double> all_a = cheap_a, all_b = cheap_b;
  all_a.insert(all_a.end(), dear_a.begin(), dear_a.end());
  all_b.insert(all_b.end(), dear_b.begin(), dear_b.end());
  EXPECT_GT(ShiftInterval(all_a, all_b, 0.90).lo, 0.20);  // the mix, read as cost

  EXPECT_FALSE(PoolShifts(std::span<const StratumPair>(strata + 2, 1)).ok());
  EXPECT_FALSE(PoolShifts({}).At(0.9).ok);
  EXPECT_EQ(PoolShifts({}).PValue(), 1);
}

// The always-valid interval of a pooled shift: around the same estimate as
// the fixed-sample one, wider (it pays for every later look), at the
// confidence asked for; nothing to pool stays !ok.
TEST(StatsPoolShifts, TheSequenceIntervalIsTheFixedOneWidened) {
  test_util::Gaussian g(9);
  const std::vector<double> a = LogNormal(g, 2000, 1000, 0.3);
  const std::vector<double> b = LogNormal(g, 2000, 1000 * 1.03, 0.3);
  const StratumPair one[] = {{a, b}};
  const PooledShift pooled = PoolShifts(one);
  const Interval fixed = pooled.At(0.90), always = pooled.SequenceAt(0.90, 0.03);
  ASSERT_TRUE(fixed.ok);
  ASSERT_TRUE(always.ok);
  EXPECT_DOUBLE_EQ(always.estimate, fixed.estimate);
  EXPECT_DOUBLE_EQ(always.confidence, 0.90);
  EXPECT_LT(always.lo, fixed.lo);
  EXPECT_GT(always.hi, fixed.hi);
  EXPECT_GT(always.hi - always.lo, 1.3 * (fixed.hi - fixed.lo));
  EXPECT_FALSE(PoolShifts({}).SequenceAt(0.90, 0.03).ok);
}

// 200 seeded experiments with a known multiplicative change of +10%: the
// 90% interval must cover it about 90% of the time (binomial sd ~2%).
TEST(StatsShiftInterval, CoverageBySimulation) {
  test_util::Gaussian g(5);
  int covered = 0;
  const int trials = 200;
  for (int t = 0; t < trials; ++t) {
    const std::vector<double> a = LogNormal(g, 40, 1000, 0.5);
    std::vector<double> b = LogNormal(g, 50, 1000, 0.5);
    for (double& v : b) v *= 1.10;
    const Interval r = ShiftInterval(a, b, 0.90);
    ASSERT_TRUE(r.ok);
    if (r.lo <= 0.10 && 0.10 <= r.hi) ++covered;
  }
  EXPECT_GE(covered, 170);  // 85%
  EXPECT_LE(covered, 190);  // 95%
}

// 5k against 5k values (25M pairs, never formed): a few ms; the bound leaves
// room for sanitizer builds and a loaded machine.
TEST(StatsShiftInterval, FastOnLargeSamples) {
  test_util::Gaussian g(6);
  const std::vector<double> a = LogNormal(g, 5000, 1e6, 0.3);
  const std::vector<double> b = LogNormal(g, 5000, 1.02e6, 0.3);
  double best_ms = 1e9;
  Interval r;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    r = ShiftInterval(a, b, 0.9);
    const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
    best_ms = std::min(best_ms, took.count());
  }
  ASSERT_TRUE(r.ok);
  EXPECT_NEAR(r.estimate, 0.02, 0.02);
  EXPECT_LT(r.lo, r.estimate);
  EXPECT_GT(r.hi, r.estimate);
  RecordProperty("ms", std::to_string(best_ms));
  EXPECT_LT(best_ms, 200) << "ShiftInterval took " << best_ms << " ms";
}

}  // namespace
}  // namespace cpuledger::stats
