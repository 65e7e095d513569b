// bench/detect/function_bench.cc — does function-level detection catch new
// and grown code, and stay quiet on cost shifts and population shifts?
// (issue 15)
//
// Per seed, the function fleet (src/sim/function_regressions.h) goes into a
// fresh SQLite store one simulated minute at a time, and every
// `--interval-min` minutes the detectors run as the server's schedule runs
// them (RunDetectors() then RecordRun(); the newly opened alerts count).
// Scored against the cases:
//  * new-function / grown-function: caught by a function alert naming the
//    function with the case's rollout (target_commit), or by an endpoint
//    alert of that rollout whose first culprit is the function;
//  * cost-shift / population-shift: a function alert on the case's
//    endpoint and cause is a false alert of that kind;
//  * any other function-level alert is a false alert ("other").
// Per seed one row; then the worst and the median over the seeds beside
// the targets: 0.5% function recall >= 60% (grown and new), false function
// alerts <= 1 per simulated day, none from cost or population shifts.
//
// Usage: function_bench [--seeds FIRST-LAST] [--hours H] [--interval-min M] [--verbose]
//        (develop on seeds 1-5; report on 6-20, the default)
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "detect/detect.h"
#include "sim/function_regressions.h"
#include "store/store.h"

namespace cpuledger {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kUs = 1'000'000;

struct Args {
  uint64_t first = 6, last = 20;
  int hours = 16;
  int interval_min = 60;
  bool verbose = false;
};

std::optional<Args> ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (arg == "--verbose") {
      a.verbose = true;
    } else if (arg == "--seeds" && v) {
      const std::string s = argv[++i];
      const size_t dash = s.find('-');
      a.first = std::strtoull(s.c_str(), nullptr, 10);
      a.last =
          dash == std::string::npos ? a.first : std::strtoull(s.c_str() + dash + 1, nullptr, 10);
    } else if (arg == "--hours" && v) {
      a.hours = std::atoi(argv[++i]);
    } else if (arg == "--interval-min" && v) {
      a.interval_min = std::atoi(argv[++i]);
    } else {
      return std::nullopt;
    }
  }
  if (a.last < a.first || a.hours < 8 || a.interval_min < 1) return std::nullopt;
  return a;
}

// Count — cases of one kind, and how many the detectors caught (or alerted on).
struct Count {
  int n = 0, hit = 0;
  double Rate() const { return n > 0 ? static_cast<double>(hit) / n : 0; }
};

struct SeedResult {
  uint64_t seed = 0;
  Count new_small, new_large, grown, shift, population, noop;
  int other_false = 0;
  double days = 0;
  double FalsePerDay() const { return (shift.hit + population.hit + other_false) / days; }
  double FunctionRecall() const {
    const int n = new_small.n + grown.n;
    return n > 0 ? static_cast<double>(new_small.hit + grown.hit) / n : 0;
  }
};

bool IsFunctionKind(const std::string& kind) { return kind.rfind("function", 0) == 0; }

// Matches() — whether alert `f` names case `c`'s function for its rollout.
bool Names(const detect::Finding& f, const sim::FunctionCase& c) {
  if (f.service != c.service || f.endpoint != c.endpoint) return false;
  if (!c.commit_to.empty() && f.target_commit != c.commit_to) return false;
  if (!c.flag.empty() && f.flag != c.flag) return false;
  if (IsFunctionKind(f.kind)) return f.function == c.function;
  return !f.top_functions.empty() && f.top_functions.front().function == c.function;
}

bool SameCause(const detect::Finding& f, const sim::FunctionCase& c) {
  if (f.service != c.service || f.endpoint != c.endpoint) return false;
  if (!c.commit_to.empty()) return f.target_commit == c.commit_to;
  return !c.flag.empty() && f.flag == c.flag;
}

void PrintAlert(const char* label, const detect::Finding& f) {
  std::printf("    %-8s %-16s %s %s :: %s (%s) %+.4f [%+.4f, %+.4f] thr %.4f n %llu/%llu\n", label,
              f.kind.c_str(), f.service.c_str(), f.endpoint.c_str(), f.function.c_str(),
              f.cause.c_str(), f.effect.estimate, f.effect.lo, f.effect.hi, f.threshold,
              static_cast<unsigned long long>(f.samples_before),
              static_cast<unsigned long long>(f.samples_after));
}

std::optional<SeedResult> RunSeed(const Args& args, uint64_t seed) {
  const sim::FunctionFleet fleet = sim::MakeFunctionFleet(seed, args.hours);
  const fs::path dir = fs::temp_directory_path() /
                       ("function_bench." + std::to_string(getpid()) + "." + std::to_string(seed));
  fs::remove_all(dir);
  fs::create_directories(dir);
  store::SqliteOptions options;
  options.path = (dir / "fn.db").string();
  Result<std::unique_ptr<store::Store>> opened = store::OpenSqliteStore(options);
  if (!opened.ok()) {
    std::cerr << "function_bench: " << opened.status().message() << "\n";
    return std::nullopt;
  }
  store::Store& st = **opened;
  sim::FleetSimulator sim(fleet.config);
  std::vector<detect::Finding> alerts;
  std::map<std::string, detect::Finding> last;  // --verbose: each function test's latest word
  uint64_t sequence = 0;
  for (int minute = 0;; ++minute) {
    std::optional<record::Batch> batch = sim.NextMinute();
    if (!batch) break;
    batch->set_sender("function-bench");
    batch->set_sequence(++sequence);
    const record::Batch* one[] = {&*batch};
    if (Result<std::vector<store::AppendOutcome>> a = st.AppendBatches(one); !a.ok()) {
      std::cerr << "function_bench: append: " << a.status().message() << "\n";
      return std::nullopt;
    }
    if ((minute + 1) % args.interval_min != 0) continue;
    detect::DetectOptions o;
    o.now_us = (fleet.config.start_unix_s + (minute + 1) * 60LL) * kUs;
    Result<detect::DetectReport> report = detect::RunDetectors(st, o);
    if (!report.ok()) {
      std::cerr << "function_bench: detect: " << report.status().message() << "\n";
      return std::nullopt;
    }
    Result<std::vector<detect::AlertChange>> changes = detect::RecordRun(st, *report);
    if (!changes.ok()) return std::nullopt;
    for (const detect::AlertChange& c : *changes)
      if (c.state == "open") alerts.push_back(c.finding);
    if (args.verbose)
      for (const detect::Finding& f : report->evaluated)
        if (IsFunctionKind(f.kind)) last[f.endpoint + "|" + f.function + "|" + f.cause] = f;
  }
  opened->reset();
  fs::remove_all(dir);

  SeedResult r;
  r.seed = seed;
  r.days = args.hours / 24.0;
  std::vector<bool> used(alerts.size(), false);
  for (const sim::FunctionCase& c : fleet.cases) {
    Count* count = c.kind == "new-function"       ? (c.size < 0.01 ? &r.new_small : &r.new_large)
                   : c.kind == "grown-function"   ? &r.grown
                   : c.kind == "cost-shift"       ? &r.shift
                   : c.kind == "population-shift" ? &r.population
                                                  : &r.noop;
    ++count->n;
    bool hit = false;
    for (size_t i = 0; i < alerts.size(); ++i) {
      const detect::Finding& f = alerts[i];
      const bool truth = c.kind == "new-function" || c.kind == "grown-function";
      if (truth ? Names(f, c) : (IsFunctionKind(f.kind) && SameCause(f, c))) {
        hit = true;
        used[i] = true;
        if (args.verbose && !truth) PrintAlert(c.kind.c_str(), f);
      }
      // An endpoint alert of a true case's own cause is not a function alert to score.
      if (truth && !IsFunctionKind(f.kind) && SameCause(f, c)) used[i] = true;
    }
    count->hit += hit;
    if (args.verbose && (c.kind == "new-function" || c.kind == "grown-function") && !hit) {
      std::printf("    missed   %-16s %s %s :: %s (%s) %.3f\n", c.kind.c_str(), c.service.c_str(),
                  c.endpoint.c_str(), c.function.c_str(), c.commit_to.c_str(), c.size);
      const auto it = last.find(c.endpoint + "|" + c.function + "|commit " + c.commit_to + " vs " +
                                c.commit_from);
      if (it != last.end()) PrintAlert("last", it->second);
    }
  }
  for (size_t i = 0; i < alerts.size(); ++i) {
    if (used[i] || !IsFunctionKind(alerts[i].kind)) continue;
    ++r.other_false;
    if (args.verbose) PrintAlert("false", alerts[i]);
  }
  return r;
}

std::string Pct(const Count& c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d/%d %3.0f%%", c.hit, c.n, 100 * c.Rate());
  return buf;
}

double Quantile(std::vector<double> v, bool worst_low, bool median) {
  std::sort(v.begin(), v.end());
  if (median) return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return worst_low ? v.front() : v.back();
}

int Run(const Args& args) {
  std::vector<SeedResult> results;
  std::printf("function_bench: seeds %llu-%llu, %d simulated hours each, detectors every %d min\n",
              static_cast<unsigned long long>(args.first),
              static_cast<unsigned long long>(args.last), args.hours, args.interval_min);
  std::printf("%-5s %-13s %-13s %-13s %-11s %-11s %-11s %-6s %s\n", "seed", "new 0.5%", "new 2%",
              "grown 0.5%", "cost-shift", "population", "noop", "other", "false/day");
  for (uint64_t seed = args.first; seed <= args.last; ++seed) {
    std::optional<SeedResult> r = RunSeed(args, seed);
    if (!r) return 1;
    std::printf("%-5llu %-13s %-13s %-13s %-11s %-11s %-11s %-6d %.1f\n",
                static_cast<unsigned long long>(seed), Pct(r->new_small).c_str(),
                Pct(r->new_large).c_str(), Pct(r->grown).c_str(), Pct(r->shift).c_str(),
                Pct(r->population).c_str(), Pct(r->noop).c_str(), r->other_false, r->FalsePerDay());
    std::fflush(stdout);
    results.push_back(*r);
  }
  auto column = [&](auto get) {
    std::vector<double> v;
    for (const SeedResult& r : results) v.push_back(get(r));
    return v;
  };
  const std::vector<double> recall = column([](const SeedResult& r) { return r.FunctionRecall(); });
  const std::vector<double> fresh = column([](const SeedResult& r) { return r.new_small.Rate(); });
  const std::vector<double> grown = column([](const SeedResult& r) { return r.grown.Rate(); });
  const std::vector<double> large = column([](const SeedResult& r) { return r.new_large.Rate(); });
  const std::vector<double> false_day = column([](const SeedResult& r) { return r.FalsePerDay(); });
  const std::vector<double> shifts = column(
      [](const SeedResult& r) { return static_cast<double>(r.shift.hit + r.population.hit); });
  Count total_recall, total_shift, total_pop;
  for (const SeedResult& r : results) {
    total_recall.n += r.new_small.n + r.grown.n;
    total_recall.hit += r.new_small.hit + r.grown.hit;
    total_shift.n += r.shift.n, total_shift.hit += r.shift.hit;
    total_pop.n += r.population.n, total_pop.hit += r.population.hit;
  }
  std::printf("\n%-44s %-8s %-8s %-8s %s\n", "figure (over seeds)", "worst", "median", "pooled",
              "target");
  // A row without a target says "-", not MET.
  auto row = [](const char* name, double worst, double median, const std::string& pooled,
                const char* target, bool met) {
    const bool has_target = *target != '\0';
    const char* verdict = !has_target ? "" : met ? "MET" : "NOT MET";
    std::printf("%-44s %-8.2f %-8.2f %-8s %s %s\n", name, worst, median, pooled.c_str(),
                has_target ? target : "-", verdict);
  };
  const double worst_recall = Quantile(recall, true, false);
  row("0.5% function recall (new + grown)", worst_recall, Quantile(recall, true, true),
      Pct(total_recall), ">= 0.60 (worst)", worst_recall >= 0.6);
  row("  new function 0.5%", Quantile(fresh, true, false), Quantile(fresh, true, true), "", "",
      true);
  row("  grown function 0.5%", Quantile(grown, true, false), Quantile(grown, true, true), "", "",
      true);
  row("new function 2%", Quantile(large, true, false), Quantile(large, true, true), "", "", true);
  row("false function alerts per day", Quantile(false_day, false, false),
      Quantile(false_day, false, true), "", "<= 1 (worst)", Quantile(false_day, false, false) <= 1);
  row("cost/population-shift function alerts", Quantile(shifts, false, false),
      Quantile(shifts, false, true), Pct(total_shift) + " " + Pct(total_pop), "0 (worst)",
      Quantile(shifts, false, false) == 0);
  return 0;
}

}  // namespace
}  // namespace cpuledger

int main(int argc, char** argv) {
  const std::optional<cpuledger::Args> args = cpuledger::ParseArgs(argc, argv);
  if (!args) {
    std::cerr << "usage: function_bench [--seeds FIRST-LAST] [--hours H] [--interval-min M] "
                 "[--verbose]\n";
    return 2;
  }
  return cpuledger::Run(*args);
}
