// src/stats/changepoints.cc — DetectChangePoints(): PELT over level and
// linear-trend segments, on a deseasonalised series (or its logs) with
// outliers and excursions set aside; in a series that wanders, only the
// abrupt changes.
//
// The pipeline, and why each step is there:
//  1. Seasons (ChooseSeasons): the period at which the series, less a
//     rolling median, is significantly autocorrelated; its per-position
//     offsets are subtracted (a long cycle's smoothed to a few harmonics and
//     re-estimated against the fit's levels), so a weekly cycle or a yearly
//     wave is not mistaken for a run of changes. Then a second period. Each
//     is kept only when the fit without it scores worse (BIC-like), so a
//     run of shifts that repeats twice stays shifts.
//  2. A first noise scale: the MAD of second differences. Differencing twice
//     cancels levels, shifts (two spikes) and slopes, so neither a step nor a
//     ramp inflates it.
//  3. Outliers: a point far from the median of its neighbourhood (Hampel) is
//     left out of the fit; after each fit the flags are recomputed from the
//     fitted model (so the kink of a steep ramp or the end of a series is
//     judged against its own segment), and a short segment whose neighbours
//     agree (an excursion that came back: a holiday) is left out for good.
//  4. PELT (Killick, Fearnhead & Eckley 2012) minimises the sum of segment
//     costs plus a penalty per change. A segment's cost is its residual sum of
//     squares as a level, or as a line plus a penalty for the slope, whichever
//     is smaller: a ramp is one trend segment, not a staircase.
//  5. The noise scale is re-measured from the fit's residuals (far steadier
//     than a MAD of differences on a short series, whose chance
//     underestimates would otherwise turn noise into changes), and 3-4 are
//     repeated until the scale and the outliers settle. When the residuals
//     are autocorrelated the whole is redone with a larger penalty.
//  6. Wander (PreferWander): a series can stray far with nothing abrupt (a
//     random walk seen through noise, an AR(1) near 1: an exchange rate, a
//     temperature anomaly), and PELT cuts it into changes where annotators
//     mark none. When such a model without changes scores better than the
//     changes do, only the changes that are abrupt against it (a step there
//     pays for itself on top of the wander) are kept. Not below 30 points,
//     where a walk passes for one clear shift as well as the shift does.
//  7. Logs (DetectChangePoints): a series of positive values is also fitted
//     in logs, and the logs win when they score better on the same footing
//     (the Jacobian added): growth by a steady factor is one trend in logs
//     but a steepening curve, a staircase of changes, on its own scale.
// Steps 3-5 run in units of the noise scale, so the penalty is a number of
// noise variances.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>

#include "stats/stats.h"

namespace cpuledger::stats {
namespace {

// A point is an outlier when it is this many noise scales from its
// neighbourhood's median (Hampel) or from its segment's fit. Lower values
// drop more good points; higher ones let an outlier at the end of the series
// pass for the start of a new segment.
constexpr double kOutlierCut = 3.5;
// Automatic penalty per change: kPenaltyPerLogN * log(points) +
// kPenaltyBase noise variances. BIC charges 2 log n for a change's level and
// location; the margin is what kept pure noise (30 to 2000 points, hundreds
// of seeds) free of changes while the noise scale is itself estimated from
// the same few points. A segment's slope costs half a change.
constexpr double kPenaltyPerLogN = 3.0;
constexpr double kPenaltyBase = 6.0;
// A change beside a trend segment is a slope change unless a jump in level
// there is significant at this many noise scales (see the report below).
constexpr double kLevelJumpCut = 3.0;
// Seasonality: the family-wise false-detection rate over all periods tried,
// and the largest period tried (bounds the O(n * period) search).
constexpr double kSeasonAlpha = 0.001;
constexpr size_t kMaxPeriod = 2000;
// Most re-estimates of a season against the fit's levels (FitWithoutSeason()).
constexpr int kBackfitRounds = 4;
// The most the penalty grows for autocorrelated noise (FitGrid()).
constexpr double kMaxWanderFactor = 4;
// Fewest present points for the wander alternative (PreferWander()): in
// fewer, a random walk explains one clear shift about as well as the shift
// does (one big step among a few small ones), and the shift was dropped
// (bench/changepoints' `short` family, 20-60 points; seeds 1-3: 30 kept
// every shift that 35 kept, without 35's cost to short walks).
constexpr size_t kMinWanderPoints = 30;
// Periods at least this long are smoothed to kHarmonics harmonics
// (SmoothCycle()): they are slow waves (a year of days or weeks), not a
// weekday pattern.
constexpr size_t kSmoothPeriod = 36;
constexpr int kHarmonics = 3;
// Most fits: the first, then refits with the noise scale and the outliers
// taken from the previous fit (they settle in two or three).
constexpr int kMaxRounds = 6;
// 1 / Phi^-1(3/4): the MAD of a normal sample is this fraction of sigma.
constexpr double kMadToSigma = 1.482602218505602;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  const double upper = v[mid];
  if (v.size() % 2) return upper;
  return 0.5 * (upper + *std::max_element(v.begin(), v.begin() + mid));
}

// RobustScale() — 1.4826 * MAD (sigma for normal data); when more than half
// the values are equal (quantised data) the MAD is 0 and the mean absolute
// deviation (times sqrt(pi/2)) stands in. 0 only when every value is equal.
double RobustScale(const std::vector<double>& v) {
  if (v.empty()) return 0;
  const double med = Median(v);
  std::vector<double> dev(v.size());
  double sum_dev = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    dev[i] = std::fabs(v[i] - med);
    sum_dev += dev[i];
  }
  const double mad = Median(dev);
  if (mad > 0) return kMadToSigma * mad;
  return std::sqrt(std::numbers::pi / 2) * sum_dev / static_cast<double>(v.size());
}

// RollingMedian() — the median of the finite values among the `width`
// consecutive entries around each i (NaN where there are none). Near the
// ends the window slides inward rather than shrinking, so the end points are
// judged by as many neighbours as the rest. COST: O(n * width).
std::vector<double> RollingMedian(const std::vector<double>& v, size_t width) {
  const size_t n = v.size();
  std::vector<double> out(n, kNaN);
  if (n == 0) return out;
  width = std::min(width, n);
  const size_t half = width / 2;
  std::vector<double> window;  // sorted finite values of v[begin, begin + width)
  for (size_t i = 0; i < width; ++i)
    if (std::isfinite(v[i])) window.push_back(v[i]);
  std::sort(window.begin(), window.end());
  size_t begin = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t want_begin = std::min(i > half ? i - half : 0, n - width);
    for (; begin < want_begin; ++begin) {  // slide by one: drop v[begin], add v[begin + width]
      if (std::isfinite(v[begin]))
        window.erase(std::lower_bound(window.begin(), window.end(), v[begin]));
      const double in = v[begin + width];
      if (std::isfinite(in)) window.insert(std::upper_bound(window.begin(), window.end(), in), in);
    }
    if (window.empty()) continue;
    const size_t k = window.size();
    out[i] = k % 2 ? window[k / 2] : 0.5 * (window[k / 2 - 1] + window[k / 2]);
  }
  return out;
}

// ---- seasonality ----

// DetectPeriod() — the period (2 .. n/3) at which the series, less its local
// level, is significantly autocorrelated; 0 when none is. The local level is
// a rolling median spanning one to 1.25 periods: it follows steps, ramps
// and kinks but not the cycle, so they cannot make a period, and the cycle
// keeps its full amplitude (differencing would shrink a smooth daily cycle in
// hourly data to a fraction of the noise). Residuals are winsorised at 3
// sigma so an outlier cannot make a period either. The bar is the standard
// error of a white-noise autocorrelation, 1/sqrt(pairs), times a Bonferroni
// z over the periods tried (not Bartlett's with the sample's own lag-1
// correlation: a smooth cycle has a large one and would raise its own bar).
// COST: O(n * periods) for the correlations, O(n * period) per rolling
// median (one per doubling of the period).
int DetectPeriod(const std::vector<double>& grid, size_t min_period) {
  const size_t n = grid.size();
  const size_t max_period = std::min(n / 2, kMaxPeriod);
  if (max_period < min_period) return 0;

  size_t best = 0;
  double best_f = 0;
  std::vector<double> resid;
  double variance = 0;  // of the current residuals
  size_t width = 0;     // rolling-median window of the current residuals
  const double z = NormalQuantile(1 - kSeasonAlpha / static_cast<double>(max_period - 1));
  for (size_t p = min_period; p <= max_period; ++p) {
    if (width < p + 1) {  // windows grow geometrically: O(log n) rolling medians
      width = p + p / 4 + 1;
      const std::vector<double> level = RollingMedian(grid, width);
      resid.assign(n, kNaN);
      std::vector<double> finite;
      for (size_t i = 0; i < n; ++i)
        if (std::isfinite(grid[i]) && std::isfinite(level[i])) {
          resid[i] = grid[i] - level[i];
          finite.push_back(resid[i]);
        }
      const double clip = 3 * RobustScale(finite);
      if (!(clip > 0)) return 0;
      double sum = 0;
      for (double x : finite) sum += std::clamp(x, -clip, clip);
      const double mean = sum / static_cast<double>(finite.size());
      double sq = 0;
      for (double& x : resid)
        if (std::isfinite(x)) {
          x = std::clamp(x, -clip, clip) - mean;
          sq += x * x;
        }
      variance = sq / static_cast<double>(finite.size());
      if (variance == 0) return 0;
    }
    double cov = 0;
    size_t pairs = 0;
    for (size_t i = 0; i + p < n; ++i)
      if (std::isfinite(resid[i]) && std::isfinite(resid[i + p])) {
        cov += resid[i] * resid[i + p];
        ++pairs;
      }
    if (pairs < p) continue;  // fewer than two cycles (missing values)
    const double r = cov / static_cast<double>(pairs) / variance;
    if (r <= z / std::sqrt(static_cast<double>(pairs))) continue;
    // Significant: score it by the F statistic of its position means, which
    // prefers the fundamental period (a multiple explains no more of the
    // variance with more means) and the exact one (a neighbour of a smooth
    // cycle correlates nearly as well but drifts out of phase).
    std::vector<double> sum(p, 0), count(p, 0);
    double total = 0, total_sq = 0, points = 0;
    for (size_t i = 0; i < n; ++i)
      if (std::isfinite(resid[i])) {
        sum[i % p] += resid[i];
        count[i % p] += 1;
        total += resid[i];
        total_sq += resid[i] * resid[i];
        points += 1;
      }
    double between = 0;
    for (size_t k = 0; k < p; ++k)
      if (count[k] > 0) between += sum[k] * sum[k] / count[k];
    between -= total * total / points;
    const double within = total_sq - total * total / points - between;
    const double dof_between = static_cast<double>(p - 1),
                 dof_within = points - static_cast<double>(p);
    if (!(dof_within > 0)) continue;
    const double f = within > 0 ? (between / dof_between) / (within / dof_within)
                                : std::numeric_limits<double>::infinity();
    if (f > best_f) {
      best_f = f;
      best = p;
    }
  }
  return static_cast<int>(best);
}

// SmoothCycle() — a long cycle's offsets reduced to their first
// kHarmonics Fourier harmonics: a yearly wave seen in two or three cycles
// has only two or three values per position, whose noise would otherwise
// be subtracted into the series, and a smooth wave cannot take in a step
// (which a free offset per position could, in a series of two cycles).
// Short cycles (a week of days) have no shape to smooth: returned as they are.
std::vector<double> SmoothCycle(const std::vector<double>& offset) {
  const size_t period = offset.size();
  if (period < kSmoothPeriod) return offset;
  const double mean = std::accumulate(offset.begin(), offset.end(), 0.0) / period;
  std::vector<double> out(period, mean);
  for (int k = 1; k <= kHarmonics; ++k) {
    const double w = 2 * std::numbers::pi * k / static_cast<double>(period);
    double a = 0, b = 0;
    for (size_t j = 0; j < period; ++j) {
      a += offset[j] * std::cos(w * static_cast<double>(j));
      b += offset[j] * std::sin(w * static_cast<double>(j));
    }
    a *= 2.0 / static_cast<double>(period);
    b *= 2.0 / static_cast<double>(period);
    for (size_t j = 0; j < period; ++j)
      out[j] += a * std::cos(w * static_cast<double>(j)) + b * std::sin(w * static_cast<double>(j));
  }
  return out;
}

// RemoveSeason() — subtracts each period position's offset: the median, over
// the cycles, of the value less the local level; the offsets are centred so
// the levels stay on the series' scale. The level is a fit's (a step is
// then no part of the season), or else a rolling median one period wide.
void RemoveSeason(std::vector<double>& grid, size_t period, std::vector<double> level = {}) {
  if (level.empty()) level = RollingMedian(grid, period % 2 ? period : period + 1);
  std::vector<std::vector<double>> by_position(period);
  for (size_t i = 0; i < grid.size(); ++i)
    if (std::isfinite(grid[i]) && std::isfinite(level[i]))
      by_position[i % period].push_back(grid[i] - level[i]);
  std::vector<double> offset(period, 0);
  for (size_t k = 0; k < period; ++k)
    if (!by_position[k].empty()) offset[k] = Median(std::move(by_position[k]));
  offset = SmoothCycle(offset);
  const double mean = std::accumulate(offset.begin(), offset.end(), 0.0) / period;
  for (size_t i = 0; i < grid.size(); ++i) grid[i] -= offset[i % period] - mean;
}

// SeasonDof() — the parameters a removed cycle of `period` points spends:
// one offset per position less one, or two per harmonic for a smoothed one.
double SeasonDof(size_t period) {
  if (period < kSmoothPeriod) return static_cast<double>(period - 1);
  return 2.0 * kHarmonics;
}

// ---- segment costs and PELT ----

// Segment — a fitted piece over points [begin, end) of the fitted series.
struct Segment {
  size_t begin = 0, end = 0;
  bool linear = false;
  double mean_x = 0;  // the line passes through (mean_x, level)
  double level = 0;   // mean of y
  double slope = 0;   // per index step; 0 for a level segment
  double sse = 0;     // residual sum of squares of the fit
  double At(double x) const { return level + slope * (x - mean_x); }
};

// SegmentCosts — O(1) residual sums of squares of any run of points, as a
// level or as a line, from prefix sums (one array per sum, so PELT's sweep
// over candidates reads them in order). The x are input indices less the
// middle index (multiples of 1/2), so their sums are exact in a double up to
// ~300k points; y is in noise units, so its sums keep their digits too.
class SegmentCosts {
 public:
  SegmentCosts(const std::vector<double>& x, const std::vector<double>& y, double slope_penalty)
      : slope_penalty_(slope_penalty) {
    const size_t m = x.size();
    for (auto* v : {&x_, &xx_, &y_, &yy_, &xy_}) v->assign(m + 1, 0);
    for (size_t i = 0; i < m; ++i) {
      x_[i + 1] = x_[i] + x[i];
      xx_[i + 1] = xx_[i] + x[i] * x[i];
      y_[i + 1] = y_[i] + y[i];
      yy_[i + 1] = yy_[i] + y[i] * y[i];
      xy_[i + 1] = xy_[i] + x[i] * y[i];
    }
  }

  // Cost() — min(level SSE, line SSE + slope penalty) of points [b, e).
  double Cost(size_t b, size_t e) const {
    const Fit f = FitOf(b, e);
    return f.level_sse - std::max(0.0, f.line_gain - slope_penalty_);
  }

  // Piece() — the fit of points [b, e) that Cost() chose.
  Segment Piece(size_t b, size_t e) const {
    const Fit f = FitOf(b, e);
    Segment s;
    s.begin = b;
    s.end = e;
    s.mean_x = f.mean_x;
    s.level = f.mean_y;
    s.sse = f.level_sse;
    if (f.line_gain > slope_penalty_) {
      s.linear = true;
      s.slope = f.slope;
      s.sse = std::max(0.0, f.level_sse - f.line_gain);
    }
    return s;
  }

 private:
  struct Fit {
    double mean_x, mean_y, slope, level_sse, line_gain;  // line SSE = level SSE - line gain
  };
  Fit FitOf(size_t b, size_t e) const {
    const double inv_len = 1.0 / static_cast<double>(e - b);
    const double sx = x_[e] - x_[b], sy = y_[e] - y_[b];
    Fit f;
    f.mean_x = sx * inv_len;
    f.mean_y = sy * inv_len;
    const double cxx = (xx_[e] - xx_[b]) - sx * f.mean_x;
    const double cxy = (xy_[e] - xy_[b]) - sx * f.mean_y;
    f.level_sse = std::max(0.0, (yy_[e] - yy_[b]) - sy * f.mean_y);
    f.slope = cxx > 0 ? cxy / cxx : 0;
    f.line_gain = std::min(f.level_sse, f.slope * cxy);
    return f;
  }

  double slope_penalty_;
  std::vector<double> x_, xx_, y_, yy_, xy_;  // prefix sums: [i] sums the first i points
};

// Fit — a segmentation and its residual sum of squares.
struct Fit {
  std::vector<Segment> segments;
  double sse = 0;
  size_t parameters = 0;  // levels, slopes and change locations
};

// Pelt() — the segmentation of (x, y) minimising sum(cost) + penalty * changes
// with every segment at least `min_segment` points. Candidates for the last
// change are pruned by Killick et al.'s rule with K = -slope penalty (the
// most a split can add to the cost), applied min_segment steps late: until
// then the point that pruned them cannot yet end a segment.
// COST: O(n) segment costs per point when changes are frequent, O(n^2) in all
// for a series without changes (a few ns each).
Fit Pelt(const std::vector<double>& x, const std::vector<double>& y, size_t min_segment,
         double penalty) {
  const size_t m = x.size();
  const double slope_penalty = penalty / 2;
  const SegmentCosts costs(x, y, slope_penalty);
  std::vector<size_t> last(m + 1, 0);
  if (m >= 2 * min_segment) {
    constexpr size_t kNever = std::numeric_limits<size_t>::max();
    std::vector<double> best(m + 1, std::numeric_limits<double>::infinity());
    std::vector<size_t> prune_at(m + 1, kNever);
    best[0] = -penalty;
    std::vector<size_t> candidates{0};
    std::vector<double> partial;  // best[s] + cost(s, t) per candidate
    for (size_t t = min_segment; t <= m; ++t) {
      std::erase_if(candidates, [&](size_t s) { return prune_at[s] <= t; });
      partial.clear();
      double min_total = std::numeric_limits<double>::infinity();
      for (size_t s : candidates) {
        if (t - s < min_segment) break;  // candidates are increasing
        partial.push_back(best[s] + costs.Cost(s, t));
        if (partial.back() + penalty < min_total) {
          min_total = partial.back() + penalty;
          last[t] = s;
        }
      }
      best[t] = min_total;
      const double bar = min_total + slope_penalty + 1e-9 * (1 + std::fabs(min_total));
      for (size_t i = 0; i < partial.size(); ++i)
        if (partial[i] > bar && prune_at[candidates[i]] == kNever)
          prune_at[candidates[i]] = t + min_segment;
      if (t + min_segment <= m) candidates.push_back(t);
    }
  }
  Fit fit;
  for (size_t e = m; e > 0; e = last[e]) {
    fit.segments.push_back(costs.Piece(last[e], e));
    fit.sse += fit.segments.back().sse;
    fit.parameters += fit.segments.back().linear ? 3 : 2;  // level, slope, the change
  }
  fit.parameters -= 1;  // the first segment starts at no change
  std::reverse(fit.segments.begin(), fit.segments.end());
  return fit;
}

// Hinge — the best continuous fit of two lines meeting at a data point:
// y = level + slope_before * (x - x[knot]) + (slope_after - slope_before) *
// max(0, x - x[knot]).
struct Hinge {
  size_t knot = 0;  // index into the points of the vertex
  double level = 0, slope_before = 0, slope_after = 0;
  double sse = std::numeric_limits<double>::infinity();
  double At(double x, double knot_x) const {
    return level + slope_before * (x - knot_x) +
           (slope_after - slope_before) * std::max(0.0, x - knot_x);
  }
};

// BestHinge() — the hinge over points [b, e) with the smallest residual sum
// of squares, the vertex at any point with two others on each side. Each
// vertex is O(1) from running sums of the points right of it: O(e - b).
Hinge BestHinge(const std::vector<double>& x, const std::vector<double>& y, size_t b, size_t e) {
  Hinge best;
  if (e - b < 5) return best;
  // Totals, and the right part's sums as the vertex walks right to left.
  double n = 0, sx = 0, sxx = 0, sy = 0, syy = 0, sxy = 0;
  for (size_t i = b; i < e; ++i) {
    n += 1;
    sx += x[i];
    sxx += x[i] * x[i];
    sy += y[i];
    syy += y[i] * y[i];
    sxy += x[i] * y[i];
  }
  double rn = 0, rx = 0, rxx = 0, ry = 0, rxy = 0;  // points strictly right of the vertex
  for (size_t i = e - 1; i-- > b;) {
    rn += 1;
    rx += x[i + 1];
    rxx += x[i + 1] * x[i + 1];
    ry += y[i + 1];
    rxy += x[i + 1] * y[i + 1];
    if (rn < 2 || i < b + 2) continue;
    const double k = x[i];
    // Columns 1, u = x - k, w = max(0, u); the normal equations' sums.
    const double su = sx - n * k, suu = sxx - 2 * k * sx + n * k * k, suy = sxy - k * sy;
    const double sw = rx - rn * k, sww = rxx - 2 * k * rx + rn * k * k, swy = rxy - k * ry;
    const double a[3][3] = {{n, su, sw}, {su, suu, sww}, {sw, sww, sww}};
    const double rhs[3] = {sy, suy, swy};
    // Cramer's rule: the 3 x 3 system is small and well scaled (u is in
    // index steps within one pair of segments).
    auto det3 = [](const double m[3][3]) {
      return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
             m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
             m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    };
    const double det = det3(a);
    if (!(std::fabs(det) > 0)) continue;
    double coef[3];
    for (int c = 0; c < 3; ++c) {
      double m[3][3];
      for (int r = 0; r < 3; ++r)
        for (int q = 0; q < 3; ++q) m[r][q] = q == c ? rhs[r] : a[r][q];
      coef[c] = det3(m) / det;
    }
    const double sse = syy - (coef[0] * rhs[0] + coef[1] * rhs[1] + coef[2] * rhs[2]);
    if (sse < best.sse) {
      best.sse = std::max(0.0, sse);
      best.knot = i;
      best.level = coef[0];
      best.slope_before = coef[1];
      best.slope_after = coef[1] + coef[2];
    }
  }
  return best;
}

// ---- outliers ----

// HampelFlags() — points more than kOutlierCut (y is in noise units) from the
// median of the `width` points around them.
std::vector<bool> HampelFlags(const std::vector<double>& y, size_t width) {
  const std::vector<double> med = RollingMedian(y, width);
  std::vector<bool> flags(y.size());
  for (size_t i = 0; i < y.size(); ++i) flags[i] = std::fabs(y[i] - med[i]) > kOutlierCut;
  return flags;
}

// ModelFlags() — points more than `cut` from the fitted segments; a
// point left out between two segments is judged by the nearer of the two.
std::vector<bool> ModelFlags(const std::vector<double>& x, const std::vector<double>& y,
                             const std::vector<double>& kept_x,
                             const std::vector<Segment>& segments, double cut) {
  std::vector<bool> flags(x.size());
  size_t s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    // The first segment whose last point is at or after x[i].
    while (s + 1 < segments.size() && kept_x[segments[s].end - 1] < x[i]) ++s;
    double residual = std::fabs(y[i] - segments[s].At(x[i]));
    if (s > 0 && x[i] < kept_x[segments[s].begin])
      residual = std::min(residual, std::fabs(y[i] - segments[s - 1].At(x[i])));
    flags[i] = residual > cut;
  }
  return flags;
}

// FlagExcursions() — sets the flags of every point of a short segment
// (at most 2 * min_segment + 1 input indices: a week with the default) whose two neighbours agree
// where it stands (within `cut`): the series went away and came back, as
// on a holiday, which is not a change. Such points are then left out of the
// fit like outliers, so the neighbours merge.
void FlagExcursions(const std::vector<double>& x, const std::vector<double>& kept_x,
                    const std::vector<Segment>& segments, size_t min_segment, double cut,
                    std::vector<bool>& flags) {
  for (size_t s = 1; s + 1 < segments.size(); ++s) {
    const double first = kept_x[segments[s].begin], last = kept_x[segments[s].end - 1];
    if (last - first + 1 > static_cast<double>(2 * min_segment + 1)) continue;
    const double mid = 0.5 * (first + last);
    if (std::fabs(segments[s - 1].At(mid) - segments[s + 1].At(mid)) > cut) continue;
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i] >= first && x[i] <= last) flags[i] = true;
  }
}

// Robust — one robust fit of a (deseasonalised) series (steps 2-5).
struct Robust {
  bool fitted = false;                 // false: too few points, or no noise
  std::vector<double> kept_x, kept_y;  // the points fitted (kept_y in noise units)
  double centre = 0;                   // subtracted from the input before scaling
  double sigma = 0;                    // the noise scale
  size_t outliers = 0;
  Fit fit;
  // score — the fit's penalised cost on a footing common to fits of the same
  // points with different seasons removed: BIC with the variance estimated
  // (present * log(residual variance)), an outlier's residual counted as
  // kOutlierCut noise scales, plus the penalties of the changes and slopes.
  double score = std::numeric_limits<double>::infinity();
  double season_cost = 0;  // the part of score that pays for the seasons removed
};

// NoiseScale() — step 2: the MAD of second differences, which cancel levels,
// steps and slopes: var(y[i-1] - 2 y[i] + y[i+1]) = 6 sigma^2.
double NoiseScale(const std::vector<double>& y) {
  std::vector<double> d2;
  for (size_t i = 1; i + 1 < y.size(); ++i) d2.push_back(y[i - 1] - 2 * y[i] + y[i + 1]);
  return RobustScale(d2) / std::sqrt(6.0);
}

// Score() — Robust::score of a finished fit of `present` points.
double Score(const Robust& r, size_t present, double penalty) {
  double slopes = 0;
  for (const Segment& s : r.fit.segments) slopes += s.linear;
  const double rss =
      (r.fit.sse + static_cast<double>(r.outliers) * kOutlierCut * kOutlierCut) * r.sigma * r.sigma;
  const double m = static_cast<double>(present);
  return m * std::log(rss / m) + penalty * static_cast<double>(r.fit.segments.size() - 1) +
         penalty / 2 * slopes;
}

// FitRobustly() — steps 3-5 on the present points (x: centred indices, y:
// values less the centre), from a first noise scale `sigma`: fit without
// the outliers and excursions, re-measure the scale and the outliers from
// the fit, refit until both settle. A larger scale means fewer changes and
// larger residuals, so the rounds move one way and stop soon.
Robust FitRobustly(const std::vector<double>& x, const std::vector<double>& y, double sigma,
                   size_t min_segment, double penalty) {
  Robust r;
  std::vector<double> scaled(y.size());
  for (size_t i = 0; i < y.size(); ++i) scaled[i] = y[i] / sigma;
  std::vector<bool> flags = HampelFlags(scaled, 2 * min_segment - 1);
  std::vector<bool> excursions(y.size());  // sticky: once away-and-back, always
  for (int round = 0; round < kMaxRounds; ++round) {
    r.kept_x.clear();
    r.kept_y.clear();
    for (size_t i = 0; i < y.size(); ++i)
      if (!flags[i]) {
        r.kept_x.push_back(x[i]);
        r.kept_y.push_back(scaled[i]);
      }
    r.outliers = std::count(flags.begin(), flags.end(), true);
    r.sigma = sigma;
    if (r.kept_x.size() < 2 * min_segment) return r;  // nearly all outliers: no stable fit
    r.fit = Pelt(r.kept_x, r.kept_y, min_segment, penalty);
    if (round + 1 == kMaxRounds) break;
    // The residual sigma (of the kept points, in current noise units).
    const double dof = static_cast<double>(r.kept_x.size()) - static_cast<double>(r.fit.parameters);
    const double ratio = dof > 0 && r.fit.sse > 0 ? std::sqrt(r.fit.sse / dof) : 1;
    const std::vector<Segment>& segments = r.fit.segments;
    FlagExcursions(x, r.kept_x, segments, min_segment, kLevelJumpCut * ratio, excursions);
    std::vector<bool> refit = ModelFlags(x, scaled, r.kept_x, segments, kOutlierCut * ratio);
    for (size_t i = 0; i < refit.size(); ++i) refit[i] = refit[i] || excursions[i];
    if (refit == flags && std::fabs(ratio - 1) < 0.05) break;
    sigma *= ratio;
    for (size_t i = 0; i < y.size(); ++i) scaled[i] = y[i] / sigma;
    flags = std::move(refit);
  }
  r.fitted = true;
  r.score = Score(r, y.size(), penalty);
  return r;
}

// ResidualLag1() — the lag-1 autocorrelation of the fit's residuals, over
// neighbouring kept points of the same segment; 0 without enough pairs.
double ResidualLag1(const Robust& r) {
  double cross = 0, square = 0;
  size_t pairs = 0;
  for (const Segment& s : r.fit.segments)
    for (size_t i = s.begin; i < s.end; ++i) {
      const double e = r.kept_y[i] - s.At(r.kept_x[i]);
      square += e * e;
      if (i + 1 < s.end && r.kept_x[i + 1] - r.kept_x[i] == 1) {
        cross += e * (r.kept_y[i + 1] - s.At(r.kept_x[i + 1]));
        ++pairs;
      }
    }
  return pairs >= 10 && square > 0 ? cross / square : 0;
}

// FitGrid() — steps 2-5 on a (deseasonalised) grid; `mid_index` centres the
// indices. Not fitted when the noise scale is 0 (an exact line) or there are
// fewer than 2 * min_segment present points; `sigma` is then the first scale.
Robust FitGrid(const std::vector<double>& grid, double mid_index, size_t min_segment,
               double penalty) {
  std::vector<double> x, y;
  for (size_t i = 0; i < grid.size(); ++i)
    if (std::isfinite(grid[i])) {
      x.push_back(static_cast<double>(i) - mid_index);
      y.push_back(grid[i]);
    }
  Robust r;
  r.sigma = NoiseScale(y);
  if (!(r.sigma > 0) || y.size() < 2 * min_segment) return r;
  const double centre = Median(y);
  for (double& v : y) v -= centre;
  const double sigma = r.sigma;
  r = FitRobustly(x, y, sigma, min_segment, penalty);
  // Noise that wanders (positively autocorrelated) makes a segment's mean
  // vary more than sigma^2 / points: the penalty grows by the long-run
  // variance factor (1 + rho) / (1 - rho) when rho is significant.
  const double rho = ResidualLag1(r);
  if (r.fitted && rho > 2 / std::sqrt(static_cast<double>(y.size()))) {
    const double factor = std::min(kMaxWanderFactor, (1 + rho) / (1 - std::min(rho, 0.9)));
    r = FitRobustly(x, y, sigma, min_segment, penalty * factor);
  }
  r.centre = centre;
  return r;
}

// Fitted() — the fit's level at each of n grid indices, on the grid's scale
// (a point between two segments takes the earlier one's line).
std::vector<double> Fitted(const Robust& r, size_t n, double mid_index) {
  std::vector<double> out(n);
  const std::vector<Segment>& segments = r.fit.segments;
  size_t s = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(i) - mid_index;
    while (s + 1 < segments.size() && r.kept_x[segments[s + 1].begin] <= x) ++s;
    out[i] = r.centre + r.sigma * segments[s].At(x);
  }
  return out;
}

// FitWithoutSeason() — FitGrid() of `grid` less its `period` cycle, which is
// estimated against a rolling median, then again against the levels of the
// last fit (backfitting), kBackfitRounds times: a step that leaked into the
// cycle's estimate (a short series with a long cycle) shows as a false
// change in one cycle, and each round halves it or better. `grid` becomes
// the deseasonalised series.
Robust FitWithoutSeason(std::vector<double>& grid, size_t period, double mid_index,
                        size_t min_segment, double penalty) {
  const std::vector<double> original = grid;
  RemoveSeason(grid, period);
  Robust r = FitGrid(grid, mid_index, min_segment, penalty);
  for (int round = 0; round < kBackfitRounds && r.fitted; ++round) {
    std::vector<double> next = original;
    RemoveSeason(next, period, Fitted(r, next.size(), mid_index));
    r = FitGrid(next, mid_index, min_segment, penalty);
    grid = std::move(next);
  }
  return r;
}

// ChooseSeasons() — step 1 for season 0: the fit of the grid as it is, or
// with the detected period removed (and then a second one, a weekday
// pattern and a yearly wave in daily data), whichever scores better once a
// season pays log(points) per parameter: a run of shifts that happens to
// repeat twice is cheaper as shifts, a weekly cycle or a yearly wave is
// cheaper as a season than as a staircase of changes. Records the seasons
// kept in `result`.
Robust ChooseSeasons(std::vector<double>& grid, double mid_index, size_t min_segment,
                     double penalty, size_t present, ChangePointResult& result) {
  Robust best = FitGrid(grid, mid_index, min_segment, penalty);
  double season_cost = 0;
  for (int* kept : {&result.season, &result.second_season}) {
    const int period = DetectPeriod(grid, 2);
    if (period == 0 || period == result.season) break;
    std::vector<double> candidate = grid;
    Robust r =
        FitWithoutSeason(candidate, static_cast<size_t>(period), mid_index, min_segment, penalty);
    const double cost = season_cost + SeasonDof(static_cast<size_t>(period)) *
                                          std::log(static_cast<double>(present));
    if (!r.fitted || (best.fitted && r.score + cost >= best.score)) break;
    r.score += cost;
    r.season_cost = cost;
    season_cost = cost;
    best = std::move(r);
    grid = std::move(candidate);
    *kept = period;
  }
  return best;
}

// ---- wander: a random walk observed with noise, as the alternative ----

// Filtered — a local-level Kalman filter's output for several columns at
// once (the gains do not depend on the data): each column's standardised
// one-step prediction errors (the first point, which sets the level, has
// none) and the sum of the log prediction variances.
struct Filtered {
  std::vector<std::vector<double>> errors;
  double log_det = 0;
};

// LocalLevel() — filters each column through the model "a level that walks
// by ratio noise variances per index step, observed with unit noise"
// (x: the points' indices, so a gap lets the level walk further). The
// standardised errors are GLS-whitened: regressing them on a regressor's
// own errors is the GLS fit of that regressor under the model.
// COST: O(points * columns).
Filtered LocalLevel(const std::vector<double>& x, const std::vector<std::vector<double>>& columns,
                    double ratio) {
  Filtered out;
  const size_t m = x.size();
  out.errors.assign(columns.size(), std::vector<double>(m > 0 ? m - 1 : 0));
  if (m < 2) return out;
  std::vector<double> level(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) level[c] = columns[c][0];
  double p = 1;  // the level's variance after the first point: that point's noise
  for (size_t i = 1; i < m; ++i) {
    const double predicted = p + ratio * (x[i] - x[i - 1]);
    const double f = predicted + 1, gain = predicted / f, root = std::sqrt(f);
    out.log_det += std::log(f);
    for (size_t c = 0; c < columns.size(); ++c) {
      const double v = columns[c][i] - level[c];
      out.errors[c][i - 1] = v / root;
      level[c] += gain * v;
    }
    p = predicted / f;
  }
  return out;
}

// Dot() — the inner product of two columns of the same length.
double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

// Residualise() — `v` less its least-squares projection on `w`.
void Residualise(std::vector<double>& v, const std::vector<double>& w) {
  const double ww = Dot(w, w);
  if (!(ww > 0)) return;
  const double beta = Dot(v, w) / ww;
  for (size_t i = 0; i < v.size(); ++i) v[i] -= beta * w[i];
}

// Wander — the best fit without changes of a series that wanders: a random
// walk observed with noise, or an AR(1) around a level.
struct Wander {
  double score = std::numeric_limits<double>::infinity();  // on Robust::score's footing
  bool walk = true;                                        // a walk (ratio) or an AR(1) (phi)
  double ratio = 0;    // the walk's step variance / the noise variance
  double phi = 0;      // the AR(1) coefficient
  bool drift = false;  // a steady drift (a trend) was fitted too
};

// Whitened — columns whitened under a Wander model, their nuisance (the
// level, the drift) projected out: least squares on them is GLS under it.
struct Whitened {
  std::vector<std::vector<double>> errors;
  double log_det = 0;  // the sum of the log prediction variances (unit noise)
};

// Whiten() — the columns (each over the kept points x) under the model.
// A walk: the Kalman filter's standardised errors (the first point sets the
// level). An AR(1): quasi-differences c[i] - phi c[i-1] (a gap is read as
// one step), the first point scaled to the innovations' variance, the level
// projected out.
Whitened Whiten(const Wander& w, const std::vector<double>& x,
                std::vector<std::vector<double>> columns) {
  Whitened out;
  columns.push_back(x);  // the drift's regressor
  if (w.walk) {
    Filtered f = LocalLevel(x, columns, w.ratio);
    out.errors = std::move(f.errors);
    out.log_det = f.log_det;
  } else {
    columns.push_back(std::vector<double>(x.size(), 1.0));  // the level's
    const double first = std::sqrt(1 - w.phi * w.phi);
    for (std::vector<double>& c : columns) {
      std::vector<double> e(c.size());
      e[0] = first * c[0];
      for (size_t i = 1; i < c.size(); ++i) e[i] = c[i] - w.phi * c[i - 1];
      out.errors.push_back(std::move(e));
    }
    out.log_det = -std::log(1 - w.phi * w.phi);
    std::vector<double> level = std::move(out.errors.back());
    out.errors.pop_back();
    for (std::vector<double>& e : out.errors) Residualise(e, level);
  }
  std::vector<double> drift = std::move(out.errors.back());
  out.errors.pop_back();
  if (w.drift)
    for (std::vector<double>& e : out.errors) Residualise(e, drift);
  return out;
}

// WanderScore() — the wander model w's score on Score()'s footing over the
// fit's kept points, with `steps` as more regressors: BIC with the variance
// estimated, the log prediction variances (which make a walk pay for its
// freedom), log(points) for the walk's ratio or the AR's phi, and half a
// change's penalty for a drift, as for a slope. COST: O(points * steps^2).
double WanderScore(const Robust& r, const Wander& w, const std::vector<std::vector<double>>& steps,
                   size_t present, double penalty) {
  std::vector<std::vector<double>> columns{r.kept_y};
  columns.insert(columns.end(), steps.begin(), steps.end());
  Whitened f = Whiten(w, r.kept_x, std::move(columns));
  // Gram-Schmidt: each step less its projection on the earlier ones, then
  // the series less its projection on them all.
  for (size_t c = 1; c < f.errors.size(); ++c) {
    for (size_t d = 1; d < c; ++d) Residualise(f.errors[c], f.errors[d]);
    Residualise(f.errors[0], f.errors[c]);
  }
  const double sse = Dot(f.errors[0], f.errors[0]);
  const double outlier_rss = static_cast<double>(r.outliers) * kOutlierCut * kOutlierCut;
  const double rss = (sse + outlier_rss) * r.sigma * r.sigma;  // as in Score()
  const double m = static_cast<double>(present);
  return m * std::log(rss / m) + f.log_det + std::log(m) + (w.drift ? penalty / 2 : 0);
}

// BestWander() — the wander model with the least WanderScore(): walks of
// ratio 1e-4 to 100 by half decades and AR(1)s of phi 0.5 to 0.98, each with
// and without a drift.
Wander BestWander(const Robust& r, const std::vector<std::vector<double>>& steps, size_t present,
                  double penalty) {
  Wander best;
  if (r.kept_x.size() < 3 + steps.size()) return best;
  std::vector<Wander> models;
  for (double ratio = 1e-4; ratio < 200; ratio *= std::sqrt(10.0))
    models.push_back({.ratio = ratio});
  for (double phi : {0.5, 0.7, 0.8, 0.9, 0.95, 0.98}) models.push_back({.walk = false, .phi = phi});
  for (Wander w : models)
    for (bool drift : {false, true}) {
      w.drift = drift;
      w.score = WanderScore(r, w, steps, present, penalty);
      if (w.score < best.score) best = w;
    }
  return best;
}

// StepAt() — the regressor of change s of the fit: a step at its place, or
// a bend when a trend segment is beside it.
std::vector<double> StepAt(const Robust& r, size_t s) {
  const double at = r.kept_x[r.fit.segments[s].begin];
  const bool bend = r.fit.segments[s - 1].linear || r.fit.segments[s].linear;
  std::vector<double> step(r.kept_x.size());
  for (size_t i = 0; i < step.size(); ++i)
    step[i] = r.kept_x[i] < at ? 0 : (bend ? r.kept_x[i] - at + 1 : 1);
  return step;
}

// AbruptChanges() — the fit's changes (by segment) that stand out from the
// wander: with the others in the model, each one's step lowers the best
// wander model's score by more than a change's penalty. Each model is
// fitted on its own (a walk cannot win by absorbing a real step), and the
// others are in it (two steps that cancel, up then down, each need the
// other). Weak ones are dropped together and the rest retested.
std::vector<size_t> AbruptChanges(const Robust& r, size_t present, double penalty) {
  std::vector<size_t> kept;
  for (size_t s = 1; s < r.fit.segments.size(); ++s) kept.push_back(s);
  for (int round = 0; round < kMaxRounds && !kept.empty(); ++round) {
    std::vector<std::vector<double>> steps;
    for (size_t s : kept) steps.push_back(StepAt(r, s));
    const double with_all = BestWander(r, steps, present, penalty).score;
    std::vector<size_t> strong;
    for (size_t k = 0; k < kept.size(); ++k) {
      std::vector<std::vector<double>> others = steps;
      others.erase(others.begin() + static_cast<std::ptrdiff_t>(k));
      if (BestWander(r, others, present, penalty).score - with_all > penalty)
        strong.push_back(kept[k]);
    }
    if (strong.size() == kept.size()) break;
    kept = std::move(strong);
  }
  return kept;
}

// Refit() — the fit's kept points segmented at the given segment starts only
// (each piece a level or a line as Cost() prefers).
Fit Refit(const Robust& r, const std::vector<size_t>& starts, double penalty) {
  const SegmentCosts costs(r.kept_x, r.kept_y, penalty / 2);
  Fit fit;
  for (size_t k = 0; k < starts.size(); ++k) {
    const size_t end = k + 1 < starts.size() ? starts[k + 1] : r.kept_x.size();
    fit.segments.push_back(costs.Piece(starts[k], end));
    fit.sse += fit.segments.back().sse;
    fit.parameters += fit.segments.back().linear ? 3 : 2;
  }
  fit.parameters -= 1;
  return fit;
}

// PreferWander() — step 6: when a wander model (BestWander()) explains the
// kept points better than the fit's changes do, keeps only the changes that
// are abrupt against it and refits the segments between them.
void PreferWander(Robust& r, size_t present, double penalty) {
  if (!r.fitted || r.fit.segments.size() < 2 || present < kMinWanderPoints) return;
  const Wander w = BestWander(r, {}, present, penalty);
  // The changes' fit is scored at the plain penalty (not the one raised for
  // autocorrelated noise) and with AR(1) residuals too (one parameter
  // more), so that the walk wins for wandering, not merely for modelling the
  // autocorrelation of the noise around real shifts.
  const double rho = std::clamp(ResidualLag1(r), 0.0, 0.99);
  const double m = static_cast<double>(present);
  const double plain = Score(r, present, penalty) + r.season_cost;
  const double changes_score = std::min(plain, plain + m * std::log(1 - rho * rho) + std::log(m));
  // The walk must win clearly, by log(points) (BIC's price of one parameter
  // more): in a near tie the changes stand.
  if (!(w.score + r.season_cost + std::log(m) < changes_score)) return;
  std::vector<size_t> starts{0};
  for (size_t s : AbruptChanges(r, present, penalty)) starts.push_back(r.fit.segments[s].begin);
  if (starts.size() == r.fit.segments.size()) return;
  r.fit = Refit(r, starts, penalty);
  r.score = w.score + r.season_cost;
}

// Report() — the change between two fitted segments on the input's scale. A
// change beside a trend segment is a slope change when two lines meeting at
// a vertex (a hinge) fit the two segments nearly as well as the two free
// lines (within kLevelJumpCut^2 noise variances: the jump is not
// significant); it is then reported at the hinge's vertex, which locates a
// kink better than the free lines' boundary (a flat segment soaks up the
// start of a gentle ramp and the new line starts late, with a jump).
ChangePoint Report(const Robust& r, size_t s, double mid_index) {
  const Segment& before = r.fit.segments[s - 1];
  const Segment& after = r.fit.segments[s];
  auto original_index = [&](double centred_x) {
    return static_cast<size_t>(std::llround(centred_x + mid_index));
  };
  ChangePoint cp;
  if (before.linear || after.linear) {
    const Hinge h = BestHinge(r.kept_x, r.kept_y, before.begin, after.end);
    cp.slope_change = h.sse - (before.sse + after.sse) <= kLevelJumpCut * kLevelJumpCut;
    if (cp.slope_change) {
      const double vertex_x = r.kept_x[h.knot], next_x = r.kept_x[h.knot + 1];
      cp.index = original_index(next_x);
      cp.before = r.centre + r.sigma * h.At(vertex_x, vertex_x);
      cp.after = r.centre + r.sigma * h.At(next_x, vertex_x);
      cp.slope_before = r.sigma * h.slope_before;
      cp.slope_after = r.sigma * h.slope_after;
    }
  }
  if (!cp.slope_change) {
    const double x_last = r.kept_x[before.end - 1], x_first = r.kept_x[after.begin];
    cp.index = original_index(x_first);
    cp.before = r.centre + r.sigma * before.At(x_last);
    cp.after = r.centre + r.sigma * after.At(x_first);
    cp.slope_before = r.sigma * before.slope;
    cp.slope_after = r.sigma * after.slope;
  }
  cp.size = cp.after - cp.before;
  cp.relative = cp.before != 0 ? cp.size / std::fabs(cp.before) : 0;
  return cp;
}

// FitSeries() — steps 1-5 of a grid (the input, or its logs): the seasons
// asked for or those that pay for themselves (recorded in `result`), then
// the changes, of which only the abrupt ones are kept when the series
// wanders. `grid` becomes the deseasonalised series.
Robust FitSeries(std::vector<double>& grid, double mid_index, double penalty, size_t present,
                 const ChangePointOptions& options, ChangePointResult& result) {
  const size_t min_segment = std::max<size_t>(2, options.min_segment);
  Robust fit;
  if (options.season == 0) {
    fit = ChooseSeasons(grid, mid_index, min_segment, penalty, present, result);
  } else {
    const size_t period = options.season > 0 ? static_cast<size_t>(options.season) : 0;
    if (period >= 2 && grid.size() >= 2 * period) {
      fit = FitWithoutSeason(grid, period, mid_index, min_segment, penalty);
      result.season = options.season;
    } else {
      fit = FitGrid(grid, mid_index, min_segment, penalty);
    }
  }
  PreferWander(fit, present, penalty);
  return fit;
}

// SumOfLogs() — the sum of log(v) over the present values; NaN unless every
// present value is positive (then logs are no option).
double SumOfLogs(const std::vector<double>& grid) {
  double sum = 0;
  for (double v : grid) {
    if (!std::isfinite(v)) continue;
    if (!(v > 0)) return kNaN;
    sum += std::log(v);
  }
  return sum;
}

// ToInputScale() — a change found in the logs, on the input's scale: levels
// exponentiated, slopes as the level's rate of change there.
ChangePoint ToInputScale(ChangePoint cp) {
  cp.slope_before *= std::exp(cp.before);
  cp.slope_after *= std::exp(cp.after);
  cp.before = std::exp(cp.before);
  cp.after = std::exp(cp.after);
  cp.size = cp.after - cp.before;
  cp.relative = cp.size / cp.before;
  return cp;
}

// MidGap() — where to report a level change whose first points are
// missing: it happened somewhere in the gap, and the gap's middle is the
// place nearest to wherever it was, so the new segment is not cut short by
// the gap (nor the old one stretched over it).
size_t MidGap(std::span<const double> values, size_t index) {
  size_t gap = 0;
  while (gap < index && !std::isfinite(values[index - 1 - gap])) ++gap;
  return index - gap / 2;
}

}  // namespace

ChangePointResult DetectChangePoints(std::span<const double> values,
                                     const ChangePointOptions& options) {
  ChangePointResult result;
  std::vector<double> grid(values.begin(), values.end());
  for (double& v : grid)
    if (!std::isfinite(v)) {
      v = kNaN;
      ++result.missing;
    }
  const size_t present = grid.size() - result.missing;
  if (present < 3) return result;
  const double mid_index = 0.5 * static_cast<double>(grid.size() - 1);
  const double penalty =
      options.penalty > 0 ? options.penalty
                          : kPenaltyPerLogN * std::log(static_cast<double>(present)) + kPenaltyBase;

  // 1-5 on the values as they are, and on their logs when all are positive:
  // a series that grows by a steady factor (compounding) is one trend in
  // logs but a steepening curve, cut into many changes, as it is. The logs
  // win when their score, less the Jacobian of the log (2 sum log y: the
  // two scores are then likelihoods of the same data), is lower by more
  // than one change's penalty, so a series that is as well fitted either
  // way keeps its own scale.
  std::vector<double> logs = grid;
  Robust fit = FitSeries(grid, mid_index, penalty, present, options, result);
  const double jacobian = 2 * SumOfLogs(logs);
  if (std::isfinite(jacobian) && fit.fitted) {
    for (double& v : logs) v = std::log(v);
    ChangePointResult log_result;
    log_result.missing = result.missing;
    Robust log_fit = FitSeries(logs, mid_index, penalty, present, options, log_result);
    if (log_fit.fitted && log_fit.score + jacobian + penalty < fit.score) {
      result = std::move(log_result);
      result.multiplicative = true;
      fit = std::move(log_fit);
    }
  }
  // Report the changes.
  result.noise_scale = fit.sigma;
  if (result.multiplicative) result.noise_scale *= std::exp(fit.centre);
  result.outliers = fit.outliers;
  if (!fit.fitted) return result;
  for (size_t s = 1; s < fit.fit.segments.size(); ++s) {
    ChangePoint cp = Report(fit, s, mid_index);
    if (!cp.slope_change) cp.index = MidGap(values, cp.index);
    result.changes.push_back(result.multiplicative ? ToInputScale(cp) : cp);
  }
  return result;
}

}  // namespace cpuledger::stats
