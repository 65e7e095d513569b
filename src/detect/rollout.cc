// The rollout detector: each new commit against the one it replaced, per
// endpoint, side by side while both serve and before/after otherwise; and
// the same comparison on each function's cost (function tests).
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "base/time_text.h"
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

// kGoneAfterUs — a commit with no sample for this long has left the fleet.
constexpr int64_t kGoneAfterUs = 5 * 60 * kUs;

// Side — one commit's requests of one endpoint: when each started, and its cost.
struct Side {
  std::vector<int64_t> at_us;
  std::vector<double> cost;

  size_t CountIn(const Window& w) const {
    return static_cast<size_t>(
        std::count_if(at_us.begin(), at_us.end(), [&](int64_t t) { return w.Has(t); }));
  }
  std::vector<double> CostsIn(const Window& w) const {
    std::vector<double> out;
    for (size_t i = 0; i < at_us.size(); ++i)
      if (w.Has(at_us[i])) out.push_back(cost[i]);
    return out;
  }
};
// Sides — per endpoint, commit A's side and commit B's side.
using Sides = std::map<std::string, std::pair<Side, Side>>;

// SideRule — which side a request is on: commit `a` in `wa` is side 1,
// commit `b` in `wb` side 2, anything else 0.
struct SideRule {
  const std::string& a;
  const Window& wa;
  const std::string& b;
  const Window& wb;
  int Of(const store::SampleSet& set, const store::RecordBill& v) const {
    const store::SampleSeries& s = set.series[v.series];
    if (s.commit == a && wa.Has(v.start_us)) return 1;
    if (s.commit == b && wb.Has(v.start_us)) return 2;
    return 0;
  }
};

// FlagPairs — (flag, value) pairs; a flag a request lacks is ("flag", "")
// for it, so requests from before a flag existed do not pass for requests
// with it off.
using FlagPairs = std::set<std::pair<std::string, std::string>>;

// SideFlags — per endpoint, the flags either side's requests carry, and the
// (flag, value) pairs each side carries.
struct SideFlags {
  std::map<std::string, std::set<std::string>> names;            // endpoint -> flags seen
  std::map<std::string, std::pair<FlagPairs, FlagPairs>> pairs;  // endpoint -> (A's, B's)

  FlagPairs PairsOf(const store::SampleSeries& s) const {
    FlagPairs out;
    auto seen = names.find(s.endpoint);
    if (seen == names.end()) return out;
    for (const std::string& name : seen->second) {
      auto it = std::find_if(s.flags.begin(), s.flags.end(),
                             [&](const auto& f) { return f.first == name; });
      out.insert({name, it == s.flags.end() ? std::string() : it->second});
    }
    return out;
  }
};

// FlagsOfSides() — the flags of the requests `of_service` on either side.
SideFlags FlagsOfSides(const store::SampleSet& set, const std::vector<uint32_t>& of_service,
                       const SideRule& rule) {
  SideFlags out;
  std::vector<int8_t> side_of_series(set.series.size(), 0);
  for (uint32_t i : of_service) {
    const store::RecordBill& v = set.samples[i];
    const int side = rule.Of(set, v);
    if (side == 0 || (side_of_series[v.series] & side)) continue;
    side_of_series[v.series] |= static_cast<int8_t>(side);
    const store::SampleSeries& s = set.series[v.series];
    for (const auto& flag : s.flags) out.names[s.endpoint].insert(flag.first);
  }
  for (size_t i = 0; i < set.series.size(); ++i) {
    if (side_of_series[i] == 0) continue;
    const store::SampleSeries& s = set.series[i];
    const FlagPairs mine = out.PairsOf(s);
    if (side_of_series[i] & 1) out.pairs[s.endpoint].first.insert(mine.begin(), mine.end());
    if (side_of_series[i] & 2) out.pairs[s.endpoint].second.insert(mine.begin(), mine.end());
  }
  return out;
}

// Collect() — per endpoint, the costs of commit `a` in `wa` and of commit
// `b` in `wb`, from the samples `of_service` (indices into set.samples, all
// of one service). A request that carries a flag value the other side
// never carries is left out: a flag turned on next to a rollout must not be
// billed to the commit (side by side, the two sides share their flags anyway).
Sides Collect(const store::SampleSet& set, const std::vector<uint32_t>& of_service,
              const std::string& a, const Window& wa, const std::string& b, const Window& wb) {
  const SideRule rule{a, wa, b, wb};
  SideFlags flags = FlagsOfSides(set, of_service, rule);
  std::vector<int8_t> keep(set.series.size(), -1);  // -1 unknown, 0 drop, 1 keep
  Sides sides;
  for (uint32_t i : of_service) {
    const store::RecordBill& v = set.samples[i];
    const int side = rule.Of(set, v);
    if (side == 0) continue;
    const store::SampleSeries& s = set.series[v.series];
    if (keep[v.series] < 0) {
      const auto& [pa, pb] = flags.pairs[s.endpoint];
      const FlagPairs& other = side == 1 ? pb : pa;
      bool ok = true;
      for (const auto& flag : flags.PairsOf(s)) ok = ok && other.count(flag) > 0;
      keep[v.series] = ok ? 1 : 0;
    }
    if (keep[v.series] == 0) continue;
    Side& out = side == 1 ? sides[s.endpoint].first : sides[s.endpoint].second;
    out.at_us.push_back(v.start_us);
    out.cost.push_back(v.bill);
  }
  return sides;
}

// BeforeAfter — the windows of one endpoint's before/after comparison: one
// step (before_after_us) a side, widened a step at a time, both sides alike,
// until each side holds `need` requests; never past the next commit nor
// beyond max_before_after_us a side. A rollout in a quiet hour is judged on
// wider windows instead of skipped for good; a busy one keeps the narrow
// windows that carry least drift. The choice depends only on data that
// cannot change any more (windows that have passed), so a comparison is
// judged once, not again and again as its windows fill.
struct BeforeAfter {
  enum class State { kJudge, kWaiting, kTooFew } state = State::kTooFew;
  Window before, after;
  size_t n_before = 0, n_after = 0;  // requests in the windows (as far as they go)
  int64_t next_look_us = 0;          // kWaiting: when the current windows are complete
};

// `next_us`: when the next commit came, or INT64_MAX.
BeforeAfter ChooseBeforeAfter(const Side& a, const Side& b, int64_t b_first_us, int64_t next_us,
                              const DetectOptions& o, size_t need) {
  BeforeAfter out;
  const int64_t step = o.before_after_us;
  const int64_t widest = o.WidestSideUs();
  for (int64_t w = step;; w += step) {
    const int64_t after_end = std::min(b_first_us + w, next_us);
    out.before = {b_first_us - w, b_first_us};
    out.after = {b_first_us, after_end};
    out.n_before = a.CountIn(out.before);
    out.n_after = b.CountIn(out.after);
    if (after_end > o.now_us) {  // the after-window has not passed yet
      out.state = BeforeAfter::State::kWaiting;
      out.next_look_us = after_end;
      return out;
    }
    if (out.n_before >= need && out.n_after >= need) {
      out.state = BeforeAfter::State::kJudge;
      return out;
    }
    if (w + step > widest || after_end >= next_us) {
      out.state = BeforeAfter::State::kTooFew;
      return out;
    }
  }
}

// WaitingReason() — what a before/after comparison waits for, in human time.
std::string WaitingReason(const BeforeAfter& c, size_t need, int64_t b_first_us,
                          const DetectOptions& o) {
  const int64_t last_look = b_first_us + o.WidestSideUs();
  std::string text = "waiting for the after-window to fill (" + std::to_string(c.n_after) + " of " +
                     std::to_string(need) + " samples so far); next look at " +
                     UtcMinute(c.next_look_us) + " (in " + HumanDelay(c.next_look_us - o.now_us) +
                     ")";
  if (last_look > c.next_look_us) text += ", judged by " + UtcMinute(last_look) + " at the latest";
  return text;
}

// RolloutTest — one endpoint's comparison, waiting to be judged with the
// rollout's others.
struct RolloutTest {
  Finding finding;
  Window a, b;  // the windows of side A and side B
};

// JudgeRollout() — a rollout tests every endpoint of its service, and one
// of ten unchanged endpoints would clear a 90% interval's threshold by
// chance far too often. So the rollout's tests are one family: an endpoint
// alerts only when its test survives Holm's step-down at `rollout_alpha`
// (a rollout that changed nothing pages nobody, 95% of the time, however
// many endpoints it has) and its interval clears its threshold. Holm's gate
// leaves the interval at its nominal level: a regression clearly seen on its
// endpoint keeps the narrow interval its samples earned.
Status JudgeRollout(Run& run, std::vector<RolloutTest>& tests) {
  const DetectOptions& o = run.options;
  std::vector<double> p;
  for (const RolloutTest& t : tests) p.push_back(t.finding.p_value);
  const std::vector<double> adjusted = stats::Holm(p);
  for (size_t i = 0; i < tests.size(); ++i) {
    Finding& f = tests[i].finding;
    f.q_value = adjusted[i];
    const bool skipped = Judge(o, f);
    if (adjusted[i] > o.rollout_alpha) f.alert = false;
    if (f.alert) {
      const Window& a = tests[i].a;
      const Window& b = tests[i].b;
      if (Status s = RolloutRootCause(run, f, a.from_us, a.to_us, b.from_us, b.to_us); !s.ok())
        return s;
    }
    File(run, std::move(f), skipped);
  }
  return OkStatus();
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

// Rollout — commit B replacing commit A in one service, and its windows.
struct Rollout {
  std::string service;
  CommitSpan a, b;
  int64_t next_us = INT64_MAX;  // when the next commit came; INT64_MAX: none yet
  Window overlap;               // the minutes both served
  bool overlap_judged = false;  // closed (A gone, or the next came) and long enough
  Window before, after;         // the first step a side (function tests use these)
  Window widest_before, widest_after;
};

Rollout MakeRollout(const std::string& service, const CommitSpan& a, const CommitSpan& b,
                    int64_t next_us, const DetectOptions& o) {
  Rollout r{service, a, b, next_us, {}, false, {}, {}, {}, {}};
  const int64_t end = std::min(next_us, o.now_us + 1);  // no data past either
  const int64_t widest = o.WidestSideUs();
  r.overlap = {b.first_us, std::min(a.last_us + 1, end)};
  // A comparison is judged on complete windows only: looking again and
  // again while a window fills would multiply the chances of a false
  // alert. Side by side is complete once the old commit is gone (or the
  // next one came).
  r.overlap_judged = (a.last_us < o.now_us - kGoneAfterUs || next_us <= o.now_us) &&
                     r.overlap.to_us - r.overlap.from_us >= o.min_overlap_us;
  r.before = {b.first_us - o.before_after_us, b.first_us};
  r.after = {b.first_us, std::min(b.first_us + o.before_after_us, end)};
  r.widest_before = {b.first_us - widest, b.first_us};
  r.widest_after = {b.first_us, std::min(b.first_us + widest, end)};
  return r;
}

Finding RolloutFinding(const Rollout& r, const std::string& unit) {
  Finding f;
  f.kind = "rollout";
  f.service = r.service;
  f.cause = "commit " + r.b.commit + " vs " + r.a.commit;
  f.base_commit = r.a.commit;
  f.target_commit = r.b.commit;
  f.commits = {r.b.commit};
  f.unit = unit;
  return f;
}

// TestEndpoint() — one endpoint's comparison: side by side when the overlap
// holds enough of both (it cancels time-of-day and traffic-mix effects that
// before/after cannot), else before/after on widening windows. RETURNS: the
// test, or nullopt when it was filed as a skip.
Result<std::optional<RolloutTest>> TestEndpoint(Run& run, const Rollout& r, Finding f,
                                                const std::pair<Side, Side>* side_by_side,
                                                const std::pair<Side, Side>& before_after) {
  const DetectOptions& o = run.options;
  RolloutTest t;
  std::vector<double> costs_a, costs_b;
  if (side_by_side != nullptr && side_by_side->first.cost.size() >= o.min_samples &&
      side_by_side->second.cost.size() >= o.min_samples) {
    f.method = "side-by-side";
    t.a = t.b = r.overlap;
    costs_a = side_by_side->first.cost;
    costs_b = side_by_side->second.cost;
  } else {
    // Before/after also carries whatever drifted between its windows
    // (time of day, load): it needs twice the samples to be judged.
    const size_t need = 2 * o.min_samples;
    const BeforeAfter c = ChooseBeforeAfter(before_after.first, before_after.second, r.b.first_us,
                                            r.next_us, o, need);
    f.method = "before/after";
    if (c.state != BeforeAfter::State::kJudge) {
      f.samples_before = c.n_before;
      f.samples_after = c.n_after;
      f.from_us = c.before.from_us;
      f.to_us = c.after.to_us;
      f.reason = c.state == BeforeAfter::State::kWaiting
                     ? WaitingReason(c, need, r.b.first_us, o)
                     : "too few samples (" + std::to_string(c.n_before) + " before, " +
                           std::to_string(c.n_after) + " after in " +
                           HumanDelay(c.after.to_us - c.after.from_us) + " a side; need " +
                           std::to_string(need) + " each before/after)";
      File(run, std::move(f), /*skipped=*/true);
      return std::optional<RolloutTest>();
    }
    t.a = c.before;
    t.b = c.after;
    costs_a = before_after.first.CostsIn(c.before);
    costs_b = before_after.second.CostsIn(c.after);
  }
  f.from_us = t.a.from_us;
  f.to_us = t.b.to_us;
  f.samples_before = costs_a.size();
  f.samples_after = costs_b.size();
  f.mean_before = Mean(costs_a);
  f.mean_after = Mean(costs_b);
  f.effect = stats::ShiftInterval(costs_a, costs_b, o.confidence);
  f.p_value = stats::MannWhitneyPValue(costs_a, costs_b);
  if (Status s = SetThreshold(run, f, o.threshold_floor); !s.ok()) return s;
  t.finding = std::move(f);
  return std::optional<RolloutTest>(std::move(t));
}

// AddRolloutFunctionTests() — the function tests over the widest sides (a
// function's share is steady enough across hours, and profiles are few:
// an hour a side holds too few to see 0.5% of a request).
Status AddRolloutFunctionTests(Run& run, const Rollout& r, const Finding& endpoint_base) {
  auto moments = [&](const Window& w, const std::string& commit) {
    store::FunctionMomentsQuery q;
    q.from_us = w.from_us;
    q.to_us = w.to_us;
    q.service = r.service;
    q.commit = commit;
    return run.store.FunctionMomentsOf(q);
  };
  Result<std::vector<store::FunctionMoments>> ma = moments(r.widest_before, r.a.commit);
  if (!ma.ok()) return ma.status();
  Result<std::vector<store::FunctionMoments>> mb = moments(r.widest_after, r.b.commit);
  if (!mb.ok()) return mb.status();
  Finding base = endpoint_base;
  base.kind = "function-rollout";
  base.method = "before/after";
  base.from_us = r.widest_before.from_us;
  base.to_us = r.widest_after.to_us;
  AddFunctionTests(run, base, *ma, *mb);
  return OkStatus();
}

// DetectRollout() — every endpoint of one rollout, judged together, then its function tests.
Status DetectRollout(Run& run, const Rollout& r, const std::vector<uint32_t>& of_service) {
  Sides side_by_side;
  if (r.overlap_judged)
    side_by_side = Collect(run.samples, of_service, r.a.commit, r.overlap, r.b.commit, r.overlap);
  const Sides before_after =
      Collect(run.samples, of_service, r.a.commit, r.widest_before, r.b.commit, r.widest_after);
  const Finding base = RolloutFinding(r, run.samples.UnitOf(r.service));
  std::vector<RolloutTest> tested;
  for (const auto& [endpoint, sides] : before_after) {
    Finding f = base;
    f.endpoint = endpoint;
    auto it = side_by_side.find(endpoint);
    Result<std::optional<RolloutTest>> t =
        TestEndpoint(run, r, std::move(f), it == side_by_side.end() ? nullptr : &it->second, sides);
    if (!t.ok()) return t.status();
    if (t->has_value()) tested.push_back(std::move(**t));
  }
  if (Status s = JudgeRollout(run, tested); !s.ok()) return s;
  return AddRolloutFunctionTests(run, r, base);
}

}  // namespace

Status DetectRollouts(Run& run) {
  const DetectOptions& o = run.options;
  Result<std::vector<store::DeployEntry>> deploys = run.store.Deploys("");
  if (!deploys.ok()) return deploys.status();
  // Each service's samples, found once: every rollout of it reads them twice.
  std::map<std::string, std::vector<uint32_t>> by_service;
  for (uint32_t i = 0; i < run.samples.samples.size(); ++i)
    by_service[run.samples.series[run.samples.samples[i].series].service].push_back(i);
  for (const auto& [service, commits] : CommitsByService(*deploys)) {
    for (size_t i = 1; i < commits.size(); ++i) {
      const CommitSpan& b = commits[i];
      if (b.first_us < o.now_us - o.window_us || b.first_us > o.now_us) continue;
      const int64_t next = i + 1 < commits.size() ? commits[i + 1].first_us : INT64_MAX;
      const Rollout r = MakeRollout(service, commits[i - 1], b, next, o);
      if (Status s = DetectRollout(run, r, by_service[service]); !s.ok()) return s;
    }
  }
  return OkStatus();
}

}  // namespace cpuledger::detect::internal
