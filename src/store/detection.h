// src/store/detection.h — what the store keeps for the detectors (src/detect):
// the raw per-request costs of a slice, per-function moments of the profiled
// requests, the history of measured effects, and the alerts.
//
//   SampleSet s = *store->Samples({.from_us = t0, .to_us = t1, .service = "shop"});
//   for (const RecordBill& b : s.samples) s.series[b.series].commit ...
//
// The store knows nothing of how these are judged; it keeps and returns them.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cpuledger::store {

// SampleQuery — raw samples in [from_us, to_us), optionally of one service /
// endpoint. Raw samples are kept for the raw retention window only.
struct SampleQuery {
  int64_t from_us = 0;
  int64_t to_us = std::numeric_limits<int64_t>::max();
  std::optional<std::string> service;
  std::optional<std::string> endpoint;
  size_t max_samples = 20'000'000;  // beyond it: ResourceExhausted (narrow the range)
};

// SampleSeries — the dimensions shared by many samples.
struct SampleSeries {
  std::string service, endpoint, method, host, cluster, region, commit;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> flags;  // sorted by name
};

// RecordBill — one record: its series, start, and CPU bill in the set's
// unit (instructions when the whole service slice has them, else cpu_ns).
struct RecordBill {
  uint32_t series = 0;  // index into SampleSet::series
  int64_t start_us = 0;
  double bill = 0;
  double sample_rate = 1;
};

// SampleSet — Samples()'s answer. `unit` is per service (units[i] for
// services[i]); a sample's unit is its service's.
struct SampleSet {
  std::vector<SampleSeries> series;
  std::vector<RecordBill> samples;                         // in start order
  std::vector<std::pair<std::string, std::string>> units;  // (service, unit)
  std::string UnitOf(const std::string& service) const;
};

// FunctionMomentsQuery — the per-function moments of a slice (hours that
// overlap the range, as FunctionQuery).
struct FunctionMomentsQuery {
  int64_t from_us = 0;
  int64_t to_us = std::numeric_limits<int64_t>::max();
  std::optional<std::string> service;
  std::optional<std::string> endpoint;
  std::optional<std::string> commit;
  // flag — unset: moments over all profiled requests; set: one set of rows
  // per value of this flag ("" = requests without it).
  std::optional<std::string> flag;
};

// FunctionMoments — for one (service, endpoint, commit, unit, function) over
// the hours selected: the profiled requests of the slice (n) and the sum and
// sum of squares over those requests of the function's self cost in each
// (0 for a request that never ran it), so mean and variance per request follow.
// NOTE: a record whose profile stands for several requests (Profile.requests
// > 1) adds its sums as one observation; the middleware sends one each.
struct FunctionMoments {
  std::string service, endpoint, commit, unit;
  std::string flag, flag_value;  // "" / "" unless FunctionMomentsQuery::flag was set
  std::string function;          // "file:line:name"
  double requests = 0, sum = 0, sum_sq = 0;
  // The same for its share of each request's profiled cost (self / the
  // profile's total): free of the request-to-request swings of the whole
  // request's cost, so a change of the function itself stands out.
  double share_sum = 0, share_sq = 0;
};

// FunctionCodesQuery — the code one commit of a service ran.
struct FunctionCodesQuery {
  std::string service, commit;
};

// FunctionCode — one function's code hash on that commit
// (record.ProfileFunction.code_hash), as its profiles carried it: a
// rollout's functions whose hash differs from the commit before, or that
// the commit before never ran, are the ones it changed.
struct FunctionCode {
  std::string function;  // "file:line:name"
  uint64_t code_hash = 0;
};

// EffectRecord — one measured effect, kept so each endpoint's (and
// function's) threshold can be learned from its own history of noise. The
// store keeps the newest per (service, endpoint, function, kind, cause).
struct EffectRecord {
  int64_t at_us = 0;
  std::string service, endpoint;
  std::string function;  // "" for the endpoint total, else its function key
  std::string kind;      // "rollout", "flag", ...
  std::string cause;     // "commit b7e41d0 vs 9f3c2a1"
  double estimate = 0, lo = 0, hi = 0;
  bool alerted = false;
};

// EffectHistoryQuery — the newest `limit` effects of one endpoint or function.
struct EffectHistoryQuery {
  std::string service, endpoint, function, kind;
  int64_t before_us = std::numeric_limits<int64_t>::max();
  size_t limit = 50;
};

// AlertState — where an alert is in its lifecycle.
//
//   open ──► acknowledged ──► resolved
//     └──────────────────────────┘
//
// Allowed: open -> acknowledged (someone is on it), open -> resolved and
// acknowledged -> resolved (by hand, or by the detector when a later
// comparison shows the effect gone). Nothing leaves resolved: a resolved
// alert is history, and when its key fires again the detector opens a NEW
// alert that names the old one (Alert::reopens), so an alert's events read
// as one story and a reopen is counted, not hidden. Acknowledging twice, or
// going back to open, would let one alert page twice; both are refused.
enum class AlertState : uint8_t { kOpen, kAcknowledged, kResolved };

// AlertStateName() — "open", "acknowledged", "resolved" (the stored and API form).
inline const char* AlertStateName(AlertState s) {
  switch (s) {
    case AlertState::kOpen:
      return "open";
    case AlertState::kAcknowledged:
      return "acknowledged";
    case AlertState::kResolved:
      return "resolved";
  }
  return "open";
}

// ParseAlertState() — the inverse of AlertStateName(); nullopt for anything else.
inline std::optional<AlertState> ParseAlertState(std::string_view text) {
  for (AlertState s : {AlertState::kOpen, AlertState::kAcknowledged, AlertState::kResolved})
    if (text == AlertStateName(s)) return s;
  return std::nullopt;
}

// AlertTransitionRefusal() — why `from` -> `to` is not allowed (the one
// transition function: see AlertState); "" when it is.
inline std::string AlertTransitionRefusal(AlertState from, AlertState to) {
  if (from == AlertState::kResolved)
    return "the alert is resolved; a resolved alert stays resolved (the detector opens a new one"
           " if its key fires again)";
  if (to == AlertState::kOpen) return "an alert cannot go back to open";
  if (from == to) return std::string("the alert is already ") + AlertStateName(to);
  return "";
}

// Alert — a stored alert. `key` de-duplicates: at most one alert per key
// that is not resolved (service + endpoint + function + kind + cause).
// `body` is the detector's JSON.
struct Alert {
  int64_t id = 0;
  std::string key, service, endpoint, kind, state;  // state: AlertStateName()
  int64_t opened_us = 0, updated_us = 0;
  std::string body;
  int64_t reopens = 0;  // the resolved alert of the same key this one reopens; 0: none
};

// AlertEvent — one transition of an alert, kept in order (the first is its opening).
struct AlertEvent {
  int64_t alert_id = 0;
  int64_t at_us = 0;
  std::string state;   // the state entered: "open", "acknowledged", "resolved"
  std::string by;      // "detector", "api", or the user's name
  std::string note;    // free text; "" none
  std::string detail;  // JSON: for the detector's resolve, the comparison that showed
                       // the effect gone; "" none
};

// AlertTransition — a request to move alert `id` to `to` (TransitionAlert()).
struct AlertTransition {
  int64_t id = 0;
  AlertState to = AlertState::kResolved;
  int64_t at_us = 0;
  std::string by, note, detail;  // as AlertEvent's
};

// TransitionOutcome — what TransitionAlert() did: `applied`, or `refusal`
// (AlertTransitionRefusal()'s text) with the alert unchanged.
struct TransitionOutcome {
  Alert alert;  // as it is now
  bool applied = false;
  std::string refusal;
};

// AlertQuery — alerts opened in [from_us, to_us), newest first.
struct AlertQuery {
  int64_t from_us = 0;
  int64_t to_us = std::numeric_limits<int64_t>::max();
  std::optional<std::string> service;
  std::optional<std::string> state;
  std::optional<std::string> key;  // one key's alerts only
  size_t limit = 1000;
};

// UpsertOutcome — what UpsertAlert() did.
struct UpsertOutcome {
  int64_t id = 0;
  bool opened = false;  // true: a new alert; false: the live one with this key was updated
};

}  // namespace cpuledger::store
