// `cpuledger diff --server URL --since DURATION [--service S] [--endpoint E]
//                 [--flag NAME [--commit C]] --base A --target B [--limit N] [--json]`
// The functions whose cost per profiled request grew most from the base
// commit to the target commit (or, with --flag, from the flag's base value to
// its target value), with the call paths where it grew.
#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "base/url_text.h"
#include "cli/commands.h"
#include "cli/function_text.h"
#include "cli/http_client.h"
#include "cli/table.h"

namespace cpuledger::cli {
namespace {

struct DiffFlags {
  std::string server = "http://127.0.0.1:8750";
  std::string token;
  std::string since = "1h";
  std::string service;
  std::string endpoint;
  std::string flag;
  std::string commit;
  std::string base;
  std::string target;
  int limit = 10;
  std::string rank = "self";
  bool json = false;
};

std::string Signed(double v) { return (v >= 0 ? "+" : "-") + HumanCount(std::abs(v)); }

// SideText() — "abc (1200 profiled requests)" or "new_feed=on (…)".
std::string SideText(const nlohmann::json& side) {
  const std::string name = side.contains("flag") ? side["flag"].get<std::string>() + "=" +
                                                       side["flag_value"].get<std::string>()
                                                 : side["commit"].get<std::string>();
  return name + " (" + std::to_string(side["profiled_requests"].get<uint64_t>()) +
         " profiled requests)";
}

std::string DiffText(const nlohmann::json& body) {
  std::ostringstream out;
  out << "base " << SideText(body["base"]) << " -> target " << SideText(body["target"])
      << "; costs in " << body["unit"].get<std::string>() << " per request, ranked by added "
      << body.value("rank", std::string("self")) << " cost\n";
  Table t;
  t.header = {"#",           "function",    "total before", "total after",
              "delta total", "self before", "self after",   "delta self"};
  t.numeric = {true, false, true, true, true, true, true, true};
  int rank = 0;
  for (const auto& fn : body["functions"])
    t.rows.push_back(
        {std::to_string(++rank), FunctionLabel(fn), HumanCount(fn["before_total"].get<double>()),
         HumanCount(fn["after_total"].get<double>()), Signed(fn["delta_total"].get<double>()),
         HumanCount(fn["before_self"].get<double>()), HumanCount(fn["after_self"].get<double>()),
         Signed(fn["delta_self"].get<double>())});
  out << t.Render();
  rank = 0;
  for (const auto& fn : body["functions"]) {
    ++rank;
    if (fn["paths"].empty()) continue;
    out << "\n" << rank << ". " << FunctionLabel(fn) << " — where it grew:\n";
    for (const auto& p : fn["paths"])
      out << "   " << CallPathLabel(p["path"]) << "  self " << Signed(p["delta_self"].get<double>())
          << ", total " << Signed(p["delta_total"].get<double>()) << "\n";
  }
  if (body["truncated"].get<bool>()) out << "(more functions than --limit)\n";
  return out.str();
}

int RunDiff(const DiffFlags& f) {
  if (f.base.empty() || f.target.empty()) {
    std::cerr << "cpuledger diff: --base and --target are required\n";
    return 2;
  }
  if (!f.commit.empty() && f.flag.empty()) {
    std::cerr << "cpuledger diff: --commit slices a flag diff; give --flag too\n";
    return 2;
  }
  const std::string sides =
      f.flag.empty() ? "&base_commit=" + UrlEncode(f.base) + "&target_commit=" + UrlEncode(f.target)
                     : "&flag=" + UrlEncode(f.flag) + "&base_value=" + UrlEncode(f.base) +
                           "&target_value=" + UrlEncode(f.target);
  std::string query = "/v1/query/diff?since=" + UrlEncode(f.since) + sides +
                      "&limit=" + std::to_string(f.limit) + "&rank=" + f.rank;
  if (!f.commit.empty()) query += "&commit=" + UrlEncode(f.commit);
  if (!f.service.empty()) query += "&service=" + UrlEncode(f.service);
  if (!f.endpoint.empty()) query += "&endpoint=" + UrlEncode(f.endpoint);
  ServerClient client(f.server, f.token);
  Result<nlohmann::json> body = client.GetJson(query);
  if (!body.ok()) {
    std::cerr << "cpuledger diff: " << body.status().message() << "\n";
    return 1;
  }
  std::cout << (f.json ? body->dump(2) + "\n" : DiffText(*body));
  return 0;
}

}  // namespace

void AddDiffCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<DiffFlags>();
  CLI::App* cmd = app.add_subcommand(
      "diff",
      "Which functions' CPU per request grew between two commits (or two values of a flag), "
      "and along which paths");
  cmd->add_option("--server", f->server, "Server URL (default http://127.0.0.1:8750)");
  cmd->add_option("--token", f->token, "Bearer token (default $CPULEDGER_TOKEN)");
  cmd->add_option("--since", f->since, "Window ending now: 15m, 24h, 7d (default 1h)");
  cmd->add_option("--service", f->service, "One service only");
  cmd->add_option("--endpoint", f->endpoint, "One endpoint only");
  cmd->add_option("--flag", f->flag,
                  "Compare two values of this feature flag: --base and --target are its values");
  cmd->add_option("--commit", f->commit, "With --flag: within this commit only");
  cmd->add_option("--base", f->base, "The commit before (with --flag: the flag's base value)")
      ->required();
  cmd->add_option("--target", f->target, "The commit after (with --flag: the value compared)")
      ->required();
  cmd->add_option("--limit", f->limit, "Most functions to show (default 10)");
  cmd->add_option("--rank", f->rank,
                  "self: added self cost, where the new work runs (default); total: added "
                  "inclusive cost, callers rank with their callees")
      ->check(CLI::IsMember({"self", "total"}));
  cmd->add_flag("--json", f->json, "Print the server's JSON");
  cmd->callback([f, exit_code] { *exit_code = RunDiff(*f); });
}

}  // namespace cpuledger::cli
