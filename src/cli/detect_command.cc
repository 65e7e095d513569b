// `cpuledger detect --server URL [--since DURATION] [--at TIME] [--json]`
// Runs every detector once on the server (POST /v1/detect) and prints the
// alerts, then each comparison it skipped and why.
#include <iostream>
#include <memory>
#include <string>

#include "base/duration.h"
#include "base/time_text.h"
#include "base/url_text.h"
#include "cli/alert_text.h"
#include "cli/commands.h"
#include "cli/http_client.h"

namespace cpuledger::cli {
namespace {

struct DetectFlags {
  std::string server = "http://127.0.0.1:8750";
  std::string token;
  std::string since;
  std::string at;  // base/time_text.h forms; empty: now
  bool json = false;
};

int RunDetect(const DetectFlags& f) {
  std::string path = "/v1/detect?";
  if (!f.since.empty()) path += "since=" + UrlEncode(f.since) + "&";
  if (!f.at.empty()) {
    Result<int64_t> at = ParseTimeUs(f.at, NowUnixUs());
    if (!at.ok()) {
      std::cerr << "cpuledger detect: --at: " << at.status().message() << "\n";
      return 2;
    }
    path += "at=" + std::to_string(*at / 1'000'000);
  }
  ServerClient client(f.server, f.token);
  Result<std::pair<int, std::string>> res = client.Post(path, "", "application/json");
  if (!res.ok()) {
    std::cerr << "cpuledger detect: " << res.status().message() << "\n";
    return 1;
  }
  nlohmann::json body = nlohmann::json::parse(res->second, nullptr, false);
  if (res->first != 200 || body.is_discarded()) {
    std::cerr << "cpuledger detect: server answered " << res->first << ": "
              << (body.is_object() ? body.value("error", res->second) : res->second) << "\n";
    return 1;
  }
  if (f.json) {
    std::cout << body.dump(2) << "\n";
    return 0;
  }
  const nlohmann::json& alerts = body["alerts"];
  const nlohmann::json& skipped = body["skipped"];
  std::cout << alerts.size() << " alert(s), " << body.value("opened", 0) << " newly opened; "
            << body.value("tests", 0) << " comparisons tested, " << skipped.size() << " skipped\n";
  if (!alerts.empty()) std::cout << "\n" << FindingsText(alerts);
  if (!skipped.empty()) std::cout << "\nskipped:\n" << SkipsText(skipped);
  return 0;
}

}  // namespace

void AddDetectCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<DetectFlags>();
  CLI::App* cmd = app.add_subcommand(
      "detect", "Run every regression detector once and print the alerts and what was skipped");
  cmd->add_option("--server", f->server, "Server URL (default http://127.0.0.1:8750)");
  cmd->add_option("--token", f->token, "Bearer token (default $CPULEDGER_TOKEN)");
  cmd->add_option("--since", f->since, "Window ending now: 6h, 24h, 7d (default: the server's)");
  cmd->add_option("--at", f->at,
                  "Run as of this time: unix seconds, 2026-12-04T18:00Z, or 18:00 (its latest "
                  "occurrence); default now");
  cmd->add_flag("--json", f->json, "Print the server's JSON");
  cmd->callback([f, exit_code] { *exit_code = RunDetect(*f); });
}

}  // namespace cpuledger::cli
