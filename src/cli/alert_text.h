// src/cli/alert_text.h — how `cpuledger detect` and `cpuledger alerts` print
// findings (detect::ToJson form).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace cpuledger::cli {

// FindingsText() — one block per alert: endpoint or function, cause, effect with its
// interval against the threshold, samples, and the top functions. A
// function alert states its change per request in the profiles' unit and
// as a share of the request ("+2.5M instructions per request, +24.1% of
// the request"), the terms its threshold is in.
std::string FindingsText(const nlohmann::json& findings);

// SkipsText() — a table of skipped comparisons and why.
std::string SkipsText(const nlohmann::json& skipped);

}  // namespace cpuledger::cli
