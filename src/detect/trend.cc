// The trend detector: for the heaviest endpoints, change points of the daily
// mean cost per request; a rise in the last days alerts. Slow creep that no
// single rollout shows lands here.
#include <cmath>

#include "detect/internal.h"
#include "store/query.h"

namespace cpuledger::detect::internal {
namespace {

constexpr int64_t kDayUs = 86'400 * kUs;

store::DimensionRef Dim(store::Dimension d) { return {d, ""}; }

// The measure a row's mean is read from: instructions where the samples have them.
double MeanOf(const store::QueryRow& r, std::string* unit) {
  *unit = store::CostUnit(r.instructions.n, r.samples);
  if (*unit == "instructions") return r.instructions.mean;
  return r.cpu_ns.n > 0 ? r.cpu_ns.mean : std::nan("");
}

// Change() — mean of the last `n` points against the `n` before, relative;
// NaN when either side has no data.
double Change(const std::vector<double>& series, size_t n) {
  if (series.size() < 2 * n) return std::nan("");
  double a = 0, b = 0;
  size_t na = 0, nb = 0;
  for (size_t i = series.size() - 2 * n; i < series.size(); ++i) {
    if (std::isnan(series[i])) continue;
    if (i < series.size() - n) {
      a += series[i];
      ++na;
    } else {
      b += series[i];
      ++nb;
    }
  }
  if (na == 0 || nb == 0 || a <= 0) return std::nan("");
  return (b / static_cast<double>(nb)) / (a / static_cast<double>(na)) - 1;
}

}  // namespace

Status DetectTrends(Run& run) {
  const DetectOptions& o = run.options;
  if (o.trend_endpoints == 0 || o.trend_days < 2) return OkStatus();
  // Whole days only: today's partial mean would read as a change.
  const int64_t to = o.now_us - o.now_us % kDayUs;
  const int64_t from = to - o.trend_days * kDayUs;
  store::QuerySpec heaviest;
  heaviest.group_by = {Dim(store::Dimension::kService), Dim(store::Dimension::kEndpoint)};
  heaviest.from_us = from;
  heaviest.to_us = to;
  heaviest.limit = o.trend_endpoints;
  Result<store::QueryResult> top = run.store.Query(heaviest);
  if (!top.ok()) return top.status();
  if (top->rows.empty()) {
    Finding f;
    f.kind = "trend";
    f.cause = "daily trend";
    f.reason =
        "too few days (no complete day of data in the last " + std::to_string(o.trend_days) + ")";
    File(run, std::move(f), /*skipped=*/true);
  }
  for (const store::QueryRow& row : top->rows) {
    Finding f;
    f.kind = "trend";
    f.service = row.keys[0];
    f.endpoint = row.keys[1];
    f.cause = "daily trend";
    f.method = "change point";
    f.from_us = from;
    f.to_us = to;
    store::QuerySpec daily;
    daily.filters = {{Dim(store::Dimension::kService), f.service},
                     {Dim(store::Dimension::kEndpoint), f.endpoint}};
    daily.from_us = from;
    daily.to_us = to;
    daily.bucket = store::Bucket::kDay;
    Result<store::QueryResult> days = run.store.Query(daily);
    if (!days.ok()) return days.status();
    std::vector<double> series(static_cast<size_t>(o.trend_days), std::nan(""));
    for (const store::QueryRow& d : days->rows) {
      const int64_t i = (d.bucket_start_us - from) / kDayUs;
      if (i >= 0 && i < o.trend_days) series[static_cast<size_t>(i)] = MeanOf(d, &f.unit);
    }
    size_t known = 0;
    for (double x : series) known += !std::isnan(x);
    if (known < 2 * 3) {
      f.reason = "too few days (" + std::to_string(known) + " with data; need 6)";
      File(run, std::move(f), /*skipped=*/true);
      continue;
    }
    f.daily_change = Change(series, 1);
    f.weekly_change = Change(series, 7);
    const stats::ChangePointResult cps = stats::DetectChangePoints(series);
    // The newest change, if recent: its segments' daily means as the two sides.
    const stats::ChangePoint* last = cps.changes.empty() ? nullptr : &cps.changes.back();
    const size_t recent_from = series.size() - static_cast<size_t>(o.trend_recent_days);
    if (last == nullptr || last->index < recent_from) {
      f.effect = {0, 0, 0, o.confidence, true, ""};
      f.threshold = o.trend_threshold;
      f.threshold_source = "config";
      File(run, std::move(f), /*skipped=*/false);
      continue;
    }
    const size_t start = cps.changes.size() >= 2 ? cps.changes[cps.changes.size() - 2].index : 0;
    stats::Moments a, b;
    for (size_t i = start; i < series.size(); ++i) {
      if (std::isnan(series[i])) continue;
      (i < last->index ? a : b).Add(series[i]);
    }
    f.samples_before = static_cast<uint64_t>(a.n);
    f.samples_after = static_cast<uint64_t>(b.n);
    f.mean_before = last->before;
    f.mean_after = last->after;
    f.effect = stats::MeanRatioInterval(a, b, o.confidence);
    f.effect.estimate = last->relative;
    f.threshold = o.trend_threshold;
    f.threshold_source = "config";
    f.from_us = from + static_cast<int64_t>(start) * kDayUs;
    f.reason = "change point at day " + std::to_string(last->index) + " of " +
               std::to_string(series.size());
    const bool skipped = Judge(o, f);
    if (!skipped && !f.alert) f.reason.clear();
    File(run, std::move(f), skipped);
  }
  return OkStatus();
}

}  // namespace cpuledger::detect::internal
