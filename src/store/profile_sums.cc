#include "store/profile_sums.h"

#include <algorithm>

#include "record/codec.h"

namespace cpuledger::store {

std::pair<int64_t, int64_t> HourBuckets(int64_t from_us, int64_t to_us) {
  constexpr int64_t kUs = 1'000'000, kHourUs = 3600 * kUs;
  int64_t lo = from_us / kHourUs;
  if (from_us % kHourUs != 0 && from_us < 0) --lo;
  return {lo * 3600, to_us / kUs + (to_us % kUs > 0 ? 1 : 0)};
}

Status CheckProfileFlag(const std::optional<std::set<std::string>>& profile_flags,
                        const FunctionQuery& query) {
  if (query.flag && profile_flags && profile_flags->count(*query.flag) == 0)
    return InvalidArgument("flag " + *query.flag +
                           " keeps no call paths of its own: add it to profile_flags in the "
                           "server's config");
  return OkStatus();
}

Status OneUnit(const std::vector<std::pair<std::string, int64_t>>& units) {
  if (units.size() <= 1) return OkStatus();
  std::string names;
  for (const auto& [unit, n] : units) names += (names.empty() ? "" : ", ") + unit;
  return InvalidArgument("the slice holds profiles in several units (" + names +
                         "); narrow it by service, endpoint or commit to one unit");
}

Status TooManyPaths() {
  return InvalidArgument("the slice has more than " + std::to_string(record::kMaxProfileNodes) +
                         " call paths; narrow it by time, service, endpoint or commit");
}

Result<profile::CallTree> BuildCallTree(const SliceSums& sums) {
  if (sums.units.empty()) {
    profile::CallTree empty("", "store", "exact");
    empty.set_requests(0);
    return empty;
  }
  const std::unordered_map<int64_t, SliceSums::PathNode>& paths = sums.paths;
  const std::unordered_map<int64_t, std::string>& keys = sums.keys;
  for (const auto& [id, n] : paths) {
    if (n.parent != 0 && paths.count(n.parent) == 0)
      return IoError("corrupt store: the parent of call path " + std::to_string(id) +
                     " is missing");
    if (keys.count(n.function) == 0)
      return IoError("corrupt store: function " + std::to_string(n.function) + " is missing");
  }
  // The tree, as a record::Profile, in the order of the paths' text (siblings
  // by function key, each followed by its subtree): the order schema version 3
  // gave, so every answer built on node order stays the same.
  record::Profile p;
  p.set_unit(sums.units[0].first);
  p.set_source("store");
  p.set_mode("exact");
  p.set_requests(static_cast<uint64_t>(sums.units[0].second));
  p.add_nodes();  // the root
  // Siblings have distinct functions (a path is its parent and function) and
  // functions distinct keys, so sorting by key gives one order whatever order
  // the paths were read in.
  std::vector<int64_t> roots;
  std::unordered_map<int64_t, std::vector<int64_t>> children;  // path id -> its children
  for (const auto& [id, n] : paths) (n.parent == 0 ? roots : children[n.parent]).push_back(id);
  auto by_key = [&](int64_t a, int64_t b) {
    return keys.at(paths.at(a).function) < keys.at(paths.at(b).function);
  };
  std::unordered_map<int64_t, uint32_t> function_index;  // function id -> index in p
  // (path id, its node's parent index), depth first.
  std::vector<std::pair<int64_t, uint32_t>> stack;
  std::sort(roots.begin(), roots.end(), by_key);
  for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack.emplace_back(*it, 0);
  while (!stack.empty()) {
    const auto [id, parent_index] = stack.back();
    stack.pop_back();
    const SliceSums::PathNode& n = paths.at(id);
    auto [fit, added] =
        function_index.try_emplace(n.function, static_cast<uint32_t>(p.functions_size()));
    if (added) {
      Result<profile::Function> f = profile::ParseFunctionKey(keys.at(n.function));
      if (!f.ok()) return IoError("stored " + f.status().message());
      record::ProfileFunction* pf = p.add_functions();
      pf->set_file(f->file);
      pf->set_line(f->line);
      pf->set_name(f->name);
    }
    const auto index = static_cast<uint32_t>(p.nodes_size());
    record::ProfileNode* node = p.add_nodes();
    node->set_parent(parent_index);
    node->set_function(fit->second);
    node->set_calls(n.calls);
    node->set_primitive_calls(n.primitive_calls);
    node->set_self_cost(n.self_cost);
    node->set_total_cost(n.total_cost);
    auto kids = children.find(id);
    if (kids == children.end()) continue;
    std::sort(kids->second.begin(), kids->second.end(), by_key);
    for (auto it = kids->second.rbegin(); it != kids->second.rend(); ++it)
      stack.emplace_back(*it, index);
  }
  Result<profile::CallTree> tree = profile::CallTree::FromProto(p);
  if (!tree.ok())
    return InvalidArgument("cannot rebuild the slice's call tree (narrow it): " +
                           tree.status().message());
  return tree;
}

}  // namespace cpuledger::store
