// src/profile/diff.cc — DiffTrees and DiffPaths.
//
// Both sides are mapped onto one union tree (a CallTree used only for its
// interning and path lookup), so a function or a path has one id whichever
// side it came from; the per-side figures sit in vectors indexed by those ids.
#include "profile/diff.h"

#include <algorithm>
#include <tuple>

namespace cpuledger::profile {
namespace {

// Side — one tree's figures on the union's ids, already per request.
struct Side {
  std::vector<double> node_calls, node_self, node_total;  // by union node
  std::vector<double> fn_calls, fn_self, fn_total;        // by union function
};

double PerRequest(uint64_t value, uint64_t requests) {
  return static_cast<double>(value) / static_cast<double>(requests == 0 ? 1 : requests);
}

// AddSide() — maps `tree` onto `u` and fills `side`. Sized at the end,
// since the other side may add ids after this one.
void AddSide(const CallTree& tree, CallTree& u, Side& side) {
  const uint64_t requests = tree.requests();
  std::vector<FunctionId> fmap(tree.functions().size());
  for (size_t f = 0; f < fmap.size(); ++f) fmap[f] = u.Intern(tree.functions()[f]);
  std::vector<NodeId> nmap(tree.nodes().size(), kRoot);
  for (size_t i = 1; i < nmap.size(); ++i) {
    const Node& n = tree.nodes()[i];
    nmap[i] = u.Child(nmap[n.parent], fmap[n.function]);
  }
  const auto grow = [](std::vector<double>& v, size_t n) {
    if (v.size() < n) v.resize(n, 0);
  };
  for (auto* v : {&side.node_calls, &side.node_self, &side.node_total}) grow(*v, u.nodes().size());
  for (auto* v : {&side.fn_calls, &side.fn_self, &side.fn_total}) grow(*v, u.functions().size());
  for (size_t i = 1; i < nmap.size(); ++i) {
    const Node& n = tree.nodes()[i];
    side.node_calls[nmap[i]] += PerRequest(n.calls, requests);
    side.node_self[nmap[i]] += PerRequest(n.self_cost, requests);
    side.node_total[nmap[i]] += PerRequest(n.total_cost, requests);
  }
  for (const FunctionTotals& t : TotalsByFunction(tree)) {
    const FunctionId f = fmap[t.function];
    side.fn_calls[f] += PerRequest(t.calls, requests);
    side.fn_self[f] += PerRequest(t.self_cost, requests);
    side.fn_total[f] += PerRequest(t.total_cost, requests);
  }
}

void Resize(Side& side, const CallTree& u) {
  for (auto* v : {&side.node_calls, &side.node_self, &side.node_total})
    v->resize(u.nodes().size(), 0);
  for (auto* v : {&side.fn_calls, &side.fn_self, &side.fn_total})
    v->resize(u.functions().size(), 0);
}

// Union — both trees on one set of ids.
struct Union {
  CallTree tree;
  Side before, after;
};

Result<Union> BuildUnion(const CallTree& before, const CallTree& after) {
  if (before.unit() != after.unit())
    return InvalidArgument("cannot diff a profile in '" + before.unit() + "' against one in '" +
                           after.unit() + "'");
  Union u{CallTree(after.unit(), after.source(), after.mode()), {}, {}};
  AddSide(before, u.tree, u.before);
  AddSide(after, u.tree, u.after);
  Resize(u.before, u.tree);
  Resize(u.after, u.tree);
  return u;
}

std::vector<Function> PathOf(const CallTree& u, NodeId node) {
  std::vector<Function> out;
  for (FunctionId f : u.Path(node)) out.push_back(u.functions()[f]);
  return out;
}

PathDiff MakePathDiff(const Union& u, NodeId n) {
  PathDiff d;
  d.path = PathOf(u.tree, n);
  d.before_calls = u.before.node_calls[n];
  d.after_calls = u.after.node_calls[n];
  d.before_self = u.before.node_self[n];
  d.after_self = u.after.node_self[n];
  d.before_total = u.before.node_total[n];
  d.after_total = u.after.node_total[n];
  return d;
}

// RankKey() — sorts descending by the chosen delta, then the other one;
// the last tie-break (the function) makes the order total and stable.
std::tuple<double, double> RankKey(DiffRank rank, double delta_self, double delta_total) {
  return rank == DiffRank::kBySelf ? std::tuple(delta_self, delta_total)
                                   : std::tuple(delta_total, delta_self);
}

bool FunctionLess(const Function& a, const Function& b) {
  return std::tie(a.file, a.line, a.name) < std::tie(b.file, b.line, b.name);
}

}  // namespace

Result<std::vector<FunctionDiff>> DiffTrees(const CallTree& before, const CallTree& after,
                                            const DiffOptions& options) {
  Result<Union> built = BuildUnion(before, after);
  if (!built.ok()) return built.status();
  const Union& u = *built;
  const size_t nfunctions = u.tree.functions().size();

  // Each function's paths that grew: by self first, total as the fallback
  // for callers whose own code did not change.
  std::vector<std::vector<NodeId>> grown(nfunctions);
  for (size_t n = 1; n < u.tree.nodes().size(); ++n) {
    const double ds = u.after.node_self[n] - u.before.node_self[n];
    const double dt = u.after.node_total[n] - u.before.node_total[n];
    if (ds > 0 || dt > 0) grown[u.tree.nodes()[n].function].push_back(static_cast<NodeId>(n));
  }

  std::vector<FunctionDiff> out;
  out.reserve(nfunctions);
  for (size_t f = 0; f < nfunctions; ++f) {
    FunctionDiff d;
    d.function = u.tree.functions()[f];
    d.before_calls = u.before.fn_calls[f];
    d.after_calls = u.after.fn_calls[f];
    d.before_self = u.before.fn_self[f];
    d.after_self = u.after.fn_self[f];
    d.before_total = u.before.fn_total[f];
    d.after_total = u.after.fn_total[f];
    std::vector<PathDiff> paths;
    for (NodeId n : grown[f]) paths.push_back(MakePathDiff(u, n));
    std::stable_sort(paths.begin(), paths.end(), [](const PathDiff& a, const PathDiff& b) {
      return RankKey(DiffRank::kBySelf, a.delta_self(), a.delta_total()) >
             RankKey(DiffRank::kBySelf, b.delta_self(), b.delta_total());
    });
    if (paths.size() > options.max_paths) paths.resize(options.max_paths);
    d.paths = std::move(paths);
    out.push_back(std::move(d));
  }
  std::sort(out.begin(), out.end(), [&](const FunctionDiff& a, const FunctionDiff& b) {
    const auto ka = RankKey(options.rank, a.delta_self(), a.delta_total());
    const auto kb = RankKey(options.rank, b.delta_self(), b.delta_total());
    if (ka != kb) return ka > kb;
    return FunctionLess(a.function, b.function);
  });
  return out;
}

Result<std::vector<PathDiff>> DiffPaths(const CallTree& before, const CallTree& after,
                                        DiffRank rank) {
  Result<Union> built = BuildUnion(before, after);
  if (!built.ok()) return built.status();
  const Union& u = *built;
  std::vector<PathDiff> out;
  out.reserve(u.tree.nodes().size());
  for (size_t n = 1; n < u.tree.nodes().size(); ++n)
    out.push_back(MakePathDiff(u, static_cast<NodeId>(n)));
  // stable: equal paths keep the union's order (before's paths first).
  std::stable_sort(out.begin(), out.end(), [&](const PathDiff& a, const PathDiff& b) {
    return RankKey(rank, a.delta_self(), a.delta_total()) >
           RankKey(rank, b.delta_self(), b.delta_total());
  });
  return out;
}

}  // namespace cpuledger::profile
