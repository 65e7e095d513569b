// tests/cpp/store/function_entities_test.cc — profiles in, function entities
// out: Functions() and FunctionTree() against sums computed here from the
// same trees, independently of the store.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <unistd.h>
#include "temp_dir.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "profile/call_tree.h"
#include "profile/diff.h"
#include "profile/function_key.h"
#include "record/codec.h"
#include "store/functions.h"
#include "store/sqlite/schema.h"
#include "store/store.h"

namespace cpuledger::store {
namespace {

using profile::CallTree;
using profile::kRoot;

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kT0Us = 1704067200 * kUs;  // 2024-01-01T00:00:00Z
constexpr int64_t kHourUs = 3600 * kUs;

using cpuledger::test_support::TempDir;

const profile::Function kView{"app.py", 10, "view"};
const profile::Function kHelper{"app.py", 20, "helper"};
const profile::Function kLeaf{"lib/util.py", 30, "leaf"};
const profile::Function kRec{"app.py", 40, "walk: tree"};  // a name with a colon
const profile::Function kSlow{"app.py", 99, "slow"};

// Sums — what one function adds up to (the test's own bookkeeping).
struct Sums {
  double calls = 0, primitive_calls = 0, self = 0, total = 0;
};
using Expected = std::map<std::string, Sums>;  // by function name

// MakeTree() — view -> helper -> leaf, view -> leaf, view -> rec -> rec
// (recursive), costs scaled by `k`; adds each function's pstats-style sums
// (total once per outermost activation) to `expected`.
// With `slow` > 0, view also calls slow (self = total = `slow`), as a commit
// that adds an expensive helper would.
CallTree MakeTree(uint64_t k, const std::string& unit, Expected* expected, uint64_t slow = 0) {
  CallTree t(unit, "test", "exact");
  const auto view = t.Child(kRoot, t.Intern(kView));
  const auto helper = t.Child(view, t.Intern(kHelper));
  const auto leaf1 = t.Child(helper, t.Intern(kLeaf));
  const auto leaf2 = t.Child(view, t.Intern(kLeaf));
  const auto rec1 = t.Child(view, t.Intern(kRec));
  const auto rec2 = t.Child(rec1, t.Intern(kRec));
  t.AddCall(leaf1, 30, 30, true);
  t.AddCall(leaf1, 30, 30, true);
  t.AddCall(helper, 25, 55, true);
  t.AddCall(helper, 25, 55, true);
  t.AddCall(leaf2, 10 * k, 10 * k, true);
  t.AddCall(rec2, 7, 7, false);
  t.AddCall(rec1, 5, 12, true);
  if (slow > 0) t.AddCall(t.Child(view, t.Intern(kSlow)), slow, slow, true);
  t.AddCall(view, 100 + k, 100 + k + 110 + 10 * k + 12 + slow, true);
  if (expected != nullptr) {
    const double dk = static_cast<double>(k);
    auto add = [&](const profile::Function& f, Sums s) {
      Sums& e = (*expected)[f.name];
      e.calls += s.calls;
      e.primitive_calls += s.primitive_calls;
      e.self += s.self;
      e.total += s.total;
    };
    add(kView, {1, 1, 100 + dk, 222 + 11 * dk});
    add(kHelper, {2, 2, 50, 110});
    add(kLeaf, {3, 3, 60 + 10 * dk, 60 + 10 * dk});
    add(kRec, {2, 1, 12, 12});  // the inner rec's total is inside the outer's
  }
  return t;
}

record::RequestRecord Record(int64_t start_us, const std::string& service,
                             const std::string& endpoint, const std::string& commit) {
  record::RequestRecord r;
  r.set_start_time_unix_us(start_us);
  r.set_service(service);
  r.set_endpoint(endpoint);
  r.set_method("GET");
  r.set_status(200);
  r.set_host("h1");
  r.set_commit(commit);
  r.set_sample_rate(1.0);
  r.set_wall_us(1000);
  r.mutable_cpu()->set_cpu_ns(1'000'000);
  return r;
}

// PathSums() — every node of a tree by its call path text.
std::map<std::string, std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>> PathSums(
    const CallTree& t) {
  std::map<std::string, std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>> out;
  for (profile::NodeId i = 1; i < t.nodes().size(); ++i) {
    std::vector<profile::Function> path;
    for (profile::FunctionId f : t.Path(i)) path.push_back(t.functions()[f]);
    const profile::Node& n = t.nodes()[i];
    auto& e = out[CallPathText(path)];
    std::get<0>(e) += n.calls;
    std::get<1>(e) += n.primitive_calls;
    std::get<2>(e) += n.self_cost;
    std::get<3>(e) += n.total_cost;
  }
  return out;
}

class FunctionEntitiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = dir_.File("ledger.sqlite")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  void Append(const record::Batch& batch) {
    const record::Batch* batches[] = {&batch};
    Result<std::vector<AppendOutcome>> out = store_->AppendBatches(batches);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
  }

  // AddProfiled() — a record of commit `commit` with MakeTree(k) as its
  // profile (merged from `requests` request profiles when > 1).
  static void AddProfiled(record::Batch* b, int64_t start_us, const std::string& commit, uint64_t k,
                          uint64_t requests = 1, const std::string& unit = "cpu_ns",
                          const std::string& service = "shop", Expected* expected = nullptr,
                          CallTree* merged = nullptr) {
    record::RequestRecord* r = b->add_records();
    *r = Record(start_us, service, "/x/", commit);
    CallTree t = MakeTree(k, unit, expected);
    t.set_requests(requests);
    if (merged != nullptr) {
      ASSERT_TRUE(merged->Merge(t).ok());
    }
    t.ToProto(r->mutable_profile());
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST(CallPathTextTest, RoundTripsFramesWithColonsInNames) {
  const std::vector<profile::Function> path = {kView, kRec, {"~", 0, "<built-in method len>"}};
  const std::string text = CallPathText(path);
  EXPECT_EQ(text, "app.py:10:view\napp.py:40:walk: tree\n~:0:<built-in method len>");
  Result<std::vector<profile::Function>> back = ParseCallPath(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, path);
  EXPECT_FALSE(ParseCallPath("no-line-here").ok());
  EXPECT_NE(CallPathHash("a\nb"), CallPathHash("a\nc"));
}

TEST_F(FunctionEntitiesTest, FunctionsArePerProfiledRequestAndMatchTheTestsSums) {
  record::Batch b;
  Expected expected;
  uint64_t requests = 0;
  for (uint64_t k = 0; k < 5; ++k) {
    const uint64_t n = k == 3 ? 2 : 1;  // one record carries two requests' profile
    AddProfiled(&b, kT0Us + static_cast<int64_t>(k) * 60 * kUs, "A", k, n, "cpu_ns", "shop",
                &expected);
    requests += n;
  }
  *b.add_records() = Record(kT0Us + 10 * kUs, "shop", "/x/", "A");  // not profiled
  AddProfiled(&b, kT0Us, "B", 100);                                 // another commit
  Append(b);

  FunctionQuery q;
  q.commit = "A";
  q.sort = FunctionSort::kTotal;
  Result<FunctionReport> r = store_->Functions(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->unit, "cpu_ns");
  EXPECT_EQ(r->profiled_requests, requests);
  ASSERT_EQ(r->functions.size(), 4u);
  EXPECT_FALSE(r->truncated);
  EXPECT_EQ(r->functions[0].function, kView);  // the largest total
  const double n = static_cast<double>(requests);
  for (const FunctionCost& c : r->functions) {
    SCOPED_TRACE(c.function.name);
    const Sums& e = expected.at(c.function.name);
    EXPECT_DOUBLE_EQ(c.calls, e.calls / n);
    EXPECT_DOUBLE_EQ(c.primitive_calls, e.primitive_calls / n);
    EXPECT_DOUBLE_EQ(c.self, e.self / n);
    EXPECT_DOUBLE_EQ(c.total, e.total / n);
  }
  // leaf's two paths, most self cost first: under helper (60 a record, 300 in
  // all) beats under view (10k: 100 over k = 0..4).
  const FunctionCost& leaf =
      *std::find_if(r->functions.begin(), r->functions.end(),
                    [](const FunctionCost& c) { return c.function == kLeaf; });
  ASSERT_EQ(leaf.top_paths.size(), 2u);
  EXPECT_EQ(leaf.top_paths[0].path, (std::vector<profile::Function>{kView, kHelper, kLeaf}));
  EXPECT_DOUBLE_EQ(leaf.top_paths[0].self, 60.0 * 5 / n);
  EXPECT_DOUBLE_EQ(leaf.top_paths[0].calls, 2.0 * 5 / n);
  EXPECT_EQ(leaf.top_paths[1].path, (std::vector<profile::Function>{kView, kLeaf}));
  EXPECT_DOUBLE_EQ(leaf.top_paths[1].self, 10.0 * (0 + 1 + 2 + 3 + 4) / n);

  // Sorted by self, limited.
  q.sort = FunctionSort::kSelf;
  q.limit = 2;
  r = store_->Functions(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->functions.size(), 2u);
  EXPECT_TRUE(r->truncated);
  EXPECT_GE(r->functions[0].self, r->functions[1].self);
}

TEST_F(FunctionEntitiesTest, FunctionTreeRoundTripsTheMergedProfiles) {
  record::Batch b;
  CallTree merged("instructions", "test", "exact");
  merged.set_requests(0);
  for (uint64_t k = 0; k < 4; ++k)
    AddProfiled(&b, kT0Us + static_cast<int64_t>(k) * kHourUs / 2, "A", k, k == 2 ? 3 : 1,
                "instructions", "shop", nullptr, &merged);
  Append(b);
  FunctionQuery q;
  q.service = "shop";
  q.endpoint = "/x/";
  Result<CallTree> tree = store_->FunctionTree(q);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->unit(), "instructions");
  EXPECT_EQ(tree->requests(), merged.requests());
  EXPECT_EQ(tree->requests(), 6u);
  EXPECT_EQ(PathSums(*tree), PathSums(merged));
  // The same tree diffs to nothing.
  Result<std::vector<profile::PathDiff>> d = profile::DiffPaths(merged, *tree);
  ASSERT_TRUE(d.ok());
  for (const profile::PathDiff& p : *d) EXPECT_DOUBLE_EQ(p.delta_total(), 0);

  // Hours: the records are at 0, 0.5, 1 and 1.5 h; the first hour holds two.
  q.from_us = kT0Us + 10 * kUs;  // inside the first hour: the hour still counts
  q.to_us = kT0Us + kHourUs;
  tree = store_->FunctionTree(q);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->requests(), 2u);
  q.from_us = kT0Us + 3 * kHourUs;
  q.to_us = kT0Us + 4 * kHourUs;
  tree = store_->FunctionTree(q);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->requests(), 0u);
  Result<FunctionReport> empty = store_->Functions(q);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->profiled_requests, 0u);
  EXPECT_TRUE(empty->functions.empty());
}

// Profiles that list their functions once per batch (as recorders send
// them) store exactly what profiles with their own tables store, across
// batches whose tables list the same functions in different orders.
TEST_F(FunctionEntitiesTest, ProfilesSharingTheBatchTableStoreTheSame) {
  std::vector<record::Batch> own(2), shared;
  for (uint64_t k = 0; k < 6; ++k)
    AddProfiled(&own[k % 2], kT0Us + static_cast<int64_t>(k) * 60 * kUs, k < 3 ? "A" : "B",
                k % 2 == 0 ? k : 7 - k);
  for (const record::Batch& b : own) {
    shared.push_back(b);
    if (shared.size() == 2) {  // a function no node uses shifts every index of this table
      record::ProfileFunction* unused = shared.back().add_functions();
      unused->set_file("other.py");
      unused->set_name("unused");
    }
    record::ShareProfileFunctions(&shared.back());
  }
  ASSERT_EQ(shared[1].functions_size(), shared[0].functions_size() + 1);
  for (const record::Batch& b : own) Append(b);
  Result<std::unique_ptr<Store>> other = OpenSqliteStore({.path = dir_.File("shared.sqlite")});
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  for (const record::Batch& b : shared) {
    const record::Batch* batches[] = {&b};
    ASSERT_TRUE((*other)->AppendBatches(batches).ok());
  }
  for (const char* commit : {"A", "B"}) {
    SCOPED_TRACE(commit);
    FunctionQuery q;
    q.commit = commit;
    Result<CallTree> want = store_->FunctionTree(q), got = (*other)->FunctionTree(q);
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_EQ(got->requests(), want->requests());
    EXPECT_EQ(PathSums(*got), PathSums(*want));
    FunctionMomentsQuery mq;
    mq.commit = commit;
    Result<std::vector<FunctionMoments>> mw = store_->FunctionMomentsOf(mq),
                                         mg = (*other)->FunctionMomentsOf(mq);
    ASSERT_TRUE(mw.ok() && mg.ok());
    ASSERT_EQ(mg->size(), mw->size());
    ASSERT_FALSE(mw->empty());
    // Function ids differ between the stores: compare in the order of names.
    for (auto* m : {&*mw, &*mg})
      std::sort(m->begin(), m->end(), [](const FunctionMoments& a, const FunctionMoments& b) {
        return a.function < b.function;
      });
    for (size_t i = 0; i < mw->size(); ++i) {
      EXPECT_EQ((*mg)[i].function, (*mw)[i].function);
      EXPECT_DOUBLE_EQ((*mg)[i].sum, (*mw)[i].sum);
      EXPECT_DOUBLE_EQ((*mg)[i].sum_sq, (*mw)[i].sum_sq);
      EXPECT_DOUBLE_EQ((*mg)[i].share_sum, (*mw)[i].share_sum);
    }
  }
}

TEST_F(FunctionEntitiesTest, SurvivesReopenAndAccumulatesAcrossAppends) {
  CallTree merged("cpu_ns", "test", "exact");
  merged.set_requests(0);
  for (uint64_t k = 1; k <= 3; ++k) {
    record::Batch b;
    AddProfiled(&b, kT0Us + static_cast<int64_t>(k) * kUs, "A", k, 1, "cpu_ns", "shop", nullptr,
                &merged);
    Append(b);
  }
  store_.reset();
  Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = dir_.File("ledger.sqlite")});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  store_ = std::move(*s);
  Result<CallTree> tree = store_->FunctionTree({});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->requests(), 3u);
  EXPECT_EQ(PathSums(*tree), PathSums(merged));
}

// The writer resolves a profile's ids through its shape (profile_shapes.h);
// a rolled-back append must not leave a shape whose ids were taken back.
TEST_F(FunctionEntitiesTest, ARolledBackAppendLeavesNoShapeBehind) {
  record::Batch bad;
  AddProfiled(&bad, kT0Us, "A", 1);
  // Refused after the profile above was interned: a tally whose
  // HyperLogLog is not 2^12 registers.
  record::WorkerTally* broken = bad.add_tallies();
  broken->set_minute_unix(kT0Us / kUs);
  broken->set_service("shop");
  broken->set_host("h1");
  broken->set_sender("1");
  broken->set_active_users_hll(std::string(100, '\x01'));
  broken->set_hll_precision(12);
  const record::Batch* batches[] = {&bad};
  ASSERT_FALSE(store_->AppendBatches(batches).ok());

  record::Batch good;
  CallTree merged("cpu_ns", "test", "exact");
  merged.set_requests(0);
  AddProfiled(&good, kT0Us, "A", 1, 1, "cpu_ns", "shop", nullptr, &merged);
  AddProfiled(&good, kT0Us + kUs, "A", 2, 1, "cpu_ns", "shop", nullptr, &merged);
  Append(good);
  Result<CallTree> tree = store_->FunctionTree({});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->requests(), 2u);
  EXPECT_EQ(PathSums(*tree), PathSums(merged));
}

// A profile may list one function twice in its table: its self cost in a
// request is still one observation, the sum of both entries.
TEST_F(FunctionEntitiesTest, AFunctionListedTwiceIsOneObservationPerRequest) {
  record::Batch b;
  for (uint64_t self : {30u, 50u}) {
    record::RequestRecord* r = b.add_records();
    *r = Record(kT0Us, "shop", "/x/", "A");
    record::Profile* p = r->mutable_profile();
    p->set_unit("cpu_ns");
    p->set_source("test");
    p->set_mode("exact");
    p->set_requests(1);
    p->add_functions();  // the root's
    for (int i = 0; i < 2; ++i) {
      record::ProfileFunction* f = p->add_functions();
      f->set_file("app.py");
      f->set_line(10);
      f->set_name("view");
    }
    p->add_nodes();                // the root
    for (uint32_t f : {1u, 2u}) {  // view -> view, through the two table entries
      record::ProfileNode* n = p->add_nodes();
      n->set_parent(f - 1);
      n->set_function(f);
      n->set_calls(1);
      n->set_primitive_calls(1);
      n->set_self_cost(self);
      n->set_total_cost(self);
    }
  }
  Append(b);
  FunctionMomentsQuery q;
  q.from_us = kT0Us;
  q.to_us = kT0Us + kHourUs;
  Result<std::vector<FunctionMoments>> m = store_->FunctionMomentsOf(q);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ((*m)[0].function, "app.py:10:view");
  EXPECT_DOUBLE_EQ((*m)[0].requests, 2);
  EXPECT_DOUBLE_EQ((*m)[0].sum, 60 + 100);
  EXPECT_DOUBLE_EQ((*m)[0].sum_sq, 60 * 60 + 100 * 100);
  EXPECT_DOUBLE_EQ((*m)[0].share_sum, 2);
}

TEST_F(FunctionEntitiesTest, RefusesToMixUnits) {
  record::Batch b;
  AddProfiled(&b, kT0Us, "A", 1, 1, "cpu_ns", "shop");
  AddProfiled(&b, kT0Us, "A", 1, 1, "instructions", "api");
  Append(b);
  Result<FunctionReport> mixed = store_->Functions({});
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mixed.status().message().find("several units"), std::string::npos);
  FunctionQuery q;
  q.service = "api";
  Result<FunctionReport> one = store_->Functions(q);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(one->unit, "instructions");
}

TEST_F(FunctionEntitiesTest, DiffOfTwoCommitsNamesTheAddedHelperFirst) {
  record::Batch b;
  AddProfiled(&b, kT0Us, "A", 1);
  // Commit B: the same, plus view -> slow (expensive) on every request.
  for (int i = 0; i < 2; ++i) {
    record::RequestRecord* r = b.add_records();
    *r = Record(kT0Us + i * kUs, "shop", "/x/", "B");
    MakeTree(1, "cpu_ns", nullptr, /*slow=*/5000).ToProto(r->mutable_profile());
  }
  Append(b);
  FunctionQuery base, target;
  base.commit = "A";
  target.commit = "B";
  Result<CallTree> before = store_->FunctionTree(base);
  Result<CallTree> after = store_->FunctionTree(target);
  ASSERT_TRUE(before.ok() && after.ok());
  Result<std::vector<profile::FunctionDiff>> d = profile::DiffTrees(*before, *after);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_FALSE(d->empty());
  // view's total grew as much as slow's (ranked by total): the tie goes to
  // the larger self growth, slow, along view > slow.
  EXPECT_EQ((*d)[0].function, kSlow);
  EXPECT_DOUBLE_EQ((*d)[0].delta_total(), 5000);
  EXPECT_DOUBLE_EQ((*d)[0].delta_self(), 5000);
  ASSERT_FALSE((*d)[0].paths.empty());
  EXPECT_EQ((*d)[0].paths[0].path, (std::vector<profile::Function>{kView, kSlow}));
  EXPECT_EQ((*d)[1].function, kView);
  EXPECT_DOUBLE_EQ((*d)[1].delta_total(), 5000);
}

// QueryInt64() — the first column of the first row of `sql` on the store
// file (read by SQLite directly), -1 on failure.
int64_t QueryInt64(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return -1;
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

int64_t CountRows(const std::string& path, const std::string& table) {
  return QueryInt64(path, "SELECT count(*) FROM " + table);
}

// Profiles are kept per flag value too: the tree of flag F = on holds only
// the requests that carried it, and the diff off -> on names the work the
// flag adds; all requests together still answer as before.
TEST_F(FunctionEntitiesTest, FlagValueSlicesHoldOnlyTheirRequests) {
  record::Batch b;
  for (int i = 0; i < 3; ++i) {
    record::RequestRecord* r = b.add_records();
    *r = Record(kT0Us + i * kUs, "shop", "/x/", "A");
    (*r->mutable_flags())["new_feed"] = "off";
    MakeTree(1, "cpu_ns", nullptr).ToProto(r->mutable_profile());
  }
  record::RequestRecord* on = b.add_records();
  *on = Record(kT0Us + 5 * kUs, "shop", "/x/", "A");
  (*on->mutable_flags())["new_feed"] = "on";
  (*on->mutable_flags())["ranker"] = "b";
  MakeTree(1, "cpu_ns", nullptr, /*slow=*/5000).ToProto(on->mutable_profile());
  AddProfiled(&b, kT0Us + 6 * kUs, "A", 1);  // carries no flag
  Append(b);

  FunctionQuery off_q, on_q, ranker_q;
  off_q.flag = on_q.flag = "new_feed";
  off_q.flag_value = "off";
  on_q.flag_value = "on";
  ranker_q.flag = "ranker";
  ranker_q.flag_value = "b";
  Result<CallTree> off = store_->FunctionTree(off_q), with = store_->FunctionTree(on_q);
  Result<CallTree> ranker = store_->FunctionTree(ranker_q), all = store_->FunctionTree({});
  ASSERT_TRUE(off.ok() && with.ok() && ranker.ok() && all.ok());
  EXPECT_EQ(off->requests(), 3u);
  EXPECT_EQ(with->requests(), 1u);
  EXPECT_EQ(ranker->requests(), 1u);
  EXPECT_EQ(all->requests(), 5u);
  EXPECT_EQ(PathSums(*with), PathSums(*ranker));
  EXPECT_EQ(std::get<2>(PathSums(*with)[CallPathText({kView, kSlow})]), 5000u);
  EXPECT_EQ(PathSums(*off).count(CallPathText({kView, kSlow})), 0u);
  EXPECT_EQ(std::get<2>(PathSums(*all)[CallPathText({kView, kSlow})]), 5000u);

  Result<std::vector<profile::FunctionDiff>> d = profile::DiffTrees(*off, *with);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_FALSE(d->empty());
  EXPECT_EQ((*d)[0].function, kSlow);

  FunctionQuery none;
  none.flag = "new_feed";
  none.flag_value = "maybe";
  EXPECT_EQ(store_->FunctionTree(none)->requests(), 0u);
}

// An append keeps its profile sums as a delta row until a checkpoint folds
// them into the hourly tables (sqlite_store.h, "Profile checkpoints"). A
// copy of the file taken while the store is open, deltas unfolded, is what a
// kill -9 leaves: opening it must fold them, losing nothing.
TEST(FunctionEntitiesCheckpointTest, ProfilesInDeltasSurviveACrashAndFoldOnce) {
  TempDir dir;
  const std::string path = dir.File("live.sqlite");
  const std::string copy = dir.File("crashed.sqlite");
  Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = path});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  CallTree merged("cpu_ns", "test", "exact");
  merged.set_requests(0);
  for (uint64_t k = 1; k <= 3; ++k) {
    record::Batch b;
    record::RequestRecord* r = b.add_records();
    *r = Record(kT0Us + static_cast<int64_t>(k) * kUs, "shop", "/x/", "A");
    CallTree t = MakeTree(k, "cpu_ns", nullptr);
    ASSERT_TRUE(merged.Merge(t).ok());
    t.ToProto(r->mutable_profile());
    const record::Batch* batches[] = {&b};
    ASSERT_TRUE((*s)->AppendBatches(batches).ok());
  }
  EXPECT_EQ(CountRows(path, "profile_deltas"), 3);
  EXPECT_EQ(CountRows(path, "path_costs"), 0);
  for (const char* suffix : {"", "-wal"}) std::filesystem::copy_file(path + suffix, copy + suffix);

  // The live store answers from its deltas (a read checkpoints first).
  Result<CallTree> live = (*s)->FunctionTree({});
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(PathSums(*live), PathSums(merged));
  EXPECT_EQ(CountRows(path, "profile_deltas"), 0);
  EXPECT_GT(CountRows(path, "path_costs"), 0);

  // The crashed copy folds its deltas when opened, once.
  for (int open = 0; open < 2; ++open) {
    Result<std::unique_ptr<Store>> recovered = OpenSqliteStore({.path = copy});
    ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
    Result<CallTree> tree = (*recovered)->FunctionTree({});
    ASSERT_TRUE(tree.ok()) << tree.status().ToString();
    EXPECT_EQ(tree->requests(), 3u);
    EXPECT_EQ(PathSums(*tree), PathSums(merged));
  }
  EXPECT_EQ(CountRows(copy, "profile_deltas"), 0);
}

TEST(FunctionEntitiesRetentionTest, DeletesWholeHoursOfProfilesAndMinutesOfTallies) {
  TempDir dir;
  SqliteOptions options{.path = dir.File("retention.sqlite")};
  options.profile_retention_us = 2 * kHourUs;
  options.tally_retention_us = kHourUs;
  Result<std::unique_ptr<Store>> s = OpenSqliteStore(options);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Store& store = **s;
  record::Batch b;
  for (int hour = 0; hour < 4; ++hour) {
    record::RequestRecord* r = b.add_records();
    *r = Record(kT0Us + hour * kHourUs + 10 * kUs, "shop", "/x/", "A");
    (*r->mutable_flags())["f"] = "on";
    MakeTree(1, "cpu_ns", nullptr).ToProto(r->mutable_profile());
  }
  for (int minute = 0; minute < 4 * 60; minute += 20) {
    record::WorkerTally* t = b.add_tallies();
    t->set_minute_unix(kT0Us / kUs + minute * 60);
    t->set_service("shop");
    t->set_host("h1");
    t->set_sender("w1");
    record::EndpointCount* c = t->add_endpoints();
    c->set_endpoint("/x/");
    c->set_requests(5);
  }
  const record::Batch* batches[] = {&b};
  ASSERT_TRUE(store.AppendBatches(batches).ok());
  ASSERT_EQ(store.Stats()->tallies, 12u);

  // 4 h 30 min in: profiles of hours 0 and 1 ended before the 2 h window
  // (hour 2 straddles its start and is kept whole); of the tallies (every
  // 20 min), only 3 h 40 is inside the 1 h window.
  const int64_t now = kT0Us + 4 * kHourUs + 30 * 60 * kUs;
  Result<uint64_t> deleted = store.ApplyRetention(now);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  Result<CallTree> tree = store.FunctionTree({});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->requests(), 2u);
  FunctionMomentsQuery flagged;
  flagged.flag = "f";
  Result<std::vector<FunctionMoments>> moments = store.FunctionMomentsOf(flagged);
  ASSERT_TRUE(moments.ok()) << moments.status().ToString();
  ASSERT_FALSE(moments->empty());
  for (const FunctionMoments& m : *moments) EXPECT_EQ(m.requests, 2.0) << m.function;
  EXPECT_EQ(CountRows(options.path, "tallies"), 1);
  EXPECT_EQ(CountRows(options.path, "tally_endpoints"), 1);
  EXPECT_EQ(store.Stats()->tallies, 1u);
  // The interned ids stay for the profiles still to come.
  EXPECT_GT(CountRows(options.path, "call_paths"), 0);
  // Idempotent, and a reopened store counts the same.
  ASSERT_TRUE(store.ApplyRetention(now).ok());
  s->reset();
  s = OpenSqliteStore(options);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->Stats()->tallies, 1u);
  EXPECT_EQ((*s)->FunctionTree({})->requests(), 2u);
}

// Version 6 renamed columns to the glossary's names; files of earlier
// versions, rebuilt from a current one, get the old names back.
#define TALLIES_BEFORE_V6                                  \
  "ALTER TABLE tallies RENAME COLUMN sender TO worker_id;" \
  "ALTER TABLE tally_endpoints RENAME COLUMN sender TO worker_id;"
#define EFFECTS_BEFORE_V6                                               \
  "ALTER TABLE effects RENAME COLUMN function TO subject;"              \
  "DROP INDEX effects_by_function; CREATE INDEX effects_by_subject ON " \
  "effects(service, endpoint, subject, kind, at_us);"

// Version 7's alert lifecycle undone: no events, one open alert per key.
#define ALERTS_BEFORE_V7                                                           \
  "DROP TABLE alert_events; DROP INDEX alerts_live_key; DROP INDEX alerts_by_key;" \
  "ALTER TABLE alerts DROP COLUMN reopens;"                                        \
  "CREATE UNIQUE INDEX alerts_open_key ON alerts(key) WHERE state = 'open';"

TEST(FunctionEntitiesMigrationTest, AVersionOneFileGetsTheNewTables) {
  TempDir dir;
  const std::string path = dir.File("v1.sqlite");
  {
    Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = path});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  // Back to version 1's shape: its (never written) function_entities and
  // alerts tables, without the later versions' tables.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const char* v1 =
      "DROP TABLE functions; DROP TABLE call_paths; DROP TABLE profile_slices;"
      "DROP TABLE profile_requests; DROP TABLE path_costs; DROP TABLE profile_deltas;"
      "DROP TABLE effects; DROP TABLE function_moments; DROP TABLE alerts;"
      "DROP TABLE alert_events;" TALLIES_BEFORE_V6
      "CREATE TABLE alerts (id INTEGER PRIMARY KEY, opened_us INTEGER NOT NULL,"
      " updated_us INTEGER NOT NULL, service TEXT NOT NULL, endpoint TEXT NOT NULL,"
      " cause TEXT NOT NULL, effect_json TEXT NOT NULL, status TEXT NOT NULL);"
      "CREATE TABLE function_entities (bucket INTEGER NOT NULL, service TEXT NOT NULL,"
      " endpoint TEXT NOT NULL, commit_id TEXT NOT NULL, function_id TEXT NOT NULL,"
      " call_path TEXT NOT NULL, calls INTEGER NOT NULL, self_cost REAL NOT NULL,"
      " total_cost REAL NOT NULL, profiled_requests INTEGER NOT NULL,"
      " PRIMARY KEY (bucket, service, endpoint, commit_id, function_id, call_path))"
      " WITHOUT ROWID; PRAGMA user_version = 1;";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);

  Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = path});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  record::Batch b;
  record::RequestRecord* r = b.add_records();
  *r = Record(kT0Us, "shop", "/x/", "A");
  MakeTree(1, "cpu_ns", nullptr).ToProto(r->mutable_profile());
  const record::Batch* batches[] = {&b};
  ASSERT_TRUE((*s)->AppendBatches(batches).ok());
  Result<FunctionReport> report = (*s)->Functions({});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->profiled_requests, 1u);
  EXPECT_EQ(report->functions.size(), 4u);
  // The detectors' tables (version 3, interned by version 4) are there and written.
  Result<std::vector<FunctionMoments>> moments = (*s)->FunctionMomentsOf({});
  ASSERT_TRUE(moments.ok()) << moments.status().ToString();
  EXPECT_EQ(moments->size(), 4u);
  Result<UpsertOutcome> alert = (*s)->UpsertAlert({.id = 0,
                                                   .key = "k",
                                                   .service = "shop",
                                                   .endpoint = "/x/",
                                                   .kind = "rollout",
                                                   .state = "open",
                                                   .opened_us = 1,
                                                   .updated_us = 1,
                                                   .body = "{}",
                                                   .reopens = 0});
  ASSERT_TRUE(alert.ok()) << alert.status().ToString();
  EXPECT_TRUE(alert->opened);
}

// ---- version 3 -> 4: the text rows are carried into the interned tables ----

// V3Rows — what schema version 3's writer stored for a set of profiled
// records, computed here from the trees: one row per (hour, slice, call path
// text), per-function moments, and request counts per slice and flag value.
struct V3Rows {
  using Slice = std::tuple<int64_t, std::string, std::string, std::string, std::string>;
  std::map<std::pair<Slice, std::string>, std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>> paths;
  std::map<Slice, uint64_t> requests;
  // (slice, flag, value, function) -> sum, sum_sq, share_sum, share_sq
  std::map<std::tuple<Slice, std::string, std::string, std::string>, std::array<double, 4>> moments;
  std::map<std::tuple<Slice, std::string, std::string>, uint64_t> moment_requests;

  void Add(const record::RequestRecord& r, const CallTree& t) {
    const Slice slice{r.start_time_unix_us() / kHourUs * 3600, r.service(), r.endpoint(),
                      r.commit(), t.unit()};
    for (const auto& [text, sums] : PathSums(t)) {
      auto& e = paths[{slice, text}];
      std::get<0>(e) += std::get<0>(sums);
      std::get<1>(e) += std::get<1>(sums);
      std::get<2>(e) += std::get<2>(sums);
      std::get<3>(e) += std::get<3>(sums);
    }
    requests[slice] += 1;
    std::map<std::string, double> self;
    double total = 0;
    for (profile::NodeId i = 1; i < t.nodes().size(); ++i) {
      self[CallPathText({t.functions()[t.nodes()[i].function]})] +=
          static_cast<double>(t.nodes()[i].self_cost);
      total += static_cast<double>(t.nodes()[i].self_cost);
    }
    std::vector<std::pair<std::string, std::string>> flags = {{"", ""}};
    for (const auto& [flag, value] : r.flags()) flags.emplace_back(flag, value);
    for (const auto& [flag, value] : flags) {
      moment_requests[{slice, flag, value}] += 1;
      for (const auto& [function, cost] : self) {
        if (cost == 0) continue;
        std::array<double, 4>& m = moments[{slice, flag, value, function}];
        m[0] += cost;
        m[1] += cost * cost;
        m[2] += cost / total;
        m[3] += (cost / total) * (cost / total);
      }
    }
  }

  // Write() — into a file shaped as version 3 (made from a fresh store).
  void Write(const std::string& path) const {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string v3 =
        std::string(
            "DROP TABLE functions; DROP TABLE call_paths; DROP TABLE profile_slices;"
            "DROP TABLE profile_requests; DROP TABLE path_costs; DROP TABLE profile_deltas;"
            "DROP TABLE function_moments;" TALLIES_BEFORE_V6 EFFECTS_BEFORE_V6 ALERTS_BEFORE_V7) +
        sqlite::kVersion3ProfileTables + "PRAGMA user_version = 3;";
    ASSERT_EQ(sqlite3_exec(db, v3.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    auto slice_sql = [](const Slice& s) {
      return std::to_string(std::get<0>(s)) + ", '" + std::get<1>(s) + "', '" + std::get<2>(s) +
             "', '" + std::get<3>(s) + "', '" + std::get<4>(s) + "'";
    };
    std::string sql = "BEGIN;";
    for (const auto& [key, v] : paths)
      sql += "INSERT INTO function_entities VALUES (" + slice_sql(key.first) + ", " +
             std::to_string(CallPathHash(key.second)) + ", '" + key.second + "', " +
             std::to_string(std::get<0>(v)) + ", " + std::to_string(std::get<1>(v)) + ", " +
             std::to_string(std::get<2>(v)) + ", " + std::to_string(std::get<3>(v)) + ");";
    for (const auto& [slice, n] : requests)
      sql += "INSERT INTO function_requests VALUES (" + slice_sql(slice) + ", " +
             std::to_string(n) + ");";
    char num[4][40];
    for (const auto& [key, m] : moments) {
      for (int i = 0; i < 4; ++i) std::snprintf(num[i], sizeof num[i], "%.17g", m[i]);
      sql += "INSERT INTO function_moments VALUES (" + slice_sql(std::get<0>(key)) + ", '" +
             std::get<1>(key) + "', '" + std::get<2>(key) + "', '" + std::get<3>(key) + "', " +
             num[0] + ", " + num[1] + ", " + num[2] + ", " + num[3] + ");";
    }
    for (const auto& [key, n] : moment_requests)
      sql += "INSERT INTO function_moment_requests VALUES (" + slice_sql(std::get<0>(key)) + ", '" +
             std::get<1>(key) + "', '" + std::get<2>(key) + "', " + std::to_string(n) + ");";
    sql += "COMMIT;";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
};

// Version 6 keeps what version 5 stored under the glossary's names: tally
// rows under `sender`, effects under `function`, alert bodies with
// base_commit / target_commit.
TEST(FunctionEntitiesMigrationTest, VersionFiveNamesBecomeTheGlossarys) {
  TempDir dir;
  const std::string path = dir.File("v5.sqlite");
  {
    Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = path});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const char* v5 = TALLIES_BEFORE_V6 EFFECTS_BEFORE_V6 ALERTS_BEFORE_V7
      "INSERT INTO tallies (service, minute, host, worker_id, cluster, region, commit_id,"
      " hll_precision) VALUES ('shop', 60, 'h1', 'w1', '', '', 'A', 12);"
      "INSERT INTO effects (at_us, service, endpoint, subject, kind, cause, estimate, lo, hi,"
      " alerted) VALUES (1, 'shop', '/x/', 'f.py:1:g', 'rollout', 'A->B', 0.1, 0.05, 0.15, 1);"
      "INSERT INTO alerts (key, service, endpoint, kind, state, opened_us, updated_us, body)"
      " VALUES ('k', 'shop', '/x/', 'rollout', 'open', 1, 1,"
      " '{\"commit_before\":\"A\",\"commit_after\":\"B\"}');"
      "PRAGMA user_version = 5;";
  ASSERT_EQ(sqlite3_exec(db, v5, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);

  {
    Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = path});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  EXPECT_EQ(QueryInt64(path, "SELECT count(*) FROM tallies WHERE sender = 'w1'"), 1);
  EXPECT_EQ(QueryInt64(path, "SELECT count(*) FROM effects WHERE function = 'f.py:1:g'"), 1);
  EXPECT_EQ(QueryInt64(path,
                       "SELECT count(*) FROM alerts WHERE body ="
                       " '{\"base_commit\":\"A\",\"target_commit\":\"B\"}'"),
            1);
  // Version 7: the stored alert gets its opening event and no reopen.
  EXPECT_EQ(QueryInt64(path,
                       "SELECT count(*) FROM alert_events WHERE state = 'open' AND"
                       " by = 'detector' AND seq = 0"),
            1);
  EXPECT_EQ(QueryInt64(path, "SELECT count(*) FROM alerts WHERE reopens = 0"), 1);
  EXPECT_EQ(QueryInt64(path, "PRAGMA user_version"), sqlite::kSchemaVersion);
}

// Version 9 adds function_codes: a version 8 file opens and stores them.
TEST(FunctionEntitiesMigrationTest, AVersionEightFileGetsFunctionCodes) {
  TempDir dir;
  const std::string path = dir.File("v8.sqlite");
  {
    Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = path});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE function_codes; PRAGMA user_version = 8;", nullptr,
                         nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = path});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(QueryInt64(path, "PRAGMA user_version"), sqlite::kSchemaVersion);
  record::Batch b;
  record::RequestRecord* r = b.add_records();
  *r = Record(kT0Us, "shop", "/x/", "A");
  MakeTree(1, "cpu_ns", nullptr).ToProto(r->mutable_profile());
  r->mutable_profile()->mutable_functions(0)->set_code_hash(42);  // kView, interned first
  const record::Batch* batches[] = {&b};
  ASSERT_TRUE((*s)->AppendBatches(batches).ok());
  Result<std::vector<FunctionCode>> codes = (*s)->FunctionCodesOf({"shop", "A"});
  ASSERT_TRUE(codes.ok()) << codes.status().ToString();
  ASSERT_EQ(codes->size(), 1u);
  EXPECT_EQ((*codes)[0].function, profile::FunctionKeyText(kView.file, kView.line, kView.name));
  EXPECT_EQ((*codes)[0].code_hash, 42u);
}

TEST(FunctionEntitiesMigrationTest, VersionThreeRowsAreCarriedAndAnswerAsBefore) {
  // The same profiled records: written as version 3 stored them (then
  // migrated), and appended to a fresh version 4 store.
  TempDir dir;
  const std::string old_path = dir.File("v3.sqlite"), new_path = dir.File("v4.sqlite");
  Result<std::unique_ptr<Store>> fresh = OpenSqliteStore({.path = new_path});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  {
    Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = old_path});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  V3Rows v3;
  record::Batch b;
  for (int i = 0; i < 6; ++i) {
    record::RequestRecord* r = b.add_records();
    *r = Record(kT0Us + i * kHourUs / 3, i % 3 == 2 ? "api" : "shop", "/x/", i < 3 ? "A" : "B");
    if (i % 2 == 0) (*r->mutable_flags())["new_cart"] = i % 4 == 0 ? "on" : "off";
    const CallTree t = MakeTree(static_cast<uint64_t>(i), "cpu_ns", nullptr, i == 4 ? 900 : 0);
    t.ToProto(r->mutable_profile());
    v3.Add(*r, t);
  }
  const record::Batch* batches[] = {&b};
  ASSERT_TRUE((*fresh)->AppendBatches(batches).ok());
  v3.Write(old_path);

  Result<std::unique_ptr<Store>> migrated = OpenSqliteStore({.path = old_path});
  ASSERT_TRUE(migrated.ok()) << migrated.status().ToString();
  EXPECT_EQ(QueryInt64(old_path,
                       "SELECT count(*) FROM sqlite_schema WHERE name IN ('function_entities',"
                       " 'function_requests', 'function_moment_requests', 'function_moments_v3')"),
            0)
      << "version 3's tables are dropped";

  std::vector<FunctionQuery> queries(4);
  queries[1].commit = "B";
  queries[2].service = "shop";
  queries[2].from_us = kT0Us + kHourUs;
  queries[3].service = "api";
  queries[3].endpoint = "/x/";
  for (const FunctionQuery& q : queries) {
    SCOPED_TRACE(q.commit.value_or("") + q.service.value_or(""));
    Result<CallTree> want = (*fresh)->FunctionTree(q);
    Result<CallTree> got = (*migrated)->FunctionTree(q);
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_EQ(got->requests(), want->requests());
    EXPECT_EQ(PathSums(*got), PathSums(*want));
    // Node order too (answers ranked with ties by node agree): by path text,
    // as version 3 read its rows.
    ASSERT_EQ(got->nodes().size(), want->nodes().size());
    std::string previous;
    for (profile::NodeId i = 1; i < got->nodes().size(); ++i) {
      EXPECT_EQ(got->functions()[got->nodes()[i].function],
                want->functions()[want->nodes()[i].function]);
      std::vector<profile::Function> path;
      for (profile::FunctionId f : got->Path(i)) path.push_back(got->functions()[f]);
      const std::string text = CallPathText(path);
      EXPECT_LT(previous, text);
      previous = text;
    }
  }
  for (const std::optional<std::string>& flag :
       {std::optional<std::string>(), std::optional<std::string>("new_cart")}) {
    FunctionMomentsQuery q;
    q.flag = flag;
    Result<std::vector<FunctionMoments>> want = (*fresh)->FunctionMomentsOf(q);
    Result<std::vector<FunctionMoments>> got = (*migrated)->FunctionMomentsOf(q);
    ASSERT_TRUE(want.ok() && got.ok());
    ASSERT_EQ(got->size(), want->size());
    EXPECT_FALSE(got->empty());
    for (size_t i = 0; i < got->size(); ++i) {
      const FunctionMoments &g = (*got)[i], &w = (*want)[i];
      EXPECT_EQ(
          std::tie(g.service, g.endpoint, g.commit, g.unit, g.flag, g.flag_value, g.function),
          std::tie(w.service, w.endpoint, w.commit, w.unit, w.flag, w.flag_value, w.function));
      EXPECT_EQ(g.requests, w.requests);
      EXPECT_DOUBLE_EQ(g.sum, w.sum);
      EXPECT_DOUBLE_EQ(g.sum_sq, w.sum_sq);
      EXPECT_DOUBLE_EQ(g.share_sum, w.share_sum);
      EXPECT_DOUBLE_EQ(g.share_sq, w.share_sq);
    }
  }
  // The carried store keeps taking profiles onto the carried ids.
  ASSERT_TRUE((*migrated)->AppendBatches(batches).ok());
  Result<CallTree> twice = (*migrated)->FunctionTree({});
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(twice->requests(), 12u);
}

// profile_flags limits the flags whose values keep call paths (each one
// adds the profile to the sums again); the others still keep moments.
TEST(FunctionEntitiesFlagsTest, OnlyTheProfiledFlagsKeepCallPaths) {
  TempDir dir;
  const std::string path = dir.File("ledger.sqlite");
  Result<std::unique_ptr<Store>> s =
      OpenSqliteStore({.path = path, .profile_flags = std::set<std::string>{"ranker"}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  record::Batch b;
  record::RequestRecord* r = b.add_records();
  *r = Record(kT0Us, "shop", "/x/", "A");
  (*r->mutable_flags())["new_feed"] = "on";
  (*r->mutable_flags())["ranker"] = "b";
  MakeTree(1, "cpu_ns", nullptr).ToProto(r->mutable_profile());
  const record::Batch* batches[] = {&b};
  ASSERT_TRUE((*s)->AppendBatches(batches).ok());

  FunctionQuery ranker, feed;
  ranker.flag = "ranker";
  ranker.flag_value = "b";
  feed.flag = "new_feed";
  feed.flag_value = "on";
  Result<CallTree> kept = (*s)->FunctionTree(ranker);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(PathSums(*kept), PathSums(*(*s)->FunctionTree({})));
  Result<CallTree> refused = (*s)->FunctionTree(feed);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("profile_flags"), std::string::npos);

  FunctionMomentsQuery moments;
  moments.flag = "new_feed";
  Result<std::vector<FunctionMoments>> m = (*s)->FunctionMomentsOf(moments);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_FALSE(m->empty());
  for (const FunctionMoments& f : *m) EXPECT_EQ(f.flag_value, "on") << f.function;
  // Two slices of paths (all requests, ranker=b) for the record's 6 paths.
  EXPECT_EQ(CountRows(path, "path_costs"), 12);
}

}  // namespace
}  // namespace cpuledger::store
