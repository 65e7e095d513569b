#include "store/clickhouse/tsv.h"

#include <charconv>
#include <cmath>
#include <limits>

namespace cpuledger::store::clickhouse {

std::vector<TsvRow> SplitTsv(std::string_view body) {
  std::vector<TsvRow> rows;
  while (!body.empty()) {
    size_t eol = body.find('\n');
    std::string_view line = body.substr(0, eol);
    body = eol == std::string_view::npos ? std::string_view() : body.substr(eol + 1);
    TsvRow row;
    for (;;) {
      size_t tab = line.find('\t');
      row.push_back(line.substr(0, tab));
      if (tab == std::string_view::npos) break;
      line = line.substr(tab + 1);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string Unescape(std::string_view f) {
  std::string out;
  out.reserve(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '\\' || i + 1 == f.size()) {
      out += f[i];
      continue;
    }
    char c = f[++i];
    switch (c) {
      case 't':
        out += '\t';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case '0':
        out += '\0';
        break;
      case 'x':
        if (i + 2 < f.size()) {
          unsigned v = 0;
          std::from_chars(f.data() + i + 1, f.data() + i + 3, v, 16);
          out += static_cast<char>(v);
          i += 2;
        }
        break;
      default:
        out += c;  // \\ \' and any other escaped byte
    }
  }
  return out;
}

std::vector<std::string> TsvStringArray(std::string_view field) {
  // TabSeparated escapes the array's text, whose strings are quoted and
  // escaped in turn: unescape the field, then each element.
  const std::string text = Unescape(field);
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\'') continue;
    size_t j = i + 1;
    while (j < text.size() && text[j] != '\'') j += text[j] == '\\' ? 2 : 1;
    out.push_back(Unescape(std::string_view(text).substr(i + 1, j - i - 1)));
    i = j;
  }
  return out;
}

double TsvDouble(std::string_view f) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  if (f == "\\N" || f == "nan" || f == "-nan") return kNaN;
  if (f == "inf" || f == "+inf") return std::numeric_limits<double>::infinity();
  if (f == "-inf") return -std::numeric_limits<double>::infinity();
  double v = kNaN;
  std::from_chars(f.data(), f.data() + f.size(), v);
  return v;
}

uint64_t TsvUInt64(std::string_view f) {
  uint64_t v = 0;
  std::from_chars(f.data(), f.data() + f.size(), v);
  return v;
}

int64_t TsvInt64(std::string_view f) {
  int64_t v = 0;
  std::from_chars(f.data(), f.data() + f.size(), v);
  return v;
}

}  // namespace cpuledger::store::clickhouse
