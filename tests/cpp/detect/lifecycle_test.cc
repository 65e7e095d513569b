// tests/cpp/detect/lifecycle_test.cc — the alert lifecycle over a small
// constructed shop in a real SQLite store, fed minute by minute as the
// server's writer would be, with the detectors run at chosen times:
// an alert opens once, stays open without being sent again, resolves by
// itself when a later comparison shows the effect gone (a rollback, a flag
// turned off), is not resolved when the run could not look, and a key that
// fires again on new evidence opens a new alert naming the old one.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "detect/detect.h"
#include "store/store.h"
#include "temp_dir.h"

namespace cpuledger::detect {
namespace {

using cpuledger::test_support::TempDir;

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kMinute = 60 * kUs;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kT0 = 1767225600LL * kUs;  // 2026-01-01T00:00:00Z

// Shop — the constructed world: four endpoints of 30 requests a minute;
// commit bbb makes /checkout/ 10% costlier; new_search=on (30% of
// requests) makes /search/ 15% costlier until the flag is turned off.
struct Shop {
  // bbb serves while this says so (a rollout at 2 h, a rollback, ...).
  std::function<bool(int64_t minute)> bbb = [](int64_t m) { return m >= 120; };
  // ccc (the next commit) serves while this says so, before bbb.
  std::function<bool(int64_t minute)> ccc = [](int64_t) { return false; };
  int64_t flag_off_minute = 270;          // from here every request carries new_search=off
  int64_t flag_everyone_minute = 100000;  // from here every request carries new_search=on
  // new_search=on costs 15% more while this says so.
  std::function<bool(int64_t minute)> search_costlier = [](int64_t) { return true; };
  std::function<bool(int64_t minute)> checkout_serves = [](int64_t) { return true; };
  // /checkout/ costs this many times more; unset: 1.10 whenever bbb serves.
  std::function<double(int64_t minute)> checkout_factor;
  // The other endpoints cost this many times more (a drift /checkout/ does not share).
  std::function<double(int64_t minute)> others_factor = [](int64_t) { return 1.0; };
  int more_endpoints = 0;  // added to the four, so that a drift is read (5 others or more)
};

record::RequestRecord MakeRecord(const Shop& shop, const std::string& endpoint, double median,
                                 int64_t minute, std::mt19937_64& rng) {
  std::lognormal_distribution<double> noise(0, 0.15);
  std::uniform_real_distribution<double> u(0, 1);
  record::RequestRecord r;
  r.set_service("shop");
  r.set_endpoint(endpoint);
  r.set_method("GET");
  r.set_status(200);
  r.set_host("web-1");
  r.set_start_time_unix_us(kT0 + minute * kMinute + static_cast<int64_t>(u(rng) * 59e6));
  r.set_sample_rate(1.0);
  const bool bbb = shop.bbb(minute);
  r.set_commit(shop.ccc(minute) ? "ccc" : bbb ? "bbb" : "aaa");
  const bool on =
      minute >= shop.flag_everyone_minute || (minute < shop.flag_off_minute && u(rng) < 0.3);
  if (endpoint == "/search/") (*r.mutable_flags())["new_search"] = on ? "on" : "off";
  double cost = median * noise(rng);
  if (endpoint == "/checkout/")
    cost *= shop.checkout_factor ? shop.checkout_factor(minute) : bbb ? 1.10 : 1.0;
  else
    cost *= shop.others_factor(minute);
  if (endpoint == "/search/" && on && shop.search_costlier(minute)) cost *= 1.15;
  record::CpuBill* bill = r.mutable_cpu();
  bill->set_counter_source("hardware");
  bill->set_instructions(static_cast<uint64_t>(cost));
  bill->set_cpu_ns(static_cast<uint64_t>(cost / 3));
  r.set_wall_us(static_cast<uint64_t>(cost / 1000) + 1);
  return r;
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::OpenSqliteStore({.path = dir_.File("s.sqlite")});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(*opened);
    options_.before_after.samples = 1000;  // ~34 minutes a side at 30 a minute
  }

  // FeedUntil() — the shop's minutes up to `t` (from kT0), appended in order.
  void FeedUntil(int64_t t) {
    std::vector<std::pair<std::string, double>> endpoints = {
        {"/checkout/", 40e6}, {"/search/", 25e6}, {"/home/", 8e6}, {"/cart/", 12e6}};
    for (int i = 0; i < shop_.more_endpoints; ++i)
      endpoints.emplace_back("/more" + std::to_string(i) + "/", 10e6);
    for (; kT0 + (fed_ + 1) * kMinute <= t; ++fed_) {
      record::Batch batch;
      batch.set_sender("test");
      batch.set_sequence(static_cast<uint64_t>(fed_ + 1));
      for (const auto& [name, median] : endpoints) {
        if (name == "/checkout/" && !shop_.checkout_serves(fed_)) continue;
        for (int i = 0; i < 30; ++i)
          *batch.add_records() = MakeRecord(shop_, name, median, fed_, rng_);
      }
      const record::Batch* one[] = {&batch};
      ASSERT_TRUE(store_->AppendBatches(one).ok());
    }
  }

  // RunAt() — fed up to `t`, the detectors at `t`, the run kept: its changes.
  std::vector<AlertChange> RunAt(int64_t t) {
    FeedUntil(t);
    options_.now_us = t;
    Result<DetectReport> report = RunDetectors(*store_, options_);
    EXPECT_TRUE(report.ok()) << report.status().message();
    if (!report.ok()) return {};
    last_ = *report;
    Result<std::vector<AlertChange>> changes = RecordRun(*store_, *report);
    EXPECT_TRUE(changes.ok()) << changes.status().message();
    return changes.ok() ? *changes : std::vector<AlertChange>{};
  }

  // Text() — the changes, for failure messages.
  static std::string Text(const std::vector<AlertChange>& changes) {
    std::string out;
    for (const AlertChange& c : changes)
      out += "#" + std::to_string(c.alert_id) + " " + c.change + " " + c.finding.kind + " " +
             c.finding.endpoint + " " + c.finding.function + " " + c.finding.cause + "; " + c.note +
             "\n";
    return out;
  }

  static const AlertChange* Find(const std::vector<AlertChange>& changes,
                                 const std::string& endpoint) {
    for (const AlertChange& c : changes)
      if (c.finding.endpoint == endpoint && c.finding.function.empty()) return &c;
    return nullptr;
  }

  // QuietReasons() — runs every 30 min from `from` to `to` (from kT0),
  // each expected to change nothing: what each run's recheck of alert `id`
  // said (its reason).
  std::vector<std::string> QuietReasons(int64_t id, int64_t from, int64_t to) {
    std::vector<std::string> reasons;
    for (int64_t t = from; t <= to; t += 30 * kMinute) {
      const std::vector<AlertChange> changes = RunAt(kT0 + t);
      EXPECT_TRUE(changes.empty()) << Text(changes);
      for (const Recheck& r : last_.rechecks)
        if (r.alert_id == id) reasons.push_back(r.comparison.reason);
    }
    return reasons;
  }

  // ResolvedAt() — /checkout/'s rollout alert opened at 4 h, then the run
  // at `t` (from kT0), expected to resolve it and nothing else, on `drop`
  // (the switch comparison the resolve names). RETURNS: the resolve.
  AlertChange ResolvedAt(int64_t t, const std::string& drop) {
    shop_.flag_off_minute = 100000;  // the flag stays: only the rollout's alert is looked at
    const std::vector<AlertChange> first = RunAt(kT0 + 4 * kHour);
    const AlertChange* rollout = Find(first, "/checkout/");
    EXPECT_NE(rollout, nullptr);
    if (rollout == nullptr) return {};
    const std::vector<AlertChange> later = RunAt(kT0 + t);
    EXPECT_EQ(later.size(), 1u) << Text(later);
    if (later.size() != 1 || !later[0].comparison.is_object()) return {};
    EXPECT_EQ(later[0].alert_id, rollout->alert_id);
    EXPECT_EQ(later[0].change, "resolved");
    EXPECT_EQ(Events(rollout->alert_id).size(), 2u);
    EXPECT_NE(later[0].comparison.value("method", "").find(drop), std::string::npos)
        << later[0].comparison.dump();
    return later[0];
  }

  // ExpectHeldOpen() — `endpoint`'s alert, opened at 4 h, still open after
  // runs every 30 min from `from` to `to` that change nothing, one of whose
  // rechecks said all of `words` (why it held the resolve back).
  void ExpectHeldOpen(const std::string& endpoint, int64_t from, int64_t to,
                      std::initializer_list<const char*> words) {
    const std::vector<AlertChange> first = RunAt(kT0 + 4 * kHour);
    const AlertChange* alert = Find(first, endpoint);
    ASSERT_NE(alert, nullptr);
    const std::vector<std::string> said = QuietReasons(alert->alert_id, from, to);
    EXPECT_GT(CountSaying(said, words), 0u)
        << "no recheck held the resolve back; the last said: " << (said.empty() ? "" : said.back());
    EXPECT_EQ(State(alert->alert_id), "open");
  }

  static size_t CountSaying(const std::vector<std::string>& reasons,
                            std::initializer_list<const char*> words) {
    return std::count_if(reasons.begin(), reasons.end(), [&](const std::string& r) {
      return std::all_of(words.begin(), words.end(),
                         [&](const char* w) { return r.find(w) != std::string::npos; });
    });
  }

  std::vector<store::AlertEvent> Events(int64_t id) {
    Result<std::vector<store::AlertEvent>> events = store_->AlertEvents(id);
    EXPECT_TRUE(events.ok());
    return events.ok() ? *events : std::vector<store::AlertEvent>{};
  }

  std::string State(int64_t id) {
    Result<store::Alert> a = store_->AlertById(id);
    EXPECT_TRUE(a.ok());
    return a.ok() ? a->state : "";
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  DetectOptions options_;
  Shop shop_;
  DetectReport last_;  // RunAt()'s report
  std::mt19937_64 rng_{7};
  int64_t fed_ = 0;  // minutes appended so far
};

TEST_F(LifecycleTest, OpensOnceResolvesWhenTheEffectGoesAndReopensWhenItComesBack) {
  // bbb from 2 h, rolled back at 5 h, rolled forward again at 7 h.
  shop_.bbb = [](int64_t m) { return (m >= 120 && m < 300) || m >= 420; };

  const std::vector<AlertChange> first = RunAt(kT0 + 4 * kHour);
  const AlertChange* rollout = Find(first, "/checkout/");
  const AlertChange* flag = Find(first, "/search/");
  ASSERT_NE(rollout, nullptr);
  ASSERT_NE(flag, nullptr);
  for (const AlertChange& c : first) {
    EXPECT_EQ(c.change, "opened");
    EXPECT_EQ(c.state, "open");
    EXPECT_EQ(c.by, "detector");
  }
  EXPECT_EQ(rollout->finding.kind, "rollout");
  EXPECT_EQ(flag->finding.kind, "flag");
  const int64_t rollout_id = rollout->alert_id;
  const int64_t flag_id = flag->alert_id;

  // Still there: nothing changes, nothing is sent again.
  EXPECT_TRUE(RunAt(kT0 + 4 * kHour + 30 * kMinute).empty());
  // Someone is on the rollout.
  Result<store::TransitionOutcome> ack =
      store_->TransitionAlert({.id = rollout_id,
                               .to = store::AlertState::kAcknowledged,
                               .at_us = kT0 + 4 * kHour + 31 * kMinute,
                               .by = "ana",
                               .note = "",
                               .detail = ""});
  ASSERT_TRUE(ack.ok() && ack->applied);

  // 6 h: rolled back an hour ago, so /checkout/ costs what it did on aaa.
  // The flag went off at 4:30: too few flag-on requests in the last 2 h to
  // compare, so the flag alert is left as it is.
  const std::vector<AlertChange> at6 = RunAt(kT0 + 6 * kHour);
  ASSERT_EQ(at6.size(), 1u) << Text(at6);
  EXPECT_EQ(at6[0].alert_id, rollout_id);
  EXPECT_EQ(at6[0].change, "resolved");
  EXPECT_EQ(at6[0].state, "resolved");
  EXPECT_EQ(at6[0].by, "detector");
  ASSERT_TRUE(at6[0].comparison.is_object());
  EXPECT_LT(at6[0].comparison["effect"]["estimate"].get<double>(),
            at6[0].comparison["threshold"].get<double>());
  const std::vector<store::AlertEvent> events = Events(rollout_id);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].state, "open");
  EXPECT_EQ(events[1].state, "acknowledged");
  EXPECT_EQ(events[1].by, "ana");
  EXPECT_EQ(events[2].state, "resolved");
  EXPECT_EQ(events[2].by, "detector");
  EXPECT_NE(events[2].note.find("effect gone"), std::string::npos) << events[2].note;
  EXPECT_NE(events[2].detail.find("recheck"), std::string::npos) << events[2].detail;
  EXPECT_EQ(State(flag_id), "open");

  // 6:30: no request of the last 2 h carries new_search=on (off since 4:30).
  const std::vector<AlertChange> flag_gone = RunAt(kT0 + 6 * kHour + 30 * kMinute);
  ASSERT_EQ(flag_gone.size(), 1u) << Text(flag_gone);
  EXPECT_EQ(flag_gone[0].alert_id, flag_id);
  EXPECT_EQ(flag_gone[0].change, "resolved");
  EXPECT_NE(flag_gone[0].note.find("no request carries the value"), std::string::npos)
      << flag_gone[0].note;

  // Both keys still fire (the rollout's windows are fixed, the flag's day
  // still holds its flag-on requests), but that is the old evidence: no reopen.
  const std::vector<AlertChange> at645 = RunAt(kT0 + 6 * kHour + 45 * kMinute);
  EXPECT_TRUE(at645.empty()) << Text(at645);

  // 8 h: bbb is back since 7 h and so is the cost: a new alert, naming the old.
  const std::vector<AlertChange> at8 = RunAt(kT0 + 8 * kHour);
  ASSERT_EQ(at8.size(), 1u) << Text(at8);
  EXPECT_EQ(at8[0].change, "reopened");
  EXPECT_EQ(at8[0].state, "open");
  EXPECT_EQ(at8[0].reopens, rollout_id);
  EXPECT_NE(at8[0].alert_id, rollout_id);
  EXPECT_EQ(at8[0].finding.endpoint, "/checkout/");
  EXPECT_EQ(State(rollout_id), "resolved");
  EXPECT_EQ(State(at8[0].alert_id), "open");
  EXPECT_NE(Events(at8[0].alert_id).at(0).note.find(std::to_string(rollout_id)), std::string::npos);

  const std::vector<AlertChange> at830 = RunAt(kT0 + 8 * kHour + 30 * kMinute);
  EXPECT_TRUE(at830.empty()) << Text(at830);
}

TEST_F(LifecycleTest, AKeyTheRunCouldNotLookAtStaysOpen) {
  // /checkout/ stops serving at 4:40 (a maintenance page elsewhere): no
  // comparison can be made, so nothing says the effect is gone.
  shop_.checkout_serves = [](int64_t m) { return m < 280; };
  const std::vector<AlertChange> first = RunAt(kT0 + 4 * kHour);
  const AlertChange* rollout = Find(first, "/checkout/");
  ASSERT_NE(rollout, nullptr);
  EXPECT_TRUE(RunAt(kT0 + 6 * kHour).empty());
  EXPECT_EQ(State(rollout->alert_id), "open");
  ASSERT_EQ(Events(rollout->alert_id).size(), 1u);
  // The run said why it could not look.
  options_.now_us = kT0 + 6 * kHour;
  Result<DetectReport> report = RunDetectors(*store_, options_);
  ASSERT_TRUE(report.ok());
  bool said = false;
  for (const Recheck& r : report->rechecks)
    if (r.alert_id == rollout->alert_id) {
      said = true;
      EXPECT_EQ(r.verdict, Recheck::Verdict::kNone);
      EXPECT_NE(r.comparison.reason.find("too few samples"), std::string::npos)
          << r.comparison.reason;
    }
  EXPECT_TRUE(said);
}

TEST_F(LifecycleTest, AStillPresentRegressionIsNotResolvedAndAHandResolveReopensOnNewEvidence) {
  const std::vector<AlertChange> first = RunAt(kT0 + 4 * kHour);
  const AlertChange* rollout = Find(first, "/checkout/");
  ASSERT_NE(rollout, nullptr);
  for (int64_t t = 5 * kHour; t <= 6 * kHour; t += 30 * kMinute)
    EXPECT_TRUE(RunAt(kT0 + t).empty());
  EXPECT_EQ(State(rollout->alert_id), "open");
  // Resolved by hand while bbb still serves: the next run that has an
  // after-resolution window of its own sees the cost, and reopens.
  Result<store::TransitionOutcome> done =
      store_->TransitionAlert({.id = rollout->alert_id,
                               .to = store::AlertState::kResolved,
                               .at_us = kT0 + 6 * kHour,
                               .by = "api",
                               .note = "thought so",
                               .detail = ""});
  ASSERT_TRUE(done.ok() && done->applied);
  EXPECT_TRUE(RunAt(kT0 + 6 * kHour + 5 * kMinute).empty()) << "too little since the resolve";
  const std::vector<AlertChange> later = RunAt(kT0 + 7 * kHour);
  const AlertChange* again = Find(later, "/checkout/");
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->change, "reopened");
  EXPECT_EQ(again->reopens, rollout->alert_id);
}

// The cost went back down at 5 h while bbb still serves every request (a
// cache warmed up, or the drift of a comparison hours apart): the code that
// brought it was not replaced, so the detector does not resolve the alert;
// its recheck says why. (A rollback resolves: the test above.)
TEST_F(LifecycleTest, NotResolvedByItselfWhileTheTargetCommitStillServes) {
  shop_.checkout_factor = [](int64_t m) { return m >= 120 && m < 300 ? 1.10 : 1.0; };
  shop_.flag_off_minute = 100000;  // the flag stays: only the rollout's alert is looked at
  ExpectHeldOpen("/checkout/", 6 * kHour, 8 * kHour, {"bbb still serves"});
}

// ccc replaces bbb at 5 h and carries its cost on; from 6 h 30 /checkout/
// gets 10% cheaper for a reason no other endpoint shares (a cache warmed),
// so against aaa's side the effect reads gone. ccc's own comparison with
// bbb at the switch (as wide as the alert's side, the first look's 34
// minutes, either side of 5 h: the cheaper requests are not in it) shows no
// drop: the alert stays open, and says why.
TEST_F(LifecycleTest, NotResolvedWhenTheNextCommitCarriesTheCostOn) {
  shop_.ccc = [](int64_t m) { return m >= 300; };
  shop_.checkout_factor = [](int64_t m) { return m >= 120 && m < 390 ? 1.10 : 1.0; };
  shop_.flag_off_minute = 100000;
  const std::vector<AlertChange> first = RunAt(kT0 + 4 * kHour);
  const AlertChange* rollout = Find(first, "/checkout/");
  ASSERT_NE(rollout, nullptr);
  EXPECT_EQ(rollout->finding.to_us - rollout->finding.from_us, 2 * 34 * kMinute);
  const std::vector<std::string> said = QuietReasons(rollout->alert_id, 8 * kHour, 10 * kHour);
  EXPECT_GT(CountSaying(said, {"commit ccc against bbb", "carries the cost on"}), 0u)
      << "no recheck found the cost gone and held back for ccc";
  EXPECT_EQ(State(rollout->alert_id), "open");
}

// ccc replaces bbb at 5 h with half its cost (a partial fix), and from
// 6 h 30 /checkout/ gets 5% cheaper for a reason no other endpoint shares:
// against aaa's side the effect reads gone, and ccc against bbb at the
// switch shows a drop, but one surely short of the alert's 10%. The alert
// stays open, and says why.
TEST_F(LifecycleTest, NotResolvedByAPartialFix) {
  shop_.ccc = [](int64_t m) { return m >= 300; };
  shop_.checkout_factor = [](int64_t m) {
    return m < 120 ? 1.0 : m < 300 ? 1.10 : m < 390 ? 1.05 : 1.0;
  };
  shop_.flag_off_minute = 100000;
  ExpectHeldOpen("/checkout/", 8 * kHour, 10 * kHour,
                 {"commit ccc against bbb", "shows a drop short of the alert's"});
}

// ccc replaces bbb at 5 h without its cost, but from 6 h 30 /checkout/
// costs 10% more again, while the other endpoints rise 15%. Less their
// drift /checkout/ reads 4% cheaper than under aaa, and ccc against bbb at
// the switch shows the whole drop; but without the drift it still costs
// 10% more than under aaa, and a resolve needs both to agree, as an alert
// does (detect_bench seed 124: a 1% regression still served was resolved
// on a drift of +2.3%). The alert stays open, and says why.
TEST_F(LifecycleTest, NotResolvedOnTheOtherEndpointsDriftAlone) {
  shop_.ccc = [](int64_t m) { return m >= 300; };
  shop_.checkout_factor = [](int64_t m) { return m >= 120 && (m < 300 || m >= 390) ? 1.10 : 1.0; };
  shop_.others_factor = [](int64_t m) { return m >= 390 ? 1.15 : 1.0; };
  shop_.more_endpoints = 2;
  shop_.flag_off_minute = 100000;
  ExpectHeldOpen("/checkout/", 8 * kHour, 10 * kHour,
                 {"less the drift the effect is gone, without it not"});
}

// ccc replaces bbb at 5 h without its cost (a fix): resolved, and the
// resolve says which comparison showed the drop.
TEST_F(LifecycleTest, AFixCommitResolves) {
  shop_.ccc = [](int64_t m) { return m >= 300; };
  shop_.checkout_factor = [](int64_t m) { return m >= 120 && m < 300 ? 1.10 : 1.0; };
  ResolvedAt(6 * kHour, "commit ccc against bbb");
}

// bbb is rolled back to aaa at 5 h and ccc (no costlier) rolls out at 6 h;
// the detector first looks again at 8 h, when ccc serves every recent
// request: what replaced bbb at the switch was aaa, and aaa against bbb
// there shows the drop, so the alert resolves. (Looking for ccc's requests
// at 5 h found too few, and the alert never resolved.)
TEST_F(LifecycleTest, ARollbackResolvesAfterTheNextRolloutToo) {
  shop_.bbb = [](int64_t m) { return m >= 120 && m < 300; };
  shop_.ccc = [](int64_t m) { return m >= 360; };
  ResolvedAt(8 * kHour, "commit aaa against bbb");
}

// bbb is rolled back at 5 h; from 6 h 30 /checkout/ costs 3% more for a
// reason no other endpoint shares (a drift of hours the service's other
// endpoints do not show). Against aaa's side the effect now still clears
// the threshold, but is surely smaller than the least the alert claimed,
// and aaa against bbb at the switch shows the whole drop: bbb's cost is
// gone, and the alert resolves.
TEST_F(LifecycleTest, ARollbackResolvesThoughTheEndpointDriftedSince) {
  shop_.bbb = [](int64_t m) { return m >= 120 && m < 300; };
  shop_.checkout_factor = [](int64_t m) {
    return m >= 120 && m < 300 ? 1.10 : m >= 390 ? 1.03 : 1.0;
  };
  const AlertChange resolve = ResolvedAt(8 * kHour, "commit aaa against bbb");
  ASSERT_TRUE(resolve.comparison.is_object());
  EXPECT_GT(resolve.comparison["effect"]["lo"].get<double>(),
            resolve.comparison["threshold"].get<double>())
      << "the endpoint's later 3% should still read above the threshold";
}

// bbb is rolled back at 5 h and its alert resolves at 6 h; from 6 h 30 ccc
// makes /checkout/ 10% costlier by itself. bbb's key still fires (its
// windows are fixed), but bbb does not serve again: ccc's cost is ccc's
// own alert, against aaa (what ccc replaced; bbb was first seen before it,
// but gone since 5 h), and bbb's stays resolved.
TEST_F(LifecycleTest, AnotherCommitsCostIsItsOwnAlertNotAReopen) {
  shop_.bbb = [](int64_t m) { return m >= 120 && m < 300; };
  shop_.ccc = [](int64_t m) { return m >= 390; };
  shop_.checkout_factor = [](int64_t m) { return (m >= 120 && m < 300) || m >= 390 ? 1.10 : 1.0; };
  const AlertChange resolve = ResolvedAt(6 * kHour, "commit aaa against bbb");
  const std::vector<AlertChange> at8 = RunAt(kT0 + 8 * kHour);
  ASSERT_EQ(at8.size(), 1u) << Text(at8);
  EXPECT_EQ(at8[0].change, "opened");
  EXPECT_EQ(at8[0].finding.cause, "commit ccc vs aaa");
  EXPECT_EQ(State(resolve.alert_id), "resolved");
}

// new_search=on stops costing more at 5 h while bbb still serves the
// split, then is turned on for everyone at 7 h: neither resolves the flag's
// alert (the same code; the value's cost now in every request).
TEST_F(LifecycleTest, AFlagIsNotResolvedUnderTheSameCodeNorWhenOnForEveryone) {
  shop_.bbb = [](int64_t) { return true; };
  shop_.flag_off_minute = 100000;
  shop_.search_costlier = [](int64_t m) { return m < 300; };
  shop_.flag_everyone_minute = 420;
  const std::vector<AlertChange> first = RunAt(kT0 + 4 * kHour);
  const AlertChange* flag = Find(first, "/search/");
  ASSERT_NE(flag, nullptr);
  const std::vector<std::string> said = QuietReasons(flag->alert_id, 6 * kHour, 10 * kHour);
  EXPECT_GT(CountSaying(said, {"still serves"}), 0u)
      << "no recheck found the split gone and held back for bbb";
  EXPECT_GT(CountSaying(said, {"every request carries"}), 0u)
      << "no recheck saw the value on for everyone";
  EXPECT_EQ(State(flag->alert_id), "open");
}

// ccc replaces bbb at 5 h and fixes new_search=on's cost: the flag's alert
// resolves, on ccc's own split since it began serving (an always-valid
// interval, looked at every run), and the resolve says so.
TEST_F(LifecycleTest, AFlagFixedByTheNextCommitResolvesOnThatCommitsWholeSplit) {
  shop_.ccc = [](int64_t m) { return m >= 300; };
  shop_.flag_off_minute = 100000;
  shop_.search_costlier = [](int64_t m) { return m < 300; };
  const std::vector<AlertChange> first = RunAt(kT0 + 4 * kHour);
  const AlertChange* flag = Find(first, "/search/");
  ASSERT_NE(flag, nullptr);
  int64_t resolved_at = 0;
  for (int64_t t = 5 * kHour; t <= 10 * kHour && resolved_at == 0; t += 30 * kMinute)
    for (const AlertChange& c : RunAt(kT0 + t))
      if (c.alert_id == flag->alert_id && c.change == "resolved") resolved_at = t;
  ASSERT_GT(resolved_at, 0) << "the fixed flag's alert never resolved";
  const std::vector<store::AlertEvent> events = Events(flag->alert_id);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_NE(events[1].detail.find("under commit ccc since 2026-01-01 05:00 UTC"), std::string::npos)
      << events[1].detail;
}

TEST(AlertState, OneTransitionFunction) {
  using store::AlertState;
  using store::AlertTransitionRefusal;
  EXPECT_EQ(AlertTransitionRefusal(AlertState::kOpen, AlertState::kAcknowledged), "");
  EXPECT_EQ(AlertTransitionRefusal(AlertState::kOpen, AlertState::kResolved), "");
  EXPECT_EQ(AlertTransitionRefusal(AlertState::kAcknowledged, AlertState::kResolved), "");
  EXPECT_NE(AlertTransitionRefusal(AlertState::kAcknowledged, AlertState::kAcknowledged), "");
  EXPECT_NE(AlertTransitionRefusal(AlertState::kAcknowledged, AlertState::kOpen), "");
  EXPECT_NE(AlertTransitionRefusal(AlertState::kResolved, AlertState::kOpen), "");
  EXPECT_NE(AlertTransitionRefusal(AlertState::kResolved, AlertState::kAcknowledged), "");
  EXPECT_NE(AlertTransitionRefusal(AlertState::kOpen, AlertState::kOpen), "");
  EXPECT_EQ(store::ParseAlertState("acknowledged"), AlertState::kAcknowledged);
  EXPECT_EQ(store::ParseAlertState("closed"), std::nullopt);
}

}  // namespace
}  // namespace cpuledger::detect
