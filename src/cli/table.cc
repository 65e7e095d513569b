#include "cli/table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace cpuledger::cli {

std::string Table::Render() const {
  std::vector<size_t> width(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size() && c < width.size(); ++c)
      width[c] = std::max(width[c], row[c].size());
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string cell = c < cells.size() ? cells[c] : "";
      const bool right = c < numeric.size() && numeric[c];
      const std::string pad(width[c] - cell.size(), ' ');
      out << (c ? "  " : "") << (right ? pad + cell : cell + (c + 1 < width.size() ? pad : ""));
    }
    out << "\n";
  };
  line(header);
  std::vector<std::string> rule;
  for (size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& row : rows) line(row);
  return out.str();
}

std::string Table::RenderCsv() const {
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string& cell = cells[c];
      if (c) out << ",";
      if (cell.find_first_of(",\"\n") != std::string::npos) {
        out << '"';
        for (char ch : cell) out << (ch == '"' ? "\"\"" : std::string(1, ch));
        out << '"';
      } else {
        out << cell;
      }
    }
    out << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out.str();
}

std::string HumanCount(double v) {
  if (!std::isfinite(v)) return "-";
  const char* suffix[] = {"", "k", "M", "G", "T", "P"};
  int i = 0;
  double a = std::fabs(v);
  while (a >= 1000 && i < 5) {
    a /= 1000;
    v /= 1000;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), i == 0 ? "%.0f" : "%.2f%s", v, suffix[i]);
  return buf;
}

std::string FixedDigits(double value, int digits) {
  if (!std::isfinite(value)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, value);
  return buf;
}

}  // namespace cpuledger::cli
