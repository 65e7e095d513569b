#include "cli/function_text.h"

namespace cpuledger::cli {

std::string FunctionLabel(const nlohmann::json& function) {
  return function["name"].get<std::string>() + " (" + function["file"].get<std::string>() + ":" +
         std::to_string(function["line"].get<uint32_t>()) + ")";
}

std::string CallPathLabel(const nlohmann::json& path) {
  std::string out;
  for (const auto& frame : path) {
    if (!out.empty()) out += " > ";
    out += frame["name"].get<std::string>();
  }
  return out;
}

}  // namespace cpuledger::cli
