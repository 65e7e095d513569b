// RunDetectors() and what every detector shares: thresholds, judging,
// the Benjamini–Hochberg pass over function tests (keeping the run: lifecycle.cc).
#include "detect/detect.h"

#include <algorithm>
#include <cmath>

#include "base/percent_text.h"
#include "detect/internal.h"

namespace cpuledger::detect {

std::string Finding::Key() const {
  return service + "|" + endpoint + "|" + function + "|" + kind + "|" + cause;
}

namespace internal {

stats::Interval InvertEffect(const stats::Interval& e) {
  stats::Interval out = e;
  auto inv = [](double x) { return 1.0 / (1.0 + x) - 1.0; };
  out.estimate = inv(e.estimate);
  out.lo = inv(e.hi);
  out.hi = inv(e.lo);
  return out;
}

void SubtractDrift(Finding& f, double log_shift, const std::string& why) {
  auto less = [&](double e) { return std::expm1(std::log1p(e) - log_shift); };
  f.effect.estimate = less(f.effect.estimate);
  f.effect.lo = less(f.effect.lo);
  f.effect.hi = less(f.effect.hi);
  f.method += ", less a drift of " + SignedPercent(std::expm1(log_shift)) + why;
}

Status SetThreshold(Run& run, Finding& f, double floor) {
  const DetectOptions& o = run.options;
  if (f.function.empty()) {
    auto it = o.thresholds.find(f.service + " " + f.endpoint);
    if (it != o.thresholds.end()) {
      f.threshold = it->second;
      f.threshold_source = "config";
      return OkStatus();
    }
  }
  f.threshold = floor;
  f.threshold_source = "floor";
  // Learned: the endpoint's own commit-to-commit (or flag-to-flag) noise.
  // Functions use the floor: their tests are many and their
  // history thin.
  if (!f.function.empty()) return OkStatus();
  Result<std::vector<store::EffectRecord>> history =
      run.store.EffectHistory({.service = f.service,
                               .endpoint = f.endpoint,
                               .function = "",
                               .kind = f.kind,
                               .before_us = o.now_us + 1,
                               .limit = 50});
  if (!history.ok()) return history.status();
  std::vector<double> noise;
  // Each past effect's distance from zero beyond its own interval: sampling
  // noise is in every interval already, the threshold is for the rest (time
  // of day, traffic mix, the endpoint's own jitter between deploys).
  for (const store::EffectRecord& e : *history)
    if (!e.alerted && e.cause != f.cause)
      noise.push_back(std::max(0.0, std::fabs(e.estimate) - (e.hi - e.lo) / 2));
  if (noise.size() < kMinHistory) return OkStatus();
  std::sort(noise.begin(), noise.end());
  const double q90 = noise[static_cast<size_t>(0.9 * static_cast<double>(noise.size() - 1))];
  if (q90 > floor) {
    f.threshold = std::min(q90, kMaxLearnedThreshold);
    f.threshold_source = "learned";
  }
  return OkStatus();
}

bool Judge(const DetectOptions& options, Finding& f) {
  if (!f.effect.ok) {
    f.reason = f.effect.reason;
    return true;
  }
  f.alert = f.effect.lo > f.threshold;
  if (!f.alert && f.effect.width() > options.max_interval_width) {
    f.reason = "interval too wide (" + std::to_string(f.effect.width() * 100).substr(0, 5) +
               " points; more samples needed)";
    return true;
  }
  return false;
}

void File(Run& run, Finding f, bool skipped) {
  if (skipped) {
    f.alert = false;
    run.report.skipped.push_back(std::move(f));
    return;
  }
  ++run.report.tests;
  if (f.alert) {
    if (f.function.empty())
      run.alerted_causes.push_back(f.service + "|" + f.endpoint + "|" + f.cause);
    run.report.alerts.push_back(f);
  }
  run.report.evaluated.push_back(std::move(f));
}

}  // namespace internal

Result<DetectReport> RunDetectors(store::Store& store, const DetectOptions& options) {
  DetectReport report;
  report.ran_at_us = options.now_us;
  internal::Run run{store, options, report, {}, {}, {}};
  store::SampleQuery window;
  window.from_us = options.ReadFromUs();
  window.to_us = options.now_us + 1;
  Result<store::SampleSet> samples = store.Samples(window);
  if (!samples.ok()) return samples.status();
  run.samples = std::move(*samples);
  if (Status s = internal::DetectRollouts(run); !s.ok()) return s;
  if (Status s = internal::DetectFlags(run); !s.ok()) return s;
  if (Status s = internal::JudgeFunctionTests(run); !s.ok()) return s;
  if (Status s = internal::DetectTrends(run); !s.ok()) return s;
  if (Status s = internal::RecheckAlerts(run); !s.ok()) return s;
  std::stable_sort(report.alerts.begin(), report.alerts.end(),
                   [](const Finding& a, const Finding& b) { return a.effect.lo > b.effect.lo; });
  return report;
}

}  // namespace cpuledger::detect
