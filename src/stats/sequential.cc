// The normal-mixture confidence sequence (see sequential.h).
#include "stats/sequential.h"

#include <cmath>

namespace cpuledger::stats {

Interval MixtureConfidenceSequence(double estimate, double variance, double alpha, double tau) {
  Interval out;
  out.confidence = 1 - alpha;
  if (!(variance > 0) || !(alpha > 0 && alpha < 1) || !(tau > 0) || std::isnan(estimate)) {
    out.reason = "no variance, or alpha or tau out of range";
    return out;
  }
  const double t2 = tau * tau;
  const double radius = std::sqrt(variance * (variance + t2) / t2 *
                                  (std::log((variance + t2) / variance) + 2 * std::log(1 / alpha)));
  out.ok = true;
  out.estimate = estimate;
  out.lo = estimate - radius;
  out.hi = estimate + radius;
  return out;
}

Interval LogMeanRatioSequence(const Moments& a, const Moments& b, double alpha, double tau) {
  Interval out;
  out.confidence = 1 - alpha;
  if (a.n < 2 || b.n < 2 || !(a.mean > 0) || !(b.mean > 0)) {
    out.reason = "too few samples (a side has fewer than 2, or a mean <= 0)";
    return out;
  }
  const double variance =
      a.variance() / (a.n * a.mean * a.mean) + b.variance() / (b.n * b.mean * b.mean);
  const double log_ratio = std::log(b.mean / a.mean);
  if (!(variance > 0)) {
    // Two constant sides: the ratio is known exactly.
    out.ok = true;
    out.estimate = out.lo = out.hi = std::expm1(log_ratio);
    return out;
  }
  out = MixtureConfidenceSequence(log_ratio, variance, alpha, tau);
  if (!out.ok) return out;
  out.estimate = std::expm1(out.estimate);
  out.lo = std::expm1(out.lo);
  out.hi = std::expm1(out.hi);
  return out;
}

}  // namespace cpuledger::stats
