// tests/cpp/profile/trees.h — small call trees shared by the profile tests,
// built the way the interpreter hooks build them (Intern, Child, AddCall).
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "profile/call_tree.h"

namespace cpuledger::profile::testing {

inline Function Fn(const std::string& name, uint32_t line = 1, const std::string& file = "app.py") {
  return {file, line, name};
}

// AddPath() — one call at the end of the path `names` (each Fn(name)), with
// the given self and total cost; returns the node.
inline NodeId AddPath(CallTree& tree, std::initializer_list<std::string> names, uint64_t self,
                      uint64_t total, bool primitive = true) {
  NodeId node = kRoot;
  for (const std::string& name : names) node = tree.Child(node, tree.Intern(Fn(name)));
  tree.AddCall(node, self, total, primitive);
  return node;
}

// NamesOf() — the names along a path of functions.
inline std::vector<std::string> NamesOf(const std::vector<Function>& path) {
  std::vector<std::string> out;
  for (const Function& f : path) out.push_back(f.name);
  return out;
}

// Sample() — view -> {a (self 100), b -> helper (self 30)}, view self 20:
//   view total 150, a 100, b 30 (self 0), helper 30.
inline CallTree Sample() {
  CallTree tree("instructions", "hardware", "exact");
  AddPath(tree, {"view"}, 20, 150);
  AddPath(tree, {"view", "a"}, 100, 100);
  AddPath(tree, {"view", "b"}, 0, 30);
  AddPath(tree, {"view", "b", "helper"}, 30, 30);
  return tree;
}

}  // namespace cpuledger::profile::testing
