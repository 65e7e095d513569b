// src/profile/call_tree.h — "where inside the request": a call-path tree
// costed in one unit (instructions, cycles, ns of CPU, or TSC ticks).
//
// Every node is one call path from the root (root -> view -> wrapper -> f),
// not just a caller -> callee pair, so a decorator or wrapper shared by many
// functions keeps their costs apart: the cost under `wrapper -> f` and under
// `wrapper -> g` are different nodes. Per node: calls, primitive (non-
// recursive) calls, self cost and total cost. Recursion: a frame whose
// function is already on the stack below it adds its total to the node but
// not again to the ancestors' totals (as _lsprof.c does with its recursion
// level), so totals never double count.
//
//   CallTree tree("instructions", "hardware", "exact");
//   FunctionId f = tree.Intern({"app.py", 12, "view"});
//   NodeId n = tree.Child(kRoot, f);             // find or add root -> view
//   tree.AddCall(n, /*self=*/120, /*total=*/900, /*primitive=*/true);
//   tree.Merge(other);                          // e.g. many requests' profiles
//
// The interpreter hooks (python/cpuledger/native) build trees; the server's
// tailer merges them into function entities; exports turn them into pstats,
// pprof, speedscope and collapsed stacks (export.h).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "record/record.pb.h"

namespace cpuledger::profile {

using FunctionId = uint32_t;
using NodeId = uint32_t;
inline constexpr NodeId kRoot = 0;

// Function — how a function is named everywhere: file:line:name.
struct Function {
  std::string file;  // "~" for C builtins (as cProfile), else the code object's filename
  uint32_t line = 0;
  std::string name;  // code name, or "<built-in method len>" style for builtins
  bool operator==(const Function&) const = default;
};

// Node — one call path.
struct Node {
  FunctionId function = 0;  // meaningless for the root
  NodeId parent = kRoot;
  uint64_t calls = 0;            // times this path was entered
  uint64_t primitive_calls = 0;  // of those, not recursive (function not already on the stack)
  uint64_t self_cost = 0;        // cost in this frame, excluding callees
  uint64_t total_cost = 0;       // cost including callees, recursion counted once
};

class CallTree {
 public:
  CallTree(std::string unit, std::string source, std::string mode);

  // CallTree::Intern() — the id of `f`, added if new. COST: one hash lookup
  // on a key built in a reused buffer (no allocation once warm; adding a
  // function allocates). Hooks should cache the id per code object.
  FunctionId Intern(const Function& f);
  // CallTree::Child() — the node for path(parent) -> function, added if new.
  // REQUIRES: parent < nodes().size(), function < functions().size().
  // COST: a node with at most kLinearChildren children is searched by a walk
  // of its sibling list (most recently added child first), no hashing; one
  // with more is one hash lookup. Once the tree is warm (the path exists)
  // nothing is allocated; adding a node grows two vectors (amortised O(1)).
  NodeId Child(NodeId parent, FunctionId function);
  // CallTree::AddCall() — one finished call on `node`. COST: four adds.
  void AddCall(NodeId node, uint64_t self_cost, uint64_t total_cost, bool primitive);

  // CallTree::Merge() — adds `other` path by path (functions matched by
  // file:line:name) and sums requests(); builtins_folded() becomes true if
  // either was; overhead_per_event() stays this tree's. REQUIRES: same unit;
  // RETURNS: InvalidArgument otherwise (and this tree is unchanged).
  // NOTE: a new tree has requests() == 1; an accumulator built empty to
  // merge N profiles into should call set_requests(0) first. The merged tree
  // may exceed record::kMaxProfileNodes (ToProto does not truncate).
  // COST: O(other's nodes) Child() calls.
  Status Merge(const CallTree& other);

  const std::vector<Function>& functions() const { return functions_; }
  const std::vector<Node>& nodes() const { return nodes_; }  // nodes()[0] is the root
  const std::string& unit() const { return unit_; }
  const std::string& source() const { return source_; }
  const std::string& mode() const { return mode_; }
  // requests — how many request profiles were merged into this tree (1 for one).
  uint64_t requests() const { return requests_; }
  void set_requests(uint64_t n) { requests_ = n; }
  // builtins_folded — fast mode: C builtins' cost is in their callers' self cost.
  bool builtins_folded() const { return builtins_folded_; }
  void set_builtins_folded(bool b) { builtins_folded_ = b; }
  // overhead_per_event — calibrated cost of one hook event, already subtracted.
  uint64_t overhead_per_event() const { return overhead_per_event_; }
  void set_overhead_per_event(uint64_t n) { overhead_per_event_ = n; }
  // Path() — the functions from the root to `node`, outermost first.
  std::vector<FunctionId> Path(NodeId node) const;
  // TotalCost() — sum of the root's children's totals. COST: O(root's children).
  uint64_t TotalCost() const;

  // ToProto() / FromProto() — the record.Profile carried in a RequestRecord.
  // FromProto validates first (record::ValidateProfile: the root, parents
  // before children, indices in range, limits, unit and mode) and RETURNS
  // InvalidArgument naming the field. Duplicate functions or sibling paths in
  // `in` are merged; a requests of 0 (proto3's "unset") reads as 1.
  // FromProto(ToProto(t)) equals t.
  void ToProto(record::Profile* out) const;
  static Result<CallTree> FromProto(const record::Profile& in);

  // kLinearChildren — up to this many children, Child() walks a list.
  static constexpr uint32_t kLinearChildren = 8;

 private:
  static constexpr NodeId kNoNode = std::numeric_limits<NodeId>::max();
  // Links — per node, parallel to nodes_: the child list Child() walks.
  struct Links {
    NodeId first_child = kNoNode;   // most recently added child
    NodeId next_sibling = kNoNode;  // the child of the same parent added before this one
    FunctionId function = 0;        // nodes_[this].function, kept here so a walk reads one array
    uint32_t children = 0;          // how many; above kLinearChildren they are in child_index_
  };
  static uint64_t ChildKey(NodeId parent, FunctionId f) {
    return static_cast<uint64_t>(parent) << 32 | f;
  }

  std::string unit_, source_, mode_;
  uint64_t requests_ = 1;
  bool builtins_folded_ = false;
  uint64_t overhead_per_event_ = 0;
  std::vector<Function> functions_;
  std::unordered_map<std::string, FunctionId> function_index_;  // "file\0line\0name"
  std::string key_scratch_;                                     // Intern()'s key buffer, reused
  std::vector<Node> nodes_;
  std::vector<Links> links_;
  std::unordered_map<uint64_t, NodeId> child_index_;  // (parent << 32 | function) -> child
};

// FunctionTotals — per function over the whole tree (what pstats shows):
// calls, primitive calls, self cost, and total cost counted once per
// outermost (non-recursive) activation.
struct FunctionTotals {
  FunctionId function = 0;
  uint64_t calls = 0, primitive_calls = 0, self_cost = 0, total_cost = 0;
};
// TotalsByFunction() — one entry per function that has a node, in function
// id order: calls, primitive calls and self cost summed over its nodes; total
// cost summed over its outermost nodes only (those with no ancestor of the
// same function), as cProfile counts cumulative time once per recursion.
// COST: O(nodes) time, O(nodes + functions) memory.
std::vector<FunctionTotals> TotalsByFunction(const CallTree& tree);

}  // namespace cpuledger::profile
