// src/stats/stats.cc — distributions, moments, effect intervals and tests.
// The change-point detector is in changepoints.cc.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <boost/math/policies/policy.hpp>

#include "stats/sequential.h"
#include "stats/stats.h"

namespace cpuledger::stats {
namespace {

namespace bm = boost::math;

// Boost.Math throws on a domain error by default; the header promises that
// nothing here throws on data, so out-of-range arguments give NaN and
// overflowing quantiles (p = 0 or 1) give +-infinity instead.
using NoThrow = bm::policies::policy<bm::policies::domain_error<bm::policies::ignore_error>,
                                     bm::policies::overflow_error<bm::policies::ignore_error>,
                                     bm::policies::evaluation_error<bm::policies::ignore_error>>;
using Normal = bm::normal_distribution<double, NoThrow>;
using StudentT = bm::students_t_distribution<double, NoThrow>;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Above this many degrees of freedom Student's t is the normal to ~1e-9
// relative in the quantiles we use; the normal is cheaper and defined at +inf.
constexpr double kNormalDf = 1e9;

Interval NotOk(double confidence, std::string reason) {
  Interval r;
  r.confidence = confidence;
  r.reason = std::move(reason);
  return r;
}

bool ValidConfidence(double c) { return c > 0 && c < 1; }

// LogRatioInterval() — exp(log_ratio +- q * se) - 1 as an Interval.
Interval LogRatioInterval(double log_ratio, double se, double q, double confidence) {
  Interval r;
  r.estimate = std::expm1(log_ratio);
  r.lo = std::expm1(log_ratio - q * se);
  r.hi = std::expm1(log_ratio + q * se);
  r.confidence = confidence;
  r.ok = true;
  return r;
}

// SortedQuantile() — type 7 (linear interpolation) of a sorted sample, p in [0,1].
double SortedQuantile(const std::vector<double>& sorted, double p) {
  const double h = p * static_cast<double>(sorted.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(h));
  if (i + 1 >= sorted.size()) return sorted.back();
  return sorted[i] + (h - static_cast<double>(i)) * (sorted[i + 1] - sorted[i]);
}

// PositiveLogs() — log(x) of the positive (finite) values, sorted ascending.
std::vector<double> PositiveLogs(std::span<const double> xs) {
  std::vector<double> out;
  out.reserve(xs.size());
  for (double x : xs)
    if (x > 0 && std::isfinite(x)) out.push_back(std::log(x));
  std::sort(out.begin(), out.end());
  return out;
}

// TieTerm() — sum of (t^3 - t) over the groups of equal values of a sorted
// sample: what ties take from the Mann–Whitney variance.
double TieTerm(const std::vector<double>& sorted) {
  double sum = 0;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i + 1;
    while (j < sorted.size() && sorted[j] == sorted[i]) ++j;
    const double t = static_cast<double>(j - i);
    sum += t * t * t - t;
    i = j;
  }
  return sum;
}

// MannWhitneySd() — standard deviation of U under the null hypothesis,
// tie-corrected: nm/12 * ((N + 1) - sum(t^3 - t) / (N (N - 1))), N = n + m.
double MannWhitneySd(double n, double m, double tie_term) {
  const double total = n + m;
  const double var = n * m / 12.0 * ((total + 1) - tie_term / (total * (total - 1)));
  return var > 0 ? std::sqrt(var) : 0;
}

// PairwiseDifferences — order statistics of the n*m differences y[j] - x[i]
// of two sorted samples without forming them: each query is one merge pass.
class PairwiseDifferences {
 public:
  PairwiseDifferences(const std::vector<double>& x, const std::vector<double>& y) : x_(x), y_(y) {}

  double count() const { return static_cast<double>(x_.size()) * static_cast<double>(y_.size()); }

  // Pass() — how many differences are <= d, the largest of them and the
  // smallest difference above d (-inf / +inf when there is none). For a
  // fixed j the differences y[j] - x[i] fall as i grows (rounding is
  // monotone), so those <= d are a suffix of x whose start only moves right
  // as y[j] grows: one merge pass, O(n + m).
  struct PassResult {
    uint64_t at_most = 0;
    double largest_at_most = -std::numeric_limits<double>::infinity();
    double next_above = std::numeric_limits<double>::infinity();
  };
  PassResult Pass(double d) const {
    PassResult r;
    const size_t n = x_.size();
    size_t p = 0;  // the first i with y[j] - x[i] <= d
    for (double yj : y_) {
      while (p < n && yj - x_[p] > d) ++p;
      r.at_most += n - p;
      if (p < n) r.largest_at_most = std::max(r.largest_at_most, yj - x_[p]);
      if (p > 0) r.next_above = std::min(r.next_above, yj - x_[p - 1]);
    }
    return r;
  }

  // OrderStatistic() — the k-th smallest difference (1-based, k in [1, nm]),
  // exactly: a true difference, not an approximation of one. A search on d
  // keeps count(lo) < k <= count(hi) and stops as soon as a pass sees
  // exactly k or k - 1 differences at or below its d (the k-th is then the
  // largest of them or the next one up). Each step interpolates the count
  // linearly between the ends, aiming at rank k - 1/2 (the counts are a
  // smooth CDF of nm differences, so a few steps get within a rank), and
  // bisects instead whenever that has not halved the bracket: never worse
  // than bisection, typically under 10 passes for 5k x 5k. Equal
  // differences can jump over k; then the bracket shrinks to rounding and
  // the distinct values left in it are stepped through.
  double OrderStatistic(uint64_t k) const {
    double lo = y_.front() - x_.back();  // the smallest difference
    double hi = y_.back() - x_.front();  // the largest
    PassResult at_lo = Pass(lo);
    if (at_lo.at_most >= k) return lo;
    uint64_t count_hi = static_cast<uint64_t>(count());
    double width_before = hi - lo;  // the bracket two steps ago
    bool bisect = false;
    for (int iter = 0; iter < 400; ++iter) {
      double mid = lo + 0.5 * (hi - lo);
      if (!bisect) {
        const double target = static_cast<double>(k) - 0.5;
        const double share = (target - static_cast<double>(at_lo.at_most)) /
                             static_cast<double>(count_hi - at_lo.at_most);
        const double guess = lo + share * (hi - lo);
        if (guess > lo && guess < hi) mid = guess;
      }
      if (mid <= lo || mid >= hi) break;
      const PassResult at_mid = Pass(mid);
      if (at_mid.at_most == k) return at_mid.largest_at_most;
      if (at_mid.at_most + 1 == k) return at_mid.next_above;
      if (at_mid.at_most > k) {
        hi = mid;
        count_hi = at_mid.at_most;
      } else {
        lo = mid;
        at_lo = at_mid;
      }
      if (iter % 2 == 1) {
        bisect = hi - lo > 0.5 * width_before;
        width_before = hi - lo;
      }
    }
    for (;;) {
      const double v = at_lo.next_above;
      if (!std::isfinite(v)) return hi;
      const PassResult at_v = Pass(v);
      if (at_v.at_most >= k) return v;
      at_lo = at_v;
    }
  }

 private:
  const std::vector<double>& x_;
  const std::vector<double>& y_;
};

}  // namespace

// ---- distributions ----

double NormalQuantile(double p) { return bm::quantile(Normal(), p); }
double NormalCdf(double x) {
  if (std::isnan(x)) return kNaN;
  return bm::cdf(Normal(), x);
}

double Median(std::vector<double> values) {
  if (values.empty()) return kNaN;
  const size_t m = values.size();
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(m / 2),
                   values.end());
  const double upper = values[m / 2];
  if (m % 2 == 1) return upper;
  return (*std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(m / 2)) +
          upper) /
         2;
}

double StudentTQuantile(double p, double df) {
  if (!(df > 0)) return kNaN;
  if (df > kNormalDf) return NormalQuantile(p);
  return bm::quantile(StudentT(df), p);
}

double StudentTCdf(double x, double df) {
  if (!(df > 0) || std::isnan(x)) return kNaN;
  if (df > kNormalDf) return NormalCdf(x);
  return bm::cdf(StudentT(df), x);
}

// ---- moments ----

void Moments::Add(double x) {
  n += 1;
  const double delta = x - mean;
  mean += delta / n;
  m2 += delta * (x - mean);
}

void Moments::Merge(const Moments& other) {
  if (other.n == 0) return;
  if (n == 0) {
    *this = other;
    return;
  }
  const double total = n + other.n;
  const double delta = other.mean - mean;
  mean += delta * other.n / total;
  m2 += other.m2 + delta * delta * n * other.n / total;
  n = total;
}

double Moments::variance() const { return n < 2 ? 0 : m2 / (n - 1); }

Moments Moments::Of(std::span<const double> xs) {
  Moments m;
  for (double x : xs) m.Add(x);
  return m;
}

Moments Moments::FromSums(double n, double sum, double sum_sq) {
  Moments m;
  if (!(n > 0)) return m;
  m.n = n;
  m.mean = sum / n;
  m.m2 = std::max(0.0, sum_sq - sum * m.mean);
  return m;
}

// ---- effect intervals ----

Interval MeanRatioInterval(const Moments& a, const Moments& b, double confidence) {
  if (!ValidConfidence(confidence)) return NotOk(confidence, "confidence must be in (0, 1)");
  if (a.n < 2 || b.n < 2) return NotOk(confidence, "fewer than 2 samples on a side");
  if (!(a.mean > 0) || !(b.mean > 0)) return NotOk(confidence, "a mean is not positive");
  // Delta method: var(log mean) ~= var(mean) / mean^2 = s^2 / (n mean^2).
  const double ua = a.variance() / (a.n * a.mean * a.mean);
  const double ub = b.variance() / (b.n * b.mean * b.mean);
  const double se = std::sqrt(ua + ub);
  const double log_ratio = std::log(b.mean) - std::log(a.mean);
  if (se == 0) return LogRatioInterval(log_ratio, 0, 0, confidence);
  // Welch–Satterthwaite on the two variance terms.
  const double df = (ua + ub) * (ua + ub) / (ua * ua / (a.n - 1) + ub * ub / (b.n - 1));
  const double q = StudentTQuantile(0.5 + confidence / 2, df);
  return LogRatioInterval(log_ratio, se, q, confidence);
}

Interval BootstrapMeanRatio(std::span<const double> a, std::span<const double> b, double confidence,
                            int resamples, uint64_t seed) {
  if (!ValidConfidence(confidence)) return NotOk(confidence, "confidence must be in (0, 1)");
  if (a.size() < 2 || b.size() < 2) return NotOk(confidence, "fewer than 2 samples on a side");
  if (resamples < 1) return NotOk(confidence, "resamples must be positive");
  const double mean_a = Moments::Of(a).mean, mean_b = Moments::Of(b).mean;
  if (!(mean_a > 0) || !(mean_b > 0)) return NotOk(confidence, "a mean is not positive");

  std::mt19937_64 rng(seed);
  // Lemire's multiply-shift: an index in [0, n) from 64 random bits, the
  // same on every platform (std::uniform_int_distribution is not).
  auto pick = [&rng](std::span<const double> xs) {
    const auto wide = static_cast<unsigned __int128>(rng()) * xs.size();
    return xs[static_cast<size_t>(wide >> 64)];
  };
  auto resampled_mean = [&pick](std::span<const double> xs) {
    double sum = 0;
    for (size_t i = 0; i < xs.size(); ++i) sum += pick(xs);
    return sum / static_cast<double>(xs.size());
  };
  std::vector<double> ratios;
  ratios.reserve(static_cast<size_t>(resamples));
  for (int r = 0; r < resamples; ++r) {
    const double ra = resampled_mean(a);
    const double rb = resampled_mean(b);
    if (ra > 0) ratios.push_back(rb / ra - 1);  // a resample of a with mean <= 0 has no ratio
  }
  if (ratios.empty()) return NotOk(confidence, "no resample of side A has a positive mean");
  std::sort(ratios.begin(), ratios.end());
  Interval r;
  r.estimate = mean_b / mean_a - 1;
  r.lo = SortedQuantile(ratios, 0.5 - confidence / 2);
  r.hi = SortedQuantile(ratios, 0.5 + confidence / 2);
  r.confidence = confidence;
  r.ok = true;
  return r;
}

Interval ShiftInterval(std::span<const double> a, std::span<const double> b, double confidence) {
  if (!ValidConfidence(confidence)) return NotOk(confidence, "confidence must be in (0, 1)");
  const std::vector<double> x = PositiveLogs(a);
  const std::vector<double> y = PositiveLogs(b);
  if (x.size() < 2 || y.size() < 2)
    return NotOk(confidence, "fewer than 2 positive values on a side");

  const PairwiseDifferences diffs(x, y);
  const uint64_t count = x.size() * y.size();
  // Hodges–Lehmann: the median of the pairwise differences.
  double shift = diffs.OrderStatistic(count / 2 + 1);
  if (count % 2 == 0) shift = 0.5 * (shift + diffs.OrderStatistic(count / 2));

  // Inverting the two-sided Mann–Whitney test: the interval runs from the
  // k-th smallest to the k-th largest difference, k = floor(nm/2 - z sd(U)).
  // Ties between the two samples happen at isolated shifts only, so the
  // tie correction is that of the ties within each sample.
  const double n = static_cast<double>(x.size()), m = static_cast<double>(y.size());
  const double sd = MannWhitneySd(n, m, TieTerm(x) + TieTerm(y));
  const double z = NormalQuantile(0.5 + confidence / 2);
  const double k_real = std::floor(n * m / 2 - z * sd);
  // With very few values no pair of differences reaches the confidence: the
  // widest interval there is (the extreme differences) is all there is.
  const uint64_t k = k_real < 1 ? 1 : static_cast<uint64_t>(k_real);

  Interval r;
  r.estimate = std::expm1(shift);
  r.lo = std::expm1(diffs.OrderStatistic(k));
  r.hi = std::expm1(diffs.OrderStatistic(count + 1 - k));
  r.confidence = confidence;
  r.ok = true;
  return r;
}

PooledShift PoolShifts(std::span<const StratumPair> strata) {
  constexpr double kOneSigma = 0.682689492137086;
  PooledShift out;
  double w_sum = 0, we_sum = 0;
  for (size_t i = 0; i < strata.size(); ++i) {
    const Interval e = ShiftInterval(strata[i].a, strata[i].b, kOneSigma);
    if (!e.ok) continue;
    const double half = (std::log1p(e.hi) - std::log1p(e.lo)) / 2;
    if (!(half > 0)) continue;
    const double w = 1 / (half * half);
    w_sum += w;
    we_sum += w * std::log1p(e.estimate);
    out.used.push_back(i);
  }
  if (w_sum > 0) {
    out.log_shift = we_sum / w_sum;
    out.se = 1 / std::sqrt(w_sum);
  }
  return out;
}

Interval PooledShift::At(double confidence) const {
  Interval e;
  if (!ok()) {
    e.reason = "no stratum with a shift to pool";
    return e;
  }
  const double z = NormalQuantile(0.5 + confidence / 2);
  e.ok = true;
  e.confidence = confidence;
  e.estimate = std::expm1(log_shift);
  e.lo = std::expm1(log_shift - z * se);
  e.hi = std::expm1(log_shift + z * se);
  return e;
}

Interval PooledShift::SequenceAt(double confidence, double tau) const {
  if (!ok()) return At(confidence);
  Interval e = MixtureConfidenceSequence(log_shift, se * se, 1 - confidence, tau);
  if (!e.ok) return e;
  e.estimate = std::expm1(e.estimate);
  e.lo = std::expm1(e.lo);
  e.hi = std::expm1(e.hi);
  return e;
}

double PooledShift::PValue() const {
  if (!ok()) return 1;
  return 2 * (1 - NormalCdf(std::fabs(log_shift / se)));
}

// ---- tests ----

double MannWhitneyPValue(std::span<const double> a, std::span<const double> b) {
  // Ranks of the pooled sample (midranks for ties); NaN is skipped.
  struct Tagged {
    double v;
    bool from_b;
  };
  std::vector<Tagged> pooled;
  pooled.reserve(a.size() + b.size());
  for (double v : a)
    if (!std::isnan(v)) pooled.push_back({v, false});
  for (double v : b)
    if (!std::isnan(v)) pooled.push_back({v, true});
  std::sort(pooled.begin(), pooled.end(),
            [](const Tagged& l, const Tagged& r) { return l.v < r.v; });
  double n_b = 0, rank_sum_b = 0, tie_term = 0;
  for (size_t i = 0; i < pooled.size();) {
    size_t j = i + 1;
    while (j < pooled.size() && pooled[j].v == pooled[i].v) ++j;
    const double t = static_cast<double>(j - i);
    const double midrank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k)
      if (pooled[k].from_b) {
        n_b += 1;
        rank_sum_b += midrank;
      }
    tie_term += t * t * t - t;
    i = j;
  }
  const double n_a = static_cast<double>(pooled.size()) - n_b;
  if (n_a == 0 || n_b == 0) return 1;
  const double u = rank_sum_b - n_b * (n_b + 1) / 2;  // pairs with b > a, ties count 1/2
  const double sd = MannWhitneySd(n_a, n_b, tie_term);
  if (sd == 0) return 1;  // every value equal
  const double z = std::max(0.0, std::fabs(u - n_a * n_b / 2) - 0.5) / sd;
  return std::min(1.0, std::erfc(z / std::sqrt(2.0)));
}

double WelchPValue(const Moments& a, const Moments& b) {
  if (a.n < 2 || b.n < 2) return 1;
  const double ua = a.variance() / a.n, ub = b.variance() / b.n;
  const double diff = b.mean - a.mean;
  if (ua + ub == 0) return diff == 0 ? 1 : 0;
  const double t = diff / std::sqrt(ua + ub);
  const double df = (ua + ub) * (ua + ub) / (ua * ua / (a.n - 1) + ub * ub / (b.n - 1));
  // The upper tail directly (not 1 - cdf), so tiny p-values keep their digits.
  const double tail = df > kNormalDf ? bm::cdf(bm::complement(Normal(), std::fabs(t)))
                                     : bm::cdf(bm::complement(StudentT(df), std::fabs(t)));
  return std::min(1.0, 2 * tail);
}

namespace {

// SortedP — a family's p-values (NaN read as 1) and their ascending order,
// what every step-up and step-down adjustment walks.
struct SortedP {
  std::vector<double> p;
  std::vector<size_t> order;  // order[rank - 1]: the index of the rank-th smallest
};

SortedP SortP(std::span<const double> p_values) {
  SortedP s;
  for (double x : p_values) s.p.push_back(std::isnan(x) ? 1.0 : x);
  s.order.resize(s.p.size());
  std::iota(s.order.begin(), s.order.end(), 0);
  std::stable_sort(s.order.begin(), s.order.end(),
                   [&](size_t l, size_t r) { return s.p[l] < s.p[r]; });
  return s;
}

}  // namespace

std::vector<double> BenjaminiHochberg(std::span<const double> p_values) {
  const SortedP s = SortP(p_values);
  const size_t m = s.p.size();
  std::vector<double> q(m);
  // q_(i) = min over j >= i of p_(j) * m / j, from the largest p down.
  double running = 1;
  for (size_t rank = m; rank >= 1; --rank) {
    const size_t i = s.order[rank - 1];
    running = std::min(running, s.p[i] * static_cast<double>(m) / static_cast<double>(rank));
    q[i] = std::max(0.0, running);
  }
  return q;
}

double FdrSelection::ConfidenceOf(size_t i) const {
  if (weights.empty() || discoveries == 0) return selected_confidence;
  const double m = static_cast<double>(q.size());
  return std::max(confidence, 1.0 - fdr * static_cast<double>(discoveries) * weights[i] / m);
}

namespace {

// MeanOneWeights() — `weights` scaled to mean 1; empty when they are empty,
// of another size than the tests, negative or all 0 (no weighting, then).
std::vector<double> MeanOneWeights(std::span<const double> weights, size_t tests) {
  if (weights.size() != tests || tests == 0) return {};
  double sum = 0;
  for (double w : weights) {
    if (!(w >= 0) || !std::isfinite(w)) return {};
    sum += w;
  }
  if (sum <= 0) return {};
  std::vector<double> out(weights.begin(), weights.end());
  for (double& w : out) w *= static_cast<double>(tests) / sum;
  return out;
}

}  // namespace

FdrSelection SelectByFdr(std::span<const double> p_values, double fdr, double confidence,
                         std::span<const double> weights) {
  FdrSelection out;
  out.fdr = fdr;
  out.confidence = confidence;
  out.weights = MeanOneWeights(weights, p_values.size());
  if (out.weights.empty()) {
    out.q = BenjaminiHochberg(p_values);
  } else {
    std::vector<double> weighted(p_values.size());
    for (size_t i = 0; i < p_values.size(); ++i)
      weighted[i] = out.weights[i] > 0 ? p_values[i] / out.weights[i] : 1.0;
    out.q = BenjaminiHochberg(weighted);
  }
  out.selected.resize(out.q.size());
  for (size_t i = 0; i < out.q.size(); ++i) {
    out.selected[i] = out.q[i] <= fdr;
    out.discoveries += out.selected[i];
  }
  out.selected_confidence =
      out.discoveries == 0 ? confidence
                           : std::max(confidence, 1.0 - fdr * static_cast<double>(out.discoveries) /
                                                            static_cast<double>(out.q.size()));
  return out;
}

std::vector<double> Holm(std::span<const double> p_values) {
  const SortedP s = SortP(p_values);
  const size_t m = s.p.size();
  std::vector<double> adjusted(m);
  // p~_(i) = max over j <= i of min(1, (m - j + 1) p_(j)), from the smallest p up.
  double running = 0;
  for (size_t rank = 1; rank <= m; ++rank) {
    const size_t i = s.order[rank - 1];
    running = std::max(running, std::min(1.0, s.p[i] * static_cast<double>(m - rank + 1)));
    adjusted[i] = running;
  }
  return adjusted;
}

}  // namespace cpuledger::stats
