#include "profile/function_key.h"

#include <charconv>

namespace cpuledger::profile {

Result<Function> ParseFunctionKey(std::string_view key) {
  for (size_t p = key.find(':'); p != std::string_view::npos; p = key.find(':', p + 1)) {
    size_t q = p + 1;
    uint64_t line = 0;
    while (q < key.size() && key[q] >= '0' && key[q] <= '9' && line <= UINT32_MAX)
      line = line * 10 + static_cast<uint64_t>(key[q++] - '0');
    if (q == p + 1 || q >= key.size() || key[q] != ':' || line > UINT32_MAX) continue;
    return Function{std::string(key.substr(0, p)), static_cast<uint32_t>(line),
                    std::string(key.substr(q + 1))};
  }
  return InvalidArgument("function '" + std::string(key) + "' is not file:line:name");
}

void AppendFunctionKey(std::string* out, std::string_view file, uint32_t line,
                       std::string_view name) {
  char digits[16];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, line);
  out->append(file);
  out->push_back(':');
  out->append(digits, end);
  out->push_back(':');
  out->append(name);
}

std::string FunctionKeyText(std::string_view file, uint32_t line, std::string_view name) {
  std::string out;
  out.reserve(file.size() + name.size() + 12);
  AppendFunctionKey(&out, file, line, name);
  return out;
}

}  // namespace cpuledger::profile
