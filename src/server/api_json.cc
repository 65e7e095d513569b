#include "server/api_json.h"

#include <algorithm>
#include <functional>

namespace cpuledger::server {
namespace {

nlohmann::json DistributionJson(const store::Distribution& d) {
  if (d.n == 0) return nullptr;  // not available: never a zero
  return {{"n", d.n},     {"mean", d.mean}, {"p50", d.p50},
          {"p90", d.p90}, {"p99", d.p99},   {"est_total", d.est_total}};
}

std::string BucketName(store::Bucket b) {
  switch (b) {
    case store::Bucket::kNone:
      return "none";
    case store::Bucket::kMinute:
      return "minute";
    case store::Bucket::kHour:
      return "hour";
    case store::Bucket::kDay:
      return "day";
  }
  return "none";
}

nlohmann::json FunctionJson(const profile::Function& f) {
  return {{"file", f.file}, {"line", f.line}, {"name", f.name}};
}

nlohmann::json PathJson(const std::vector<profile::Function>& path) {
  nlohmann::json out = nlohmann::json::array();
  for (const profile::Function& f : path) out.push_back(FunctionJson(f));
  return out;
}

}  // namespace

nlohmann::json QueryResultJson(const store::QuerySpec& spec, const store::QueryResult& result) {
  nlohmann::json j;
  j["group_by"] = nlohmann::json::array();
  for (const auto& d : spec.group_by) j["group_by"].push_back(store::DimensionName(d));
  j["bucket"] = BucketName(spec.bucket);
  j["from_us"] = spec.from_us;
  j["to_us"] = spec.to_us;
  j["used_rollups"] = result.used_rollups;
  j["truncated"] = result.truncated;
  j["rows"] = nlohmann::json::array();
  for (const store::QueryRow& row : result.rows) {
    nlohmann::json r;
    r["keys"] = nlohmann::json::object();
    for (size_t i = 0; i < spec.group_by.size() && i < row.keys.size(); ++i)
      r["keys"][store::DimensionName(spec.group_by[i])] = row.keys[i];
    if (spec.bucket != store::Bucket::kNone) r["bucket_start_us"] = row.bucket_start_us;
    r["samples"] = row.samples;
    r["est_requests"] = row.est_requests;
    r["instructions"] = DistributionJson(row.instructions);
    r["cycles"] = DistributionJson(row.cycles);
    r["cpu_ns"] = DistributionJson(row.cpu_ns);
    r["wall_us"] = DistributionJson(row.wall_us);
    r["db_us_mean"] = row.db_us_mean;
    r["db_calls_mean"] = row.db_calls_mean;
    r["cache_us_mean"] = row.cache_us_mean;
    r["cache_calls_mean"] = row.cache_calls_mean;
    j["rows"].push_back(std::move(r));
  }
  return j;
}

nlohmann::json EfficiencyJson(const std::vector<store::ServiceEfficiency>& services) {
  nlohmann::json out = {{"services", nlohmann::json::array()}};
  for (const auto& s : services) {
    nlohmann::json j = {{"service", s.service},
                        {"unit", s.unit},
                        {"peak_minute_unix", s.peak_minute_unix},
                        {"cpu_total", s.cpu_total},
                        {"requests", s.requests},
                        {"active_users", s.active_users},
                        {"per_active_user", s.per_active_user},
                        {"from_tallies", s.from_tallies},
                        {"users_from_tallies", s.users_from_tallies},
                        {"endpoints", nlohmann::json::array()}};
    for (const auto& e : s.endpoints)
      j["endpoints"].push_back({{"endpoint", e.endpoint},
                                {"requests", e.requests},
                                {"cpu_total", e.cpu_total},
                                {"per_active_user", e.per_active_user}});
    out["services"].push_back(std::move(j));
  }
  return out;
}

nlohmann::json DeploysJson(const std::vector<store::DeployEntry>& deploys) {
  nlohmann::json out = {{"deploys", nlohmann::json::array()}};
  for (const auto& d : deploys)
    out["deploys"].push_back({{"service", d.service},
                              {"cluster", d.cluster},
                              {"commit", d.commit},
                              {"first_seen_us", d.first_seen_us},
                              {"last_seen_us", d.last_seen_us},
                              {"samples", d.samples}});
  return out;
}

nlohmann::json FunctionReportJson(const store::FunctionQuery& query,
                                  const store::FunctionReport& report) {
  nlohmann::json out = {{"unit", report.unit},
                        {"profiled_requests", report.profiled_requests},
                        {"from_us", query.from_us},
                        {"to_us", query.to_us},
                        {"sort", query.sort == store::FunctionSort::kSelf ? "self" : "total"},
                        {"truncated", report.truncated},
                        {"functions", nlohmann::json::array()}};
  for (const store::FunctionCost& c : report.functions) {
    nlohmann::json j = FunctionJson(c.function);
    j["calls"] = c.calls;
    j["primitive_calls"] = c.primitive_calls;
    j["self"] = c.self;
    j["total"] = c.total;
    j["top_paths"] = nlohmann::json::array();
    for (const store::FunctionPathCost& p : c.top_paths)
      j["top_paths"].push_back(
          {{"path", PathJson(p.path)}, {"calls", p.calls}, {"self", p.self}, {"total", p.total}});
    out["functions"].push_back(std::move(j));
  }
  return out;
}

nlohmann::json DiffJson(const std::string& unit, const DiffSide& base, const DiffSide& target,
                        const std::vector<profile::FunctionDiff>& diffs, size_t limit) {
  auto side = [](const DiffSide& s) {
    nlohmann::json j = {{"commit", s.commit}, {"profiled_requests", s.profiled_requests}};
    if (!s.flag.empty()) j["flag"] = s.flag, j["flag_value"] = s.flag_value;
    return j;
  };
  nlohmann::json out = {{"unit", unit},
                        {"base", side(base)},
                        {"target", side(target)},
                        {"truncated", diffs.size() > limit},
                        {"functions", nlohmann::json::array()}};
  for (size_t i = 0; i < diffs.size() && i < limit; ++i) {
    const profile::FunctionDiff& d = diffs[i];
    nlohmann::json j = FunctionJson(d.function);
    j["before_calls"] = d.before_calls;
    j["after_calls"] = d.after_calls;
    j["before_self"] = d.before_self;
    j["after_self"] = d.after_self;
    j["before_total"] = d.before_total;
    j["after_total"] = d.after_total;
    j["delta_self"] = d.delta_self();
    j["delta_total"] = d.delta_total();
    j["paths"] = nlohmann::json::array();
    for (const profile::PathDiff& p : d.paths)
      j["paths"].push_back({{"path", PathJson(p.path)},
                            {"before_self", p.before_self},
                            {"after_self", p.after_self},
                            {"before_total", p.before_total},
                            {"after_total", p.after_total},
                            {"delta_self", p.delta_self()},
                            {"delta_total", p.delta_total()}});
    out["functions"].push_back(std::move(j));
  }
  return out;
}

namespace {

// KeptNodes() — the nodes a tree trimmed to `max_nodes` shows: the heaviest
// by total cost, each with its parent (parents come before children, so one
// forward pass sees a parent's verdict first).
std::vector<bool> KeptNodes(const std::vector<profile::Node>& nodes, size_t max_nodes) {
  std::vector<bool> kept(nodes.size(), true);
  if (nodes.size() <= max_nodes + 1) return kept;
  std::vector<uint64_t> totals;
  totals.reserve(nodes.size() - 1);
  for (size_t i = 1; i < nodes.size(); ++i) totals.push_back(nodes[i].total_cost);
  std::nth_element(totals.begin(), totals.begin() + static_cast<std::ptrdiff_t>(max_nodes - 1),
                   totals.end(), std::greater<>());
  const uint64_t threshold = totals[max_nodes - 1];
  size_t shown = 0;
  for (size_t i = 1; i < nodes.size(); ++i) {
    kept[i] = kept[nodes[i].parent] && nodes[i].total_cost >= threshold && shown < max_nodes;
    shown += kept[i] ? 1 : 0;
  }
  return kept;
}

}  // namespace

nlohmann::json CallTreeJson(const store::FunctionQuery& query, const profile::CallTree& tree,
                            size_t max_nodes) {
  const std::vector<profile::Node>& nodes = tree.nodes();
  const std::vector<bool> kept = KeptNodes(nodes, max_nodes);
  // The cost of each kept node's trimmed children, shown as one frame.
  std::vector<uint64_t> trimmed(nodes.size(), 0);
  size_t shown = 0;
  for (size_t i = 1; i < nodes.size(); ++i) {
    if (kept[i])
      ++shown;
    else if (kept[nodes[i].parent])
      trimmed[nodes[i].parent] += nodes[i].total_cost;
  }
  // Parents come before children (CallTree's invariant), so one backward
  // pass can move each finished node into its parent's children.
  std::vector<nlohmann::json> built(nodes.size());
  for (size_t i = nodes.size(); i-- > 0;) {
    if (!kept[i]) continue;
    nlohmann::json& j = built[i];
    if (i == profile::kRoot) {
      j["name"] = "all";
      j["total"] = tree.TotalCost();
      j["self"] = 0;
    } else {
      const profile::Node& n = nodes[i];
      const profile::Function& f = tree.functions()[n.function];
      j["name"] = f.name;
      j["file"] = f.file;
      j["line"] = f.line;
      j["calls"] = n.calls;
      j["self"] = n.self_cost;
      j["total"] = n.total_cost;
    }
    if (!j.contains("children")) j["children"] = nlohmann::json::array();
    if (trimmed[i] > 0)
      j["children"].push_back({{"name", kTrimmedFrame},
                               {"self", trimmed[i]},
                               {"total", trimmed[i]},
                               {"children", nlohmann::json::array()}});
    if (i != profile::kRoot) {
      nlohmann::json& siblings = built[nodes[i].parent]["children"];
      if (siblings.is_null()) siblings = nlohmann::json::array();
      siblings.push_back(std::move(j));
    }
  }
  nlohmann::json root = nodes.empty() ? nlohmann::json{{"name", "all"},
                                                       {"total", 0},
                                                       {"self", 0},
                                                       {"children", nlohmann::json::array()}}
                                      : std::move(built[profile::kRoot]);
  return {{"unit", tree.unit()},
          {"source", tree.source()},
          {"mode", tree.mode()},
          {"profiled_requests", tree.requests()},
          {"from_us", query.from_us},
          {"to_us", query.to_us},
          {"nodes", nodes.empty() ? 0 : nodes.size() - 1},
          {"nodes_shown", shown},
          {"root", std::move(root)}};
}

nlohmann::json AlertJson(const store::Alert& a) {
  nlohmann::json body = nlohmann::json::parse(a.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) body = nlohmann::json::object();
  body["id"] = a.id;
  body["state"] = a.state;
  body["opened"] = static_cast<double>(a.opened_us) / 1e6;
  body["updated"] = static_cast<double>(a.updated_us) / 1e6;
  body["reopens"] = a.reopens;
  return body;
}

nlohmann::json AlertEventsJson(const std::vector<store::AlertEvent>& events) {
  nlohmann::json out = nlohmann::json::array();
  for (const store::AlertEvent& e : events) {
    nlohmann::json detail = nlohmann::json::parse(e.detail, nullptr, /*allow_exceptions=*/false);
    if (detail.is_discarded()) detail = nullptr;
    out.push_back({{"at", static_cast<double>(e.at_us) / 1e6},
                   {"state", e.state},
                   {"by", e.by},
                   {"note", e.note},
                   {"detail", detail}});
  }
  return out;
}

}  // namespace cpuledger::server
