// `cpuledger alerts --server URL [--since DURATION] [--service S] [--state open] [--json]`
// The stored alerts, newest first, each with its state, cause, effect and top functions.
// `cpuledger alerts --ack ID | --resolve ID [--note TEXT] [--by NAME]`: moves
// one alert along its lifecycle (POST /v1/alerts/ID) and prints its new state.
#include <iostream>
#include <memory>
#include <string>

#include "base/url_text.h"
#include "cli/alert_text.h"
#include "cli/commands.h"
#include "cli/http_client.h"

namespace cpuledger::cli {
namespace {

struct AlertsFlags {
  std::string server = "http://127.0.0.1:8750";
  std::string token;
  std::string since = "7d";
  std::string service;
  std::string state;
  int limit = 100;
  bool json = false;
  int64_t ack = 0, resolve = 0;  // the alert to acknowledge / resolve; 0: list
  std::string note, by;
};

// RunTransition() — POST /v1/alerts/ID {"state", "by", "note"}; prints the
// alert's new state, or the server's reason (a 409 names the state it is in).
int RunTransition(const AlertsFlags& f, int64_t id, const char* state) {
  nlohmann::json body = {{"state", state}, {"note", f.note}};
  if (!f.by.empty()) body["by"] = f.by;
  ServerClient client(f.server, f.token);
  Result<std::pair<int, std::string>> res =
      client.Post("/v1/alerts/" + std::to_string(id), body.dump(), "application/json");
  if (!res.ok()) {
    std::cerr << "cpuledger alerts: " << res.status().message() << "\n";
    return 1;
  }
  const nlohmann::json answer = nlohmann::json::parse(res->second, nullptr, false);
  if (res->first != 200) {
    const std::string why = answer.is_object() && answer.contains("error")
                                ? answer["error"].get<std::string>()
                                : res->second.substr(0, 200);
    std::cerr << "cpuledger alerts: HTTP " << res->first << ": " << why << "\n";
    return 1;
  }
  if (f.json) {
    std::cout << answer.dump(2) << "\n";
    return 0;
  }
  const nlohmann::json& alert = answer["alert"];
  std::cout << "alert #" << id << " is now " << alert.value("state", "?") << ": "
            << alert.value("service", "") << " " << alert.value("endpoint", "") << ", "
            << alert.value("cause", "") << "\n";
  return 0;
}

int RunAlerts(const AlertsFlags& f) {
  if (f.ack != 0) return RunTransition(f, f.ack, "acknowledged");
  if (f.resolve != 0) return RunTransition(f, f.resolve, "resolved");
  std::string path = "/v1/alerts?since=" + UrlEncode(f.since) + "&limit=" + std::to_string(f.limit);
  if (!f.service.empty()) path += "&service=" + UrlEncode(f.service);
  if (!f.state.empty()) path += "&state=" + UrlEncode(f.state);
  ServerClient client(f.server, f.token);
  Result<nlohmann::json> body = client.GetJson(path);
  if (!body.ok()) {
    std::cerr << "cpuledger alerts: " << body.status().message() << "\n";
    return 1;
  }
  if (f.json) {
    std::cout << body->dump(2) << "\n";
    return 0;
  }
  const nlohmann::json& alerts = (*body)["alerts"];
  std::cout << alerts.size() << " alert(s) in the last " << f.since << "\n";
  if (!alerts.empty()) std::cout << "\n" << FindingsText(alerts);
  return 0;
}

}  // namespace

void AddAlertsCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<AlertsFlags>();
  CLI::App* cmd = app.add_subcommand(
      "alerts", "List the stored regression alerts, newest first; --ack / --resolve one");
  cmd->add_option("--server", f->server, "Server URL (default http://127.0.0.1:8750)");
  cmd->add_option("--token", f->token, "Bearer token (default $CPULEDGER_TOKEN)");
  cmd->add_option("--since", f->since, "Alerts opened in this window (default 7d)");
  cmd->add_option("--service", f->service, "One service only");
  cmd->add_option("--state", f->state, "open, acknowledged or resolved")
      ->check(CLI::IsMember({"open", "acknowledged", "resolved"}));
  cmd->add_option("--limit", f->limit, "Most alerts to show (default 100)");
  cmd->add_flag("--json", f->json, "Print the server's JSON");
  auto* ack = cmd->add_option("--ack", f->ack, "Acknowledge alert ID (someone is on it)")
                  ->check(CLI::PositiveNumber);
  cmd->add_option("--resolve", f->resolve, "Resolve alert ID by hand")
      ->check(CLI::PositiveNumber)
      ->excludes(ack);
  cmd->add_option("--note", f->note, "With --ack or --resolve: why, kept with the change");
  cmd->add_option("--by", f->by, "With --ack or --resolve: who (default: the server says api)");
  cmd->callback([f, exit_code] { *exit_code = RunAlerts(*f); });
}

}  // namespace cpuledger::cli
