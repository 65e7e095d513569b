// src/stats/sequential.h — always-valid confidence sequences: intervals that
// may be looked at after every new sample, as often as one likes, and still
// miss the true effect at most `alpha` of the time over the whole sequence.
//
// A fixed-sample interval at 90% looked at every hour while its data grow
// misses far more than 10% of the time: each look is a new chance. The
// low-traffic detectors accumulate evidence for a day and look every run,
// so they need intervals whose error holds over all the looks at once.
//
//   // an estimate whose variance shrinks like 1/n as data accumulate:
//   Interval cs = MixtureConfidenceSequence(log_ratio, se * se, 0.05, 0.05);
//   if (cs.ok && cs.lo > std::log1p(threshold)) ...   // beyond the threshold, for good
//   Interval e = LogMeanRatioSequence(Moments::Of(a), Moments::Of(b), 0.05, 0.05);
//
// The method is the normal-mixture sequential probability ratio test
// (Robbins 1970; Johari, Pekelis and Walsh, "Always valid inference", 2017;
// Howard et al., "Time-uniform, nonparametric, nonasymptotic confidence
// sequences", 2021): the likelihood ratio of "effect = theta" against a
// N(theta_0, tau^2) mixture of alternatives is a martingale, and Ville's
// inequality bounds the chance that it ever crosses 1/alpha. Inverted, the
// interval at variance v is
//   estimate +- sqrt( v (v + tau^2) / tau^2 * (log((v + tau^2) / v) + 2 log(1/alpha)) ),
// wider than the fixed-sample one by a factor that grows like sqrt(log n).
// tau is the effect size the test is tuned for: the interval is narrowest
// (relative to the fixed-sample one) when sqrt(v) is near tau.
// NOTE: valid for a statistic that is (asymptotically) a normal random walk
// in its information 1/v: a mean, a difference or log-ratio of means, a
// rank statistic. Like every test here it assumes the samples of each side
// are exchangeable; a drift in time is not sampling noise.
// Pure functions, safe from any number of threads.
#pragma once

#include "stats/stats.h"

namespace cpuledger::stats {

// MixtureConfidenceSequence() — the always-valid interval around `estimate`
// whose variance (squared standard error) is `variance`, at error `alpha`
// over all looks, tuned for effects of size `tau` (in the estimate's units).
// RETURNS: an Interval with confidence 1 - alpha; !ok when variance <= 0,
// alpha outside (0, 1), tau <= 0 or any argument is NaN.
Interval MixtureConfidenceSequence(double estimate, double variance, double alpha, double tau);

// LogMeanRatioSequence() — the relative change of the mean, mean(b)/mean(a)
// - 1, with its always-valid interval: the confidence sequence of the log of
// the ratio (delta method: var = s_a^2/(n_a m_a^2) + s_b^2/(n_b m_b^2)),
// reported as exp(.) - 1 like MeanRatioInterval(). `tau` is on the log scale
// (0.05: tuned for changes near 5%).
// RETURNS: !ok when either side has n < 2 or a mean <= 0, or as above.
Interval LogMeanRatioSequence(const Moments& a, const Moments& b, double alpha, double tau);

}  // namespace cpuledger::stats
