// Root cause: which functions grew between the two sides of an alert, per
// request, and how much of the growth they explain. Rollouts rank by the
// share of the request each function added (function_tests.h: new code
// included, cost shifts netted); flags by added self cost.
#include <algorithm>
#include <map>

#include "detect/internal.h"
#include "profile/diff.h"
#include "profile/function_key.h"

namespace cpuledger::detect::internal {

namespace {

// RankedByShare() — the functions of `f`'s endpoint that added cost from
// side A (base_commit over [a_from, a_to)) to side B, by CompareFunctions
// (function_tests.h): new functions included, cost shifts netted, ranked by
// a cautious estimate of the share of the request they added (estimate
// less two standard errors), so that the noise of a function's self cost
// over a few profiles does not outrank new code. Empty when the moments
// are too thin to compare.
Result<std::vector<FunctionChange>> RankedByShare(Run& run, const Finding& f, int64_t a_from,
                                                  int64_t a_to, int64_t b_from, int64_t b_to) {
  auto side = [&](int64_t from, int64_t to, const std::string& commit) -> Result<EndpointProfiles> {
    Result<std::vector<store::FunctionMoments>> rows =
        run.store.FunctionMomentsOf({.from_us = from,
                                     .to_us = to,
                                     .service = f.service,
                                     .endpoint = f.endpoint,
                                     .commit = commit,
                                     .flag = std::nullopt});
    if (!rows.ok()) return rows.status();
    EndpointProfiles p;
    for (const store::FunctionMoments& m : *rows) {
      p.requests = std::max(p.requests, m.requests);
      p.functions.push_back({m.function, m.sum, m.sum_sq, m.share_sum, m.share_sq});
    }
    return p;
  };
  Result<EndpointProfiles> a = side(a_from, a_to, f.base_commit);
  if (!a.ok()) return a.status();
  Result<EndpointProfiles> b = side(b_from, b_to, f.target_commit);
  if (!b.ok()) return b.status();
  FunctionChangeOptions options;
  options.min_requests = options.min_requests_new = 2;  // a ranking, not a test
  options.min_share = run.options.min_function_share;
  std::vector<FunctionChange> grew;
  for (FunctionChange& c : CompareFunctions(*a, *b, options))
    if (c.tested && c.share > 0 && c.added > 0) grew.push_back(std::move(c));
  std::stable_sort(grew.begin(), grew.end(), [](const FunctionChange& x, const FunctionChange& y) {
    return x.share - 2 * x.se > y.share - 2 * y.se;
  });
  return grew;
}

}  // namespace

Status RolloutRootCause(Run& run, Finding& f, int64_t a_from, int64_t a_to, int64_t b_from,
                        int64_t b_to) {
  store::FunctionQuery qa{.from_us = a_from,
                          .to_us = a_to,
                          .service = f.service,
                          .endpoint = f.endpoint,
                          .commit = f.base_commit};
  store::FunctionQuery qb = qa;
  qb.from_us = b_from;
  qb.to_us = b_to;
  qb.commit = f.target_commit;
  Result<profile::CallTree> a = run.store.FunctionTree(qa);
  if (!a.ok()) return OkStatus();  // e.g. mixed units: the alert stands without a cause
  Result<profile::CallTree> b = run.store.FunctionTree(qb);
  if (!b.ok() || a->requests() == 0 || b->requests() == 0 || a->unit() != b->unit())
    return OkStatus();
  Result<std::vector<profile::FunctionDiff>> diff =
      profile::DiffTrees(*a, *b, {.rank = profile::DiffRank::kBySelf, .max_paths = 1});
  if (!diff.ok()) return OkStatus();
  const double growth = static_cast<double>(b->TotalCost()) / static_cast<double>(b->requests()) -
                        static_cast<double>(a->TotalCost()) / static_cast<double>(a->requests());
  std::map<std::string, const profile::FunctionDiff*> by_key;
  for (const profile::FunctionDiff& d : *diff) by_key[profile::FunctionKeyText(d.function)] = &d;
  auto culprit = [&](const profile::FunctionDiff& d) {
    Culprit c;
    c.function = profile::FunctionKeyText(d.function);
    if (!d.paths.empty())
      for (const profile::Function& p : d.paths.front().path)
        c.path.push_back(profile::FunctionKeyText(p));
    c.before = d.before_self;
    c.after = d.after_self;
    c.added = d.delta_self();
    return c;
  };
  Result<std::vector<FunctionChange>> ranked = RankedByShare(run, f, a_from, a_to, b_from, b_to);
  if (!ranked.ok()) return ranked.status();
  for (const FunctionChange& ch : *ranked) {
    if (f.top_functions.size() >= run.options.top_functions) break;
    auto it = by_key.find(ch.function);
    if (it != by_key.end()) f.top_functions.push_back(culprit(*it->second));
  }
  if (f.top_functions.empty())  // too thin for shares: by added self cost
    for (const profile::FunctionDiff& d : *diff) {
      if (f.top_functions.size() >= run.options.top_functions || d.delta_self() <= 0) break;
      f.top_functions.push_back(culprit(d));
    }
  double explained = 0;
  for (const Culprit& c : f.top_functions) explained += std::max(0.0, c.added);
  f.explained_share = growth > 0 ? std::min(1.0, explained / growth) : 0;
  return OkStatus();
}

Status FlagRootCause(Run& run, Finding& f) {
  store::FunctionMomentsQuery q;
  q.from_us = f.from_us;
  q.to_us = f.to_us;
  q.service = f.service;
  q.endpoint = f.endpoint;
  if (!f.target_commit.empty()) q.commit = f.target_commit;
  q.flag = f.flag;
  Result<std::vector<store::FunctionMoments>> rows = run.store.FunctionMomentsOf(q);
  if (!rows.ok()) return rows.status();
  // Summed over the commits: per value, its profiled requests and each
  // function's self cost.
  std::map<std::pair<std::string, std::string>, double> requests;  // (commit, value) -> n
  std::map<std::string, std::pair<double, double>> sums;           // function -> (reference, value)
  for (const store::FunctionMoments& m : *rows) {
    if (m.flag_value == f.flag_reference) {
      requests[{m.commit, m.flag_value}] = m.requests;
      sums[m.function].first += m.sum;
    } else if (m.flag_value == f.flag_value) {
      requests[{m.commit, m.flag_value}] = m.requests;
      sums[m.function].second += m.sum;
    }
  }
  double n_ref = 0, n_value = 0;
  for (const auto& [cv, n] : requests) (cv.second == f.flag_reference ? n_ref : n_value) += n;
  if (n_ref == 0 || n_value == 0) return OkStatus();
  std::map<std::string, std::pair<double, double>> means;
  double before_total = 0, after_total = 0;
  for (const auto& [function, ba] : sums) {
    means[function] = {ba.first / n_ref, ba.second / n_value};
    before_total += ba.first / n_ref;
    after_total += ba.second / n_value;
  }
  for (const auto& [function, ba] : means)
    if (ba.second > ba.first)
      f.top_functions.push_back({function, {}, ba.first, ba.second, ba.second - ba.first});
  std::sort(f.top_functions.begin(), f.top_functions.end(),
            [](const Culprit& x, const Culprit& y) { return x.added > y.added; });
  if (f.top_functions.size() > run.options.top_functions)
    f.top_functions.resize(run.options.top_functions);
  double explained = 0;
  for (const Culprit& c : f.top_functions) explained += c.added;
  const double growth = after_total - before_total;
  f.explained_share = growth > 0 ? std::min(1.0, explained / growth) : 0;
  return OkStatus();
}

}  // namespace cpuledger::detect::internal
