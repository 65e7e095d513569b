// src/detect/detect.h — the detectors: rollout, flag, trend, and the same
// rollout and flag tests on function-level costs; root cause by profile diff.
//
//   DetectOptions options;  options.now_us = NowUnixUs();
//   Result<DetectReport> report = RunDetectors(*store, options);
//   Result<std::vector<AlertChange>> changes = RecordRun(*store, *report);  // to send
//
// What each detector compares (all effects are relative changes of the mean
// CPU per request, side B against side A; see stats.h):
//  * rollout — for each commit B first seen in the window and the commit A
//    it replaced (deploy log: the newest commit first seen before B that
//    still served when B came, so after a rollback the commit rolled back
//    to): per endpoint, A's and B's requests in the
//    minutes when both served (side-by-side, a mixed fleet during the
//    rollout), or A's requests just before B's first against B's just after
//    (before/after). Before/after windows scale with traffic: the narrowest
//    equal widths a side (at least min_side_us) that hold `samples` requests
//    each, so a busy endpoint is judged minutes after a plain restart and a
//    quiet one waits up to max_side_us (BeforeAfterWindows, per service);
//    equal widths keep a drift in time (time of day, load) from leaning to
//    one side. Side by side is preferred when it holds at least half the
//    requests before/after would: it cancels that drift. Judged once the
//    windows are complete (A gone, or the after-window passed), so a
//    comparison is not looked at again and again while it fills; before/
//    after has a second look on windows holding twice the samples once
//    those are complete (a narrower interval for a small regression on a
//    noisy endpoint), the two looks sharing the error (half each; when
//    both are complete, the higher lower bound speaks); requests
//    carrying a flag value the other side never carries are left out. The
//    effect is the rank-based shift (stats::ShiftInterval), within flag
//    strata when the requests carry several values of the endpoint's flags
//    (stats::PoolShifts): a flag on for more of one side's requests is a
//    change of mix, not of the commit's cost. A rollout's
//    endpoint tests are one family: Holm's step-down at rollout_alpha gates
//    each alert, so a rollout that changed nothing pages nobody, 95% of
//    the time, however many endpoints its service has.
//  * rollout, sequential — an endpoint too quiet for that (fewer than
//    2 * min_samples a side in the widest windows) is looked at every run
//    for sequential_horizon_us after B's first request: every request of B
//    since then against A's in the same span just before it (mirror
//    windows; each side with the commits next to it, after B or before A,
//    that ran the same code for the endpoint by its profiles' code hashes:
//    a build replaced within the hour by one that did not touch the
//    endpoint still has its hours), with an always-valid interval
//    (stats::MixtureConfidenceSequence at half of rollout_alpha shared
//    among the rollout's endpoints) that may be looked at as often as the
//    detectors run; it alerts as soon as that interval clears the
//    threshold. The last look (at the horizon, or on the whole life of B
//    and the commits pooled with it once they left the fleet) sees data
//    that no longer change and is judged once on
//    the fixed-sample interval at the other half.
//  * flag — for every flag and value seen in the window, per endpoint:
//    requests with the value against requests with the flag's reference
//    value (its most common set value; "unset" only for a flag with one set
//    value), within each commit, the commits' shifts pooled by inverse
//    variance. Benjamini–Hochberg over each flag value's endpoint tests (one
//    family, as a rollout's); intervals of the discoveries at the
//    FCR-adjusted level.
//  * function-rollout / function-flag — the same comparisons on each
//    function's share of its requests' profiled cost (store FunctionMoments;
//    the share is free of the whole request's swings), rollouts over
//    commit A's life before B against B's life (up to 12 h a side: profiles
//    are few; each side pooled with the commits next to it that ran the
//    same code for the endpoint, by their profiles' code hashes, so a
//    build replaced within the hour by one that did not touch the endpoint
//    still has its hours; cut where a flag value started or stopped
//    showing on the endpoint), flags over the window's commits together
//    (a commit's hours hold too few profiles; the flag's arms are weighted
//    to the same commit mix). A function that appears (base zero) or grows
//    is tested; its effect is the cost it added as a share of the request
//    (absolute per request in top_functions), net of cost moved from other
//    functions, and functions rising together with others (a population
//    shift) are not tested (function_tests.h). One-sided tests (only added
//    cost alerts), BH over each cause's function tests (a rollout's, a
//    flag value's), then the discoveries' lower bounds against the endpoint's
//    configured threshold or function_threshold_floor, both as shares of
//    the request; a rollout's change no longer seen in the latest hours
//    does not alert. Reported only where the endpoint total did not
//    already alert for the same cause (that alert names them).
//  * trend — for the heaviest endpoints, change points (stats.h) of the
//    daily mean cost; alerts on a rise in the last `trend_recent_days`.
// An effect alerts only when its whole interval lies beyond the endpoint's (or function's)
// threshold: learned from its own history of effects that did not alert
// (the 90th percentile of how far each |estimate| lay beyond its own
// interval's half-width, once 5 are known: the noise sampling does not
// explain), never below
// the floor, or set per endpoint in `thresholds`. Too few samples, or an
// interval wider than `max_interval_width`, is a skip with its reason; at
// function level, a function whose code the rollout changed that has too few
// profiled requests a side (`min_profiled`) to test.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "stats/stats.h"
#include "store/store.h"

namespace cpuledger::detect {

// Culprit — one function of a root cause, per request on side B vs side A.
struct Culprit {
  std::string function;           // "file:line:name"
  std::vector<std::string> path;  // its call path, outermost first (empty for flags)
  double before = 0, after = 0;   // self cost per profiled request
  double added = 0;               // after - before
};

// Finding — one comparison the detectors made: an alert, or a skip.
struct Finding {
  std::string kind;  // "rollout", "flag", "trend", "function-rollout", "function-flag"
  std::string service, endpoint;
  std::string function;  // its function key when function-level, else ""
  std::string cause;     // "commit b7e41d0 vs 9f3c2a1", "flag new_search=on vs off", "daily trend"
  std::string base_commit, target_commit;  // rollout (and the commit of a flag test)
  std::vector<std::string> commits;        // commits first seen in (A, B], oldest first
  // flag tests: the flag, the value tested and the value it is compared
  // with; "" is unset (a request without the flag, or with it sent empty).
  // One rule at both levels: flag_reference is the flag's most common value
  // (endpoint level: by requests of the endpoint; function level: by
  // profiled requests of the service), but "" only for a flag
  // with a single set value; "" is never the flag_value tested.
  // NOTE: the store keeps function moments only for values a request
  // carries, so at function level "" holds only flags sent empty, and a
  // flag with one set value has no function-level test.
  // An endpoint-level finding faces the costlier side: where the reference
  // cost more, the two are swapped (and the cause with them).
  std::string flag, flag_value, flag_reference;
  std::string method;      // "side-by-side", "before/after", "flag split", "change point"
  std::string unit;        // of the effect's side values
  stats::Interval effect;  // relative change B vs A
  double mean_before = 0, mean_after = 0;  // mean cost per request
  double threshold = 0;
  std::string threshold_source;  // "floor", "learned", "config"
  double p_value = 1, q_value = 1;
  uint64_t samples_before = 0, samples_after = 0;
  int64_t from_us = 0, to_us = 0;  // the data window compared
  bool alert = false;
  std::string reason;                  // for a skip: why (too few samples, interval too wide, ...)
  std::vector<Culprit> top_functions;  // root cause, most added cost first
  double explained_share = 0;          // share of the profiled regression the top functions explain
  // trend only: the last whole day against the day before, and the last 7
  // days' mean against the 7 before (NaN without the data).
  double daily_change = 0, weekly_change = 0;
  std::string Key() const;  // de-duplication key: service|endpoint|function|cause
};

// BeforeAfterWindows — how wide a before/after comparison's windows are:
// the narrowest equal widths a side, in whole minutes, holding `samples`
// requests on each side (the first look; the second holds twice that);
// never below min_side_us nor above max_side_us (at the widest,
// 2 * min_samples a side are enough to judge).
struct BeforeAfterWindows {
  size_t samples = 5000;
  int64_t min_side_us = 10LL * 60 * 1'000'000;
  int64_t max_side_us = 3LL * 3600 * 1'000'000;
};

struct DetectOptions {
  int64_t now_us = 0;
  int64_t window_us = 24LL * 3600 * 1'000'000;  // rollouts and flags looked at
  BeforeAfterWindows before_after;  // every service's, unless set in before_after_by_service
  std::map<std::string, BeforeAfterWindows> before_after_by_service;  // service -> its own
  int64_t min_overlap_us = 10LL * 60 * 1'000'000;                     // below it: before/after
  // Low traffic: how long after B's first request the sequential test looks
  // (each mirror window grows to this), and the effect (log scale) it is tuned for.
  int64_t sequential_horizon_us = 12LL * 3600 * 1'000'000;
  double sequential_tau = 0.03;
  double confidence = 0.90;       // two-sided
  double fdr = 0.05;              // Benjamini–Hochberg level for flag and function tests
  double rollout_alpha = 0.05;    // Holm's family-wise level over one rollout's endpoint tests
  size_t min_samples = 500;       // per side, endpoint level
  size_t min_profiled = 200;      // per side, function level
  double threshold_floor = 0.01;  // endpoint level
  double function_threshold_floor = 0.0025;  // function level, as a share of the request
  // changed_code_share — of a rollout's function tests' FDR level, the share
  // spent on the functions whose code it changed (function_tests.cc).
  double changed_code_share = 0.8;
  double min_function_share = 0.002;  // a function below this share of its endpoint is not tested
  double max_interval_width = 0.5;    // a wider interval is "too wide": skipped
  size_t top_functions = 5;
  std::map<std::string, double> thresholds;  // "service endpoint" -> fixed threshold
  size_t trend_endpoints = 10;               // heaviest endpoints watched for trends
  int trend_days = 28;                       // daily means looked at
  int trend_recent_days = 7;                 // a change point this recent can alert
  double trend_threshold = 0.03;             // relative rise of the level

  // DetectOptions::WindowsOf() — the before/after windows of `service`.
  const BeforeAfterWindows& WindowsOf(const std::string& service) const {
    auto it = before_after_by_service.find(service);
    return it == before_after_by_service.end() ? before_after : it->second;
  }
  // DetectOptions::WidestSideUs() — the widest a before/after side of any
  // service may grow.
  int64_t WidestSideUs() const {
    int64_t widest = std::max(before_after.max_side_us, before_after.min_side_us);
    for (const auto& [service, w] : before_after_by_service)
      widest = std::max({widest, w.max_side_us, w.min_side_us});
    return widest;
  }
  // DetectOptions::ReadFromUs() — the earliest request a run reads: the
  // window and the widest before-side ahead of it. Flag events are known
  // from there on only, so no comparison reaches further back.
  int64_t ReadFromUs() const { return now_us - window_us - WidestSideUs(); }
};

// Recheck — a later look at a stored alert's key (endpoint + cause) by
// this run, for the alert lifecycle (store/detection.h, AlertState). Only
// "rollout" and "flag" alerts are looked at again; function and trend
// alerts are resolved by hand.
//  * rollout: the endpoint's requests now (whichever commit serves them: B,
//    a rollback to A, a fix), over the last half-width of the alert's
//    window (10 min to 3 h, after the alert's window), against commit A's
//    requests in the alert's window, less the drift the service's other
//    endpoints saw between the two (the median of 5 or more of them).
//    Gone only once another commit serves most of those requests and the
//    commit that took over from B at the switch (a rollback, a fix) shows
//    a drop there that may be the whole effect (B's last requests against
//    its first, less the drift; the interval reaching back to the alert's
//    estimate): a next commit carrying B's cost on, or part of it, does not
//    resolve it. With that drop, the effect now need only be surely smaller
//    than the least the alert claimed: a drift of hours since is not B's.
//  * flag: the endpoint's requests of the last 2 h with the flag's value
//    against those with its reference. Gone when no request carries the
//    value any more (the flag turned off), or when the split reads gone
//    under another commit than the one that served it at the alert (a
//    fix). The value on for everyone is not gone: its cost is everywhere.
// The verdict (a rollout's gone: as said above): kGone when the estimate
// lies below the alert's threshold and the whole interval below the
// alert's own lower bound (surely less than
// the least the alert claimed: a still-present effect looked at run after
// run almost never passes that), kPresent when the interval still clears
// the threshold, kNone when no
// comparison could be made (too few samples, nothing newer yet): a key the
// run could not look at is never resolved for it.
struct Recheck {
  enum class Verdict { kNone, kGone, kPresent };
  int64_t alert_id = 0;
  std::string key;
  std::string state;   // the alert's state when looked at ("resolved": a reopen check)
  Finding comparison;  // the comparison made (effect, samples, window); reason when none
  Verdict verdict = Verdict::kNone;
};

struct DetectReport {
  int64_t ran_at_us = 0;
  std::vector<Finding> alerts;
  std::vector<Finding> skipped;
  size_t tests = 0;                // comparisons evaluated (alerted or not, skips excluded)
  std::vector<Finding> evaluated;  // every non-skipped comparison (alerted or not)
  std::vector<Recheck> rechecks;   // live alerts looked at again, and resolved keys firing
};

// AlertChange — one change of a stored alert's lifecycle: what the webhooks
// get, once per change (never again for an alert that did not change).
struct AlertChange {
  int64_t alert_id = 0;
  std::string change;  // "opened", "reopened", "acknowledged", "resolved"
  std::string state;   // the state it is in now
  std::string by;      // "detector", "api" or a user's name
  std::string note;
  int64_t at_us = 0, opened_us = 0;
  int64_t reopens = 0;        // "reopened": the resolved alert it follows
  Finding finding;            // the alert's finding
  nlohmann::json comparison;  // a resolve by the detector: the comparison that showed
                              // the effect gone (ToJson(Finding)); else null
};

// RunDetectors() — every detector once, over the window ending at now_us,
// then a look at the stored live alerts (Recheck). Reads only. RETURNS: the
// store's error if a read fails.
Result<DetectReport> RunDetectors(store::Store& store, const DetectOptions& options);

// RecordRun() — keeps the run's effects (for learned thresholds) and its
// alerts' lifecycle: resolves live alerts whose Recheck found the effect
// gone; opens an alert per firing key without a live one (a key whose last
// alert is resolved reopens only on evidence newer than the resolution:
// a Recheck that finds the effect present (a rollout's: in commit B's own
// requests since, so only B coming back reopens it), or, for kinds without one, a
// comparison reaching past it); a firing key with a live alert only updates
// its body. RETURNS: the changes made, for the webhooks.
Result<std::vector<AlertChange>> RecordRun(store::Store& store, const DetectReport& report);

// JSON — the API's and the CLI's form of a finding and a report.
nlohmann::json ToJson(const Finding& f);
nlohmann::json ToJson(const DetectReport& r);
// ToJson(AlertChange) — the webhook payload: the alert as GET /v1/alerts
// gives it (the finding, id, state, opened, reopens) and "change", "by",
// "note", "at", and "comparison" for a resolve by the detector.
nlohmann::json ToJson(const AlertChange& c);
Result<Finding> FindingFromJson(const nlohmann::json& j);

}  // namespace cpuledger::detect
