// Function-level tests: CompareFunctions() (the statistics, on one
// endpoint's moments) and the detector glue that feeds it store rows and
// judges its changes together (Benjamini–Hochberg over the run).
#include "detect/function_tests.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "detect/internal.h"
#include "profile/function_key.h"

namespace cpuledger::detect {

double EndpointProfiles::MeanCost() const {
  if (requests <= 0) return 0;
  double sum = 0;
  for (const FunctionSample& f : functions) sum += f.sum;
  return sum / requests;
}

namespace {

// Side — one function on one side: its share's mean and the variance of
// that mean; its cost per request.
struct Side {
  double share = 0, var = 0, cost = 0;
};

Side SideOf(const FunctionSample* f, double n) {
  Side s;
  if (f == nullptr || n <= 0) return s;
  s.share = f->share_sum / n;
  s.cost = f->sum / n;
  const double m2 = std::max(0.0, f->share_sq - f->share_sum * s.share);
  s.var = n > 1 ? m2 / (n - 1) / n : 0;
  return s;
}

// Pair — one function on both sides.
struct Pair {
  std::string function;
  Side a, b;
  double delta() const { return b.share - a.share; }
  double se() const { return std::sqrt(a.var + b.var); }
};

std::vector<Pair> PairUp(const EndpointProfiles& base, const EndpointProfiles& target) {
  std::map<std::string, std::pair<const FunctionSample*, const FunctionSample*>> by_name;
  for (const FunctionSample& f : base.functions) by_name[f.function].first = &f;
  for (const FunctionSample& f : target.functions) by_name[f.function].second = &f;
  std::vector<Pair> out;
  for (const auto& [name, ab] : by_name) {
    Pair p{name, SideOf(ab.first, base.requests), SideOf(ab.second, target.requests)};
    if (p.a.cost > 0 || p.b.cost > 0) out.push_back(std::move(p));
  }
  return out;
}

// Rising() — whether a function present on both sides rose in share with
// z above `z`.
bool Rising(const Pair& p, double min_share, double z) {
  return p.a.share >= min_share && p.se() > 0 && p.delta() / p.se() > z;
}

// RisingCount() — how many functions present on both sides are Rising():
// one is a function's change, two or more at once the request population's.
size_t RisingCount(const std::vector<Pair>& pairs, double min_share, double z) {
  size_t n = 0;
  for (const Pair& p : pairs) n += Rising(p, min_share, z);
  return n;
}

// NetChange() — f's change merged with the functions that gave it their
// cost (lost share beyond the proportional shrink f's growth explains).
void NetChange(const std::vector<Pair>& pairs, size_t fi, const FunctionChangeOptions& o,
               FunctionChange& c) {
  const Pair& f = pairs[fi];
  double delta = f.delta(), var = f.a.var + f.b.var, share_b = f.b.share;
  if (delta > 0 && f.a.share < 1) {
    const double shrink = (1 - f.b.share) / (1 - f.a.share);
    for (size_t gi = 0; gi < pairs.size(); ++gi) {
      if (gi == fi) continue;
      const Pair& g = pairs[gi];
      const double excess = g.a.share * shrink - g.b.share;
      if (excess <= o.shift_part * f.delta() || excess <= o.shift_z * g.se()) continue;
      delta += g.delta();
      var += g.a.var + g.b.var;
      share_b += g.b.share;
      c.moved_from.push_back(g.function);
    }
  }
  const double rest = std::max(1 - share_b, 1e-3);
  c.share = delta / rest;
  c.se = std::sqrt(var) / rest;
}

}  // namespace

std::vector<FunctionChange> CompareFunctions(const EndpointProfiles& base,
                                             const EndpointProfiles& target,
                                             const FunctionChangeOptions& options) {
  const std::vector<Pair> pairs = PairUp(base, target);
  const bool enough =
      base.requests >= options.min_requests && target.requests >= options.min_requests;
  const bool enough_new =
      base.requests >= options.min_requests_new && target.requests >= options.min_requests_new;
  const bool population = enough && RisingCount(pairs, options.min_share, options.rise_z) >= 2;
  const double base_cost = base.MeanCost();
  std::vector<FunctionChange> out;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const Pair& p = pairs[i];
    FunctionChange c;
    c.function = p.function;
    c.is_new = p.a.cost <= 0;
    c.before = p.a.cost;
    c.after = p.b.cost;
    if (!(c.is_new ? enough_new : enough)) {
      c.too_few = true;
      c.reason = "too few profiled requests";
    } else if (std::max(p.a.share, p.b.share) < options.min_share) {
      c.reason = "below the smallest share tested";
    } else if (population && Rising(p, options.min_share, options.rise_z)) {
      c.reason = "population shift: several functions rose at once";
    } else {
      c.tested = true;
      NetChange(pairs, i, options, c);
      c.added = c.share * base_cost;
    }
    out.push_back(std::move(c));
  }
  return out;
}

namespace internal {

namespace {

// FileAndName() — a function key's file and name, ("", key) if it has no line.
std::pair<std::string, std::string> FileAndName(const std::string& key) {
  Result<profile::Function> f = profile::ParseFunctionKey(key);
  if (!f.ok()) return {"", key};
  return {f->file, f->name};
}

}  // namespace

CodeDiff::CodeDiff(const std::vector<store::FunctionCode>& before,
                   const std::vector<store::FunctionCode>& after) {
  // Without both sides' code nothing is known: an old sender sends none.
  if (before.empty() || after.empty()) return;
  for (const store::FunctionCode& c : before) {
    auto [file, name] = FileAndName(c.function);
    before_code_.emplace(std::move(file), std::move(name), c.code_hash);
  }
  for (const store::FunctionCode& c : after) after_[c.function] = c.code_hash;
}

CodeChange CodeDiff::Of(const std::string& function) const {
  auto it = after_.find(function);
  if (it == after_.end()) return CodeChange::kUnknown;
  // The same file, name and hash: the function as it was, at its line or moved.
  auto [file, name] = FileAndName(function);
  return before_code_.contains({file, name, it->second}) ? CodeChange::kSame : CodeChange::kChanged;
}

bool SameCode(const std::vector<store::FunctionCode>& x, const std::vector<store::FunctionCode>& y,
              const std::set<std::string>& functions) {
  using Name = std::pair<std::string, std::string>;  // file, name
  std::set<Name> wanted;
  for (const std::string& f : functions) wanted.insert(FileAndName(f));
  auto code_of = [&](const std::vector<store::FunctionCode>& commit) {
    std::map<Name, uint64_t> out;
    for (const store::FunctionCode& c : commit)
      if (Name n = FileAndName(c.function); wanted.contains(n)) out[n] = c.code_hash;
    return out;
  };
  const std::map<Name, uint64_t> in_x = code_of(x), in_y = code_of(y);
  return !in_x.empty() && in_x == in_y;
}

void MomentsSum::Add(const store::FunctionMoments& m) {
  double& n = commit_requests_[m.endpoint];
  n = std::max(n, m.requests);
  auto [it, fresh] = sums_.try_emplace({m.endpoint, m.function}, m);
  if (fresh) return;
  it->second.sum += m.sum;
  it->second.sum_sq += m.sum_sq;
  it->second.share_sum += m.share_sum;
  it->second.share_sq += m.share_sq;
}

void MomentsSum::EndCommit() {
  for (const auto& [endpoint, n] : commit_requests_) requests_[endpoint] += n;
  commit_requests_.clear();
}

std::vector<store::FunctionMoments> MomentsSum::Rows() const {
  std::vector<store::FunctionMoments> out;
  out.reserve(sums_.size());
  for (const auto& [key, sum] : sums_) {
    store::FunctionMoments m = sum;
    m.commit.clear();
    auto it = requests_.find(key.first);
    m.requests = it == requests_.end() ? 0 : it->second;
    out.push_back(std::move(m));
  }
  return out;
}

namespace {

// ByEndpoint() — one side's rows as EndpointProfiles, per endpoint.
std::map<std::string, EndpointProfiles> ByEndpoint(const std::vector<store::FunctionMoments>& rows,
                                                   std::map<std::string, std::string>* units) {
  std::map<std::string, EndpointProfiles> out;
  for (const store::FunctionMoments& m : rows) {
    EndpointProfiles& e = out[m.endpoint];
    e.requests = std::max(e.requests, m.requests);
    e.functions.push_back({m.function, m.sum, m.sum_sq, m.share_sum, m.share_sq});
    if (units != nullptr) (*units)[m.endpoint] = m.unit;
  }
  return out;
}

FunctionChangeOptions ChangeOptions(const DetectOptions& o) {
  FunctionChangeOptions c;
  c.min_requests = static_cast<double>(o.min_profiled);
  c.min_requests_new = std::min(c.min_requests_new, c.min_requests);
  c.min_share = o.min_function_share;
  return c;
}

// FunctionThreshold() — a function is held to its endpoint's threshold in
// share-of-request terms: the endpoint's configured one, else the floor.
void SetFunctionThreshold(const DetectOptions& o, Finding& f) {
  auto it = o.thresholds.find(f.service + " " + f.endpoint);
  f.threshold = it != o.thresholds.end() ? it->second : o.function_threshold_floor;
  f.threshold_source = it != o.thresholds.end() ? "config" : "floor";
}

stats::Interval ShareInterval(const FunctionChange& c, double confidence) {
  const double z = stats::NormalQuantile(0.5 + confidence / 2);
  stats::Interval e;
  e.ok = c.se > 0 || c.share != 0;
  e.confidence = confidence;
  e.estimate = c.share;
  e.lo = c.share - z * c.se;
  e.hi = c.share + z * c.se;
  if (!e.ok) e.reason = "no variation on either side";
  return e;
}

// WentAway() — a rollout's function change no longer seen on the target
// commit in the latest two whole hours (when the target side is longer):
// its interval there lies below the threshold.
Result<bool> WentAway(Run& run, const FunctionTest& t, const Finding& f) {
  if (f.kind != "function-rollout" || t.base == nullptr) return false;
  constexpr int64_t kHourUs = 3600 * kUs;
  const int64_t target_from = t.target_from_us;
  const int64_t recent_from = (run.options.now_us - 2 * kHourUs) / kHourUs * kHourUs;
  if (recent_from < target_from + kHourUs) return false;
  store::FunctionMomentsQuery q;
  q.from_us = recent_from;
  q.to_us = run.options.now_us + 1;
  q.service = f.service;
  q.endpoint = f.endpoint;
  q.commit = f.target_commit;
  Result<std::vector<store::FunctionMoments>> rows = run.store.FunctionMomentsOf(q);
  if (!rows.ok()) return rows.status();
  const std::map<std::string, EndpointProfiles> recent = ByEndpoint(*rows, nullptr);
  auto it = recent.find(f.endpoint);
  if (it == recent.end()) return false;
  if (it->second.requests < static_cast<double>(run.options.min_profiled)) return false;
  for (const FunctionChange& c : CompareFunctions(*t.base, it->second, ChangeOptions(run.options)))
    if (c.function == f.function)
      return c.tested && ShareInterval(c, run.options.confidence).hi < f.threshold;
  return true;  // no cost on either side any more
}

std::string MovedText(const std::vector<std::string>& moved) {
  std::string s;
  for (const std::string& m : moved) s += (s.empty() ? "" : ", ") + m;
  return s;
}

}  // namespace

void AddFunctionTests(Run& run, const Finding& base,
                      const std::vector<store::FunctionMoments>& a_rows,
                      const std::vector<store::FunctionMoments>& b_rows, int64_t target_from_us,
                      const CodeDiff& code) {
  const DetectOptions& o = run.options;
  const FunctionChangeOptions options = ChangeOptions(o);
  std::map<std::string, std::string> units;
  const std::map<std::string, EndpointProfiles> a = ByEndpoint(a_rows, &units);
  const std::map<std::string, EndpointProfiles> b = ByEndpoint(b_rows, &units);
  for (const auto& [endpoint, side_a] : a) {
    auto bit = b.find(endpoint);
    if (bit == b.end()) continue;
    auto shared_a = std::make_shared<const EndpointProfiles>(side_a);
    for (FunctionChange& c : CompareFunctions(side_a, bit->second, options)) {
      FunctionTest t{base, {}, shared_a, target_from_us};
      Finding& f = t.finding;
      f.endpoint = endpoint;
      f.function = c.function;
      f.unit = units[endpoint];
      f.method += c.is_new ? ", new function" : ", share of the request";
      if (!c.moved_from.empty()) f.method += ", net of cost moved from " + MovedText(c.moved_from);
      t.code = code.Of(c.function);
      if (t.code == CodeChange::kChanged) f.method += ", code changed";
      f.samples_before = static_cast<uint64_t>(side_a.requests);
      f.samples_after = static_cast<uint64_t>(bit->second.requests);
      if (c.too_few && t.code == CodeChange::kChanged) {
        // The function a user will ask about: code the rollout changed.
        const auto needed =
            static_cast<uint64_t>(c.is_new ? options.min_requests_new : options.min_requests);
        f.reason = "too few profiled requests to test it (" + std::to_string(f.samples_before) +
                   " before, " + std::to_string(f.samples_after) + " after; " +
                   std::to_string(needed) + " a side needed)";
        File(run, std::move(f), /*skipped=*/true);
        continue;
      }
      if (!c.tested) continue;
      f.mean_before = c.before;
      f.mean_after = c.after;
      // One-sided: only a function that added cost may alert.
      f.p_value = c.se > 0 ? 1 - stats::NormalCdf(c.share / c.se) : c.share > 0 ? 0 : 1;
      f.effect = ShareInterval(c, o.confidence);
      SetFunctionThreshold(o, f);
      f.top_functions = {{c.function, {}, c.before, c.after, c.added}};
      t.change = std::move(c);
      run.function_tests.push_back(std::move(t));
    }
  }
}

namespace {

// CodeWeights() — a family's BH weights: `changed_code_share` of them on
// the functions whose code the rollout changed, the rest on the others,
// evenly within each. A regression is mostly a change of the code that
// grew, and a rollout changes a few functions of hundreds, so this buys
// them most of the family's level. None (all equal) when the code is not
// known, or the rollout changed all or none of them.
std::vector<double> CodeWeights(const Run& run, const std::vector<size_t>& family) {
  const double m = static_cast<double>(family.size());
  double changed = 0;
  for (size_t i : family) changed += run.function_tests[i].code == CodeChange::kChanged;
  if (changed == 0 || changed == m) return {};
  const double share = run.options.changed_code_share;
  std::vector<double> w;
  w.reserve(family.size());
  for (size_t i : family)
    w.push_back(run.function_tests[i].code == CodeChange::kChanged
                    ? share * m / changed
                    : (1 - share) * m / (m - changed));
  return w;
}

// JudgeFamily() — Benjamini–Hochberg over one cause's function tests (the
// `family`, indices into run.function_tests), weighted by CodeWeights():
// BH picks the discoveries; each must also clear the threshold with its
// lower bound at its FCR-adjusted level (one-sided, as the p-values), since
// a marginal interval picked out of many would cover too little.
Status JudgeFamily(Run& run, const std::vector<size_t>& family) {
  const DetectOptions& o = run.options;
  std::vector<FunctionTest>& tests = run.function_tests;
  std::vector<double> p;
  p.reserve(family.size());
  for (size_t i : family) p.push_back(tests[i].finding.p_value);
  // One-sided at level 1 - alpha is the lower bound of a two-sided
  // interval at 1 - 2 alpha: `confidence` (two-sided) is 1 - 2 alpha.
  const double one_sided = (1 + o.confidence) / 2;
  const stats::FdrSelection chosen =
      stats::SelectByFdr(p, o.fdr, one_sided, CodeWeights(run, family));
  for (size_t k = 0; k < family.size(); ++k) {
    FunctionTest& t = tests[family[k]];
    Finding& f = t.finding;
    f.q_value = chosen.q[k];
    if (!chosen.selected[k]) {
      run.report.evaluated.push_back(f);
      continue;
    }
    const std::string cause = f.service + "|" + f.endpoint + "|" + f.cause;
    if (std::find(run.alerted_causes.begin(), run.alerted_causes.end(), cause) !=
        run.alerted_causes.end())
      continue;  // the endpoint's alert names this function already
    f.effect = ShareInterval(t.change, 2 * chosen.ConfidenceOf(k) - 1);
    if (f.effect.ok && f.effect.lo > f.threshold) {
      Result<bool> gone = WentAway(run, t, f);
      if (!gone.ok()) return gone.status();
      f.alert = !*gone;
      if (*gone) f.reason = "went away: not seen in the latest hours";
    }
    if (f.alert) run.report.alerts.push_back(f);
    run.report.evaluated.push_back(f);
  }
  return OkStatus();
}

}  // namespace

// JudgeFunctionTests() — each cause's function tests are one family, as a
// rollout's endpoint tests are (a rollout or a flag that changed nothing
// pages nobody, 95% of the time, however many functions its service has),
// not one family for the whole run: the run re-tests every rollout and
// flag of its window, and their number would set the bar for each.
Status JudgeFunctionTests(Run& run) {
  std::map<std::string, std::vector<size_t>> families;  // service|cause -> tests
  for (size_t i = 0; i < run.function_tests.size(); ++i) {
    const Finding& f = run.function_tests[i].finding;
    families[f.service + "|" + f.cause].push_back(i);
  }
  run.report.tests += run.function_tests.size();
  for (const auto& [cause, family] : families)
    if (Status s = JudgeFamily(run, family); !s.ok()) return s;
  return OkStatus();
}

}  // namespace internal
}  // namespace cpuledger::detect
