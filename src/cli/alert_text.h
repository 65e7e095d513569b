// src/cli/alert_text.h — how `cpuledger detect` and `cpuledger alerts` print
// findings (detect::ToJson form).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace cpuledger::cli {

// FindingsText() — one block per alert: subject, cause, effect with its
// interval against the threshold, samples, and the top functions.
std::string FindingsText(const nlohmann::json& findings);

// SkipsText() — a table of skipped comparisons and why.
std::string SkipsText(const nlohmann::json& skipped);

}  // namespace cpuledger::cli
