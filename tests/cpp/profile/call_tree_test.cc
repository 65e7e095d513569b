// Tests for src/profile/call_tree.h: interning, the child lookup on both
// sides of kLinearChildren, merge, the proto form and its validation, and
// the recursion-aware per-function totals.
#include "profile/call_tree.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "trees.h"

namespace cpuledger::profile {
namespace {

using testing::AddPath;
using testing::Fn;
using testing::Sample;

// ExpectSameTree() — same functions and the same nodes, in the same order.
void ExpectSameTree(const CallTree& a, const CallTree& b) {
  EXPECT_EQ(a.unit(), b.unit());
  EXPECT_EQ(a.source(), b.source());
  EXPECT_EQ(a.mode(), b.mode());
  EXPECT_EQ(a.requests(), b.requests());
  EXPECT_EQ(a.builtins_folded(), b.builtins_folded());
  EXPECT_EQ(a.overhead_per_event(), b.overhead_per_event());
  EXPECT_EQ(a.functions(), b.functions());
  ASSERT_EQ(a.nodes().size(), b.nodes().size());
  for (size_t i = 0; i < a.nodes().size(); ++i) {
    const Node& x = a.nodes()[i];
    const Node& y = b.nodes()[i];
    EXPECT_EQ(x.function, y.function) << i;
    EXPECT_EQ(x.parent, y.parent) << i;
    EXPECT_EQ(x.calls, y.calls) << i;
    EXPECT_EQ(x.primitive_calls, y.primitive_calls) << i;
    EXPECT_EQ(x.self_cost, y.self_cost) << i;
    EXPECT_EQ(x.total_cost, y.total_cost) << i;
  }
}

// Find() — the node at the end of a path of names; kRoot if absent.
NodeId Find(const CallTree& tree, const std::vector<std::string>& names) {
  for (size_t i = 1; i < tree.nodes().size(); ++i) {
    const std::vector<FunctionId> path = tree.Path(static_cast<NodeId>(i));
    if (path.size() != names.size()) continue;
    bool same = true;
    for (size_t k = 0; k < path.size(); ++k)
      same = same && tree.functions()[path[k]].name == names[k];
    if (same) return static_cast<NodeId>(i);
  }
  return kRoot;
}

TEST(ProfileCallTree, NewTreeHasOnlyTheRoot) {
  CallTree tree("instructions", "hardware", "exact");
  ASSERT_EQ(tree.nodes().size(), 1u);
  EXPECT_EQ(tree.requests(), 1u);
  EXPECT_EQ(tree.TotalCost(), 0u);
  EXPECT_TRUE(tree.Path(kRoot).empty());
}

TEST(ProfileCallTree, InternMatchesFileLineAndName) {
  CallTree tree("instructions", "hardware", "exact");
  const FunctionId view = tree.Intern(Fn("view", 12));
  EXPECT_EQ(tree.Intern(Fn("view", 12)), view);
  EXPECT_NE(tree.Intern(Fn("view", 13)), view);
  EXPECT_NE(tree.Intern(Fn("view", 12, "other.py")), view);
  EXPECT_NE(tree.Intern(Fn("view2", 12)), view);
  // The key's separators keep these apart.
  EXPECT_NE(tree.Intern({"a", 1, "1b"}), tree.Intern({"a", 11, "b"}));
  EXPECT_EQ(tree.functions().size(), 6u);
  EXPECT_EQ(tree.functions()[view], Fn("view", 12));
}

TEST(ProfileCallTree, ChildFindsOrAddsOnePath) {
  CallTree tree("instructions", "hardware", "exact");
  const FunctionId view = tree.Intern(Fn("view"));
  const FunctionId wrapper = tree.Intern(Fn("wrapper"));
  const FunctionId f = tree.Intern(Fn("f"));
  const NodeId v = tree.Child(kRoot, view);
  EXPECT_EQ(tree.Child(kRoot, view), v);
  const NodeId w = tree.Child(v, wrapper);
  const NodeId wf = tree.Child(w, f);
  const NodeId vf = tree.Child(v, f);  // f called straight from view: another path
  EXPECT_NE(wf, vf);
  EXPECT_EQ(tree.Child(w, f), wf);
  EXPECT_EQ(tree.Path(wf), (std::vector<FunctionId>{view, wrapper, f}));
  EXPECT_EQ(tree.Path(vf), (std::vector<FunctionId>{view, f}));
  EXPECT_EQ(tree.nodes()[wf].parent, w);
  EXPECT_EQ(tree.nodes().size(), 5u);
}

TEST(ProfileCallTree, ChildBeyondTheLinearLimitUsesTheIndex) {
  CallTree tree("instructions", "hardware", "exact");
  const NodeId view = tree.Child(kRoot, tree.Intern(Fn("view")));
  std::vector<FunctionId> functions;
  std::vector<NodeId> children;
  for (int i = 0; i < 100; ++i) {
    functions.push_back(tree.Intern(Fn("f" + std::to_string(i))));
    children.push_back(tree.Child(view, functions.back()));
    // Every child added so far is still found, whichever side of the limit.
    for (size_t k = 0; k < children.size(); ++k)
      ASSERT_EQ(tree.Child(view, functions[k]), children[k]) << i << " " << k;
  }
  EXPECT_EQ(tree.nodes().size(), 102u);
  // Another parent with the same functions has its own children.
  const NodeId other = tree.Child(kRoot, functions[0]);
  EXPECT_NE(tree.Child(other, functions[50]), children[50]);
}

TEST(ProfileCallTree, AddCallAndTotalCost) {
  CallTree tree = Sample();
  const NodeId a = Find(tree, {"view", "a"});
  tree.AddCall(a, 5, 7, /*primitive=*/false);
  const Node& n = tree.nodes()[a];
  EXPECT_EQ(n.calls, 2u);
  EXPECT_EQ(n.primitive_calls, 1u);
  EXPECT_EQ(n.self_cost, 105u);
  EXPECT_EQ(n.total_cost, 107u);
  EXPECT_EQ(tree.TotalCost(), 150u);  // only the root's children count
  AddPath(tree, {"other_view"}, 40, 40);
  EXPECT_EQ(tree.TotalCost(), 190u);
}

TEST(ProfileCallTree, MergeAddsPathByPath) {
  CallTree a = Sample();
  // Same paths, functions interned in another order, plus one new path.
  CallTree b("instructions", "hardware", "exact");
  b.Intern(Fn("helper"));
  b.Intern(Fn("b"));
  AddPath(b, {"view", "b", "helper"}, 10, 10);
  AddPath(b, {"view", "c"}, 7, 7);
  AddPath(b, {"view"}, 1, 18);
  b.set_builtins_folded(true);
  ASSERT_TRUE(a.Merge(b).ok());
  EXPECT_EQ(a.requests(), 2u);
  EXPECT_TRUE(a.builtins_folded());
  EXPECT_EQ(a.functions().size(), 5u);
  const Node& helper = a.nodes()[Find(a, {"view", "b", "helper"})];
  EXPECT_EQ(helper.calls, 2u);
  EXPECT_EQ(helper.self_cost, 40u);
  EXPECT_EQ(a.nodes()[Find(a, {"view", "c"})].self_cost, 7u);
  EXPECT_EQ(a.nodes()[Find(a, {"view"})].total_cost, 168u);
  EXPECT_EQ(a.TotalCost(), 168u);
  EXPECT_EQ(Find(a, {"b"}), kRoot);  // b is nowhere at the top
}

TEST(ProfileCallTree, MergeIntoAnEmptyAccumulator) {
  CallTree all("instructions", "hardware", "exact");
  all.set_requests(0);  // as call_tree.h says: it holds no request yet
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(all.Merge(Sample()).ok());
  EXPECT_EQ(all.requests(), 3u);
  EXPECT_EQ(all.TotalCost(), 450u);
}

TEST(ProfileCallTree, MergeWithItselfDoubles) {
  CallTree tree = Sample();
  ASSERT_TRUE(tree.Merge(tree).ok());
  EXPECT_EQ(tree.requests(), 2u);
  EXPECT_EQ(tree.nodes().size(), Sample().nodes().size());
  EXPECT_EQ(tree.TotalCost(), 300u);
}

TEST(ProfileCallTree, MergeRefusesAnotherUnit) {
  CallTree tree = Sample();
  CallTree ns("cpu_ns", "thread_cputime", "exact");
  AddPath(ns, {"view"}, 1, 1);
  Status s = tree.Merge(ns);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "cannot merge a profile in 'cpu_ns' into one in 'instructions'");
  ExpectSameTree(tree, Sample());  // unchanged
}

TEST(ProfileCallTree, ProtoRoundTrip) {
  CallTree tree = Sample();
  tree.Intern({"~", 0, "<built-in method builtins.len>"});
  AddPath(tree, {"view", "a", "a"}, 3, 3, /*primitive=*/false);
  tree.set_requests(4);
  tree.set_builtins_folded(true);
  tree.set_overhead_per_event(17);
  record::Profile proto;
  tree.ToProto(&proto);
  EXPECT_EQ(proto.nodes_size(), static_cast<int>(tree.nodes().size()));
  EXPECT_EQ(proto.requests(), 4u);
  EXPECT_EQ(proto.overhead_per_event(), 17u);
  Result<CallTree> back = CallTree::FromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameTree(*back, tree);
  // And the tree read back keeps working: lookups find the old paths.
  const FunctionId view = back->Intern(Fn("view"));
  EXPECT_EQ(back->Child(kRoot, view), Find(tree, {"view"}));
}

TEST(ProfileCallTree, FromProtoValidates) {
  record::Profile proto;
  Sample().ToProto(&proto);
  proto.mutable_nodes(3)->set_parent(3);
  Result<CallTree> bad = CallTree::FromProto(proto);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "field 'profile.nodes[3].parent' must be below 3 (a parent comes before its "
            "children), got 3");

  Sample().ToProto(&proto);
  proto.mutable_nodes(1)->set_function(99);
  EXPECT_EQ(CallTree::FromProto(proto).status().message(),
            "field 'profile.nodes[1].function' must index profile.functions (4 of them), got 99");
  Sample().ToProto(&proto);
  proto.set_unit("furlongs");
  EXPECT_EQ(CallTree::FromProto(proto).status().message(),
            "field 'profile.unit' must be one of instructions, cycles, cpu_ns, tsc; got "
            "'furlongs'");
  Sample().ToProto(&proto);
  proto.set_mode("");
  EXPECT_FALSE(CallTree::FromProto(proto).ok());
  proto.Clear();
  EXPECT_EQ(CallTree::FromProto(proto).status().message(),
            "field 'profile.unit' must be one of instructions, cycles, cpu_ns, tsc; got ''");
}

TEST(ProfileCallTree, FromProtoMergesDuplicatesAndDefaultsRequests) {
  record::Profile proto;
  proto.set_unit("cpu_ns");
  proto.set_mode("fast");
  for (int i = 0; i < 2; ++i) {  // the same function twice
    record::ProfileFunction* f = proto.add_functions();
    f->set_file("app.py");
    f->set_line(3);
    f->set_name("view");
  }
  proto.add_nodes();
  for (uint32_t f = 0; f < 2; ++f) {  // two root children, one path
    record::ProfileNode* n = proto.add_nodes();
    n->set_function(f);
    n->set_calls(1);
    n->set_self_cost(10);
    n->set_total_cost(10);
  }
  Result<CallTree> tree = CallTree::FromProto(proto);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->requests(), 1u);  // 0 on the wire: unset
  EXPECT_EQ(tree->functions().size(), 1u);
  ASSERT_EQ(tree->nodes().size(), 2u);
  EXPECT_EQ(tree->nodes()[1].calls, 2u);
  EXPECT_EQ(tree->nodes()[1].self_cost, 20u);
}

TEST(ProfileCallTree, TotalsByFunctionCountsRecursionOnce) {
  // view -> a -> b -> a -> b: the inner a and b are inside the outer ones.
  //   node        self  total
  //   view          5    105
  //   a            10    100
  //   a.b          20     90
  //   a.b.a        30     70
  //   a.b.a.b      40     40
  CallTree tree("instructions", "hardware", "exact");
  AddPath(tree, {"view"}, 5, 105);
  AddPath(tree, {"view", "a"}, 10, 100);
  AddPath(tree, {"view", "a", "b"}, 20, 90);
  AddPath(tree, {"view", "a", "b", "a"}, 30, 70, /*primitive=*/false);
  AddPath(tree, {"view", "a", "b", "a", "b"}, 40, 40, /*primitive=*/false);
  // And a second, separate activation of b straight from view.
  AddPath(tree, {"view", "b"}, 0, 0);  // (view's figures above already include it: 0 cost)
  const std::vector<FunctionTotals> totals = TotalsByFunction(tree);
  ASSERT_EQ(totals.size(), 3u);
  const FunctionTotals& view = totals[0];
  const FunctionTotals& a = totals[1];
  const FunctionTotals& b = totals[2];
  EXPECT_EQ(tree.functions()[a.function].name, "a");
  EXPECT_EQ(tree.functions()[b.function].name, "b");
  EXPECT_EQ(view.total_cost, 105u);
  EXPECT_EQ(a.calls, 2u);
  EXPECT_EQ(a.primitive_calls, 1u);
  EXPECT_EQ(a.self_cost, 40u);
  EXPECT_EQ(a.total_cost, 100u);  // outer a only: 100, not 170
  EXPECT_EQ(b.calls, 3u);
  EXPECT_EQ(b.primitive_calls, 2u);
  EXPECT_EQ(b.self_cost, 60u);
  EXPECT_EQ(b.total_cost, 90u);  // outer b (90) + view.b (0), not + 40
}

TEST(ProfileCallTree, TotalsByFunctionSumsSeparateActivations) {
  // helper under two different paths: both totals count.
  CallTree tree = Sample();
  AddPath(tree, {"view", "a", "helper"}, 8, 8);
  for (const FunctionTotals& t : TotalsByFunction(tree)) {
    if (tree.functions()[t.function].name != "helper") continue;
    EXPECT_EQ(t.calls, 2u);
    EXPECT_EQ(t.self_cost, 38u);
    EXPECT_EQ(t.total_cost, 38u);
  }
  // A function interned but never called has no entry.
  tree.Intern(Fn("unused"));
  EXPECT_EQ(TotalsByFunction(tree).size(), 4u);
}

TEST(ProfileCallTree, DeepRecursionDoesNotOverflowTheWalk) {
  CallTree tree("instructions", "hardware", "exact");
  const FunctionId f = tree.Intern(Fn("recurse"));
  NodeId n = kRoot;
  for (int depth = 0; depth < 100'000; ++depth) {
    n = tree.Child(n, f);
    tree.AddCall(n, 1, 100'000 - depth, depth == 0);
  }
  const std::vector<FunctionTotals> totals = TotalsByFunction(tree);
  ASSERT_EQ(totals.size(), 1u);
  EXPECT_EQ(totals[0].calls, 100'000u);
  EXPECT_EQ(totals[0].primitive_calls, 1u);
  EXPECT_EQ(totals[0].total_cost, 100'000u);
}

}  // namespace
}  // namespace cpuledger::profile
