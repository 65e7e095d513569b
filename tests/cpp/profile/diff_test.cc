// Tests for src/profile/diff.h: ranking, per-request normalisation, paths,
// and that a wrapper's callees keep their own costs.
#include "profile/diff.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "trees.h"

namespace cpuledger::profile {
namespace {

using testing::AddPath;
using testing::NamesOf;
using Names = std::vector<std::string>;

const FunctionDiff* FindFunction(const std::vector<FunctionDiff>& diff, const std::string& name) {
  for (const FunctionDiff& d : diff)
    if (d.function.name == name) return &d;
  return nullptr;
}

// Before: view -> a (100), view -> b (100). After: the same, and a new
// helper under view -> b costing 300 per request.
struct HelperAdded {
  CallTree before{"instructions", "hardware", "exact"};
  CallTree after{"instructions", "hardware", "exact"};
  HelperAdded() {
    AddPath(before, {"view"}, 10, 210);
    AddPath(before, {"view", "a"}, 100, 100);
    AddPath(before, {"view", "b"}, 100, 100);
    AddPath(after, {"view"}, 10, 510);  // totals include the helper
    AddPath(after, {"view", "a"}, 100, 100);
    AddPath(after, {"view", "b"}, 100, 400);
    AddPath(after, {"view", "b", "helper"}, 300, 300);
  }
};

TEST(ProfileDiff, AddedHelperRanksFirst) {
  HelperAdded t;
  for (DiffRank rank : {DiffRank::kByTotal, DiffRank::kBySelf}) {
    Result<std::vector<FunctionDiff>> diff = DiffTrees(t.before, t.after, {rank});
    ASSERT_TRUE(diff.ok()) << diff.status().ToString();
    ASSERT_EQ(diff->size(), 4u);
    const FunctionDiff& top = (*diff)[0];
    EXPECT_EQ(top.function.name, "helper") << static_cast<int>(rank);
    EXPECT_EQ(top.before_self, 0);
    EXPECT_EQ(top.after_self, 300);
    EXPECT_EQ(top.delta_self(), 300);
    EXPECT_EQ(top.delta_total(), 300);
    EXPECT_EQ(top.after_calls, 1);
    ASSERT_EQ(top.paths.size(), 1u);
    EXPECT_EQ(NamesOf(top.paths[0].path), (Names{"view", "b", "helper"}));
    EXPECT_EQ(top.paths[0].delta_self(), 300);
    // Unchanged a ranks last under either rank.
    EXPECT_EQ(diff->back().function.name, "a");
    EXPECT_TRUE(diff->back().paths.empty());
  }
  // By total, the callers that carry the new cost come next, closest first
  // only by the tie-break on self (all +300 total, +0 self): view, b by name.
  Result<std::vector<FunctionDiff>> by_total = DiffTrees(t.before, t.after);
  ASSERT_TRUE(by_total.ok());
  EXPECT_EQ((*by_total)[1].function.name, "b");
  EXPECT_EQ((*by_total)[1].delta_total(), 300);
  EXPECT_EQ((*by_total)[1].delta_self(), 0);
  // b's own code did not grow, so its paths are those whose total grew.
  ASSERT_EQ((*by_total)[1].paths.size(), 1u);
  EXPECT_EQ(NamesOf((*by_total)[1].paths[0].path), (Names{"view", "b"}));
  EXPECT_EQ((*by_total)[2].function.name, "view");
}

TEST(ProfileDiff, WrapperCostsStayWithTheirCallee) {
  // A decorator: wrapper calls a cheap f on one path and an expensive g on
  // another. Only g grows; nothing of it may show under wrapper -> f.
  CallTree before("instructions", "hardware", "exact");
  CallTree after("instructions", "hardware", "exact");
  AddPath(before, {"view", "wrapper", "f"}, 10, 10);
  AddPath(before, {"view", "wrapper", "g"}, 100, 100);
  AddPath(after, {"view", "wrapper", "f"}, 10, 10);
  AddPath(after, {"view", "wrapper", "g"}, 500, 500);

  Result<std::vector<FunctionDiff>> diff = DiffTrees(before, after, {DiffRank::kBySelf});
  ASSERT_TRUE(diff.ok());
  EXPECT_EQ((*diff)[0].function.name, "g");
  EXPECT_EQ((*diff)[0].delta_self(), 400);
  ASSERT_EQ((*diff)[0].paths.size(), 1u);
  EXPECT_EQ(NamesOf((*diff)[0].paths[0].path), (Names{"view", "wrapper", "g"}));
  const FunctionDiff* f = FindFunction(*diff, "f");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->delta_self(), 0);
  EXPECT_EQ(f->delta_total(), 0);
  EXPECT_TRUE(f->paths.empty());

  Result<std::vector<PathDiff>> paths = DiffPaths(before, after, DiffRank::kBySelf);
  ASSERT_TRUE(paths.ok());
  ASSERT_EQ(paths->size(), 4u);  // view, view.wrapper, view.wrapper.f, view.wrapper.g
  EXPECT_EQ(NamesOf((*paths)[0].path), (Names{"view", "wrapper", "g"}));
  EXPECT_EQ((*paths)[0].delta_self(), 400);
  for (const PathDiff& p : *paths) {
    if (NamesOf(p.path) != Names{"view", "wrapper", "f"}) continue;
    EXPECT_EQ(p.before_self, 10);
    EXPECT_EQ(p.after_self, 10);
    EXPECT_EQ(p.delta_total(), 0);
  }
}

TEST(ProfileDiff, CostsArePerRequest) {
  // 4 requests at 100 each against 1 request at 100: no change.
  CallTree before("cpu_ns", "thread_cputime", "fast");
  CallTree after("cpu_ns", "thread_cputime", "fast");
  AddPath(before, {"view"}, 400, 400);
  before.set_requests(4);
  AddPath(after, {"view"}, 100, 100);
  AddPath(after, {"view", "new"}, 50, 50);
  Result<std::vector<FunctionDiff>> diff = DiffTrees(before, after);
  ASSERT_TRUE(diff.ok());
  const FunctionDiff* view = FindFunction(*diff, "view");
  ASSERT_NE(view, nullptr);
  EXPECT_EQ(view->before_self, 100);
  EXPECT_EQ(view->delta_self(), 0);
  EXPECT_EQ(view->before_calls, 0.25);
  EXPECT_EQ((*diff)[0].function.name, "new");

  before.set_requests(0);  // counts as 1, never divides by zero
  diff = DiffTrees(before, after);
  ASSERT_TRUE(diff.ok());
  EXPECT_EQ(FindFunction(*diff, "view")->before_self, 400);
}

TEST(ProfileDiff, ShrunkAndRemovedRankLast) {
  CallTree before("instructions", "hardware", "exact");
  CallTree after("instructions", "hardware", "exact");
  AddPath(before, {"view", "gone"}, 70, 70);
  AddPath(before, {"view", "same"}, 5, 5);
  AddPath(after, {"view", "same"}, 5, 5);
  AddPath(after, {"view", "grown"}, 1, 1);
  Result<std::vector<FunctionDiff>> diff = DiffTrees(before, after);
  ASSERT_TRUE(diff.ok());
  ASSERT_EQ(diff->size(), 4u);
  EXPECT_EQ((*diff)[0].function.name, "grown");
  EXPECT_EQ(diff->back().function.name, "gone");
  EXPECT_EQ(diff->back().delta_self(), -70);
  EXPECT_EQ(diff->back().after_total, 0);
}

TEST(ProfileDiff, PathsAreCappedAndOrderedByAddedSelf) {
  CallTree before("instructions", "hardware", "exact");
  CallTree after("instructions", "hardware", "exact");
  AddPath(before, {"view"}, 1, 1);
  for (int i = 1; i <= 8; ++i)
    AddPath(after, {"view", "caller" + std::to_string(i), "hot"}, 10 * i, 10 * i);
  Result<std::vector<FunctionDiff>> diff = DiffTrees(before, after, {DiffRank::kBySelf, 3});
  ASSERT_TRUE(diff.ok());
  const FunctionDiff& hot = (*diff)[0];
  EXPECT_EQ(hot.function.name, "hot");
  EXPECT_EQ(hot.delta_self(), 360);
  ASSERT_EQ(hot.paths.size(), 3u);
  EXPECT_EQ(NamesOf(hot.paths[0].path), (Names{"view", "caller8", "hot"}));
  EXPECT_EQ(NamesOf(hot.paths[1].path), (Names{"view", "caller7", "hot"}));
  EXPECT_EQ(NamesOf(hot.paths[2].path), (Names{"view", "caller6", "hot"}));
}

TEST(ProfileDiff, RecursionIsNotDoubleCounted) {
  CallTree before("instructions", "hardware", "exact");
  CallTree after("instructions", "hardware", "exact");
  AddPath(before, {"r"}, 10, 10);
  AddPath(after, {"r"}, 10, 30);
  AddPath(after, {"r", "r"}, 20, 20, /*primitive=*/false);
  Result<std::vector<FunctionDiff>> diff = DiffTrees(before, after);
  ASSERT_TRUE(diff.ok());
  ASSERT_EQ(diff->size(), 1u);
  EXPECT_EQ((*diff)[0].after_total, 30);  // not 50
  EXPECT_EQ((*diff)[0].after_self, 30);
  EXPECT_EQ((*diff)[0].after_calls, 2);
}

TEST(ProfileDiff, RefusesDifferentUnits) {
  CallTree a("instructions", "hardware", "exact");
  CallTree b("cycles", "hardware", "exact");
  Result<std::vector<FunctionDiff>> diff = DiffTrees(a, b);
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(diff.status().message(),
            "cannot diff a profile in 'instructions' against one in 'cycles'");
  EXPECT_FALSE(DiffPaths(a, b).ok());
}

}  // namespace
}  // namespace cpuledger::profile
