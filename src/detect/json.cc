// The JSON form of findings and reports: what /v1/detect and /v1/alerts
// answer, what webhooks receive and what `cpuledger detect --json` prints.
#include <cmath>

#include "detect/detect.h"

namespace cpuledger::detect {
namespace {

// JSON has no NaN or infinity: a number that is not finite is null.
nlohmann::json Number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

double NumberOr(const nlohmann::json& j, const char* key, double fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

}  // namespace

nlohmann::json ToJson(const Finding& f) {
  nlohmann::json culprits = nlohmann::json::array();
  for (const Culprit& c : f.top_functions)
    culprits.push_back({{"function", c.function},
                        {"path", c.path},
                        {"before", Number(c.before)},
                        {"after", Number(c.after)},
                        {"added", Number(c.added)}});
  nlohmann::json j = {
      {"kind", f.kind},
      {"service", f.service},
      {"endpoint", f.endpoint},
      {"function", f.function},
      {"cause", f.cause},
      {"method", f.method},
      {"unit", f.unit},
      {"effect",
       {{"estimate", Number(f.effect.estimate)},
        {"lo", Number(f.effect.lo)},
        {"hi", Number(f.effect.hi)},
        {"confidence", Number(f.effect.confidence)}}},
      {"mean_before", Number(f.mean_before)},
      {"mean_after", Number(f.mean_after)},
      {"threshold", Number(f.threshold)},
      {"threshold_source", f.threshold_source},
      {"p_value", Number(f.p_value)},
      {"q_value", Number(f.q_value)},
      {"samples_before", f.samples_before},
      {"samples_after", f.samples_after},
      {"from", static_cast<double>(f.from_us) / 1e6},
      {"to", static_cast<double>(f.to_us) / 1e6},
      {"alert", f.alert},
      {"reason", f.reason},
      {"top_functions", culprits},
      {"explained_share", Number(f.explained_share)},
      {"key", f.Key()},
  };
  if (!f.base_commit.empty() || !f.target_commit.empty()) {
    j["base_commit"] = f.base_commit;
    j["target_commit"] = f.target_commit;
    j["commits"] = f.commits;
  }
  if (!f.function.empty() && !f.top_functions.empty()) {
    // A function's change in the terms of its endpoint: cost added per
    // request (the profiles' unit) and that as a share of the request.
    j["function_change"] = {{"added_per_request", Number(f.top_functions.front().added)},
                            {"share_of_request", Number(f.effect.estimate)},
                            {"new", f.mean_before == 0}};
  }
  if (f.kind == "trend") {
    j["daily_change"] = Number(f.daily_change);
    j["weekly_change"] = Number(f.weekly_change);
  }
  if (!f.flag.empty()) {
    j["flag"] = f.flag;
    j["flag_value"] = f.flag_value;
    j["flag_reference"] = f.flag_reference;
  }
  return j;
}

nlohmann::json ToJson(const DetectReport& r) {
  nlohmann::json alerts = nlohmann::json::array(), skipped = nlohmann::json::array();
  for (const Finding& f : r.alerts) alerts.push_back(ToJson(f));
  for (const Finding& f : r.skipped) skipped.push_back(ToJson(f));
  return {{"ran_at", static_cast<double>(r.ran_at_us) / 1e6},
          {"tests", r.tests},
          {"alerts", alerts},
          {"skipped", skipped}};
}

nlohmann::json ToJson(const AlertChange& c) {
  nlohmann::json j = ToJson(c.finding);
  j["id"] = c.alert_id;
  j["state"] = c.state;
  j["opened"] = static_cast<double>(c.opened_us) / 1e6;
  j["reopens"] = c.reopens;
  j["change"] = c.change;
  j["by"] = c.by;
  j["note"] = c.note;
  j["at"] = static_cast<double>(c.at_us) / 1e6;
  if (!c.comparison.is_null()) j["comparison"] = c.comparison;
  return j;
}

Result<Finding> FindingFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("kind") || !j.contains("effect"))
    return InvalidArgument("not a finding: an object with kind and effect is expected");
  try {
    Finding f;
    f.kind = j.value("kind", "");
    f.service = j.value("service", "");
    f.endpoint = j.value("endpoint", "");
    f.function = j.value("function", "");
    f.cause = j.value("cause", "");
    f.method = j.value("method", "");
    f.unit = j.value("unit", "");
    const nlohmann::json& e = j.at("effect");
    f.effect.estimate = NumberOr(e, "estimate", 0);
    f.effect.lo = NumberOr(e, "lo", 0);
    f.effect.hi = NumberOr(e, "hi", 0);
    f.effect.confidence = NumberOr(e, "confidence", 0);
    f.effect.ok = true;
    f.mean_before = NumberOr(j, "mean_before", 0);
    f.mean_after = NumberOr(j, "mean_after", 0);
    f.threshold = NumberOr(j, "threshold", 0);
    f.threshold_source = j.value("threshold_source", "");
    f.p_value = NumberOr(j, "p_value", 1);
    f.q_value = NumberOr(j, "q_value", 1);
    f.samples_before = j.value("samples_before", uint64_t{0});
    f.samples_after = j.value("samples_after", uint64_t{0});
    f.from_us = static_cast<int64_t>(NumberOr(j, "from", 0) * 1e6);
    f.to_us = static_cast<int64_t>(NumberOr(j, "to", 0) * 1e6);
    f.alert = j.value("alert", false);
    f.reason = j.value("reason", "");
    f.base_commit = j.value("base_commit", "");
    f.target_commit = j.value("target_commit", "");
    f.commits = j.value("commits", std::vector<std::string>{});
    f.flag = j.value("flag", "");
    f.flag_value = j.value("flag_value", "");
    f.flag_reference = j.value("flag_reference", "");
    f.explained_share = NumberOr(j, "explained_share", 0);
    f.daily_change = NumberOr(j, "daily_change", 0);
    f.weekly_change = NumberOr(j, "weekly_change", 0);
    for (const nlohmann::json& c : j.value("top_functions", nlohmann::json::array()))
      f.top_functions.push_back(
          {c.value("function", ""), c.value("path", std::vector<std::string>{}),
           NumberOr(c, "before", 0), NumberOr(c, "after", 0), NumberOr(c, "added", 0)});
    return f;
  } catch (const nlohmann::json::exception& ex) {
    return InvalidArgument(std::string("malformed finding: ") + ex.what());
  }
}

}  // namespace cpuledger::detect
