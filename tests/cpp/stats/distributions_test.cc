// Distributions and moments against published tables and a two-pass reference.
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "stats/gaussian.h"
#include "stats/stats.h"

namespace cpuledger::stats {
namespace {

// Quantiles from the standard tables (and scipy.stats.norm/t.ppf to the
// printed digits): z(0.975) = 1.959963985, z(0.95) = 1.644853627,
// t(0.975, 10) = 2.228138852, t(0.95, 5) = 2.015048373, t(0.995, 3) = 5.840909310.
TEST(StatsDistributions, QuantilesMatchTables) {
  EXPECT_NEAR(NormalQuantile(0.975), 1.959963985, 1e-9);
  EXPECT_NEAR(NormalQuantile(0.95), 1.644853627, 1e-9);
  EXPECT_NEAR(NormalQuantile(0.001), -3.090232306, 1e-9);
  EXPECT_DOUBLE_EQ(NormalQuantile(0.5), 0);
  EXPECT_NEAR(StudentTQuantile(0.975, 10), 2.228138852, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.95, 5), 2.015048373, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.995, 3), 5.840909310, 1e-8);
  // Huge df is the normal.
  EXPECT_NEAR(StudentTQuantile(0.975, 1e12), 1.959963985, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.975, std::numeric_limits<double>::infinity()), 1.959963985, 1e-9);
}

// Phi(1.96) = 0.9750021049, Phi(-3) = 0.0013498980 (tables); t with 4 df at
// -1.5: 0.104 exactly (the closed form 1/2 + x(x^2+6)/(2(x^2+4)^1.5) for 4 df).
TEST(StatsDistributions, CdfsMatchTables) {
  EXPECT_NEAR(NormalCdf(1.96), 0.9750021049, 1e-10);
  EXPECT_NEAR(NormalCdf(-3), 0.0013498980, 1e-10);
  EXPECT_NEAR(StudentTCdf(2.228138852, 10), 0.975, 1e-10);
  EXPECT_NEAR(StudentTCdf(-1.5, 4), 0.104, 1e-12);
  EXPECT_NEAR(StudentTCdf(StudentTQuantile(0.3, 7.5), 7.5), 0.3, 1e-12);
}

TEST(StatsDistributions, OutOfRangeGivesNaNOrInfinityNotAThrow) {
  EXPECT_TRUE(std::isnan(StudentTQuantile(0.5, 0)));
  EXPECT_TRUE(std::isnan(StudentTQuantile(0.5, -1)));
  EXPECT_TRUE(std::isnan(NormalQuantile(1.5)));
  EXPECT_TRUE(std::isnan(NormalCdf(std::numeric_limits<double>::quiet_NaN())));
  EXPECT_EQ(NormalQuantile(1), std::numeric_limits<double>::infinity());
  EXPECT_EQ(NormalQuantile(0), -std::numeric_limits<double>::infinity());
}

// Reference: mean, then the sum of squared deviations, in long double.
struct TwoPass {
  long double mean = 0, m2 = 0;
  explicit TwoPass(const std::vector<double>& xs) {
    for (double x : xs) mean += x;
    mean /= xs.size();
    for (double x : xs) m2 += (x - mean) * (x - mean);
  }
};

TEST(StatsMoments, WelfordMatchesTwoPassEvenFarFromZero) {
  test_util::Gaussian g(7);
  // A large offset is where the textbook sum-of-squares formula loses all
  // its digits; Welford must not.
  const std::vector<double> xs = g.Series(10'000, 1e9, 3);
  const TwoPass ref(xs);
  const Moments m = Moments::Of(xs);
  EXPECT_EQ(m.n, 10'000);
  EXPECT_NEAR(m.mean, static_cast<double>(ref.mean), 1e-6);
  // (sum(x^2) - n mean^2 here would be off by more than m2 itself.)
  EXPECT_NEAR(m.m2 / static_cast<double>(ref.m2), 1, 1e-7);
  EXPECT_NEAR(m.variance(), static_cast<double>(ref.m2) / 9'999, 1e-6);
}

TEST(StatsMoments, MergeEqualsOnePass) {
  test_util::Gaussian g(8);
  const std::vector<double> xs = g.Series(1001, 50, 10);
  const Moments whole = Moments::Of(xs);
  Moments left = Moments::Of(std::span(xs).first(317));
  left.Merge(Moments::Of(std::span(xs).subspan(317)));
  EXPECT_DOUBLE_EQ(left.n, whole.n);
  EXPECT_NEAR(left.mean, whole.mean, 1e-12);
  EXPECT_NEAR(left.m2 / whole.m2, 1, 1e-12);

  Moments empty;
  empty.Merge(whole);
  EXPECT_DOUBLE_EQ(empty.mean, whole.mean);
  Moments copy = whole;
  copy.Merge(Moments{});
  EXPECT_DOUBLE_EQ(copy.m2, whole.m2);
}

TEST(StatsMoments, VarianceNeedsTwoValues) {
  EXPECT_EQ(Moments{}.variance(), 0);
  const std::vector<double> one = {5};
  EXPECT_EQ(Moments::Of(one).variance(), 0);
  const std::vector<double> two = {1, 3};
  EXPECT_DOUBLE_EQ(Moments::Of(two).variance(), 2);
}

// {1, 2, 3, 4}: sum 10, sum of squares 30, mean 2.5, m2 = 30 - 10 * 2.5 = 5.
TEST(StatsMoments, FromSums) {
  const Moments m = Moments::FromSums(4, 10, 30);
  EXPECT_DOUBLE_EQ(m.n, 4);
  EXPECT_DOUBLE_EQ(m.mean, 2.5);
  EXPECT_DOUBLE_EQ(m.m2, 5);
  EXPECT_DOUBLE_EQ(m.variance(), 5.0 / 3);
  // A sum of squares below sum^2 / n (rounding in the store) clamps to 0.
  EXPECT_EQ(Moments::FromSums(2, 2, 1.9).m2, 0);
  EXPECT_EQ(Moments::FromSums(0, 0, 0).n, 0);
}

TEST(StatsMedian, OddEvenAndEmpty) {
  EXPECT_DOUBLE_EQ(Median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(Median({-1}), -1);
  EXPECT_TRUE(std::isnan(Median({})));
}

}  // namespace
}  // namespace cpuledger::stats
