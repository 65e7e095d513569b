// The flag detector: for every flag and value seen in the window, requests
// with that value against requests with the flag's reference value, within
// one endpoint and commit (the commits' shifts pooled by inverse variance;
// function tests: the commits' moments summed, PoolCommits());
// Benjamini–Hochberg over each flag value's tests.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "detect/internal.h"

namespace cpuledger::detect::internal {
namespace {

// ReferenceValue() — a Finding's flag_reference (see detect.h), from the
// requests of each value ("" = unset): the most common value; but when two
// or more values are set, the most common of those (a flag that appeared
// mid-window is "unset" on older requests, and "unset" is not the flag's
// control arm). The one rule for endpoint- and function-level tests.
template <typename Count>
std::string ReferenceValue(const std::map<std::string, Count>& counts) {
  size_t set_values = 0;
  for (const auto& [value, n] : counts) set_values += !value.empty();
  std::string ref;
  Count most{};
  for (const auto& [value, n] : counts) {
    if (set_values >= 2 && value.empty()) continue;
    if (n > most) most = n, ref = value;
  }
  return ref;
}

// IsTreatment() — whether `value` is tested against `ref`: every value but
// the reference itself and "unset" (requests from before the flag existed
// are not an arm of it).
bool IsTreatment(const std::string& value, const std::string& ref) {
  return value != ref && !value.empty();
}

std::string FlagCause(const std::string& flag, const std::string& value, const std::string& ref) {
  auto text = [](const std::string& v) { return v.empty() ? std::string("(unset)") : v; };
  return "flag " + flag + "=" + text(value) + " vs " + text(ref);
}

// Stratum — one commit's two arms. Costs are compared within a commit only
// (a commit can change both arms), and the strata are combined.
using Arms = std::map<std::string, std::vector<double>>;  // value -> costs

// Pooled — the per-commit strata's pooled shift (stats::PoolShifts), with
// the counts and sums of the commits it combined.
struct Pooled {
  stats::PooledShift shift;
  size_t n_ref = 0, n_value = 0;
  double sum_ref = 0, sum_value = 0;
  std::vector<std::string> commits;
  bool ok() const { return shift.ok(); }
};

Pooled PoolStrata(const std::map<std::string, Arms>& strata, const std::string& ref,
                  const std::string& value) {
  std::vector<stats::StratumPair> pairs;
  std::vector<std::string> commits;
  for (const auto& [commit, arms] : strata) {
    auto r = arms.find(ref), v = arms.find(value);
    if (r == arms.end() || v == arms.end() || r->second.size() < kMinStratum ||
        v->second.size() < kMinStratum)
      continue;
    pairs.push_back({r->second, v->second});
    commits.push_back(commit);
  }
  Pooled p;
  p.shift = stats::PoolShifts(pairs);
  for (size_t i : p.shift.used) {
    p.n_ref += pairs[i].a.size();
    p.n_value += pairs[i].b.size();
    for (double x : pairs[i].a) p.sum_ref += x;
    for (double x : pairs[i].b) p.sum_value += x;
    p.commits.push_back(commits[i]);
  }
  return p;
}

// FlagTest — one comparison, before BH.
struct FlagTest {
  Finding finding;
  Pooled pooled;
};

// FlagData — (service, endpoint, flag) -> commit -> value -> costs.
using FlagData =
    std::map<std::tuple<std::string, std::string, std::string>, std::map<std::string, Arms>>;

// CollectFlagArms() — the costs of the window's requests, split by every
// flag their (service, endpoint, commit) carries; a request without one of
// those flags is under value "".
FlagData CollectFlagArms(const store::SampleSet& samples, const Window& window) {
  std::map<std::tuple<std::string, std::string, std::string>, std::set<std::string>> names;
  for (const store::SampleSeries& s : samples.series)
    for (const auto& [flag, value] : s.flags) names[{s.service, s.endpoint, s.commit}].insert(flag);
  FlagData data;
  for (const store::RecordBill& v : samples.samples) {
    if (!window.Has(v.start_us)) continue;
    const store::SampleSeries& s = samples.series[v.series];
    auto nit = names.find({s.service, s.endpoint, s.commit});
    if (nit == names.end()) continue;
    for (const std::string& flag : nit->second) {
      auto it = std::lower_bound(s.flags.begin(), s.flags.end(), flag,
                                 [](const auto& p, const std::string& n) { return p.first < n; });
      const std::string& value =
          it != s.flags.end() && it->first == flag ? it->second : std::string();
      data[{s.service, s.endpoint, flag}][s.commit][value].push_back(v.bill);
    }
  }
  return data;
}

// FlagFinding() — the finding of `value` against `ref` on one endpoint,
// before the test: what is compared, not yet what was found.
Finding FlagFinding(const Run& run, const Window& window, const std::string& service,
                    const std::string& endpoint, const std::string& flag, const std::string& value,
                    const std::string& ref) {
  Finding f;
  f.kind = "flag";
  f.service = service;
  f.endpoint = endpoint;
  f.flag = flag;
  f.flag_value = value;
  f.flag_reference = ref;
  f.cause = FlagCause(flag, value, ref);
  f.method = "flag split, stratified by commit";
  f.unit = run.samples.UnitOf(service);
  f.from_us = window.from_us;
  f.to_us = window.to_us;
  return f;
}

// MakeFlagTests() — one test per (endpoint, flag, value) against the flag's
// reference; comparisons with too few samples are filed as skips (those of
// values seen only a handful of times are dropped without a line).
std::vector<FlagTest> MakeFlagTests(Run& run, const Window& window, const FlagData& data) {
  const DetectOptions& o = run.options;
  std::vector<FlagTest> tests;
  for (const auto& [key, strata] : data) {
    const auto& [service, endpoint, flag] = key;
    std::map<std::string, size_t> counts;
    for (const auto& [commit, arms] : strata)
      for (const auto& [value, costs] : arms) counts[value] += costs.size();
    const std::string ref = ReferenceValue(counts);
    for (const auto& [value, n] : counts) {
      if (!IsTreatment(value, ref)) continue;
      Finding f = FlagFinding(run, window, service, endpoint, flag, value, ref);
      const Pooled pooled = PoolStrata(strata, ref, value);
      f.commits = pooled.commits;
      f.samples_before = pooled.n_ref;
      f.samples_after = pooled.n_value;
      if (!pooled.ok() || pooled.n_value < o.min_samples || pooled.n_ref < o.min_samples) {
        if (n * 10 >= o.min_samples) {
          f.reason = "too few samples (" + std::to_string(pooled.n_value) + " with " + flag + "=" +
                     value + ", " + std::to_string(pooled.n_ref) + " with " +
                     (ref.empty() ? "it unset" : ref) + " in commits holding both; need " +
                     std::to_string(o.min_samples) + " each)";
          File(run, std::move(f), /*skipped=*/true);
        }
        continue;
      }
      f.mean_before = pooled.sum_ref / static_cast<double>(pooled.n_ref);
      f.mean_after = pooled.sum_value / static_cast<double>(pooled.n_value);
      f.p_value = pooled.shift.PValue();
      tests.push_back({std::move(f), pooled});
    }
  }
  return tests;
}

// JudgeFamily() — Benjamini–Hochberg over one flag value's tests (the
// `family`: its endpoints, indices into `tests`); the discoveries'
// intervals at the FCR-adjusted level, turned to face the costlier side,
// then judged against the threshold.
Status JudgeFamily(Run& run, std::vector<FlagTest>& tests, const std::vector<size_t>& family) {
  const DetectOptions& o = run.options;
  std::vector<double> p;
  for (size_t i : family) p.push_back(tests[i].finding.p_value);
  const stats::FdrSelection chosen = stats::SelectByFdr(p, o.fdr, o.confidence);
  for (size_t k = 0; k < family.size(); ++k) {
    const size_t i = family[k];
    Finding& f = tests[i].finding;
    f.q_value = chosen.q[k];
    const bool discovered = chosen.selected[k];
    // Always-valid: a flag's split is looked at again every run, for as
    // long as the flag lives, and a fixed-sample interval would let a flag
    // that changed nothing through on one look in twenty.
    f.effect = tests[i].pooled.shift.SequenceAt(
        discovered ? chosen.selected_confidence : o.confidence, o.sequential_tau);
    if (f.effect.estimate < 0) {
      // The reference is the costlier side: the change to judge is to it.
      f.effect = InvertEffect(f.effect);
      std::swap(f.flag_value, f.flag_reference);
      std::swap(f.mean_before, f.mean_after);
      std::swap(f.samples_before, f.samples_after);
      f.cause = FlagCause(f.flag, f.flag_value, f.flag_reference);
    }
    if (Status s = SetThreshold(run, f, o.threshold_floor); !s.ok()) return s;
    const bool skipped = Judge(o, f);
    if (!discovered) f.alert = false;
    if (f.alert) {
      if (Status s = FlagRootCause(run, f); !s.ok()) return s;
    }
    File(run, std::move(f), skipped);
  }
  return OkStatus();
}

// JudgeFlagTests() — each flag value's endpoint tests are one family, as a
// rollout's are: a flag that changed nothing pages nobody, 95% of the
// time, however many endpoints carry it. Not one family for the run: the
// run tests every flag of its window, and their number would set the bar
// for each (a quiet endpoint's flag then waits days for enough samples).
Status JudgeFlagTests(Run& run, std::vector<FlagTest>& tests) {
  std::map<std::string, std::vector<size_t>> families;  // service|flag=value -> tests
  for (size_t i = 0; i < tests.size(); ++i) {
    const Finding& f = tests[i].finding;
    families[f.service + "|" + f.flag + "=" + f.flag_value].push_back(i);
  }
  for (const auto& [key, family] : families)
    if (Status s = JudgeFamily(run, tests, family); !s.ok()) return s;
  return OkStatus();
}

// ValueRows — one service's function moments by commit, then by flag value.
using ValueRows = std::map<std::string, std::vector<store::FunctionMoments>>;
using CommitRows = std::map<std::string, ValueRows>;

// PooledArms — one flag value's rows and its reference's, each summed over
// the commits that hold both (commit ""), and those commits.
struct PooledArms {
  std::vector<store::FunctionMoments> ref, value;
  std::vector<std::string> commits;
};

// Scaled() — `m` with its sums weighted by `w`.
store::FunctionMoments Scaled(store::FunctionMoments m, double w) {
  m.sum *= w;
  m.sum_sq *= w;
  m.share_sum *= w;
  m.share_sq *= w;
  m.requests *= w;
  return m;
}

// Weights — per (endpoint, commit), the weight of the value arm's moments.
using Weights = std::map<std::pair<std::string, std::string>, double>;

// ValueWeights() — from each (endpoint, commit)'s profiled requests
// (reference arm, value arm): the value arm reweighted to the reference
// arm's commit mix, then scaled to its Kish effective size, per endpoint.
Weights ValueWeights(
    const std::map<std::string, std::map<std::string, std::pair<double, double>>>& counts) {
  Weights out;
  for (const auto& [endpoint, per_commit] : counts) {
    double n_ref = 0, n_value = 0;
    for (const auto& [commit, n] : per_commit)
      if (n.first > 0 && n.second > 0) n_ref += n.first, n_value += n.second;
    std::map<std::string, double> w;  // commit -> weight
    double sw = 0, sw2 = 0;
    for (const auto& [commit, n] : per_commit) {
      if (n.first <= 0 || n.second <= 0) continue;
      const double x = n.first / n_ref * n_value / n.second;
      w[commit] = x;
      sw += x * n.second;
      sw2 += x * x * n.second;
    }
    const double kish = sw2 > 0 ? sw / sw2 : 0;  // effective size / sum of weights
    for (const auto& [commit, x] : w) out[{endpoint, commit}] = x * kish;
  }
  return out;
}

// SumArm() — one arm's rows summed per (endpoint, function) over the
// commits `weights` holds, each weighted (the reference arm: 1); a row's
// `requests` is its endpoint's pooled total, whether or not the function
// ran in each commit.
std::vector<store::FunctionMoments> SumArm(const CommitRows& by_commit, const std::string& arm,
                                           const Weights& weights, bool weighted) {
  MomentsSum pooled;
  for (const auto& [commit, values] : by_commit) {
    auto rows = values.find(arm);
    if (rows == values.end()) continue;
    for (const store::FunctionMoments& m : rows->second) {
      auto w = weights.find({m.endpoint, commit});
      if (w == weights.end()) continue;  // the commit lacks the other arm here
      pooled.Add(Scaled(m, weighted ? w->second : 1.0));
    }
    pooled.EndCommit();
  }
  return pooled.Rows();
}

// PoolCommits() — the function moments of `value` and of `ref`, summed
// over every commit that served both: one commit lasts hours and holds
// too few profiles to see 0.5% of a request, the day's commits together
// do. Users are split by the flag, not by commit, so both arms hold the
// same commits; but where the arms' commit mix differs (a flag ramped up
// while a rollout changed a function), the value's arm is reweighted to
// the reference's mix per endpoint, so a commit's change is not billed to
// the flag, and scaled to its effective size (Kish), so the reweighting
// does not pass for more profiles than there are (ValueWeights).
PooledArms PoolCommits(const CommitRows& by_commit, const std::string& ref,
                       const std::string& value) {
  // endpoint -> commit -> profiled requests (reference arm, value arm)
  std::map<std::string, std::map<std::string, std::pair<double, double>>> counts;
  PooledArms out;
  for (const auto& [commit, values] : by_commit) {
    auto r = values.find(ref), v = values.find(value);
    if (r == values.end() || v == values.end()) continue;
    out.commits.push_back(commit);
    for (const auto& m : r->second)
      counts[m.endpoint][commit].first = std::max(counts[m.endpoint][commit].first, m.requests);
    for (const auto& m : v->second)
      counts[m.endpoint][commit].second = std::max(counts[m.endpoint][commit].second, m.requests);
  }
  const Weights weights = ValueWeights(counts);
  out.ref = SumArm(by_commit, ref, weights, /*weighted=*/false);
  out.value = SumArm(by_commit, value, weights, /*weighted=*/true);
  return out;
}

// AddFlagFunctionTests() — the function tests of every flag in `data`: the
// function moments split by the flag's values, per service, pooled over
// the window's commits (PoolCommits).
Status AddFlagFunctionTests(Run& run, const Window& window, const FlagData& data) {
  std::set<std::string> flags;
  for (const auto& [key, strata] : data) flags.insert(std::get<2>(key));
  for (const std::string& flag : flags) {
    Result<std::vector<store::FunctionMoments>> rows =
        run.store.FunctionMomentsOf({.from_us = window.from_us,
                                     .to_us = window.to_us,
                                     .service = std::nullopt,
                                     .endpoint = std::nullopt,
                                     .commit = std::nullopt,
                                     .flag = flag});
    if (!rows.ok()) return rows.status();
    std::map<std::string, CommitRows> split;  // service -> commit -> value -> rows
    for (store::FunctionMoments& m : *rows) {
      std::string service = m.service, commit = m.commit, value = m.flag_value;
      split[service][commit][value].push_back(std::move(m));
    }
    for (const auto& [service, by_commit] : split) {
      // The reference by each value's profiled requests (per commit, its
      // busiest endpoint's), over the commits.
      std::map<std::string, double> requests;
      for (const auto& [commit, values] : by_commit)
        for (const auto& [value, list] : values) {
          double most = 0;
          for (const auto& m : list) most = std::max(most, m.requests);
          requests[value] += most;
        }
      const std::string ref = ReferenceValue(requests);
      for (const auto& [value, n] : requests) {
        if (!IsTreatment(value, ref)) continue;
        const PooledArms arms = PoolCommits(by_commit, ref, value);
        if (arms.commits.empty()) continue;
        Finding base;
        base.kind = "function-flag";
        base.service = service;
        base.commits = arms.commits;
        base.flag = flag;
        base.flag_value = value;
        base.flag_reference = ref;
        base.cause = FlagCause(flag, value, ref);
        base.method = "flag split, pooled over commits";
        base.from_us = window.from_us;
        base.to_us = window.to_us;
        AddFunctionTests(run, base, arms.ref, arms.value, window.from_us);
      }
    }
  }
  return OkStatus();
}

}  // namespace

Status DetectFlags(Run& run) {
  const DetectOptions& o = run.options;
  const Window window{o.now_us - o.window_us, o.now_us + 1};
  const FlagData data = CollectFlagArms(run.samples, window);
  std::vector<FlagTest> tests = MakeFlagTests(run, window, data);
  if (Status s = JudgeFlagTests(run, tests); !s.ok()) return s;
  return AddFlagFunctionTests(run, window, data);
}

}  // namespace cpuledger::detect::internal
