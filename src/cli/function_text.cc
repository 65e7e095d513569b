#include "cli/function_text.h"

namespace cpuledger::cli {

std::string FunctionLabel(const nlohmann::json& function) {
  return function["name"].get<std::string>() + " (" + function["file"].get<std::string>() + ":" +
         std::to_string(function["line"].get<uint32_t>()) + ")";
}

std::string CallPathLabel(const nlohmann::json& path, size_t max_chars) {
  // The frames nearest the function say the most: keep those, and mark the
  // callers left out ("… > ") so that a deep path fits a table column.
  std::string out;
  for (auto frame = path.rbegin(); frame != path.rend(); ++frame) {
    const std::string name = (*frame)["name"].get<std::string>();
    const size_t add = name.size() + (out.empty() ? 0 : 3);
    if (!out.empty() && out.size() + add > max_chars) return "… > " + out;
    out = out.empty() ? name : name + " > " + out;
  }
  return out;
}

}  // namespace cpuledger::cli
