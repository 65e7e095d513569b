// src/cli/function_text.h — how the CLI names functions and call paths of
// the profile queries (/v1/query/functions, /v1/query/diff).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace cpuledger::cli {

// FunctionLabel() — {file, line, name} as "name (file:line)".
std::string FunctionLabel(const nlohmann::json& function);

// CallPathLabel() — [{file, line, name}, ...] (outermost first) as the
// names joined by " > ": "view > wrapper > helper"; a path longer than
// `max_chars` keeps its innermost frames: "… > wrapper > helper".
std::string CallPathLabel(const nlohmann::json& path, size_t max_chars = 80);

}  // namespace cpuledger::cli
