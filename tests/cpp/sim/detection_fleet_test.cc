// tests/cpp/sim/detection_fleet_test.cc — the detection fleet is what issue 6
// asks for, and its ground truth is true of the records it generates.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "sim/detection_fleet.h"

namespace cpuledger::sim {
namespace {

struct Moments {
  double n = 0, sum = 0, sum_sq = 0;
  void Add(double x) {
    n += 1;
    sum += x;
    sum_sq += x * x;
  }
  double Mean() const { return n > 0 ? sum / n : 0; }
  double Se() const { return n > 1 ? std::sqrt((sum_sq - sum * sum / n) / (n - 1) / n) : 0; }
};

// WithinSe() — b/a is `expected` within 5 standard errors plus `slack`.
::testing::AssertionResult WithinSe(const Moments& a, const Moments& b, double expected,
                                    double slack) {
  if (a.n < 2 || b.n < 2) return ::testing::AssertionFailure() << "too few samples";
  const double ratio = b.Mean() / a.Mean();
  const double se = ratio * std::hypot(a.Se() / a.Mean(), b.Se() / b.Mean());
  if (std::abs(ratio - expected) <= 5 * se + slack) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "ratio " << ratio << ", expected " << expected << " (se "
                                       << se << ", n " << a.n << " vs " << b.n << ")";
}

TEST(DetectionFleetTest, ShapeIsWhatTheIssueAsks) {
  const DetectionFleet f = MakeDetectionFleet(3, 2);
  const FleetConfig& c = f.config;
  size_t endpoints = 0, new_helpers = 0;
  for (const ServiceSpec& s : c.services) {
    endpoints += s.endpoints.size();
    for (const EndpointSpec& e : s.endpoints) {
      // The drawn call tree; the new functions' frames (weight 0) come on top.
      const size_t drawn = static_cast<size_t>(std::count_if(
          e.calls.begin(), e.calls.end(), [](const CallSpec& x) { return x.weight > 0; }));
      new_helpers += e.calls.size() - drawn;
      EXPECT_GE(e.cpu_sigma, 0.2);
      EXPECT_LE(e.cpu_sigma, 0.3);
      EXPECT_GE(e.slow_mode_share, 0.05);
      EXPECT_LE(e.slow_mode_share, 0.15);
      EXPECT_GE(e.slow_mode_factor, 2.0);
      EXPECT_LE(e.slow_mode_factor, 5.0);
      EXPECT_GE(drawn, 10u);
      EXPECT_LE(drawn, 16u);
    }
  }
  EXPECT_EQ(c.services.size(), 5u);
  EXPECT_EQ(endpoints, 50u);
  EXPECT_EQ(c.flags.size(), 20u);
  EXPECT_GE(c.rollouts.size(), 2 * 27u);
  EXPECT_LE(c.rollouts.size(), 2 * 33u);
  EXPECT_EQ(c.mix_shifts.size(), 6u);
  std::map<std::string, std::set<double>> sizes;
  for (const InjectedRegression& r : f.truth.regressions) sizes[r.kind].insert(r.size);
  EXPECT_EQ(sizes["rollout"], (std::set<double>{0.01, 0.02, 0.03, 0.05, 0.10}));
  EXPECT_EQ(sizes["flag"], (std::set<double>{0.01, 0.02, 0.03, 0.05, 0.10}));
  EXPECT_EQ(sizes["function-rollout"], std::set<double>{0.005});
  EXPECT_EQ(sizes["function-flag"], std::set<double>{0.005});
  EXPECT_EQ(sizes["new-function-rollout"], std::set<double>{0.005});
  std::map<std::string, size_t> counts;
  for (const InjectedRegression& r : f.truth.regressions) ++counts[r.kind];
  EXPECT_EQ(counts["new-function-rollout"], counts["function-rollout"]);
  EXPECT_GE(counts["new-function-rollout"], 6u);
  EXPECT_EQ(new_helpers, counts["new-function-rollout"]);
  // A new function: a frame of weight 0 under its endpoint's logic, and its
  // rollout's culprit (no cost before it, 0.5% of the request after).
  for (const InjectedRegression& r : f.truth.regressions) {
    if (r.kind != "new-function-rollout") continue;
    SCOPED_TRACE(r.service + " " + r.endpoint + " " + r.function);
    const ServiceSpec& s = *std::find_if(c.services.begin(), c.services.end(),
                                         [&](const ServiceSpec& x) { return x.name == r.service; });
    const EndpointSpec& e =
        *std::find_if(s.endpoints.begin(), s.endpoints.end(),
                      [&](const EndpointSpec& x) { return x.name == r.endpoint; });
    const auto frame = std::find_if(e.calls.begin(), e.calls.end(), [&](const CallSpec& x) {
      return FunctionKey(x) == r.function;
    });
    ASSERT_NE(frame, e.calls.end());
    EXPECT_EQ(frame->weight, 0.0);
    ASSERT_GE(frame->parent, 0);
    EXPECT_NE(e.calls[static_cast<size_t>(frame->parent)].name.find("_logic"), std::string::npos);
    EXPECT_EQ(ExpectedFunctionShare(e, r.function), 0.0);
    EXPECT_TRUE(std::isinf(r.function_change));
    const auto roll = std::find_if(c.rollouts.begin(), c.rollouts.end(),
                                   [&](const RolloutSpec& x) { return x.to == r.commit_to; });
    ASSERT_NE(roll, c.rollouts.end());
    EXPECT_EQ(roll->culprit, r.function);
    EXPECT_DOUBLE_EQ(roll->cost_factor, 1.005);
    EXPECT_EQ(roll->endpoints, std::vector<std::string>{r.endpoint});
  }
  size_t noop_rollouts = 0, noop_flags = 0;
  for (const NoopChange& n : f.truth.noops) (n.kind == "rollout" ? noop_rollouts : noop_flags)++;
  EXPECT_GE(noop_rollouts, 10u);
  EXPECT_EQ(noop_flags, 8u);
  // Each rollout regression names a real rollout, with 2 h of data on each side.
  for (const InjectedRegression& r : f.truth.regressions) {
    if (r.kind.find("rollout") == std::string::npos) continue;
    const auto it = std::find_if(c.rollouts.begin(), c.rollouts.end(), [&](const RolloutSpec& s) {
      return s.service == r.service && s.from == r.commit_from && s.to == r.commit_to;
    });
    ASSERT_NE(it, c.rollouts.end()) << r.commit_to;
    EXPECT_EQ(it->at_s, r.start_s);
    EXPECT_GE(r.start_s, 7200);
    EXPECT_LE(r.start_s + r.spread_s + 7200, c.duration_s);
    EXPECT_FALSE(r.function.empty());
  }
  // Same seed, same fleet.
  const DetectionFleet again = MakeDetectionFleet(3, 2);
  ASSERT_EQ(again.truth.regressions.size(), f.truth.regressions.size());
  for (size_t i = 0; i < f.truth.regressions.size(); ++i) {
    EXPECT_EQ(again.truth.regressions[i].commit_to, f.truth.regressions[i].commit_to);
    EXPECT_EQ(again.truth.regressions[i].function, f.truth.regressions[i].function);
    EXPECT_EQ(again.truth.regressions[i].endpoint_change, f.truth.regressions[i].endpoint_change);
  }
}

// One simulated day, measured: each injected regression moves the right
// endpoint (or function) by its size on its commit or flag; nothing else moves.
// Profiles carry one code hash per version of a function: a rollout gives
// a new one to the functions it changed (its regression's among them) and
// to no other.
TEST(DetectionFleetTest, ARolloutChangesTheCodeHashOfWhatItChangedOnly) {
  DetectionFleet f = MakeDetectionFleet(7, 1);
  f.config.duration_s = 10 * 3600;
  std::map<std::string, std::set<uint64_t>> hashes;  // "service commit function"
  FleetSimulator sim(f.config);
  while (std::optional<record::Batch> b = sim.NextMinute())
    for (const record::RequestRecord& r : b->records())
      for (const record::ProfileFunction& fn : r.profile().functions()) {
        EXPECT_NE(fn.code_hash(), 0u);
        hashes[r.service() + " " + r.commit() + " " + fn.file() + ":" + std::to_string(fn.line()) +
               ":" + fn.name()]
            .insert(fn.code_hash());
      }
  for (const auto& [key, set] : hashes) EXPECT_EQ(set.size(), 1u) << key;

  size_t compared = 0, changed = 0;
  for (const RolloutSpec& r : f.config.rollouts) {
    if (r.at_s + r.spread_s >= f.config.duration_s) continue;
    EXPECT_GE(r.changed.size(), 2u);
    for (const auto& [key, set] : hashes) {
      const std::string prefix = r.service + " " + r.from + " ";
      if (key.rfind(prefix, 0) != 0) continue;
      const std::string function = key.substr(prefix.size());
      auto after = hashes.find(r.service + " " + r.to + " " + function);
      if (after == hashes.end()) continue;
      const std::string name = function.substr(function.find(':', function.find(':') + 1) + 1);
      const bool listed = std::count(r.changed.begin(), r.changed.end(), function) +
                              std::count(r.changed.begin(), r.changed.end(), name) >
                          0;
      EXPECT_EQ(*set.begin() != *after->second.begin(), listed) << r.to << " " << function;
      ++compared;
      changed += listed;
    }
  }
  EXPECT_GT(compared, 100u);
  EXPECT_GT(changed, 5u);
  for (const InjectedRegression& r : f.truth.regressions) {
    if (r.kind.find("rollout") == std::string::npos) continue;
    for (const RolloutSpec& spec : f.config.rollouts) {
      if (spec.to != r.commit_to) continue;
      EXPECT_NE(std::find(spec.changed.begin(), spec.changed.end(), r.function), spec.changed.end())
          << r.function;
    }
  }
}

TEST(DetectionFleetTest, GroundTruthHoldsInTheRecords) {
  DetectionFleet f = MakeDetectionFleet(5, 1);
  f.config.cost_diurnal = 0;  // costs independent of the hour: commits can be compared whole
  // Per "service endpoint commit": bills of requests with every flag off
  // (a costly flag must not leak into a commit comparison).
  std::map<std::string, Moments> by_commit;
  std::map<std::string, Moments> by_flag;       // "service endpoint flag value"
  std::map<std::string, Moments> fn_by_commit;  // "service endpoint commit function"
  std::map<std::string, Moments> fn_by_flag;    // "service endpoint flag value function"
  std::map<std::string, Moments> fn_share;      // as fn_by_commit: its share of the bill
  std::set<std::string> watched;                // functions of interest
  for (const InjectedRegression& r : f.truth.regressions) watched.insert(r.function);
  std::map<std::string, int64_t> peak_counts;  // per endpoint, 13:00-15:00
  FleetSimulator sim(f.config);
  while (std::optional<record::Batch> b = sim.NextMinute()) {
    for (const record::RequestRecord& r : b->records()) {
      const std::string ep = r.service() + " " + r.endpoint();
      const double bill = static_cast<double>(r.cpu().instructions());
      const int64_t hour = r.start_time_unix_us() / 3'600'000'000LL % 24;
      if (hour >= 13 && hour < 15) ++peak_counts[ep];
      bool any_on = false;
      for (const auto& [flag, value] : r.flags()) {
        any_on |= value == "on";
        by_flag[ep + " " + flag + " " + value].Add(bill);
      }
      if (!any_on) by_commit[ep + " " + r.commit()].Add(bill);
      if (!r.has_profile()) continue;
      std::map<std::string, double> self;
      for (int i = 1; i < r.profile().nodes_size(); ++i) {
        const record::ProfileNode& n = r.profile().nodes(i);
        const record::ProfileFunction& fn = r.profile().functions(static_cast<int>(n.function()));
        const std::string key = fn.file() + ":" + std::to_string(fn.line()) + ":" + fn.name();
        if (watched.count(key)) self[key] += static_cast<double>(n.self_cost());
      }
      for (const std::string& key : watched) {
        const double x = self.count(key) ? self[key] : 0.0;
        if (!any_on) fn_by_commit[ep + " " + r.commit() + " " + key].Add(x);
        if (!any_on) fn_share[ep + " " + r.commit() + " " + key].Add(x / bill);
        for (const auto& [flag, value] : r.flags())
          fn_by_flag[ep + " " + flag + " " + value + " " + key].Add(x);
      }
    }
  }
  size_t heavy = 0;
  for (const auto& [ep, n] : peak_counts) heavy += n >= 5000;
  EXPECT_GE(heavy, 8u) << "endpoints with >= 5k sampled requests in the 2 peak hours";

  for (const InjectedRegression& r : f.truth.regressions) {
    const std::string ep = r.service + " " + r.endpoint;
    SCOPED_TRACE(r.kind + " " + ep + " " + r.commit_to + r.flag + " size " +
                 std::to_string(r.size));
    // The endpoint, on its own commit or flag. Function kinds are 0.5%
    // by the model's expected share (slack for the split's noise).
    const double slack = r.kind.rfind("function", 0) == 0 ? 0.002 : 0.0005;
    if (r.kind == "new-function-rollout") {
      // New code: no cost at all before; after, exactly its share of the
      // bill (its rollout is the last effect on its own commit's requests).
      EXPECT_TRUE(WithinSe(by_commit[ep + " " + r.commit_from], by_commit[ep + " " + r.commit_to],
                           1 + r.endpoint_change, slack));
      const Moments& before = fn_share[ep + " " + r.commit_from + " " + r.function];
      const Moments& after = fn_share[ep + " " + r.commit_to + " " + r.function];
      EXPECT_GT(before.n, 10);
      EXPECT_EQ(before.sum, 0.0);
      EXPECT_GT(after.n, 10);
      EXPECT_NEAR(after.Mean(), r.size / (1 + r.size), 1e-4);
    } else if (r.kind.find("rollout") != std::string::npos) {
      EXPECT_TRUE(WithinSe(by_commit[ep + " " + r.commit_from], by_commit[ep + " " + r.commit_to],
                           1 + r.endpoint_change, slack));
      EXPECT_TRUE(WithinSe(fn_by_commit[ep + " " + r.commit_from + " " + r.function],
                           fn_by_commit[ep + " " + r.commit_to + " " + r.function],
                           1 + r.function_change, 0.03 * (1 + r.function_change)));
    } else {
      EXPECT_TRUE(WithinSe(by_flag[ep + " " + r.flag + " off"], by_flag[ep + " " + r.flag + " on"],
                           1 + r.endpoint_change, slack));
      EXPECT_TRUE(WithinSe(fn_by_flag[ep + " " + r.flag + " off " + r.function],
                           fn_by_flag[ep + " " + r.flag + " on " + r.function],
                           1 + r.function_change, 0.03 * (1 + r.function_change)));
    }
  }
  // Every endpoint on every rollout other than its own regressions: no change.
  std::set<std::string> regressed;  // "service endpoint commit_to"
  for (const InjectedRegression& r : f.truth.regressions)
    regressed.insert(r.service + " " + r.endpoint + " " + r.commit_to);
  size_t compared = 0;
  for (const RolloutSpec& roll : f.config.rollouts) {
    for (const ServiceSpec& s : f.config.services) {
      if (s.name != roll.service) continue;
      for (const EndpointSpec& e : s.endpoints) {
        const std::string ep = s.name + " " + e.name;
        if (regressed.count(ep + " " + roll.to)) continue;
        const Moments& a = by_commit[ep + " " + roll.from];
        const Moments& b = by_commit[ep + " " + roll.to];
        if (a.n < 100 || b.n < 100) continue;
        EXPECT_TRUE(WithinSe(a, b, 1.0, 0.0005)) << ep << " " << roll.from << " -> " << roll.to;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 150u);
  // No-op flags: on and off cost the same wherever they are carried.
  for (const NoopChange& n : f.truth.noops) {
    if (n.kind != "flag") continue;
    for (const FlagSpec& flag : f.config.flags) {
      if (flag.name != n.flag) continue;
      for (const std::string& e : flag.scope) {
        const std::string ep = flag.service + " " + e;
        EXPECT_TRUE(WithinSe(by_flag[ep + " " + flag.name + " off"],
                             by_flag[ep + " " + flag.name + " on"], 1.0, 0.0005))
            << ep << " " << flag.name;
      }
    }
  }
}

}  // namespace
}  // namespace cpuledger::sim
