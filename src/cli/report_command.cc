// `cpuledger report --server URL --group-by DIMS --since DURATION
//                   [--where DIM=VALUE ...] [--bucket B] [--json|--csv]`
// `cpuledger report --efficiency --server URL --since DURATION [--service S]`
// `cpuledger report --functions --server URL --since DURATION
//                   [--where service=S --where endpoint=E --where commit=C]
//                   [--sort self|total] [--limit N] [--json]`
#include <iostream>

#include "base/time_text.h"
#include "base/url_text.h"
#include "cli/commands.h"
#include "cli/function_text.h"
#include "cli/http_client.h"
#include "cli/table.h"

namespace cpuledger::cli {
namespace {

struct ReportFlags {
  std::string server = "http://127.0.0.1:8750";
  std::string token;
  std::string group_by = "endpoint";
  std::string since = "1h";
  std::vector<std::string> where;
  std::string bucket = "none";
  int limit = 50;
  bool json = false;
  bool csv = false;
  bool efficiency = false;
  bool functions = false;
  std::string sort = "self";
  std::string service;
};

// FunctionsQuery() — --where service=/endpoint=/commit= as the functions
// API's parameters. RETURNS: InvalidArgument for any other dimension.
Result<std::string> FunctionsQuery(const ReportFlags& f) {
  std::string query = "&sort=" + UrlEncode(f.sort) + "&limit=" + std::to_string(f.limit);
  for (const std::string& w : f.where) {
    const size_t eq = w.find('=');
    const std::string dim = w.substr(0, eq);
    if (eq == std::string::npos || (dim != "service" && dim != "endpoint" && dim != "commit"))
      return InvalidArgument(
          "--functions filters by --where service=, endpoint= or commit= only, "
          "got '" +
          w + "'");
    query += "&" + dim + "=" + UrlEncode(w.substr(eq + 1));
  }
  return query;
}

std::string FunctionsText(const nlohmann::json& body) {
  if (body["profiled_requests"].get<uint64_t>() == 0) return "no profiled requests in the window\n";
  const std::string unit = body["unit"].get<std::string>();
  std::ostringstream out;
  out << HumanCount(body["profiled_requests"].get<double>()) << " profiled requests; costs in "
      << unit << " per request\n";
  Table t;
  t.header = {"function", "calls/req", "self/req", "total/req", "top path"};
  t.numeric = {false, true, true, true, false};
  for (const auto& fn : body["functions"]) {
    std::string top;
    if (!fn["top_paths"].empty()) top = CallPathLabel(fn["top_paths"][0]["path"]);
    t.rows.push_back({FunctionLabel(fn), FixedDigits(fn["calls"].get<double>(), 2),
                      HumanCount(fn["self"].get<double>()), HumanCount(fn["total"].get<double>()),
                      top});
  }
  out << t.Render();
  if (body["truncated"].get<bool>()) out << "(more functions than --limit)\n";
  return out.str();
}

// CpuColumns() — instructions when any row has them, else thread CPU in ms.
bool AnyInstructions(const nlohmann::json& rows) {
  for (const auto& r : rows)
    if (!r["instructions"].is_null()) return true;
  return false;
}

Table BreakdownTable(const nlohmann::json& body) {
  Table t;
  const bool instr = AnyInstructions(body["rows"]);
  for (const auto& d : body["group_by"]) t.header.push_back(d.get<std::string>());
  const bool bucketed = body["bucket"] != "none";
  if (bucketed) t.header.insert(t.header.begin(), "time");
  const size_t dims = t.header.size();
  const std::string unit = instr ? "instr" : "cpu_ms";
  const std::vector<std::string> measures = {
      "samples",       "est_requests",      unit + "_mean",    unit + "_p50", unit + "_p90",
      unit + "_p99",   unit + "_est_total", "wall_ms_p50",     "wall_ms_p99", "db_ms_mean",
      "db_calls_mean", "cache_ms_mean",     "cache_calls_mean"};
  t.header.insert(t.header.end(), measures.begin(), measures.end());
  t.numeric.assign(t.header.size(), true);
  for (size_t i = 0; i < dims; ++i) t.numeric[i] = false;
  for (const auto& r : body["rows"]) {
    std::vector<std::string> row;
    if (bucketed) row.push_back(UtcMinute(r["bucket_start_us"].get<int64_t>()));
    for (const auto& d : body["group_by"])
      row.push_back(r["keys"][d.get<std::string>()].get<std::string>());
    row.push_back(HumanCount(r["samples"].get<double>()));
    row.push_back(HumanCount(r["est_requests"].get<double>()));
    const nlohmann::json& cpu = instr ? r["instructions"] : r["cpu_ns"];
    auto cpu_cell = [&](const char* field) {
      if (cpu.is_null()) return std::string("-");
      return instr ? HumanCount(cpu[field].get<double>())
                   : FixedDigits(cpu[field].get<double>() / 1e6, 2);
    };
    for (const char* f : {"mean", "p50", "p90", "p99"}) row.push_back(cpu_cell(f));
    row.push_back(cpu.is_null() ? "-"
                  : instr       ? HumanCount(cpu["est_total"].get<double>())
                                : HumanCount(cpu["est_total"].get<double>() / 1e6));
    const nlohmann::json& wall = r["wall_us"];
    row.push_back(wall.is_null() ? "-" : FixedDigits(wall["p50"].get<double>() / 1e3, 1));
    row.push_back(wall.is_null() ? "-" : FixedDigits(wall["p99"].get<double>() / 1e3, 1));
    row.push_back(FixedDigits(r["db_us_mean"].get<double>() / 1e3, 2));
    row.push_back(FixedDigits(r["db_calls_mean"].get<double>(), 1));
    row.push_back(FixedDigits(r["cache_us_mean"].get<double>() / 1e3, 2));
    row.push_back(FixedDigits(r["cache_calls_mean"].get<double>(), 1));
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::string EfficiencyText(const nlohmann::json& body) {
  std::ostringstream out;
  if (body["services"].empty()) return "no data in the window\n";
  for (const auto& s : body["services"]) {
    const bool instr = s["unit"] == "instructions";
    auto amount = [&](double v) {
      return instr ? HumanCount(v) + " instructions" : FixedDigits(v / 1e6, 2) + " ms CPU";
    };
    // Per active user is a ratio: with no active user seen it has no value.
    const bool users = s["active_users"].get<double>() > 0;
    auto per_user = [&](double v, int digits) {
      return !users ? std::string("n/a") : instr ? HumanCount(v) : FixedDigits(v / 1e6, digits);
    };
    out << s["service"].get<std::string>() << ": "
        << (users ? amount(s["per_active_user"].get<double>())
                  : std::string("n/a (no active users)"))
        << " per active user during the peak minute, "
        << UtcMinute(s["peak_minute_unix"].get<int64_t>() * 1'000'000) << "\n"
        << "  peak minute: " << amount(s["cpu_total"].get<double>()) << " over "
        << HumanCount(s["requests"].get<double>()) << " requests from "
        << HumanCount(s["active_users"].get<double>()) << " active users"
        << (s["from_tallies"].get<bool>() ? " (worker tallies)"
                                          : " (estimated from samples alone: no tallies)")
        << (s["users_from_tallies"].get<bool>() ? ""
                                                : "; users counted from samples (an undercount)")
        << "\n";
    Table t;
    t.header = {"endpoint", "requests", instr ? "instr_total" : "cpu_ms_total",
                instr ? "instr_per_active_user" : "cpu_ms_per_active_user"};
    t.numeric = {false, true, true, true};
    for (const auto& e : s["endpoints"]) {
      const double total = e["cpu_total"].get<double>();
      const double per_endpoint_user = e["per_active_user"].get<double>();
      t.rows.push_back({e["endpoint"].get<std::string>(), HumanCount(e["requests"].get<double>()),
                        instr ? HumanCount(total) : FixedDigits(total / 1e6, 1),
                        per_user(per_endpoint_user, 4)});
    }
    std::istringstream lines(t.Render());
    for (std::string line; std::getline(lines, line);) out << "  " << line << "\n";
    out << "\n";
  }
  return out.str();
}

int RunReport(const ReportFlags& f) {
  if (f.json && f.csv) {
    std::cerr << "cpuledger report: --json and --csv are exclusive\n";
    return 2;
  }
  ServerClient client(f.server, f.token);
  std::string query = "?since=" + UrlEncode(f.since);
  std::string path;
  if (f.efficiency && f.functions) {
    std::cerr << "cpuledger report: --efficiency and --functions are exclusive\n";
    return 2;
  }
  if (f.functions) {
    if (f.csv) {
      std::cerr << "cpuledger report: --functions prints a table or --json, not --csv\n";
      return 2;
    }
    Result<std::string> params = FunctionsQuery(f);
    if (!params.ok()) {
      std::cerr << "cpuledger report: " << params.status().message() << "\n";
      return 2;
    }
    path = "/v1/query/functions";
    query += *params;
  } else if (f.efficiency) {
    path = "/v1/query/efficiency";
    if (!f.service.empty()) query += "&service=" + UrlEncode(f.service);
  } else {
    path = "/v1/query/breakdown";
    query += "&group_by=" + UrlEncode(f.group_by) + "&bucket=" + UrlEncode(f.bucket) +
             "&limit=" + std::to_string(f.limit);
    for (const auto& w : f.where) query += "&where=" + UrlEncode(w);
  }
  Result<nlohmann::json> body = client.GetJson(path + query);
  if (!body.ok()) {
    std::cerr << "cpuledger report: " << body.status().message() << "\n";
    return 1;
  }
  if (f.json) {
    std::cout << body->dump(2) << "\n";
  } else if (f.functions) {
    std::cout << FunctionsText(*body);
  } else if (f.efficiency) {
    if (f.csv) {
      Table t;
      t.header = {"service",  "unit",         "peak_minute_unix", "cpu_total",
                  "requests", "active_users", "per_active_user",  "from_tallies"};
      for (const auto& s : (*body)["services"])
        t.rows.push_back({s["service"], s["unit"],
                          std::to_string(s["peak_minute_unix"].get<long long>()),
                          FixedDigits(s["cpu_total"], 0), FixedDigits(s["requests"], 0),
                          FixedDigits(s["active_users"], 0), FixedDigits(s["per_active_user"], 1),
                          s["from_tallies"].get<bool>() ? "true" : "false"});
      std::cout << t.RenderCsv();
    } else {
      std::cout << EfficiencyText(*body);
    }
  } else {
    Table t = BreakdownTable(*body);
    std::cout << (f.csv ? t.RenderCsv() : t.Render());
    if (!f.csv && (*body)["truncated"].get<bool>())
      std::cout << "(more groups than --limit " << f.limit << ")\n";
  }
  return 0;
}

}  // namespace

void AddReportCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<ReportFlags>();
  CLI::App* cmd =
      app.add_subcommand("report", "Tables of CPU per request, sliced by any dimension");
  cmd->add_option("--server", f->server, "Server URL (default http://127.0.0.1:8750)");
  cmd->add_option("--token", f->token, "Bearer token (default $CPULEDGER_TOKEN)");
  cmd->add_option("--group-by", f->group_by,
                  "Comma-separated dimensions: service, endpoint, method, status, host, cluster, "
                  "region, commit, user, flag:NAME (default endpoint)");
  cmd->add_option("--since", f->since, "Window ending now: 15m, 24h, 7d (default 1h)");
  cmd->add_option("--where", f->where, "Filter DIM=VALUE; repeat to add (same DIM: OR)");
  cmd->add_option("--bucket", f->bucket, "Time series step: none, minute, hour, day");
  cmd->add_option("--limit", f->limit, "Most groups to show (default 50)");
  cmd->add_flag("--json", f->json, "Print the server's JSON");
  cmd->add_flag("--csv", f->csv, "Print CSV");
  cmd->add_flag("--efficiency", f->efficiency,
                "CPU per active user during the peak minute, per service and endpoint");
  cmd->add_option("--service", f->service, "With --efficiency: one service only");
  cmd->add_flag("--functions", f->functions,
                "Per function of the profiled requests: calls, self and total cost per request");
  cmd->add_option("--sort", f->sort, "With --functions: rank by self or total (default self)");
  cmd->callback([f, exit_code] { *exit_code = RunReport(*f); });
}

}  // namespace cpuledger::cli
