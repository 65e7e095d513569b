// src/cli/table.h — plain-text tables and number formatting for the CLI.
#pragma once

#include <string>
#include <vector>

namespace cpuledger::cli {

// Table — rows of cells; numbers right-aligned, text left-aligned.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> numeric;  // per column; right-aligned when true

  std::string Render() const;
  // Table::RenderCsv() — RFC 4180 quoting.
  std::string RenderCsv() const;
};

// HumanCount() — 1234 -> "1.23k", 4.5e9 -> "4.50G".
std::string HumanCount(double value);
// FixedDigits() — value with `digits` after the point.
std::string FixedDigits(double value, int digits);

}  // namespace cpuledger::cli
