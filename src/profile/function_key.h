// src/profile/function_key.h — a function's one text identity,
// "file:line:name": the store's key, the API's and the CLI's function, root
// cause's subject, the simulator's. Built and parsed here only.
//
//   FunctionKeyText({"app.py", 10, "view"})   -> "app.py:10:view"
//   ParseFunctionKey("app.py:10:walk: tree")  -> {"app.py", 10, "walk: tree"}
//
// The first ":DIGITS:" separates the parts, so a name may hold colons (a
// file name holding ":DIGITS:" would not round-trip; none does in practice).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "profile/call_tree.h"

namespace cpuledger::profile {

std::string FunctionKeyText(std::string_view file, uint32_t line, std::string_view name);
inline std::string FunctionKeyText(const Function& f) {
  return FunctionKeyText(f.file, f.line, f.name);
}
// AppendFunctionKey() — the same, appended to *out (no allocation once it has room).
void AppendFunctionKey(std::string* out, std::string_view file, uint32_t line,
                       std::string_view name);
// ParseFunctionKey() — RETURNS: InvalidArgument without ":LINE:".
Result<Function> ParseFunctionKey(std::string_view key);

}  // namespace cpuledger::profile
