// src/detect/internal.h — what the detector files share; not an API.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "detect/detect.h"
#include "detect/function_tests.h"

namespace cpuledger::detect::internal {

// CodeChange — whether a rollout changed a function's code, as its
// profiles' code hashes tell (unknown: a builtin, or a sender without them).
enum class CodeChange { kUnknown, kSame, kChanged };

// CodeDiff — a rollout's two commits' code (store::FunctionCodesOf()), to
// tell the functions it changed: another hash than on the commit before, or
// none there. The same name and hash at another line of its file is the
// same code moved (lines added above it), not a change.
class CodeDiff {
 public:
  CodeDiff() = default;  // nothing known: every function kUnknown
  CodeDiff(const std::vector<store::FunctionCode>& before,
           const std::vector<store::FunctionCode>& after);
  CodeChange Of(const std::string& function) const;

 private:
  std::map<std::string, uint64_t> after_;                                 // function -> code hash
  std::set<std::tuple<std::string, std::string, uint64_t>> before_code_;  // file, name, hash
};

// FunctionTest — one function-level comparison, judged together with all
// others of the run (Benjamini–Hochberg) before it may alert.
struct FunctionTest {
  Finding finding;        // kind "function-rollout" / "function-flag", effect at `confidence`
                          // as a share of the request; top_functions holds the function itself
  FunctionChange change;  // function_tests.h
  std::shared_ptr<const EndpointProfiles> base;  // its endpoint's base side, to look again
  int64_t target_from_us = 0;                    // where its target side starts
  CodeChange code = CodeChange::kUnknown;        // rollouts: whether it changed the function
};

// Window — [from_us, to_us).
struct Window {
  int64_t from_us = 0, to_us = 0;
  bool Has(int64_t t) const { return t >= from_us && t < to_us; }
};

// Run — one RunDetectors() call: the store, the options, and what is found.
struct Run {
  store::Store& store;
  const DetectOptions& options;
  DetectReport& report;
  store::SampleSet samples;  // every service, [ReadFromUs(), now]
  std::vector<FunctionTest> function_tests;
  // Endpoint-level alerts' (service, endpoint, cause): a function-level
  // finding with the same is folded into that alert.
  std::vector<std::string> alerted_causes;
};

// Each detector adds its findings to run.report (and function tests to run.function_tests).
Status DetectRollouts(Run& run);
Status DetectFlags(Run& run);
Status DetectTrends(Run& run);
// JudgeFunctionTests() — BH over each cause's function tests, then the interval test.
Status JudgeFunctionTests(Run& run);
// RecheckAlerts() — a later look at each live alert's key, and at each
// firing key whose alert was resolved (lifecycle.cc; detect.h, Recheck).
Status RecheckAlerts(Run& run);
// HasRecheckKind() — whether RecheckAlerts() looks again at alerts of `kind`.
bool HasRecheckKind(const std::string& kind);

// SetThreshold() — the endpoint's (or function's) threshold and where it came from: config
// ("service endpoint"), else learned from its history of effects that did
// not alert (other causes than this one), else the floor.
Status SetThreshold(Run& run, Finding& f, double floor);
// Judge() — effect vs threshold: sets alert, or a skip reason for a too wide
// interval. RETURNS: true if the finding is a skip.
bool Judge(const DetectOptions& options, Finding& f);
// File() — puts a finding in the report (alerts, evaluated, skipped).
void File(Run& run, Finding f, bool skipped);

// Root causes: the function-level diff of the two sides.
// RolloutRootCause: the profile trees of (endpoint, commit A) over [a_from,
// a_to) against (endpoint, commit B) over [b_from, b_to), ranked by added self cost.
Status RolloutRootCause(Run& run, Finding& f, int64_t a_from, int64_t a_to, int64_t b_from,
                        int64_t b_to);
// FlagRootCause: the function moments of the flag's two values.
Status FlagRootCause(Run& run, Finding& f);

// SameCode() — whether commits x and y ran the same code for `functions`
// ("file:line:name"): the same of them, each with the same file, name and
// code hash (a function moved by lines added above it is the same code); a
// function only one ran is code added or removed. False when either ran
// none of them (no profile of theirs says): not known to be the same.
bool SameCode(const std::vector<store::FunctionCode>& x, const std::vector<store::FunctionCode>& y,
              const std::set<std::string>& functions);

// MomentsSum — function moments summed over commits, one commit at a time:
// each (endpoint, function)'s sums added, and each endpoint's profiled
// requests those of every commit (a commit's: the most any of its rows
// holds), set on every row by Rows() whether or not the function ran in
// each commit.
class MomentsSum {
 public:
  void Add(const store::FunctionMoments& m);  // a row of the current commit
  void EndCommit();                           // the current commit's rows are all in
  // RETURNS: the sums in (endpoint, function) order, commit "".
  std::vector<store::FunctionMoments> Rows() const;

 private:
  std::map<std::pair<std::string, std::string>, store::FunctionMoments> sums_;
  std::map<std::string, double> requests_;         // endpoint -> of the commits ended
  std::map<std::string, double> commit_requests_;  // endpoint -> of the current commit
};

// AddFunctionTests() — one test per function of each endpoint with cost on
// either side (moments rows of side A and side B; function_tests.h), using
// `base` for the finding's kind, service, cause, commits and window;
// `target_from_us`: where side B starts; `code`: which functions a rollout
// changed (a flag changes no code).
void AddFunctionTests(Run& run, const Finding& base,
                      const std::vector<store::FunctionMoments>& a_rows,
                      const std::vector<store::FunctionMoments>& b_rows, int64_t target_from_us,
                      const CodeDiff& code = {});

// InvertEffect() — the effect of A against B from B against A.
stats::Interval InvertEffect(const stats::Interval& e);

// SubtractDrift() — f's effect with a drift of `log_shift` (log scale)
// taken out, and its method saying so (", less a drift of +1.2%" + why).
void SubtractDrift(Finding& f, double log_shift, const std::string& why);

inline constexpr int64_t kUs = 1'000'000;
// A learned threshold needs this many past effects, and is capped here (an
// endpoint that noisy needs a config threshold, not a learned one).
inline constexpr size_t kMinHistory = 5;
inline constexpr double kMaxLearnedThreshold = 0.25;
// A stratified test (per commit, per flag value) leaves out a stratum with
// fewer requests than this on either side: too few for its own interval.
inline constexpr size_t kMinStratum = 20;

}  // namespace cpuledger::detect::internal
