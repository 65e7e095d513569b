// The flag detector: for every flag and value seen in the window, requests
// with that value against requests with the flag's most common value, within
// one endpoint and commit; Benjamini–Hochberg over every test of the run.
#include <algorithm>
#include <map>
#include <set>

#include "detect/internal.h"

namespace cpuledger::detect::internal {
namespace {

// Group — the samples of one (service, endpoint, commit), by flag value.
struct Group {
  // flag -> value -> costs; a sample without the flag is under value "".
  std::map<std::string, std::map<std::string, std::vector<double>>> by_flag;
};

std::string ReferenceValue(const std::map<std::string, std::vector<double>>& values) {
  std::string ref;
  size_t most = 0;
  for (const auto& [value, costs] : values)
    if (costs.size() > most) most = costs.size(), ref = value;
  return ref;
}

std::string FlagCause(const std::string& flag, const std::string& value, const std::string& ref) {
  auto text = [](const std::string& v) { return v.empty() ? std::string("(unset)") : v; };
  return "flag " + flag + "=" + text(value) + " vs " + text(ref);
}

// FlagTest — one comparison, before BH.
struct FlagTest {
  Finding finding;
  const std::vector<double>* ref = nullptr;
  const std::vector<double>* value = nullptr;
};

}  // namespace

Status DetectFlags(Run& run) {
  const DetectOptions& o = run.options;
  const Window window{o.now_us - o.window_us, o.now_us + 1};
  // (service, endpoint, commit) -> group. Flags a series lacks are filled in
  // below, once every flag name of the group is known.
  std::map<std::tuple<std::string, std::string, std::string>, Group> groups;
  std::map<std::tuple<std::string, std::string, std::string>, std::set<std::string>> names;
  for (const store::SampleSeries& s : run.samples.series)
    for (const auto& [flag, value] : s.flags) names[{s.service, s.endpoint, s.commit}].insert(flag);
  for (const store::SampleValue& v : run.samples.samples) {
    if (!window.Has(v.start_us)) continue;
    const store::SampleSeries& s = run.samples.series[v.series];
    auto key = std::make_tuple(s.service, s.endpoint, s.commit);
    auto nit = names.find(key);
    if (nit == names.end()) continue;
    Group& g = groups[key];
    for (const std::string& flag : nit->second) {
      auto it = std::lower_bound(s.flags.begin(), s.flags.end(), flag,
                                 [](const auto& p, const std::string& n) { return p.first < n; });
      const std::string& value =
          it != s.flags.end() && it->first == flag ? it->second : std::string();
      g.by_flag[flag][value].push_back(v.value);
    }
  }

  std::vector<FlagTest> tests;
  for (const auto& [key, group] : groups) {
    const auto& [service, endpoint, commit] = key;
    for (const auto& [flag, values] : group.by_flag) {
      const std::string ref = ReferenceValue(values);
      const std::vector<double>& ref_costs = values.at(ref);
      for (const auto& [value, costs] : values) {
        if (value == ref) continue;
        Finding f;
        f.kind = "flag";
        f.service = service;
        f.endpoint = endpoint;
        f.commit_before = f.commit_after = commit;
        f.flag = flag;
        f.flag_value = value;
        f.flag_reference = ref;
        f.cause = FlagCause(flag, value, ref);
        f.method = "flag split";
        f.unit = run.samples.UnitOf(service);
        f.from_us = window.from_us;
        f.to_us = window.to_us;
        f.samples_before = ref_costs.size();
        f.samples_after = costs.size();
        if (costs.size() < o.min_samples || ref_costs.size() < o.min_samples) {
          // Values seen only a handful of times are not worth a line.
          if (costs.size() * 10 >= o.min_samples) {
            f.reason = "too few samples (" + std::to_string(costs.size()) + " with " + flag + "=" +
                       value + ", " + std::to_string(ref_costs.size()) + " with " + ref +
                       "; need " + std::to_string(o.min_samples) + " each)";
            File(run, std::move(f), /*skipped=*/true);
          }
          continue;
        }
        f.p_value = stats::MannWhitneyPValue(ref_costs, costs);
        tests.push_back({std::move(f), &ref_costs, &costs});
      }
    }
  }

  std::vector<double> p;
  for (const FlagTest& t : tests) p.push_back(t.finding.p_value);
  const std::vector<double> q = stats::BenjaminiHochberg(p);
  size_t discoveries = 0;
  for (double x : q) discoveries += x <= o.fdr;
  const double selected_level =
      tests.empty() ? o.confidence
                    : std::max(o.confidence, 1.0 - o.fdr * static_cast<double>(discoveries) /
                                                       static_cast<double>(tests.size()));
  // One alert per (service, endpoint, cause): the same flag can be tested
  // under several commits; the best-sampled alert stands for them.
  std::map<std::string, Finding> alerts;
  for (size_t i = 0; i < tests.size(); ++i) {
    Finding& f = tests[i].finding;
    f.q_value = q[i];
    const bool discovered = q[i] <= o.fdr;
    f.effect = stats::ShiftInterval(*tests[i].ref, *tests[i].value,
                                    discovered ? selected_level : o.confidence);
    double ref_sum = 0, value_sum = 0;
    for (double x : *tests[i].ref) ref_sum += x;
    for (double x : *tests[i].value) value_sum += x;
    f.mean_before = ref_sum / static_cast<double>(tests[i].ref->size());
    f.mean_after = value_sum / static_cast<double>(tests[i].value->size());
    if (f.effect.ok && f.effect.estimate < 0) {
      // The reference is the costlier side: the change to judge is to it.
      f.effect = InvertEffect(f.effect);
      std::swap(f.flag_value, f.flag_reference);
      std::swap(f.mean_before, f.mean_after);
      std::swap(f.samples_before, f.samples_after);
      f.cause = FlagCause(f.flag, f.flag_value, f.flag_reference);
    }
    if (Status s = SetThreshold(run, f, o.threshold_floor); !s.ok()) return s;
    bool skipped = Judge(o, f);
    if (!discovered) f.alert = false;
    if (f.alert) {
      if (Status s = FlagRootCause(run, f); !s.ok()) return s;
      const std::string k = f.Key();
      auto it = alerts.find(k);
      if (it == alerts.end() || it->second.samples_after < f.samples_after) alerts[k] = f;
      f.alert = false;  // filed below, once per key
      ++run.report.tests;
      run.report.evaluated.push_back(std::move(f));
      continue;
    }
    File(run, std::move(f), skipped);
  }
  for (auto& [k, f] : alerts) {
    run.alerted_causes.push_back(f.service + "|" + f.endpoint + "|" + f.cause);
    run.report.alerts.push_back(std::move(f));
  }

  // Function level: the moments split by each flag's values.
  std::set<std::string> flags;
  for (const auto& [key, group] : groups)
    for (const auto& [flag, values] : group.by_flag) flags.insert(flag);
  for (const std::string& flag : flags) {
    Result<std::vector<store::FunctionMoments>> rows =
        run.store.FunctionMomentsOf({.from_us = window.from_us,
                                     .to_us = window.to_us,
                                     .service = std::nullopt,
                                     .endpoint = std::nullopt,
                                     .commit = std::nullopt,
                                     .flag = flag});
    if (!rows.ok()) return rows.status();
    // (service, commit) -> value -> rows, and requests per value to pick the reference.
    std::map<std::pair<std::string, std::string>,
             std::map<std::string, std::vector<store::FunctionMoments>>>
        split;
    for (store::FunctionMoments& m : *rows)
      split[{m.service, m.commit}][m.flag_value].push_back(std::move(m));
    for (const auto& [sc, values] : split) {
      std::string ref;
      double most = -1;
      for (const auto& [value, list] : values) {
        double n = 0;
        for (const auto& m : list) n = std::max(n, m.requests);
        if (n > most) most = n, ref = value;
      }
      for (const auto& [value, list] : values) {
        if (value == ref) continue;
        Finding base;
        base.kind = "function-flag";
        base.service = sc.first;
        base.commit_before = base.commit_after = sc.second;
        base.flag = flag;
        base.flag_value = value;
        base.flag_reference = ref;
        base.cause = FlagCause(flag, value, ref);
        base.method = "flag split";
        base.from_us = window.from_us;
        base.to_us = window.to_us;
        AddFunctionTests(run, base, values.at(ref), list);
      }
    }
  }
  return OkStatus();
}

}  // namespace cpuledger::detect::internal
