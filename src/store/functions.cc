#include "store/functions.h"

#include <algorithm>
#include <cstdio>
#include <tuple>

namespace cpuledger::store {
namespace {

bool FunctionLess(const profile::Function& a, const profile::Function& b) {
  return std::tie(a.file, a.line, a.name) < std::tie(b.file, b.line, b.name);
}

}  // namespace

Result<FunctionSort> ParseFunctionSort(std::string_view text) {
  if (text == "self") return FunctionSort::kSelf;
  if (text == "total") return FunctionSort::kTotal;
  return InvalidArgument("sort '" + std::string(text) + "' must be self or total");
}

std::string CallPathText(const std::vector<profile::Function>& path) {
  std::string out;
  for (const profile::Function& f : path) {
    if (!out.empty()) out += '\n';
    profile::AppendFunctionKey(&out, f.file, f.line, f.name);
  }
  return out;
}

Result<std::vector<profile::Function>> ParseCallPath(std::string_view text) {
  std::vector<profile::Function> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    Result<profile::Function> f = profile::ParseFunctionKey(text.substr(0, nl));
    if (!f.ok()) return f.status();
    out.push_back(std::move(*f));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  return out;
}

int64_t CallPathHash(std::string_view text) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return static_cast<int64_t>(h);
}

FunctionReport ReportFromTree(const profile::CallTree& tree, const FunctionQuery& query) {
  FunctionReport report;
  report.unit = tree.unit();
  report.profiled_requests = tree.requests();
  const double n = tree.requests() == 0 ? 1.0 : static_cast<double>(tree.requests());
  const std::vector<profile::Function>& functions = tree.functions();
  const std::vector<profile::Node>& nodes = tree.nodes();

  // Per function, its nodes (paths).
  std::vector<std::vector<profile::NodeId>> paths_of(functions.size());
  for (profile::NodeId i = 1; i < nodes.size(); ++i) paths_of[nodes[i].function].push_back(i);

  for (const profile::FunctionTotals& t : profile::TotalsByFunction(tree)) {
    FunctionCost c;
    c.function = functions[t.function];
    c.calls = static_cast<double>(t.calls) / n;
    c.primitive_calls = static_cast<double>(t.primitive_calls) / n;
    c.self = static_cast<double>(t.self_cost) / n;
    c.total = static_cast<double>(t.total_cost) / n;
    std::vector<profile::NodeId>& ids = paths_of[t.function];
    const size_t keep = std::min(ids.size(), kFunctionTopPaths);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(),
                      [&](profile::NodeId a, profile::NodeId b) {
                        if (nodes[a].self_cost != nodes[b].self_cost)
                          return nodes[a].self_cost > nodes[b].self_cost;
                        if (nodes[a].total_cost != nodes[b].total_cost)
                          return nodes[a].total_cost > nodes[b].total_cost;
                        return a < b;
                      });
    for (size_t k = 0; k < keep; ++k) {
      const profile::Node& node = nodes[ids[k]];
      FunctionPathCost p;
      for (profile::FunctionId f : tree.Path(ids[k])) p.path.push_back(functions[f]);
      p.calls = static_cast<double>(node.calls) / n;
      p.self = static_cast<double>(node.self_cost) / n;
      p.total = static_cast<double>(node.total_cost) / n;
      c.top_paths.push_back(std::move(p));
    }
    report.functions.push_back(std::move(c));
  }
  const bool by_self = query.sort == FunctionSort::kSelf;
  std::sort(report.functions.begin(), report.functions.end(),
            [by_self](const FunctionCost& a, const FunctionCost& b) {
              const double ka = by_self ? a.self : a.total, kb = by_self ? b.self : b.total;
              if (ka != kb) return ka > kb;
              const double ja = by_self ? a.total : a.self, jb = by_self ? b.total : b.self;
              if (ja != jb) return ja > jb;
              return FunctionLess(a.function, b.function);
            });
  if (report.functions.size() > query.limit) {
    report.functions.resize(query.limit);
    report.truncated = true;
  }
  return report;
}

}  // namespace cpuledger::store
