// tests/cpp/stats/sequential_test.cc — the confidence sequences of
// stats/sequential.h: the formula by hand, the error held over every look
// (where a fixed-sample interval looked at as often fails), and the mean
// ratio's form.
#include "stats/sequential.h"

#include <cmath>

#include <gtest/gtest.h>

#include "gaussian.h"

namespace cpuledger::stats {
namespace {

TEST(MixtureConfidenceSequence, MatchesTheFormulaByHand) {
  // v = 0.01, tau = 0.1 (tau^2 = v): radius = sqrt(0.01 * 2 * (log 2 + 2 log 20)).
  const Interval cs = MixtureConfidenceSequence(0.3, 0.01, 0.05, 0.1);
  ASSERT_TRUE(cs.ok);
  const double radius = std::sqrt(0.02 * (std::log(2.0) + 2 * std::log(20.0)));
  EXPECT_NEAR(cs.lo, 0.3 - radius, 1e-12);
  EXPECT_NEAR(cs.hi, 0.3 + radius, 1e-12);
  EXPECT_DOUBLE_EQ(cs.confidence, 0.95);
}

TEST(MixtureConfidenceSequence, IsWiderThanTheFixedSampleIntervalAndShrinksWithData) {
  for (double v : {1e-2, 1e-4, 1e-6}) {
    const Interval cs = MixtureConfidenceSequence(0, v, 0.05, 0.05);
    const double fixed = NormalQuantile(0.975) * std::sqrt(v);
    EXPECT_GT(cs.hi, fixed) << v;
  }
  EXPECT_LT(MixtureConfidenceSequence(0, 1e-6, 0.05, 0.05).width(),
            MixtureConfidenceSequence(0, 1e-4, 0.05, 0.05).width());
}

TEST(MixtureConfidenceSequence, RejectsBadArguments) {
  EXPECT_FALSE(MixtureConfidenceSequence(0, 0, 0.05, 0.05).ok);
  EXPECT_FALSE(MixtureConfidenceSequence(0, 1, 0, 0.05).ok);
  EXPECT_FALSE(MixtureConfidenceSequence(0, 1, 0.05, 0).ok);
  EXPECT_FALSE(MixtureConfidenceSequence(std::nan(""), 1, 0.05, 0.05).ok);
}

// EverMissed() — over `runs` streams of N(mu, 1) draws, looked at every
// `every` draws up to `n`: the share of streams in which some look's
// interval (from `interval(mean, variance)`) excluded mu.
template <typename IntervalOf>
double EverMissed(int runs, int n, int every, IntervalOf interval) {
  constexpr double kMu = 0.2;
  test_util::Gaussian g(7);
  int missed = 0;
  for (int r = 0; r < runs; ++r) {
    double sum = 0;
    bool miss = false;
    for (int i = 1; i <= n; ++i) {
      sum += kMu + g();
      if (i % every != 0) continue;
      const Interval e = interval(sum / i, 1.0 / i);
      miss = miss || e.lo > kMu || e.hi < kMu;
    }
    missed += miss;
  }
  return static_cast<double>(missed) / runs;
}

TEST(MixtureConfidenceSequence, HoldsItsErrorOverEveryLook) {
  // 400 streams of 2000 draws, 200 looks each.
  const double sequence = EverMissed(400, 2000, 10, [](double mean, double v) {
    return MixtureConfidenceSequence(mean, v, 0.05, 0.1);
  });
  const double fixed = EverMissed(400, 2000, 10, [](double mean, double v) {
    const double half = NormalQuantile(0.975) * std::sqrt(v);
    return Interval{mean, mean - half, mean + half, 0.95, true, ""};
  });
  EXPECT_LE(sequence, 0.05);
  // The fixed-sample 95% interval, looked at as often, misses far more than 5%.
  EXPECT_GT(fixed, 0.2);
}

TEST(LogMeanRatioSequence, CentresOnTheRatioOfMeansAndCoversIt) {
  test_util::Gaussian g(11);
  Moments a, b;
  for (int i = 0; i < 20000; ++i) {
    a.Add(100 + 10 * g());
    b.Add(103 + 10 * g());
  }
  const Interval e = LogMeanRatioSequence(a, b, 0.05, 0.05);
  ASSERT_TRUE(e.ok);
  EXPECT_NEAR(e.estimate, b.mean / a.mean - 1, 1e-12);
  EXPECT_LT(e.lo, 0.03);
  EXPECT_GT(e.hi, 0.03);
  EXPECT_GT(e.lo, 0.02);  // 20k a side see a 3% change clearly
  // Wider than the fixed-sample interval at the same level.
  const Interval fixed = MeanRatioInterval(a, b, 0.95);
  EXPECT_GT(e.width(), fixed.width());
}

TEST(LogMeanRatioSequence, TooFewSamplesIsNotOk) {
  Moments a, b;
  a.Add(1);
  b.Add(1);
  b.Add(2);
  const Interval e = LogMeanRatioSequence(a, b, 0.05, 0.05);
  EXPECT_FALSE(e.ok);
  EXPECT_FALSE(e.reason.empty());
}

}  // namespace
}  // namespace cpuledger::stats
