// src/profile/walk.h — internal to src/profile: a CallTree's children as
// flat lists, and a depth-first walk over them, for the passes that need a
// node's ancestors in view (recursion-aware totals, stacks for exports).
//
//   WalkDepthFirst(tree, [&](NodeId n) { /* enter n */ },
//                        [&](NodeId n) { /* leave n */ });
//
// Not for the hook's path: it allocates O(nodes) per walk.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "profile/call_tree.h"

namespace cpuledger::profile::internal {

// ChildLists — children of node n are child[begin[n] .. begin[n + 1]), in
// node index order (the order they were added).
struct ChildLists {
  std::vector<uint32_t> begin;  // nodes + 1 offsets into child
  std::vector<NodeId> child;
};

// BuildChildLists() — COST: O(nodes), two allocations.
inline ChildLists BuildChildLists(const CallTree& tree) {
  const std::vector<Node>& nodes = tree.nodes();
  ChildLists out;
  out.begin.assign(nodes.size() + 1, 0);
  for (size_t i = 1; i < nodes.size(); ++i) ++out.begin[nodes[i].parent + 1];
  for (size_t i = 1; i < out.begin.size(); ++i) out.begin[i] += out.begin[i - 1];
  out.child.resize(nodes.size() > 0 ? nodes.size() - 1 : 0);
  std::vector<uint32_t> next(out.begin.begin(), out.begin.end() - 1);
  for (size_t i = 1; i < nodes.size(); ++i) out.child[next[nodes[i].parent]++] = NodeId(i);
  return out;
}

// WalkDepthFirst() — calls enter(n) before n's children and leave(n) after
// them, for every node but the root, children in index order. Iterative: a
// deep (recursive) profile cannot overflow the C++ stack.
template <typename Enter, typename Leave>
void WalkDepthFirst(const CallTree& tree, Enter&& enter, Leave&& leave) {
  if (tree.nodes().empty()) return;
  const ChildLists lists = BuildChildLists(tree);
  // (node, position of its next child to visit)
  std::vector<std::pair<NodeId, uint32_t>> stack;
  stack.emplace_back(kRoot, lists.begin[kRoot]);
  while (!stack.empty()) {
    auto& [node, pos] = stack.back();
    if (pos == lists.begin[node + 1]) {
      if (node != kRoot) leave(node);
      stack.pop_back();
      continue;
    }
    const NodeId child = lists.child[pos++];
    enter(child);
    stack.emplace_back(child, lists.begin[child]);  // invalidates node/pos: used no more
  }
}

}  // namespace cpuledger::profile::internal
