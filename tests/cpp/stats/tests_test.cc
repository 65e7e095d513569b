// Hypothesis tests and multiple-testing adjustment against textbook examples.
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "stats/stats.h"

namespace cpuledger::stats {
namespace {

// No ties: b = {6..10} lies wholly above a = {1..5}, so U = 25, E[U] = 12.5,
// var(U) = 5 * 5 * 11 / 12 = 22.9167, z = (12.5 - 0.5) / 4.7871 = 2.50672,
// p = 2 * (1 - Phi(2.50672)) = 0.0121858 (scipy.stats.mannwhitneyu,
// method="asymptotic", use_continuity=True, agrees).
TEST(StatsMannWhitney, NoTies) {
  const std::vector<double> a = {1, 2, 3, 4, 5};
  const std::vector<double> b = {6, 7, 8, 9, 10};
  EXPECT_NEAR(MannWhitneyPValue(a, b), 0.0121858, 1e-7);
  EXPECT_NEAR(MannWhitneyPValue(b, a), 0.0121858, 1e-7);  // two-sided: symmetric
}

// With ties. Pooled ranks (14 values): 1.1 -> 1; 2.0 x3 (a, a, b) -> 3;
// 3.5 -> 5; 4.0 x4 (a, a, a, b) -> 7.5; 5.5 -> 10; 6.0 x2 (a, b) -> 11.5;
// 7.0 -> 13; 8.0 -> 14. R_b = 3 + 7.5 + 10 + 11.5 + 13 + 14 = 59,
// U_b = 59 - 6 * 7 / 2 = 38, E[U] = 24. Ties: sum(t^3 - t) = 24 + 60 + 6 = 90,
// var = 48 / 12 * (15 - 90 / (14 * 13)) = 58.021978, z = 13.5 / 7.617216 =
// 1.772302, p = 0.0763446 (scipy agrees: 0.07634459).
TEST(StatsMannWhitney, TiesAndContinuityCorrection) {
  const std::vector<double> a = {1.1, 2.0, 2.0, 3.5, 4.0, 4.0, 4.0, 6.0};
  const std::vector<double> b = {2.0, 4.0, 5.5, 6.0, 7.0, 8.0};
  EXPECT_NEAR(MannWhitneyPValue(a, b), 0.0763446, 1e-7);
}

TEST(StatsMannWhitney, DegenerateInputs) {
  const std::vector<double> empty;
  const std::vector<double> some = {1, 2, 3};
  const std::vector<double> same = {4, 4, 4};
  EXPECT_EQ(MannWhitneyPValue(empty, some), 1);
  EXPECT_EQ(MannWhitneyPValue(some, empty), 1);
  EXPECT_EQ(MannWhitneyPValue(same, same), 1);
  const std::vector<double> nan_only = {std::nan("")};
  EXPECT_EQ(MannWhitneyPValue(nan_only, some), 1);  // NaN is skipped
}

// a: mean 10.05, variance 0.075 (n 6); b: mean 10.942857, variance 0.296190
// (n 7). t = -0.892857 / sqrt(0.0125 + 0.0423129) = -3.813647, Welch df =
// 9.114156, p = 0.0040355 (scipy.stats.ttest_ind(equal_var=False) agrees).
TEST(StatsWelch, TextbookExample) {
  const std::vector<double> a = {10.1, 9.8, 10.4, 10.0, 9.7, 10.3};
  const std::vector<double> b = {10.9, 11.4, 10.2, 11.8, 10.7, 11.1, 10.5};
  EXPECT_NEAR(WelchPValue(Moments::Of(a), Moments::Of(b)), 0.0040355, 1e-7);
  EXPECT_NEAR(WelchPValue(Moments::Of(b), Moments::Of(a)), 0.0040355, 1e-7);
}

TEST(StatsWelch, DegenerateInputs) {
  const Moments one{.n = 1, .mean = 3, .m2 = 0};
  const Moments some{.n = 5, .mean = 3, .m2 = 2};
  const Moments flat_a{.n = 5, .mean = 3, .m2 = 0};
  const Moments flat_b{.n = 5, .mean = 4, .m2 = 0};
  EXPECT_EQ(WelchPValue(one, some), 1);
  EXPECT_EQ(WelchPValue(flat_a, flat_a), 1);
  EXPECT_EQ(WelchPValue(flat_a, flat_b), 0);  // no spread and different means
  // Tiny p-values keep their digits (the upper tail is computed directly).
  const Moments far{.n = 1000, .mean = 100, .m2 = 999};
  const Moments near{.n = 1000, .mean = 101, .m2 = 999};
  const double p = WelchPValue(far, near);
  EXPECT_GT(p, 0);
  EXPECT_LT(p, 1e-50);
}

// Benjamini & Hochberg (1995), section 4: 15 p-values; at q = 0.05 the first
// four are rejected. Adjusted values by hand, p_(i) * 15 / i and then the
// running minimum from the largest down:
//   0.0015 0.003 0.0095 0.035625 0.0603 0.0638571 (= min(0.0695, 0.0638571))
//   0.0638571 0.0645 0.0765 0.486 0.5811818 0.714875 0.7532308 0.8132143 1
TEST(StatsBenjaminiHochberg, PaperExample) {
  const std::vector<double> p = {0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
                                 0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000};
  const std::vector<double> expected = {0.0015,    0.003,     0.0095,    0.035625,  0.0603,
                                        0.0638571, 0.0638571, 0.0645,    0.0765,    0.486,
                                        0.5811818, 0.714875,  0.7532308, 0.8132143, 1};
  const std::vector<double> q = BenjaminiHochberg(p);
  ASSERT_EQ(q.size(), p.size());
  int rejected = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    EXPECT_NEAR(q[i], expected[i], 1e-7) << i;
    if (q[i] <= 0.05) ++rejected;
    if (i > 0) {
      EXPECT_LE(q[i - 1], q[i]);
    }
  }
  EXPECT_EQ(rejected, 4);
}

// Holm (1979) step-down, by hand: sorted 0.01 0.02 0.03 0.04 0.3 (m = 5)
// times 5 4 3 2 1 = 0.05 0.08 0.09 0.08 0.3, made non-decreasing:
// 0.05 0.08 0.09 0.09 0.3; at alpha 0.05 only the first is rejected,
// where BH would reject four.
TEST(StatsHolm, StepDownByHand) {
  const std::vector<double> p = {0.04, 0.3, 0.01, 0.03, 0.02, std::nan("")};
  const std::vector<double> h = Holm(p);
  ASSERT_EQ(h.size(), p.size());
  // m = 6 with the NaN (read as 1): x6 x5 x4 x3 x2 x1.
  EXPECT_NEAR(h[2], 0.06, 1e-12);
  EXPECT_NEAR(h[4], 0.10, 1e-12);
  EXPECT_NEAR(h[3], 0.12, 1e-12);
  EXPECT_NEAR(h[0], 0.12, 1e-12);  // 0.04 x 3 = 0.12, not below the one before
  EXPECT_NEAR(h[1], 0.6, 1e-12);
  EXPECT_NEAR(h[5], 1.0, 1e-12);
  const std::vector<double> five = {0.01, 0.02, 0.03, 0.04, 0.3};
  const std::vector<double> h5 = Holm(five);
  const std::vector<double> expected = {0.05, 0.08, 0.09, 0.09, 0.3};
  for (size_t i = 0; i < five.size(); ++i) EXPECT_NEAR(h5[i], expected[i], 1e-12) << i;
  EXPECT_TRUE(Holm({}).empty());
}

TEST(StatsBenjaminiHochberg, InputOrderCapAndEdgeCases) {
  // The same values shuffled: each keeps its own adjusted value.
  const std::vector<double> p = {0.0344, 1.000, 0.0001, 0.0201, 0.7590};
  const std::vector<double> q = BenjaminiHochberg(p);
  // Sorted: 0.0001 0.0201 0.0344 0.759 1 -> *5/i: 0.0005 0.05025 0.0573333 0.94875 1
  EXPECT_NEAR(q[0], 0.0573333, 1e-7);
  EXPECT_NEAR(q[1], 1, 1e-12);
  EXPECT_NEAR(q[2], 0.0005, 1e-12);
  EXPECT_NEAR(q[3], 0.05025, 1e-12);
  EXPECT_NEAR(q[4], 0.94875, 1e-12);
  EXPECT_TRUE(BenjaminiHochberg({}).empty());
  // Capped at 1; NaN counts as 1.
  const std::vector<double> big = {0.9, 0.95, std::nan("")};
  for (double v : BenjaminiHochberg(big)) EXPECT_LE(v, 1);
  EXPECT_EQ(BenjaminiHochberg(big)[2], 1);
}

// SelectByFdr() on the paper's 15 p-values: BH selects the first four at
// 0.05, and their intervals go to 1 - 0.05 * 4 / 15 = 0.98667; a level
// below the one asked for is never used; nothing selected leaves it as asked.
TEST(StatsSelectByFdr, DiscoveriesAndTheirLevel) {
  const std::vector<double> p = {0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
                                 0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000};
  const FdrSelection chosen = SelectByFdr(p, 0.05, 0.90);
  EXPECT_EQ(chosen.q, BenjaminiHochberg(p));
  ASSERT_EQ(chosen.selected.size(), p.size());
  for (size_t i = 0; i < p.size(); ++i) EXPECT_EQ(chosen.selected[i], i < 4) << i;
  EXPECT_EQ(chosen.discoveries, 4u);
  EXPECT_NEAR(chosen.selected_confidence, 1 - 0.05 * 4 / 15, 1e-12);

  // Every test selected at a loose level: 1 - 0.5 = 0.5, below the 0.9 asked.
  const std::vector<double> tiny = {1e-6, 2e-6, 3e-6};
  const FdrSelection all = SelectByFdr(tiny, 0.5, 0.90);
  EXPECT_EQ(all.discoveries, 3u);
  EXPECT_EQ(all.selected_confidence, 0.90);

  const FdrSelection none = SelectByFdr(std::vector<double>{0.5, 0.9}, 0.05, 0.90);
  EXPECT_EQ(none.discoveries, 0u);
  EXPECT_EQ(none.selected, std::vector<bool>({false, false}));
  EXPECT_EQ(none.selected_confidence, 0.90);
  const FdrSelection empty = SelectByFdr({}, 0.05, 0.90);
  EXPECT_TRUE(empty.q.empty());
  EXPECT_EQ(empty.selected_confidence, 0.90);
}

// Weighted BH: the same p-values, with the weight on the tests thought
// likely to be real. Test 6 (p 0.0298) is not selected unweighted; with
// weight 4 of a mean-1 family it is, at its own wider level.
TEST(StatsSelectByFdr, WeightsSpendTheLevelWhereTheyPoint) {
  const std::vector<double> p = {0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
                                 0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000};
  std::vector<double> w(p.size(), 1.0);
  EXPECT_EQ(SelectByFdr(p, 0.05, 0.90, w).q, BenjaminiHochberg(p));  // all equal: plain BH

  // Weights scale to mean 1 (they sum to 11 here, so by 15 / 11): test 6's
  // p / w = 0.0298 / 5.45 = 0.0055, the others' p / 0.68.
  std::fill(w.begin(), w.end(), 0.5);
  w[6] = 4;
  const FdrSelection chosen = SelectByFdr(p, 0.05, 0.90, w);
  ASSERT_EQ(chosen.weights.size(), p.size());
  EXPECT_NEAR(chosen.weights[6], 4 * 15.0 / 11, 1e-12);
  EXPECT_TRUE(chosen.selected[6]);
  EXPECT_TRUE(chosen.selected[0]);
  EXPECT_TRUE(chosen.selected[3]);
  EXPECT_FALSE(chosen.selected[4]);  // 0.0201 / 0.68 = 0.029: BH's 6th, above 0.05 * 6 / 15
  // Its interval is at 1 - fdr R w / m, narrower than an unweighted one's.
  const double r = static_cast<double>(chosen.discoveries);
  EXPECT_NEAR(chosen.ConfidenceOf(6), std::max(0.90, 1 - 0.05 * r * chosen.weights[6] / 15), 1e-12);
  EXPECT_GT(chosen.ConfidenceOf(0), chosen.ConfidenceOf(6));

  // Weight 0 is never selected; bad weights mean none.
  w.assign(p.size(), 1.0);
  w[0] = 0;
  EXPECT_FALSE(SelectByFdr(p, 0.05, 0.90, w).selected[0]);
  w[0] = -1;
  EXPECT_TRUE(SelectByFdr(p, 0.05, 0.90, w).weights.empty());
  EXPECT_TRUE(SelectByFdr(p, 0.05, 0.90, std::vector<double>{1, 2}).weights.empty());
}

}  // namespace
}  // namespace cpuledger::stats
