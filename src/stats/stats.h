// src/stats/stats.h — the estimators and tests the detectors stand on.
//
// Every routine is a free function over plain numbers; distributions come
// from Boost.Math (no hand-rolled tables). Effects are relative: +0.05 means
// "5% more CPU per request on side B than on side A".
//
//   Interval shift = ShiftInterval(old_costs, new_costs, 0.90);   // rank-based
//   Interval means = MeanRatioInterval(Moments::Of(a), Moments::Of(b), 0.90);
//   std::vector<double> q = BenjaminiHochberg(p_values);          // adjusted p
//   FdrSelection chosen = SelectByFdr(p_values, 0.05, 0.90);      // BH + FCR level
//   ChangePointResult cps = DetectChangePoints(daily_means);     // PELT
//
// Conventions: `confidence` is two-sided, in (0, 1). NaN in an input series
// means "missing". Functions never throw on data; too little data gives an
// Interval with ok == false and a reason. Everything is a pure function:
// safe to call from any number of threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace cpuledger::stats {

// ---- distributions (Boost.Math) ----
// NaN for an argument out of range (p outside [0, 1], df <= 0, NaN); the
// quantiles at p = 0 and 1 are -inf and +inf. df = +inf is the normal.
double NormalQuantile(double p);  // standard normal, p in (0,1)
double NormalCdf(double x);
double StudentTQuantile(double p, double df);  // df > 0
double StudentTCdf(double x, double df);

// Median() — the middle value (the mean of the two middle ones for an even
// count); NaN for none.
double Median(std::vector<double> values);

// Moments — count, mean and sum of squared deviations (Welford), mergeable.
struct Moments {
  double n = 0, mean = 0, m2 = 0;
  void Add(double x);
  void Merge(const Moments& other);  // Chan et al.'s parallel update
  double variance() const;           // sample variance (n - 1); 0 when n < 2
  static Moments Of(std::span<const double> xs);
  // FromSums() — from n, sum and sum of squares (the store's form); clamps a
  // negative variance from rounding to 0.
  static Moments FromSums(double n, double sum, double sum_sq);
};

// Interval — a point estimate with a two-sided interval at `confidence`.
struct Interval {
  double estimate = 0, lo = 0, hi = 0;
  double confidence = 0;
  bool ok = false;     // false: too little data (see reason); the numbers are 0
  std::string reason;  // why not ok
  double width() const { return hi - lo; }
};

// MeanRatioInterval() — relative change of the mean, mean(b)/mean(a) - 1,
// with a Welch-style interval by the delta method on the log of the ratio
// (Student t with Welch–Satterthwaite df). For large samples (CLT).
// RETURNS: !ok when either side has n < 2 or a mean <= 0.
Interval MeanRatioInterval(const Moments& a, const Moments& b, double confidence);

// BootstrapMeanRatio() — the same effect, percentile bootstrap (resampling
// both sides independently `resamples` times; the same numbers for a seed on
// every platform). For small samples where the CLT is doubtful; the estimate
// is the observed mean(b)/mean(a) - 1. RETURNS: !ok when a side has n < 2, a
// mean <= 0 or resamples < 1. COST: O(resamples * (|a|+|b|)).
Interval BootstrapMeanRatio(std::span<const double> a, std::span<const double> b, double confidence,
                            int resamples = 2000, uint64_t seed = 1);

// ShiftInterval() — the rank-based effect: the Hodges–Lehmann estimate of the
// shift of log(b) against log(a), with the distribution-free interval that
// inverts the Mann–Whitney test (normal approximation, tie-corrected),
// reported as exp(shift) - 1. Under a multiplicative change (every request
// x(1+e)) it estimates e, and it is far less disturbed by slow modes and
// outliers than the mean. Values <= 0 (and NaN) are skipped.
// The estimate and the ends are exact order statistics of the n*m pairwise
// differences log b_j - log a_i: the median, and the k-th from each end with
// k = floor(nm/2 - z sd(U)) (at least 1, so with very few values the
// interval is the full range of differences and covers less than asked).
// COST: O((n+m) log(n+m)) and no allocation per pair: the differences are
// never formed; each order statistic is found by a search on the shift with
// a merge-count of the Mann–Whitney statistic, O(n+m) per step and ~10
// steps. 5k against 5k values: ~2 ms.
// RETURNS: !ok when either side has fewer than 2 positive values.
Interval ShiftInterval(std::span<const double> a, std::span<const double> b, double confidence);

// StratumPair — one stratum's two samples (requests alike in what else
// sets their cost: a commit, a flag's value), compared within it only.
struct StratumPair {
  std::span<const double> a, b;
};

// PooledShift — one log-scale shift of b against a across strata.
struct PooledShift {
  double log_shift = 0, se = 0;
  std::vector<size_t> used;  // the strata combined (indices into the input)
  bool ok() const { return se > 0; }
  Interval At(double confidence) const;  // normal, as exp(shift) - 1
  // SequenceAt() — At()'s always-valid counterpart (MixtureConfidenceSequence,
  // sequential.h): for a shift looked at again every run as its data grow.
  Interval SequenceAt(double confidence, double tau) const;
  double PValue() const;  // two-sided, of no shift
};

// PoolShifts() — the strata's Hodges–Lehmann shifts (ShiftInterval),
// combined by inverse variance, each variance from its rank interval's
// half-width at one sigma. A shift of the mix between strata (more
// requests of the costlier kind on one side) moves no stratum's shift, so
// it is not read as a change of cost. A stratum whose interval is not ok
// (or has no width) is left out; !ok() when none is left.
PooledShift PoolShifts(std::span<const StratumPair> strata);

// MannWhitneyPValue() — two-sided p-value of the Mann–Whitney U test
// (normal approximation with tie and continuity correction). NaN is skipped.
// 1 when a side is empty or every value is equal. COST: O((n+m) log(n+m)).
double MannWhitneyPValue(std::span<const double> a, std::span<const double> b);

// WelchPValue() — two-sided p-value of Welch's t test on the means. 1 when
// a side has n < 2 or both variances are 0 and the means are equal; 0 when
// both variances are 0 and the means differ.
double WelchPValue(const Moments& a, const Moments& b);

// BenjaminiHochberg() — BH-adjusted p-values (q-values), in input order:
// reject hypothesis i at FDR level q iff result[i] <= q. Monotone, capped at
// 1; a NaN p-value counts as 1 (and as one of the hypotheses).
std::vector<double> BenjaminiHochberg(std::span<const double> p_values);

// FdrSelection — the tests Benjamini–Hochberg selects from a family, and
// the confidence the selected tests' intervals need.
struct FdrSelection {
  std::vector<double> q;       // BH-adjusted p-values (BenjaminiHochberg()), in input order
  std::vector<bool> selected;  // q[i] <= fdr: a discovery
  size_t discoveries = 0;      // how many are selected
  // selected_confidence — 1 - fdr * discoveries / tests, never below the
  // `confidence` asked for; that confidence when nothing is selected.
  double selected_confidence = 0;
  // ConfidenceOf() — test i's level with weights (SelectByFdr()): 1 - fdr *
  // discoveries * w_i / tests, never below the `confidence` asked for;
  // selected_confidence without.
  double ConfidenceOf(size_t i) const;

  std::vector<double> weights;  // as given, scaled to mean 1; empty: none given
  double confidence = 0;        // as asked
  double fdr = 0;
};

// SelectByFdr() — Benjamini–Hochberg at level `fdr` over `p_values`, and the
// FCR-adjusted level of the selected intervals (Benjamini & Yekutieli 2005):
// intervals of the R selected out of m tests, each at 1 - fdr R / m, miss
// their true value in at most a share fdr of them, where intervals at the
// nominal level picked out of many would cover too little. NaN reads as 1.
// Used by every detector that selects by FDR (flag and function tests).
//
// With `weights` (one per test, >= 0, scaled here to mean 1; empty: all 1),
// the weighted BH of Genovese, Roeder & Wasserman (2006): BH over p_i / w_i,
// which keeps the FDR at `fdr` while the tests more likely to be real (a
// function whose code changed) get more of it; a selected test's interval
// is then at 1 - fdr R w_i / m (ConfidenceOf()), the level its selection
// implies. A weight of 0 is never selected.
FdrSelection SelectByFdr(std::span<const double> p_values, double fdr, double confidence,
                         std::span<const double> weights = {});

// Holm() — Holm–Bonferroni adjusted p-values, in input order: rejecting
// those <= alpha keeps the chance of any false rejection in the family at
// most alpha (family-wise error), under any dependence. NaN reads as 1.
std::vector<double> Holm(std::span<const double> p_values);

// ---- change points ----

// ChangePointOptions — DetectChangePoints() needs no tuning; these are for
// those who want it.
struct ChangePointOptions {
  // penalty — the cost of one change, in noise variances (the data are
  // measured in units of noise_scale); a segment's slope costs half of it.
  // 0: automatic, 3 * log(points) + 6 (BIC would charge 2 * log(points)).
  // Either grows for autocorrelated noise (see DetectChangePoints()).
  double penalty = 0;
  size_t min_segment = 3;  // present, non-outlier points per segment; at least 2
  // season — period in points (7 for daily data with a weekly cycle); 0:
  // detected (2 .. n/2, at most 2000) from the autocorrelation of the series
  // less its rolling median, up to two periods (a week and a year of days),
  // each kept only when it pays for itself against a fit without it; -1:
  // none. A fixed period is used only when the series holds two cycles of it.
  int season = 0;
};

// ChangePoint — a change between index-1 and index (index = the first point
// of the new segment, in the input's indexing, missing values included). A
// change of level whose first points are missing happened somewhere in that
// gap: index is then the gap's middle (a missing point).
// Levels are those of the deseasonalised series (a cycle's average level).
// A slope change is located at its vertex, the point the two lines share:
// index is the point after it, before/after the fitted values at the vertex
// and at index, so size is one step along the new slope.
struct ChangePoint {
  size_t index = 0;
  double before = 0;          // the fitted level at the last point of the old segment
  double after = 0;           // the fitted level at `index`
  double size = 0;            // after - before
  double relative = 0;        // size / |before| (0 when before == 0)
  bool slope_change = false;  // a change of trend rather than of level: a trend on
                              // either side, and two lines meeting at a vertex fit
                              // nearly as well (no jump significant at 3 sigma)
  double slope_before = 0;    // fitted slope per index step before the change (0: a level)
  double slope_after = 0;     // and after it
};

// ChangePointResult — the changes and what the method saw.
struct ChangePointResult {
  std::vector<ChangePoint> changes;  // by index
  // noise_scale — sigma of the fit's residuals (outliers and excursions
  // left out); from second differences when too few points to fit; 0 for
  // an exact line.
  double noise_scale = 0;
  int season = 0;         // the (strongest) period removed (0: none)
  int second_season = 0;  // a second period removed after it (0: none)
  size_t outliers = 0;    // points left out of the fit as outliers or excursions
  size_t missing = 0;     // NaN (or infinite) points skipped
  // multiplicative — the fit was made on log(values): every value is
  // positive and the logs fitted better (growth by a steady factor is one
  // trend in logs). Changes are still reported on the input's scale;
  // noise_scale is then the relative noise times the median value.
  bool multiplicative = false;
};

// DetectChangePoints() — optimal partitioning by PELT with a robust
// (outlier-resistant) segment cost on the deseasonalised series; a segment
// is a level or a linear trend, whichever the penalised cost prefers, so a
// steady trend is no change and a slow ramp is one slope change, not a
// staircase. Missing values (NaN) are skipped and keep their indices. Fewer
// than 2 * min_segment present points: no changes.
// Seasons: a weekday pattern is removed as one offset per position; a long
// cycle (36 points or more: a year of days or of weeks, seen at least twice)
// as a smooth wave of 3 harmonics, re-estimated against the fit's levels so
// that a shift does not leak into it.
// Outliers and excursions: a point more than 3.5 noise scales from the
// median of its neighbours, or from its segment's fit, is left out
// (refitting until the set settles), so a single wild point is never a
// change; two in a row are outliers too when min_segment is 3. A short
// segment (at most 2 * min_segment + 1 points: a week with the default)
// whose neighbours agree is an excursion that came back (a holiday), and is
// left out like outliers: not a change.
// Autocorrelated noise: when the fit's residuals are significantly
// correlated from point to point (lag-1 rho), the penalty grows by
// (1 + rho) / (1 - rho) (at most 4x). Wander: when a model without changes
// (a random walk seen through noise, or an AR(1) of phi up to 0.98, with or
// without a drift) scores better than the changes, only changes that are
// abrupt against it are kept, so a series that strays is not cut up
// (from 30 present points: in fewer a walk passes for one clear shift).
// Growth: a series of positive values is fitted in logs too, and reported
// from them (multiplicative) when they fit better, so growth by a steady
// factor is one trend, not a staircase.
// What it finds without tuning: pure noise of 30 to 2000 points gives no
// change (Gaussian, 300 seeds); a shift lasting the last 5 of 28 points is
// found 76% of the time at 3 noise scales and 94% at 4 (88% and 99% in 200
// points; 200 seeds). bench/changepoints scores it against ruptures' Binseg and Pelt on
// fourteen families of generated series (shifts, kinks, trends, weekly and
// yearly seasons, holidays, heavy tails, outliers, gaps, exponential
// growth, wander, short series, counts).
// Below ~30 points a rare noise series can show a change.
// COST: PELT is O(n) to O(n^2) segment fits of a few ns each, O(n^2) when
// there is no change (1000 points: ~5 ms a fit); a call makes two to six
// fits (twice that when the noise is autocorrelated), five more per season
// tried, and the season search is O(n * min(n/2, 2000)); all of it twice
// for a series of positive values (once in logs); when a wander model
// wins, 38 of them, O(n * changes^2) each, per change found and round:
// 1000 points with a shift took ~55 ms, a 1000-point random walk ~400 ms
// (the CLI, on a loaded 2-core VM).
ChangePointResult DetectChangePoints(std::span<const double> values,
                                     const ChangePointOptions& options = {});

}  // namespace cpuledger::stats
