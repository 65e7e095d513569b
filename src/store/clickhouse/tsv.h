// src/store/clickhouse/tsv.h — reading ClickHouse's TabSeparated answers.
//
//   for (const TsvRow& row : SplitTsv(body)) { std::string key = Unescape(row[0]); ... }
//
// SplitTsv() keeps each field as ClickHouse wrote it (escaped); Unescape()
// turns a String field back into its bytes; the number readers map \N
// (NULL) and nan to NaN. Field text views point into the body.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cpuledger::store::clickhouse {

using TsvRow = std::vector<std::string_view>;

// SplitTsv() — the lines of `body` (the final newline ends the last), split at tabs.
std::vector<TsvRow> SplitTsv(std::string_view body);

// Unescape() — \t \n \r \b \f \0 \\ \' and \xHH as the bytes they stand for.
std::string Unescape(std::string_view field);

// TsvStringArray() — an Array(String) field (['a','b']) as its strings.
std::vector<std::string> TsvStringArray(std::string_view field);

// TsvDouble() — a number field; \N, nan, inf as such. Unparsable text: NaN.
double TsvDouble(std::string_view field);
// TsvUInt64() / TsvInt64() — integer fields; \N or unparsable text: 0.
uint64_t TsvUInt64(std::string_view field);
int64_t TsvInt64(std::string_view field);

}  // namespace cpuledger::store::clickhouse
