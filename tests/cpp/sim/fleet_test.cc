// tests/cpp/sim/fleet_test.cc — the simulator's contract (src/sim/fleet.h):
// determinism, rollout chains, the size of injected effects as measured from
// the records, valid profiles, mix shifts and no-ops that change no cost.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "profile/call_tree.h"
#include "record/codec.h"
#include "sim/detection_fleet.h"
#include "sim/fleet.h"

namespace cpuledger::sim {
namespace {

constexpr int64_t kHour = 3600;
constexpr int64_t kStart = 1767618000;  // 2026-01-05 13:00 UTC: near the daily peak

// Moments — a running mean and its standard error.
struct Moments {
  double n = 0, sum = 0, sum_sq = 0;
  void Add(double x) {
    n += 1;
    sum += x;
    sum_sq += x * x;
  }
  double Mean() const { return n > 0 ? sum / n : 0; }
  double Var() const { return n > 1 ? (sum_sq - sum * sum / n) / (n - 1) : 0; }
  double Se() const { return n > 0 ? std::sqrt(Var() / n) : 0; }
};

// ExpectRatio() — b/a of two means is `expected` within 4.5 standard errors
// (delta method) plus a small slack for model approximations.
void ExpectRatio(const Moments& a, const Moments& b, double expected, double slack,
                 const std::string& what) {
  ASSERT_GT(a.n, 1) << what;
  ASSERT_GT(b.n, 1) << what;
  const double ratio = b.Mean() / a.Mean();
  const double se = ratio * std::hypot(a.Se() / a.Mean(), b.Se() / b.Mean());
  EXPECT_NEAR(ratio, expected, 4.5 * se + slack)
      << what << " (n " << a.n << " vs " << b.n << ", se " << se << ")";
}

std::string DeterministicBytes(const record::Batch& batch) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  batch.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

CallSpec Call(std::string name, int parent, double weight, bool slow = false) {
  return CallSpec{"app/" + name + ".py", 10, std::move(name), parent, weight, slow};
}

// A tree with a shared decorator at two paths and slow frames.
std::vector<CallSpec> Tree(const std::string& prefix) {
  return {
      Call(prefix + "_view", -1, 0.05),         // 0
      Call("wrapper", 0, 0.02),                 // 1: shared decorator
      Call(prefix + "_logic", 1, 0.10),         // 2
      Call("execute", 2, 0.15, /*slow=*/true),  // 3
      Call("cache_get", 2, 0.05, /*slow=*/true),
      Call(prefix + "_helper", 2, 0.20),  // 5
      Call(prefix + "_other", 5, 0.13),   // 6: a deeper level
      Call("serialize", 0, 0.10),         // 7
      Call("wrapper", 7, 0.02),           // 8: the decorator again
      Call("dumps", 8, 0.18),             // 9
  };
}

EndpointSpec Endpoint(std::string name, double share, double cpu_ms) {
  EndpointSpec e;
  e.name = std::move(name);
  e.traffic_share = share;
  e.cpu_ms_median = cpu_ms;
  e.cpu_sigma = 0.25;
  e.slow_mode_share = 0.1;
  e.slow_mode_factor = 3;
  e.calls = Tree(e.name.substr(1));
  return e;
}

// SmallFleet() — one service, two profiled endpoints, a chain of three
// rollouts: c0 -> c1 (a, +10%, culprit a_helper), c1 -> c2 (nothing),
// c2 -> c3 (b: b_helper's self cost x1.5).
FleetConfig SmallFleet() {
  FleetConfig c;
  c.seed = 7;
  c.start_unix_s = kStart;
  c.duration_s = 4 * kHour;
  c.peak_rps = 40;
  c.sample_rate = 1.0;
  c.users = 5000;
  c.profile_rate = 0.2;
  c.services = {ServiceSpec{"svc", {Endpoint("/a", 1, 4), Endpoint("/b", 1, 6)}, 1, 4}};
  RolloutSpec r1;
  r1.service = "svc";
  r1.from = "c0";
  r1.to = "c1";
  r1.at_s = 1 * kHour;
  r1.spread_s = 600;
  r1.cost_factor = 1.10;
  r1.endpoints = {"/a"};
  r1.culprit = "a_helper";
  RolloutSpec r2 = r1;
  r2.from = "c1";
  r2.to = "c2";
  r2.at_s = 2 * kHour;
  r2.cost_factor = 1.0;
  r2.culprit.clear();
  r2.endpoints.clear();
  RolloutSpec r3 = r2;
  r3.from = "c2";
  r3.to = "c3";
  r3.at_s = 3 * kHour;
  r3.endpoints = {"/b"};
  r3.function = "app/b_helper.py:10:b_helper";
  r3.function_factor = 1.5;
  c.rollouts = {r3, r1, r2};  // out of order on purpose: the chain is in at_s order
  FlagSpec f;
  f.name = "fl";
  f.exposure = 0.4;
  f.cost_factor = 1.05;
  f.endpoints = {"/b"};
  f.scope = {"/b"};
  f.at_s = 30 * 60;
  c.flags = {f};
  return c;
}

std::vector<record::Batch> Simulate(const FleetConfig& config) {
  FleetSimulator sim(config);
  std::vector<record::Batch> out;
  while (std::optional<record::Batch> b = sim.NextMinute()) out.push_back(std::move(*b));
  return out;
}

double Bill(const record::RequestRecord& r) {
  return r.cpu().has_instructions() ? static_cast<double>(r.cpu().instructions())
                                    : static_cast<double>(r.cpu().cpu_ns());
}

// SelfCost() — a profile's self cost of every node of `name`.
double SelfCost(const record::Profile& p, const std::string& name) {
  double self = 0;
  for (const record::ProfileNode& n : p.nodes())
    if (&n != &p.nodes(0) && p.functions(static_cast<int>(n.function())).name() == name)
      self += static_cast<double>(n.self_cost());
  return self;
}

TEST(FleetTest, SameSeedSameBytesOtherSeedOtherBytes) {
  FleetConfig c = SmallFleet();
  c.duration_s = 20 * 60;
  const std::vector<record::Batch> a = Simulate(c), b = Simulate(c);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(DeterministicBytes(a[i]), DeterministicBytes(b[i]));
  c.seed = 8;
  const std::vector<record::Batch> other = Simulate(c);
  EXPECT_NE(DeterministicBytes(a[0]), DeterministicBytes(other[0]));
}

TEST(FleetTest, DefaultFleetIsDeterministicAndUnprofiled) {
  FleetConfig c = DefaultFleet();
  c.start_unix_s = kStart;
  c.duration_s = 15 * 60;
  const std::vector<record::Batch> a = Simulate(c), b = Simulate(c);
  size_t records = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(DeterministicBytes(a[i]), DeterministicBytes(b[i]));
    for (const record::RequestRecord& r : a[i].records()) {
      EXPECT_FALSE(r.has_profile());
      EXPECT_EQ(r.flags().size(), 1u);  // new_search, on every record as before
      EXPECT_TRUE(record::ValidateRecord(r).ok());
      ++records;
    }
  }
  EXPECT_GT(records, 1000u);
}

// With profiles on, the default fleet's regressions show in their culprits:
// what `cpuledger simulate --profile-rate` gives the detectors' root cause.
TEST(FleetTest, DefaultFleetProfilesNameTheCulprits) {
  FleetConfig c = DefaultFleet();
  c.start_unix_s = kStart - 13 * kHour;  // 00:00 UTC; the rollout is at 14:00
  c.profile_rate = 0.3;
  std::map<std::string, Moments> culprit;  // "commit" or "flag value" -> culprit self cost
  size_t profiles = 0;
  for (const record::Batch& b : Simulate(c)) {
    for (const record::RequestRecord& r : b.records()) {
      if (!r.has_profile()) continue;
      ++profiles;
      ASSERT_TRUE(profile::CallTree::FromProto(r.profile()).ok());
      if (r.endpoint() == "/checkout/")
        culprit[r.commit()].Add(SelfCost(r.profile(), "checkout_render"));
      if (r.endpoint() == "/search/")
        culprit[r.flags().at("new_search")].Add(SelfCost(r.profile(), "search_load"));
    }
  }
  EXPECT_GT(profiles, 30000u);
  const EndpointSpec& checkout = c.services[0].endpoints[4];
  const EndpointSpec& search = c.services[0].endpoints[2];
  ASSERT_EQ(checkout.name, "/checkout/");
  ASSERT_EQ(search.name, "/search/");
  ExpectRatio(culprit["9f3c2a1"], culprit["b7e41d0"],
              1 + 0.20 / ExpectedFunctionShare(checkout, "checkout_render"), 0.05,
              "checkout_render after the rollout");
  ExpectRatio(culprit["off"], culprit["on"],
              1 + 0.35 / ExpectedFunctionShare(search, "search_load"), 0.05,
              "search_load with new_search=on");
}

// Profiles come from a second RNG stream: turning them on changes nothing
// else in any record.
TEST(FleetTest, ProfilesDoNotPerturbTheOtherFields) {
  FleetConfig c = SmallFleet();
  c.rollouts.clear();  // no function-level effect: bills must not depend on the split
  c.flags.clear();
  c.duration_s = 10 * 60;
  c.profile_rate = 0;
  const std::vector<record::Batch> plain = Simulate(c);
  c.profile_rate = 0.5;
  std::vector<record::Batch> profiled = Simulate(c);
  ASSERT_EQ(plain.size(), profiled.size());
  size_t with_profile = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(plain[i].records_size(), profiled[i].records_size());
    for (int j = 0; j < plain[i].records_size(); ++j) {
      record::RequestRecord* r = profiled[i].mutable_records(j);
      with_profile += r->has_profile();
      r->clear_profile();
      // The split sums to the bill up to floating rounding of cpu_ms.
      EXPECT_NEAR(static_cast<double>(r->cpu().cpu_ns()),
                  static_cast<double>(plain[i].records(j).cpu().cpu_ns()), 1.0);
    }
  }
  EXPECT_GT(with_profile, 100u);
}

// A profile floor (the middleware's PROFILE_MIN_PER_MINUTE) raises a quiet
// endpoint's profile rate to the floor over its sampled requests a minute
// on each host; a busy endpoint stays at profile_rate.
TEST(FleetTest, AProfileFloorRaisesOnlyAQuietEndpointsRate) {
  FleetConfig c = SmallFleet();
  c.rollouts.clear();
  c.flags.clear();
  c.duration_s = 2 * kHour;
  c.sample_rate = 0.5;
  c.profile_rate = 0.05;
  c.profile_floor_per_min = 2;
  // Per host near the peak: /busy ~590 sampled a minute (2 of them < 5%),
  // /quiet ~12 (2 of them, about a sixth).
  c.services = {ServiceSpec{"svc", {Endpoint("/busy", 1, 4), Endpoint("/quiet", 0.02, 4)}, 1, 2}};
  std::map<std::string, Moments> profiled;  // endpoint -> 1 per profiled sampled request
  for (const record::Batch& b : Simulate(c))
    for (const record::RequestRecord& r : b.records())
      profiled[r.endpoint()].Add(r.has_profile() ? 1.0 : 0.0);
  const Moments& busy = profiled["/busy"];
  const Moments& quiet = profiled["/quiet"];
  ASSERT_GT(quiet.n, 500);
  EXPECT_NEAR(busy.Mean(), 0.05, 4.5 * busy.Se());
  // 2 a minute over its sampled rate: well above the busy one's 5%, far from all.
  EXPECT_GT(quiet.Mean() - 4.5 * quiet.Se(), 0.1);
  EXPECT_LT(quiet.Mean() + 4.5 * quiet.Se(), 0.3);
}

TEST(FleetTest, RolloutChainSwitchesHostByHostInAtOrder) {
  FleetConfig c = SmallFleet();
  FleetSimulator sim(c);
  EXPECT_EQ(sim.CommitFor("svc", 0, 0), "c0");
  EXPECT_EQ(sim.CommitFor("svc", 3, kHour - 1), "c0");
  EXPECT_EQ(sim.CommitFor("svc", 0, kHour), "c1");  // host 0 first
  EXPECT_EQ(sim.CommitFor("svc", 3, kHour), "c0");  // host 3 at +3/4 of the spread
  EXPECT_EQ(sim.CommitFor("svc", 3, kHour + 450), "c1");
  EXPECT_EQ(sim.CommitFor("svc", 2, 2 * kHour + 299), "c1");
  EXPECT_EQ(sim.CommitFor("svc", 2, 2 * kHour + 300), "c2");
  EXPECT_EQ(sim.CommitFor("svc", 1, 4 * kHour), "c3");
  EXPECT_EQ(sim.CommitFor("nope", 0, 0), "");
  // The records and tallies say the same.
  FleetConfig shortc = c;
  shortc.duration_s = kHour + 15 * 60;
  for (const record::Batch& b : Simulate(shortc)) {
    for (const record::WorkerTally& t : b.tallies()) {
      const int host = t.host().back() - '1';
      EXPECT_EQ(t.commit(), sim.CommitFor("svc", host, t.minute_unix() - kStart));
    }
  }
}

// Every effect of SmallFleet(), measured from the records.
TEST(FleetTest, InjectedEffectsHaveTheirSizeOnTheRightEndpointAndCommit) {
  const FleetConfig c = SmallFleet();
  std::map<std::string, Moments> bill;    // "endpoint commit flag" -> bill
  std::map<std::string, Moments> helper;  // "endpoint commit" -> self cost per profiled request
  std::map<std::string, Moments> dumps;   // an untouched function
  size_t flagged_other = 0;
  for (const record::Batch& b : Simulate(c)) {
    for (const record::RequestRecord& r : b.records()) {
      const auto flag = r.flags().find("fl");
      if (r.endpoint() == "/a" && flag != r.flags().end()) ++flagged_other;
      if (flag != r.flags().end()) {
        EXPECT_GE(r.start_time_unix_us(), (kStart + 1800) * 1'000'000);
      }
      const std::string on = flag == r.flags().end() ? "-" : flag->second;
      bill[r.endpoint() + " " + r.commit() + " " + on].Add(Bill(r));
      bill[r.endpoint() + " " + r.commit()].Add(Bill(r));
      if (r.has_profile()) {
        const std::string h = r.endpoint().substr(1) + "_helper";
        helper[r.endpoint() + " " + r.commit()].Add(SelfCost(r.profile(), h));
        dumps[r.endpoint() + " " + r.commit()].Add(SelfCost(r.profile(), "dumps"));
      }
    }
  }
  EXPECT_EQ(flagged_other, 0u) << "the flag is scoped to /b";
  // c0 -> c1: /a +10%, all of it in a_helper; /b unchanged.
  ExpectRatio(bill["/a c0"], bill["/a c1"], 1.10, 0.003, "/a c1 vs c0");
  ExpectRatio(bill["/b c0 off"], bill["/b c1 off"], 1.0, 0.003, "/b c1 vs c0");
  // a_helper's weight is 0.2 and it is not slow: the slow mode dilutes its
  // share of the mean to 0.2 / (1 + 0.1 * (3 - 1)).
  const double a_share = ExpectedFunctionShare(c.services[0].endpoints[0], "a_helper");
  EXPECT_NEAR(a_share, 0.2 / 1.2, 1e-12);
  ExpectRatio(helper["/a c0"], helper["/a c1"], 1 + 0.10 / a_share, 0.05, "a_helper c1 vs c0");
  ExpectRatio(dumps["/a c0"], dumps["/a c1"], 1.0, 0.01, "dumps c1 vs c0");
  // c1 -> c2: a no-op; /a keeps its regression.
  ExpectRatio(bill["/a c1"], bill["/a c2"], 1.0, 0.003, "/a c2 vs c1");
  ExpectRatio(bill["/b c1 off"], bill["/b c2 off"], 1.0, 0.003, "/b c2 vs c1");
  // c2 -> c3: b_helper x1.5, worth about 0.5 * its share of /b.
  ExpectRatio(helper["/b c2"], helper["/b c3"], 1.5, 0.02, "b_helper c3 vs c2");
  ExpectRatio(dumps["/b c2"], dumps["/b c3"], 1.0, 0.01, "dumps c3 vs c2");
  const double b_share = ExpectedFunctionShare(c.services[0].endpoints[1], "b_helper");
  ExpectRatio(bill["/b c2 off"], bill["/b c3 off"], 1 + 0.5 * b_share, 0.004, "/b c3 vs c2");
  ExpectRatio(bill["/a c2"], bill["/a c3"], 1.0, 0.003, "/a c3 vs c2");
  // The flag: +5% on /b for flag-on requests, on every commit.
  for (const char* commit : {"c0", "c1", "c2"})
    ExpectRatio(bill[std::string("/b ") + commit + " off"],
                bill[std::string("/b ") + commit + " on"], 1.05, 0.003,
                std::string("/b flag on vs off on ") + commit);
}

TEST(FleetTest, ProfilesAreValidAndSumToTheBill) {
  FleetConfig c = SmallFleet();
  c.duration_s = 3 * kHour + 20 * 60;  // every commit
  c.peak_rps = 12;
  for (bool pmu : {true, false}) {
    c.with_pmu = pmu;
    size_t profiles = 0;
    for (const record::Batch& b : Simulate(c)) {
      for (const record::RequestRecord& r : b.records()) {
        ASSERT_TRUE(record::ValidateRecord(r).ok()) << record::ValidateRecord(r).message();
        if (!r.has_profile()) continue;
        ++profiles;
        const record::Profile& p = r.profile();
        EXPECT_EQ(p.unit(), pmu ? "instructions" : "cpu_ns");
        EXPECT_EQ(p.source(), pmu ? "hardware" : "task_clock");
        EXPECT_EQ(p.mode(), "fast");
        Result<profile::CallTree> tree = profile::CallTree::FromProto(p);
        ASSERT_TRUE(tree.ok()) << tree.status().message();
        EXPECT_EQ(tree->nodes().size(), 11u);
        EXPECT_EQ(tree->functions().size(), 9u);  // wrapper is one function at two paths
        uint64_t self = 0;
        for (const record::ProfileNode& n : p.nodes()) self += n.self_cost();
        EXPECT_EQ(tree->TotalCost(), self);
        EXPECT_NEAR(static_cast<double>(self), Bill(r), 10.0);  // rounding of 10 frames
      }
    }
    EXPECT_GT(profiles, 10000u);
  }
}

TEST(FleetTest, MixShiftChangesTrafficNotCost) {
  FleetConfig c = SmallFleet();
  c.rollouts.clear();
  c.flags.clear();
  c.profile_rate = 0;
  c.duration_s = 2 * kHour;
  c.mix_shifts = {MixShift{"svc", "/a", kHour, 3.0}};
  std::map<std::string, Moments> bill;
  std::map<std::string, double> count;
  for (const record::Batch& b : Simulate(c)) {
    for (const record::RequestRecord& r : b.records()) {
      const bool after = r.start_time_unix_us() >= (kStart + kHour) * 1'000'000;
      const std::string key = r.endpoint() + (after ? " after" : " before");
      bill[key].Add(Bill(r));
      count[key] += 1;
    }
  }
  // Diurnal traffic grows a little towards 15:00, so the ratio is near, not at, 3.
  EXPECT_NEAR(count["/a after"] / count["/a before"], 3.0 * count["/b after"] / count["/b before"],
              0.1);
  EXPECT_NEAR(count["/b after"] / count["/b before"], 1.0, 0.1);
  ExpectRatio(bill["/a before"], bill["/a after"], 1.0, 0.003, "/a after the shift");
  ExpectRatio(bill["/b before"], bill["/b after"], 1.0, 0.003, "/b after the shift");
}

TEST(FleetTest, CostDiurnalMovesTheSlowModeWithLoad) {
  FleetConfig c = SmallFleet();
  c.rollouts.clear();
  c.flags.clear();
  c.profile_rate = 0;
  c.cost_diurnal = 0.5;
  c.peak_rps = 10;
  c.start_unix_s = kStart - 13 * kHour;  // 00:00 UTC
  c.duration_s = 24 * kHour;
  Moments night, peak;  // 01:00-05:00 (low load) vs 13:00-17:00 (peak)
  for (const record::Batch& b : Simulate(c)) {
    for (const record::RequestRecord& r : b.records()) {
      const int64_t hour = (r.start_time_unix_us() / 1'000'000 / 3600) % 24;
      if (r.endpoint() != "/a") continue;
      if (hour >= 1 && hour < 5) night.Add(Bill(r));
      if (hour >= 13 && hour < 17) peak.Add(Bill(r));
    }
  }
  // slow share 0.1 * (1 +- ~0.45): the mean cost (1 + 2 p) moves by several percent.
  EXPECT_GT(peak.Mean() / night.Mean(), 1.05);
}

}  // namespace
}  // namespace cpuledger::sim
