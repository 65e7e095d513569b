// `cpuledger alerts --server URL [--since DURATION] [--service S] [--state open] [--json]`
// The stored alerts, newest first, each with its cause, effect and top functions.
#include <iostream>
#include <memory>
#include <string>

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
};

int RunAlerts(const AlertsFlags& f) {
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
  CLI::App* cmd = app.add_subcommand("alerts", "List the stored regression alerts, newest first");
  cmd->add_option("--server", f->server, "Server URL (default http://127.0.0.1:8750)");
  cmd->add_option("--token", f->token, "Bearer token (default $CPULEDGER_TOKEN)");
  cmd->add_option("--since", f->since, "Alerts opened in this window (default 7d)");
  cmd->add_option("--service", f->service, "One service only");
  cmd->add_option("--state", f->state, "open or resolved")
      ->check(CLI::IsMember({"open", "resolved"}));
  cmd->add_option("--limit", f->limit, "Most alerts to show (default 100)");
  cmd->add_flag("--json", f->json, "Print the server's JSON");
  cmd->callback([f, exit_code] { *exit_code = RunAlerts(*f); });
}

}  // namespace cpuledger::cli
