// tests/cpp/detect/function_test.cc — CompareFunctions() on small
// constructed profiles: a new function and a grown one are tested and sized
// as a share of the request; a cost shift nets to nothing; a population
// shift tests nothing; and through the detectors, a change that went away
// does not alert while one that stays does.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "detect/detect.h"
#include "detect/function_tests.h"
#include "profile/call_tree.h"
#include "store/store.h"
#include "temp_dir.h"

namespace cpuledger::detect {
namespace {

// Request — one profiled request: function -> self cost.
using Request = std::map<std::string, double>;

// Side() — the moments the store would keep of these requests.
EndpointProfiles Side(const std::vector<Request>& requests) {
  std::map<std::string, FunctionSample> by_name;
  for (const Request& r : requests) {
    double total = 0;
    for (const auto& [name, cost] : r) total += cost;
    for (const auto& [name, cost] : r) {
      FunctionSample& s = by_name[name];
      s.function = name;
      s.sum += cost;
      s.sum_sq += cost * cost;
      s.share_sum += cost / total;
      s.share_sq += (cost / total) * (cost / total);
    }
  }
  EndpointProfiles p;
  p.requests = static_cast<double>(requests.size());
  for (auto& [name, s] : by_name) p.functions.push_back(s);
  return p;
}

// Costs — the base shape of a request: view 20, load 40, render 30, db 10
// (of 100), each with its own noise, and the whole request scaled by a
// lognormal (the request-to-request swings shares are free of).
struct Costs {
  double view = 20, load = 40, render = 30, db = 10;
  double helper = 0;  // a function the base never runs
  double scale_sigma = 0.3;
};

std::vector<Request> Requests(const Costs& c, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0, 1);
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    const double scale = std::exp(c.scale_sigma * z(rng));
    auto noisy = [&](double x) { return x * scale * std::exp(0.1 * z(rng)); };
    Request r{{"view", noisy(c.view)},
              {"load", noisy(c.load)},
              {"render", noisy(c.render)},
              {"db", noisy(c.db)}};
    if (c.helper > 0) r["helper"] = noisy(c.helper);
    for (auto it = r.begin(); it != r.end();) it = it->second > 0 ? std::next(it) : r.erase(it);
    out.push_back(std::move(r));
  }
  return out;
}

const FunctionChange* Find(const std::vector<FunctionChange>& changes, const std::string& name) {
  for (const FunctionChange& c : changes)
    if (c.function == name) return &c;
  return nullptr;
}

// Clears() — the change's 90% interval lies above `threshold` (share of the request).
bool Clears(const FunctionChange& c, double threshold) {
  return c.tested && c.share - 1.645 * c.se > threshold;
}

TEST(CompareFunctions, NewFunctionIsTestedFromABaseOfZero) {
  Costs after;
  after.helper = 5;  // +5% of the request, in a function the base never ran
  const auto changes =
      CompareFunctions(Side(Requests({}, 400, 1)), Side(Requests(after, 400, 2)), {});
  const FunctionChange* h = Find(changes, "helper");
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->tested);
  EXPECT_TRUE(h->is_new);
  EXPECT_EQ(h->before, 0);
  EXPECT_NEAR(h->share, 0.05, 0.01);             // a share of the base request
  EXPECT_NEAR(h->added, 5.0, 0.15 * 5.0 + 0.5);  // in the profiles' unit, per request
  EXPECT_TRUE(Clears(*h, 0.0025));
  // The others shrank in share only in proportion: nothing to say about them.
  for (const char* other : {"view", "load", "render", "db"})
    EXPECT_FALSE(Clears(*Find(changes, other), 0.0025)) << other;
}

TEST(CompareFunctions, GrownFunctionIsSizedAsAShareOfTheRequest) {
  Costs after;
  after.render = 33;  // +3 of 100: 3% of the request, a 10% change of render itself
  const auto changes =
      CompareFunctions(Side(Requests({}, 2000, 3)), Side(Requests(after, 2000, 4)), {});
  const FunctionChange* r = Find(changes, "render");
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->is_new);
  EXPECT_NEAR(r->share, 0.03, 0.006);  // not the +10% of the function's own cost
  EXPECT_TRUE(r->moved_from.empty());
  EXPECT_TRUE(Clears(*r, 0.0025));
}

TEST(CompareFunctions, TinyChangeOfASmallFunctionStaysUnderTheEndpointThreshold) {
  // The wrapper case of issue 15: +21% of a function worth 0.05% of the
  // request is a 0.01% change of the request, far under any threshold.
  Costs before, after;
  before.helper = 0.05;
  after.helper = 0.0605;
  const auto changes =
      CompareFunctions(Side(Requests(before, 2000, 5)), Side(Requests(after, 2000, 6)), {});
  const FunctionChange* h = Find(changes, "helper");
  ASSERT_NE(h, nullptr);
  EXPECT_FALSE(h->tested);  // below the smallest share tested
  EXPECT_FALSE(Clears(*h, 0.0025));
}

TEST(CompareFunctions, CostMovedToANewFunctionNetsToNothing) {
  Costs after;
  after.load = 25;    // load split in two: 15 of its 40 moved into helper,
  after.helper = 15;  // the request's total unchanged
  const auto changes =
      CompareFunctions(Side(Requests({}, 1000, 7)), Side(Requests(after, 1000, 8)), {});
  const FunctionChange* h = Find(changes, "helper");
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->tested);
  EXPECT_EQ(h->moved_from, std::vector<std::string>{"load"});
  EXPECT_NEAR(h->share, 0, 0.01);
  EXPECT_FALSE(Clears(*h, 0.0025));
}

TEST(CompareFunctions, CostMovedBetweenExistingFunctionsNetsToNothing) {
  Costs after;
  after.load = 30;  // inlined: 10 of load's cost now runs in render
  after.render = 40;
  const auto changes =
      CompareFunctions(Side(Requests({}, 1000, 9)), Side(Requests(after, 1000, 10)), {});
  const FunctionChange* r = Find(changes, "render");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->moved_from, std::vector<std::string>{"load"});
  EXPECT_FALSE(Clears(*r, 0.0025));
}

TEST(CompareFunctions, PopulationShiftTestsNoRisingFunction) {
  // ~300 profiled requests a side; the target's requests cost more in the
  // slow frames (db and load) the way a heavier population would: every
  // function's cost rose, two of them beyond the rest.
  Costs after;
  after.load = 52;
  after.db = 14;
  after.view = 22;
  after.render = 33;
  const auto changes =
      CompareFunctions(Side(Requests({}, 300, 11)), Side(Requests(after, 300, 12)), {});
  // load and db rose beyond proportion together: neither is tested.
  for (const FunctionChange& c : changes) EXPECT_FALSE(Clears(c, 0.0025)) << c.function;
  for (const char* riser : {"load", "db"}) {
    EXPECT_FALSE(Find(changes, riser)->tested) << riser;
    EXPECT_NE(Find(changes, riser)->reason.find("population"), std::string::npos) << riser;
  }
}

TEST(CompareFunctions, UniformlyCostlierRequestsMoveNoShare) {
  Costs after;
  after.view = 24, after.load = 48, after.render = 36, after.db = 12;  // x1.2 everywhere
  const auto changes =
      CompareFunctions(Side(Requests({}, 300, 13)), Side(Requests(after, 300, 14)), {});
  for (const FunctionChange& c : changes) EXPECT_FALSE(Clears(c, 0.0025)) << c.function;
}

// ManyRequests() — `n` profiled requests of 24 functions f00..f23 with
// base costs 2..8, each times `factor[i]`, plus `added` in f07.
std::vector<Request> ManyRequests(const std::vector<double>& factor, double added, int n,
                                  uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0, 1);
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    const double scale = std::exp(0.3 * z(rng));
    Request r;
    for (size_t f = 0; f < factor.size(); ++f) {
      const double base = 2 + static_cast<double>(f % 7);
      const std::string name = (f < 10 ? "f0" : "f") + std::to_string(f);
      r[name] = (base * factor[f] + (f == 7 ? added : 0)) * scale * std::exp(0.1 * z(rng));
    }
    out.push_back(std::move(r));
  }
  return out;
}

// ~300 profiled requests a side, every function 11-31% costlier at once
// (issue 15's mix shift): no function clears the threshold.
TEST(CompareFunctions, EveryFunctionCostlierAtOnceClearsNothing) {
  std::vector<double> heavier(24);
  for (size_t f = 0; f < heavier.size(); ++f)
    heavier[f] = 1.11 + 0.20 * static_cast<double>(f) / 23;
  const auto changes = CompareFunctions(Side(ManyRequests(std::vector<double>(24, 1), 0, 300, 24)),
                                        Side(ManyRequests(heavier, 0, 300, 25)), {});
  for (const FunctionChange& c : changes) EXPECT_FALSE(Clears(c, 0.0025)) << c.function;
}

TEST(CompareFunctions, TooFewRequestsTestNothing) {
  Costs after;
  after.helper = 20;
  const auto changes =
      CompareFunctions(Side(Requests({}, 30, 15)), Side(Requests(after, 30, 16)), {});
  for (const FunctionChange& c : changes) EXPECT_FALSE(c.tested);
}

// Through the detectors and a real store: a rollout at 2 h adds a helper
// worth 3% of the request on one endpoint; in the "went away" world the
// helper's cost is gone from 4 h on (a warm-up, a cache filling); in the
// "early flag" world a flag turned on for every request at 30 min makes
// `load` 40% costlier, before the first request the detectors read.
// In the "changed code" world commit B makes `render` `render_growth`
// times costlier among `utilities` small functions, and profiles carry code
// hashes (with `code_hashes`): B changed render's code and two utilities'.
// In the "successor" world commit C replaces B `successor_min` minutes
// after B came (0: never), changing `load`'s code (not its cost) when
// `successor_changes_load`, or adding the new helper.
struct World {
  bool new_helper = true;
  bool went_away = false;
  bool early_flag = false;
  double render_growth = 1;
  int utilities = 0;
  bool code_hashes = false;
  int successor_min = 0;
  bool successor_changes_load = false;
  bool successor_adds_helper = false;  // C brings the new helper (B did not)
};

class RolloutWorld : public ::testing::Test {
 protected:
  static constexpr int64_t kUs = 1'000'000;
  static constexpr int64_t kT0 = 1767225600LL * kUs;  // 2026-01-01T00:00:00Z
  static constexpr int64_t kHour = 3600 * kUs;

  record::RequestRecord Make(int64_t t, World world, std::mt19937_64& rng) {
    // Requests swing widely (the endpoint level cannot see 3%); shares do not.
    std::lognormal_distribution<double> noise(0, 0.6), frame(0, 0.1);
    const bool b = t >= kT0 + 2 * kHour;
    record::RequestRecord r;
    r.set_service("shop");
    r.set_endpoint("/list/");
    r.set_method("GET");
    r.set_status(200);
    r.set_host("web-1");
    r.set_start_time_unix_us(t);
    r.set_sample_rate(1.0);
    const bool c = world.successor_min > 0 && t >= kT0 + 2 * kHour + world.successor_min * 60 * kUs;
    r.set_commit(c ? "ccc" : b ? "bbb" : "aaa");
    const double base = 1e6 * noise(rng);
    const bool helper = b && !(world.went_away && t >= kT0 + 4 * kHour);
    const bool flag_on = world.early_flag && t >= kT0 + kHour / 2;
    if (flag_on) (*r.mutable_flags())["fast_load"] = "on";
    profile::CallTree tree("instructions", "hardware", "fast");
    const auto view = tree.Child(profile::kRoot, tree.Intern({"shop/views.py", 10, "view"}));
    uint64_t total = 0;
    auto leaf = [&](const char* name, uint32_t line, double cost) {
      const auto n = tree.Child(view, tree.Intern({"shop/logic.py", line, name}));
      const auto c = static_cast<uint64_t>(cost * frame(rng));
      tree.AddCall(n, c, c, true);
      total += c;
    };
    leaf("load", 20, base * (flag_on ? 0.7 : 0.5));
    leaf("render", 30, base * 0.3 * (b ? world.render_growth : 1));
    const bool with_helper = (helper && world.new_helper) || (c && world.successor_adds_helper);
    if (with_helper && world.utilities == 0) leaf("new_helper", 40, base * 0.03);
    std::vector<std::string> names;
    for (int k = 0; k < world.utilities; ++k) names.push_back("util_" + std::to_string(k));
    for (int k = 0; k < world.utilities; ++k)
      leaf(names[static_cast<size_t>(k)].c_str(), static_cast<uint32_t>(100 + k), base * 0.01);
    const auto self = static_cast<uint64_t>(base * 0.2);
    tree.AddCall(view, self, self + total, true);
    tree.ToProto(r.mutable_profile());
    for (record::ProfileFunction& f : *r.mutable_profile()->mutable_functions()) {
      if (!world.code_hashes) break;
      const bool changed =
          b && (f.name() == "render" || f.name() == "util_0" || f.name() == "util_1");
      const bool load_changed = c && world.successor_changes_load && f.name() == "load";
      f.set_code_hash(std::hash<std::string>{}(f.name()) + (changed ? 1 : 0) +
                      (load_changed ? 2 : 0));
    }
    r.mutable_cpu()->set_counter_source("hardware");
    r.mutable_cpu()->set_instructions(self + total);
    r.mutable_cpu()->set_cpu_ns((self + total) / 3);
    r.set_wall_us((self + total) / 3000 + 1);
    return r;
  }

  // Run() — 7 hours of one request every 5 s, the detectors at 7 h reading
  // from 1 h on (a 5 h window, before/after sides of at most 1 h).
  std::vector<Finding> Run(World world) {
    test_support::TempDir dir;
    store::SqliteOptions options;
    options.path = dir.File("s.db");
    auto opened = store::OpenSqliteStore(options);
    EXPECT_TRUE(opened.ok());
    std::mt19937_64 rng(42);
    for (int hour = 0; hour < 7; ++hour) {  // one batch an hour, as a sender would send
      record::Batch batch;
      batch.set_sender("t");
      batch.set_sequence(static_cast<uint64_t>(hour + 1));
      for (int64_t t = kT0 + hour * kHour; t < kT0 + (hour + 1) * kHour; t += 5 * kUs)
        *batch.add_records() = Make(t, world, rng);
      const record::Batch* one[] = {&batch};
      EXPECT_TRUE((*opened)->AppendBatches(one).ok());
    }
    DetectOptions o;
    o.now_us = kT0 + 7 * kHour;
    o.window_us = 5 * kHour;
    o.before_after.max_side_us = kHour;
    auto report = RunDetectors(**opened, o);
    EXPECT_TRUE(report.ok());
    skipped_.clear();
    for (const Finding& f : report->skipped)
      if (f.kind == "function-rollout") skipped_.push_back(f);
    std::vector<Finding> fn;
    for (const Finding& f : report->alerts) {
      EXPECT_EQ(f.kind, "function-rollout");  // not the endpoint: its requests are too noisy
      if (f.kind == "function-rollout") fn.push_back(f);
    }
    return fn;
  }

  std::vector<Finding> skipped_;  // Run()'s function-rollout skips
};

TEST_F(RolloutWorld, ChangeThatStaysAlertsNamingTheNewFunction) {
  const std::vector<Finding> alerts = Run({});
  ASSERT_FALSE(alerts.empty());
  EXPECT_EQ(alerts.front().function, "shop/logic.py:40:new_helper");
  EXPECT_EQ(alerts.front().mean_before, 0);
  EXPECT_GT(alerts.front().effect.lo, alerts.front().threshold);
  EXPECT_NEAR(alerts.front().effect.estimate, 0.03, 0.01);
}

TEST_F(RolloutWorld, ChangeThatWentAwayDoesNotAlert) {
  EXPECT_TRUE(Run({.went_away = true}).empty());
}

// Commit A's side reached back to 0 h, past the flag event the detectors
// can see: its first 30 min unflagged, `load` rose beside the helper, and
// no alert named the helper.
TEST_F(RolloutWorld, FlagTurnedOnBeforeTheRequestsReadIsNotTheRollouts) {
  const std::vector<Finding> alerts = Run({.early_flag = true});
  ASSERT_FALSE(alerts.empty());
  for (const Finding& f : alerts) EXPECT_EQ(f.function, "shop/logic.py:40:new_helper");
}

// A function grown by 0.4% of the request among 150 others: tested with
// them all alike, the interval its selection out of 153 needs reaches below
// the threshold; where the profiles say which code B changed (render and
// two others), most of the family's level goes there, the interval is
// narrower and it alerts. The same requests either way.
TEST_F(RolloutWorld, AFunctionWhoseCodeChangedIsTestedFirst) {
  World world{.render_growth = 1.029, .utilities = 150};
  EXPECT_TRUE(Run(world).empty());
  world.code_hashes = true;
  const std::vector<Finding> alerts = Run(world);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts.front().function, "shop/logic.py:30:render");
  EXPECT_NE(alerts.front().method.find("code changed"), std::string::npos) << alerts.front().method;
  EXPECT_GT(alerts.front().effect.lo, alerts.front().threshold);
}

// A build replaced 15 minutes after it came (180 profiled requests, too few
// to test a grown function) by one that changed none of the endpoint's
// code: B's profiles are pooled with C's, and render's growth (3% of the
// request) alerts on B, the commit that brought it. When C changed `load`'s
// code, C may cost otherwise: B stands alone, too few, nothing alerts, and
// each function whose code B changed is reported skipped, saying why.
TEST_F(RolloutWorld, AQuickSuccessorWithTheSameCodeLendsItsProfiles) {
  World world{.new_helper = false, .render_growth = 1.1, .code_hashes = true, .successor_min = 15};
  const std::vector<Finding> alerts = Run(world);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts.front().function, "shop/logic.py:30:render");
  EXPECT_EQ(alerts.front().target_commit, "bbb");
  EXPECT_NE(alerts.front().method.find("pooled over 1 commit(s) before and 2 after"),
            std::string::npos)
      << alerts.front().method;
  EXPECT_GT(alerts.front().effect.lo, alerts.front().threshold);
  EXPECT_TRUE(skipped_.empty());
  world.successor_changes_load = true;
  EXPECT_TRUE(Run(world).empty());
  const auto render = std::find_if(skipped_.begin(), skipped_.end(), [](const Finding& f) {
    return f.function == "shop/logic.py:30:render" && f.target_commit == "bbb";
  });
  ASSERT_NE(render, skipped_.end());
  EXPECT_EQ(render->reason.rfind("too few profiled requests to test it (", 0), 0u)
      << render->reason;
  EXPECT_NE(render->reason.find("200 a side needed"), std::string::npos) << render->reason;
  for (const Finding& f : skipped_) EXPECT_NE(f.method.find("code changed"), std::string::npos);
}

// A successor that adds code to the endpoint (a helper B never ran) does
// not lend B its profiles: the helper's cost would pass for B's. It is
// C's, and the alert names C.
TEST_F(RolloutWorld, ASuccessorThatAddedCodeIsNotPooled) {
  const World world{
      .new_helper = false, .code_hashes = true, .successor_min = 15, .successor_adds_helper = true};
  const std::vector<Finding> alerts = Run(world);
  ASSERT_FALSE(alerts.empty());
  for (const Finding& f : alerts) {
    EXPECT_EQ(f.target_commit, "ccc") << f.function << " " << f.method;
    EXPECT_EQ(f.function, "shop/logic.py:40:new_helper");
  }
}

}  // namespace
}  // namespace cpuledger::detect
