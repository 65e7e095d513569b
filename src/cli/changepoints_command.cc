// `cpuledger changepoints [--json] [--penalty P] [--season K] [--min-segment N] FILE|-`
// The change points of one series (stats::DetectChangePoints): levels that
// shifted and trends that bent, with outliers, short excursions that came
// back (holidays), missing values and up to two seasons taken into account.
// The series is read from FILE, or stdin for `-`:
//  * one number per line (a blank line is a missing value), or
//  * `time,value` CSV: the time is any text (split at the last comma) and is
//    echoed beside each change; a blank line is skipped, `time,` is missing.
// A first line whose value is not a number is a header and is skipped;
// `nan`, `NA` and `null` are missing values; `#` starts a comment line.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/percent_text.h"
#include "base/status.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "stats/stats.h"

namespace cpuledger::cli {
namespace {

struct ChangepointsFlags {
  std::string file;
  bool json = false;
  double penalty = 0;
  int season = 0;
  int min_segment = 3;
};

// Series — the values in input order (NaN: missing) and, for CSV, each
// value's time text.
struct Series {
  std::vector<double> values;
  std::vector<std::string> times;  // empty unless the input was CSV
  bool csv = false;
};

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ParseValue() — a number, NaN for a missing value, or nullopt when the
// text is neither.
std::optional<double> ParseValue(const std::string& text) {
  const std::string t = Lower(text);
  if (t.empty() || t == "nan" || t == "na" || t == "null")
    return std::numeric_limits<double>::quiet_NaN();
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || errno == ERANGE || !std::isfinite(v)) return std::nullopt;
  return v;
}

// ParseSeries() — the series in `in` (see the file comment); `name` names
// the input in messages. RETURNS: InvalidArgument naming the line of the
// first malformed value, or when there is no number at all.
Result<Series> ParseSeries(std::istream& in, const std::string& name) {
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(Trim(line));
  while (!lines.empty() && lines.back().empty()) lines.pop_back();

  Series s;
  bool format_known = false, first_data_line = true;
  size_t numbers = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    const std::string where = name + " line " + std::to_string(i + 1) + ": ";
    if (!line.empty() && line[0] == '#') continue;
    if (line.empty()) {
      // Single column: a missing value. CSV (and before the first line
      // with data): not a point at all.
      if (format_known && !s.csv) s.values.push_back(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    if (!format_known) {
      s.csv = line.find(',') != std::string::npos;
      format_known = true;
    }
    std::string time, value_text = line;
    if (s.csv) {
      const size_t comma = line.rfind(',');
      if (comma == std::string::npos)
        return InvalidArgument(where + "expected time,value, got '" + line + "'");
      time = Trim(line.substr(0, comma));
      if (time.size() >= 2 && time.front() == '"' && time.back() == '"')
        time = time.substr(1, time.size() - 2);
      value_text = Trim(line.substr(comma + 1));
    } else if (line.find(',') != std::string::npos) {
      return InvalidArgument(where + "a comma in a one-number-per-line file: '" + line + "'");
    }
    const std::optional<double> value = ParseValue(value_text);
    const bool header = first_data_line && !value;
    first_data_line = false;
    if (header) continue;
    if (!value) return InvalidArgument(where + "'" + value_text + "' is not a number");
    if (!std::isnan(*value)) ++numbers;
    s.values.push_back(*value);
    if (s.csv) s.times.push_back(time);
  }
  if (numbers == 0) return InvalidArgument(name + ": no numbers to look for change points in");
  return s;
}

// ReadSeries() — ParseSeries() of the file, or of stdin for "-".
// RETURNS: IoError when the file cannot be opened; ParseSeries()'s errors.
Result<Series> ReadSeries(const std::string& file) {
  if (file == "-") return ParseSeries(std::cin, "stdin");
  std::ifstream in(file);
  if (!in) return IoError("cannot read " + file + ": " + std::strerror(errno));
  Result<Series> series = ParseSeries(in, file);
  if (series.ok() && in.bad()) return IoError("error reading " + file);
  return series;
}

// Number() — six significant digits, no exponent for everyday magnitudes.
std::string Number(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string Signed(double v) { return (v > 0 ? "+" : "") + Number(v); }

const char* Kind(const stats::ChangePoint& c) { return c.slope_change ? "trend" : "level"; }

nlohmann::ordered_json ToJson(const Series& s, const stats::ChangePointResult& r) {
  nlohmann::ordered_json changes = nlohmann::ordered_json::array();
  for (const stats::ChangePoint& c : r.changes)
    changes.push_back(
        {{"index", c.index},
         {"time", s.csv ? nlohmann::ordered_json(s.times[c.index]) : nlohmann::ordered_json()},
         {"before", c.before},
         {"after", c.after},
         {"size", c.size},
         {"relative", c.relative},
         {"kind", Kind(c)},
         {"slope_before", c.slope_before},
         {"slope_after", c.slope_after}});
  return {{"changes", changes},       {"noise_scale", r.noise_scale},
          {"season", r.season},       {"second_season", r.second_season},
          {"outliers", r.outliers},   {"missing", r.missing},
          {"points", s.values.size()}};
}

std::string Text(const Series& s, const stats::ChangePointResult& r) {
  std::ostringstream out;
  out << s.values.size() << " points";
  if (r.missing) out << " (" << r.missing << " missing)";
  out << ", noise scale " << Number(r.noise_scale);
  out << ", season " << (r.season ? std::to_string(r.season) + " points" : std::string("none"));
  if (r.second_season) out << " and " << r.second_season << " points";
  out << ", " << r.outliers << " outlier(s) or excursion point(s) left out\n";
  if (r.changes.empty()) {
    out << "no change points\n";
    return out.str();
  }
  Table t;
  t.header = {"index"};
  t.numeric = {true};
  if (s.csv) {
    t.header.push_back("time");
    t.numeric.push_back(false);
  }
  for (const char* h : {"before", "after", "size", "relative", "kind"}) t.header.push_back(h);
  for (bool numeric : {true, true, true, true, false}) t.numeric.push_back(numeric);
  for (const stats::ChangePoint& c : r.changes) {
    std::vector<std::string> row = {std::to_string(c.index)};
    if (s.csv) row.push_back(s.times[c.index]);
    for (const std::string& cell : {Number(c.before), Number(c.after), Signed(c.size),
                                    SignedPercent(c.relative), std::string(Kind(c))})
      row.push_back(cell);
    t.rows.push_back(row);
  }
  out << t.Render();
  return out.str();
}

int RunChangepoints(const ChangepointsFlags& f) {
  if (f.season < -1) {
    std::cerr << "cpuledger changepoints: --season is a period >= 2, 0 (detect) or -1 (none)\n";
    return 2;
  }
  if (f.penalty < 0 || !std::isfinite(f.penalty)) {
    std::cerr << "cpuledger changepoints: --penalty must be >= 0 (0: automatic)\n";
    return 2;
  }
  if (f.min_segment < 2) {
    std::cerr << "cpuledger changepoints: --min-segment must be at least 2\n";
    return 2;
  }
  Result<Series> series = ReadSeries(f.file);
  if (!series.ok()) {
    std::cerr << "cpuledger changepoints: " << series.status().message() << "\n";
    return 1;
  }
  stats::ChangePointOptions options;
  options.penalty = f.penalty;
  options.season = f.season;
  options.min_segment = static_cast<size_t>(f.min_segment);
  const stats::ChangePointResult result = stats::DetectChangePoints(series->values, options);
  std::cout << (f.json ? ToJson(*series, result).dump(2) + "\n" : Text(*series, result));
  return 0;
}

}  // namespace

void AddChangepointsCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<ChangepointsFlags>();
  CLI::App* cmd = app.add_subcommand(
      "changepoints",
      "Level shifts and trend changes in a series: one number per line, or time,value CSV");
  cmd->add_option("file", f->file, "The series; - reads stdin")->required();
  cmd->add_flag("--json", f->json, "Print JSON");
  cmd->add_option("--penalty", f->penalty,
                  "Cost of a change in noise variances (default 0: automatic, 3 log n + 6)");
  cmd->add_option("--season", f->season,
                  "Period in points to remove (default 0: detect; -1: none)");
  cmd->add_option("--min-segment", f->min_segment, "Fewest points between changes (default 3)");
  cmd->callback([f, exit_code] { *exit_code = RunChangepoints(*f); });
}

}  // namespace cpuledger::cli
