// The rollout detector: each new commit against the one it replaced, per
// endpoint, side by side while both serve and before/after otherwise; and
// the same comparison on each function's cost (function tests).
#include <algorithm>
#include <cmath>
#include <map>

#include "detect/internal.h"

namespace cpuledger::detect::internal {
namespace {

// CommitSpan — when a commit served a service (all clusters together).
struct CommitSpan {
  std::string commit;
  int64_t first_us = 0, last_us = 0;
};

std::map<std::string, std::vector<CommitSpan>> CommitsByService(
    const std::vector<store::DeployEntry>& deploys) {
  std::map<std::string, std::map<std::string, CommitSpan>> spans;
  for (const store::DeployEntry& d : deploys) {
    auto [it, added] = spans[d.service].try_emplace(d.commit);
    CommitSpan& s = it->second;
    if (added) {
      s = {d.commit, d.first_seen_us, d.last_seen_us};
    } else {
      s.first_us = std::min(s.first_us, d.first_seen_us);
      s.last_us = std::max(s.last_us, d.last_seen_us);
    }
  }
  std::map<std::string, std::vector<CommitSpan>> out;
  for (auto& [service, commits] : spans) {
    std::vector<CommitSpan>& list = out[service];
    for (auto& [name, span] : commits) list.push_back(span);
    std::sort(list.begin(), list.end(), [](const CommitSpan& a, const CommitSpan& b) {
      return a.first_us != b.first_us ? a.first_us < b.first_us : a.commit < b.commit;
    });
  }
  return out;
}

// Sides — per endpoint, the costs of commit A and commit B in a pair of windows.
using Sides = std::map<std::string, std::pair<std::vector<double>, std::vector<double>>>;

Sides Collect(const store::SampleSet& set, const std::string& service, const std::string& a,
              const Window& wa, const std::string& b, const Window& wb) {
  Sides sides;
  for (const store::SampleValue& v : set.samples) {
    const store::SampleSeries& s = set.series[v.series];
    if (s.service != service) continue;
    if (s.commit == a && wa.Has(v.start_us))
      sides[s.endpoint].first.push_back(v.value);
    else if (s.commit == b && wb.Has(v.start_us))
      sides[s.endpoint].second.push_back(v.value);
  }
  return sides;
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

}  // namespace

void AddFunctionTests(Run& run, const Finding& base,
                      const std::vector<store::FunctionMoments>& a_rows,
                      const std::vector<store::FunctionMoments>& b_rows) {
  const DetectOptions& o = run.options;
  // endpoint -> function -> row, and endpoint -> profiled cost per request.
  std::map<std::string, std::map<std::string, const store::FunctionMoments*>> a, b;
  std::map<std::string, double> a_total;
  for (const store::FunctionMoments& m : a_rows) {
    a[m.endpoint][m.function] = &m;
    if (m.requests > 0) a_total[m.endpoint] += m.sum / m.requests;
  }
  for (const store::FunctionMoments& m : b_rows) b[m.endpoint][m.function] = &m;
  for (const auto& [endpoint, functions] : a) {
    auto bit = b.find(endpoint);
    if (bit == b.end()) continue;
    for (const auto& [name, ma] : functions) {
      auto fit = bit->second.find(name);
      if (fit == bit->second.end()) continue;
      const store::FunctionMoments* mb = fit->second;
      if (ma->requests < static_cast<double>(o.min_profiled) ||
          mb->requests < static_cast<double>(o.min_profiled) || ma->sum <= 0)
        continue;
      const stats::Moments sa = stats::Moments::FromSums(ma->requests, ma->sum, ma->sum_sq);
      const stats::Moments sb = stats::Moments::FromSums(mb->requests, mb->sum, mb->sum_sq);
      if (sa.mean < o.min_function_share * a_total[endpoint]) continue;  // a crumb
      FunctionTest t{base, sa, sb};
      Finding& f = t.finding;
      f.endpoint = endpoint;
      f.function = name;
      f.unit = ma->unit;
      f.samples_before = static_cast<uint64_t>(ma->requests);
      f.samples_after = static_cast<uint64_t>(mb->requests);
      f.mean_before = sa.mean;
      f.mean_after = sb.mean;
      f.p_value = stats::WelchPValue(sa, sb);
      f.effect = stats::MeanRatioInterval(sa, sb, o.confidence);
      f.threshold = o.function_threshold_floor;
      f.threshold_source = "floor";
      f.top_functions = {{name, {}, sa.mean, sb.mean, sb.mean - sa.mean}};
      f.explained_share = 0;
      run.function_tests.push_back(std::move(t));
    }
  }
}

Status DetectRollouts(Run& run) {
  const DetectOptions& o = run.options;
  Result<std::vector<store::DeployEntry>> deploys = run.store.Deploys("");
  if (!deploys.ok()) return deploys.status();
  for (const auto& [service, commits] : CommitsByService(*deploys)) {
    for (size_t i = 1; i < commits.size(); ++i) {
      const CommitSpan& a = commits[i - 1];
      const CommitSpan& b = commits[i];
      if (b.first_us < o.now_us - o.window_us || b.first_us > o.now_us) continue;
      const int64_t next = i + 1 < commits.size() ? commits[i + 1].first_us : o.now_us + 1;
      const Window overlap{b.first_us, std::min({a.last_us + 1, next, o.now_us + 1})};
      const Window before{b.first_us - o.before_after_us, b.first_us};
      const Window after{b.first_us,
                         std::min({b.first_us + o.before_after_us, next, o.now_us + 1})};
      const bool can_overlap = overlap.to_us - overlap.from_us >= o.min_overlap_us;
      Sides side_by_side;
      if (can_overlap)
        side_by_side = Collect(run.samples, service, a.commit, overlap, b.commit, overlap);
      const Sides before_after = Collect(run.samples, service, a.commit, before, b.commit, after);

      Finding base;
      base.kind = "rollout";
      base.service = service;
      base.cause = "commit " + b.commit + " vs " + a.commit;
      base.commit_before = a.commit;
      base.commit_after = b.commit;
      base.commits = {b.commit};
      base.unit = run.samples.UnitOf(service);

      for (const auto& [endpoint, ba_sides] : before_after) {
        Finding f = base;
        f.endpoint = endpoint;
        const auto* sides = &ba_sides;
        Window wa = before, wb = after;
        f.method = "before/after";
        // Side by side when the overlap holds enough of both: it cancels
        // time-of-day and traffic-mix effects that before/after cannot.
        if (auto it = side_by_side.find(endpoint); it != side_by_side.end() &&
                                                   it->second.first.size() >= o.min_samples &&
                                                   it->second.second.size() >= o.min_samples) {
          sides = &it->second;
          wa = wb = overlap;
          f.method = "side-by-side";
        }
        f.from_us = wa.from_us;
        f.to_us = wb.to_us;
        f.samples_before = sides->first.size();
        f.samples_after = sides->second.size();
        f.mean_before = Mean(sides->first);
        f.mean_after = Mean(sides->second);
        if (f.samples_before < o.min_samples || f.samples_after < o.min_samples) {
          f.reason = "too few samples (" + std::to_string(f.samples_before) + " before, " +
                     std::to_string(f.samples_after) + " after; need " +
                     std::to_string(o.min_samples) + " each)";
          File(run, std::move(f), /*skipped=*/true);
          continue;
        }
        f.effect = stats::ShiftInterval(sides->first, sides->second, o.confidence);
        f.p_value = stats::MannWhitneyPValue(sides->first, sides->second);
        if (Status s = SetThreshold(run, f, o.threshold_floor); !s.ok()) return s;
        const bool skipped = Judge(o, f);
        if (f.alert) {
          if (Status s = RolloutRootCause(run, f, wa.from_us, wa.to_us, wb.from_us, wb.to_us);
              !s.ok())
            return s;
        }
        File(run, std::move(f), skipped);
      }

      // Function level, over the same windows (the before/after ones: the
      // moments are kept per hour, finer windows would not select less).
      auto moments = [&](const Window& w, const std::string& commit) {
        store::FunctionMomentsQuery q;
        q.from_us = w.from_us;
        q.to_us = w.to_us;
        q.service = service;
        q.commit = commit;
        return run.store.FunctionMomentsOf(q);
      };
      Result<std::vector<store::FunctionMoments>> ma = moments(before, a.commit);
      if (!ma.ok()) return ma.status();
      Result<std::vector<store::FunctionMoments>> mb = moments(after, b.commit);
      if (!mb.ok()) return mb.status();
      Finding fbase = base;
      fbase.kind = "function-rollout";
      fbase.method = "before/after";
      fbase.from_us = before.from_us;
      fbase.to_us = after.to_us;
      AddFunctionTests(run, fbase, *ma, *mb);
    }
  }
  return OkStatus();
}

}  // namespace cpuledger::detect::internal
