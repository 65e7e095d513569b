#include "cli/alert_text.h"

#include <cmath>
#include <sstream>

#include "base/percent_text.h"
#include "base/time_text.h"
#include "cli/table.h"

namespace cpuledger::cli {
namespace {

double Num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : std::nan("");
}

// "file:line:name" -> "name (file:line)"
std::string FunctionName(const std::string& text) {
  const size_t last = text.rfind(':');
  if (last == std::string::npos) return text;
  const size_t line = text.rfind(':', last - 1);
  if (line == std::string::npos) return text;
  return text.substr(last + 1) + " (" + text.substr(0, last) + ")";
}

// "90%", or "99.95%" for the FCR-adjusted levels near 1 (never "100%").
std::string ConfidenceText(double c) {
  if (!std::isfinite(c)) return "?";
  if (c <= 0.99) return FixedDigits(c * 100, 0) + "%";
  int digits = 2;
  while (digits < 6 && FixedDigits(c * 100, digits).rfind("100", 0) == 0) ++digits;
  return FixedDigits(c * 100, digits) + "%";
}

std::string ShortName(const std::string& text) {
  const size_t last = text.rfind(':');
  return last == std::string::npos ? text : text.substr(last + 1);
}

std::string Judged(const nlohmann::json& f) {
  std::string s = f.value("service", "") + " " + f.value("endpoint", "");
  if (!f.value("function", "").empty()) s += " :: " + FunctionName(f.value("function", ""));
  return s;
}

// FunctionEffectText() — a function finding's effect: cost added per
// request in the profiles' unit, and as a share of the request (the terms
// of the endpoint's threshold), never the function's own relative change.
std::string FunctionEffectText(const nlohmann::json& f) {
  const nlohmann::json& e = f.at("effect");
  const nlohmann::json& c = f.at("function_change");
  const std::string unit = f.value("unit", "");
  std::ostringstream out;
  const double added = Num(c, "added_per_request");
  out << "   effect: " << (added >= 0 ? "+" : "-") << HumanCount(std::fabs(added)) << " " << unit
      << " per request, " << SignedPercent(Num(e, "estimate")) << " of the request; "
      << ConfidenceText(Num(e, "confidence")) << " interval [" << SignedPercent(Num(e, "lo"))
      << ", " << SignedPercent(Num(e, "hi")) << "]; threshold "
      << SignedPercent(Num(f, "threshold")) << " (" << f.value("threshold_source", "") << ")\n";
  out << "   function self cost " << HumanCount(Num(f, "mean_before")) << " -> "
      << HumanCount(Num(f, "mean_after")) << " " << unit << " per request"
      << (c.value("new", false) ? " (new: never ran on the base side)" : "") << "; "
      << f.value("samples_before", uint64_t{0}) << " vs " << f.value("samples_after", uint64_t{0})
      << " profiled requests\n";
  return out.str();
}

}  // namespace

std::string FindingsText(const nlohmann::json& findings) {
  std::ostringstream out;
  int n = 0;
  for (const nlohmann::json& f : findings) {
    const nlohmann::json& e = f.at("effect");
    out << ++n << ". [" << f.value("kind", "") << "] " << Judged(f) << "\n";
    if (f.contains("id")) {
      out << "   alert #" << f["id"].get<int64_t>() << ", " << f.value("state", "") << ", opened "
          << UtcMinute(static_cast<int64_t>(Num(f, "opened") * 1e6));
      if (f.value("state", "") != "open" && Num(f, "updated") > 0)
        out << ", " << f.value("state", "") << " "
            << UtcMinute(static_cast<int64_t>(Num(f, "updated") * 1e6));
      if (f.value("reopens", int64_t{0}) != 0)
        out << "; reopens alert #" << f.value("reopens", int64_t{0});
      out << "\n";
    }
    out << "   cause: " << f.value("cause", "") << " (" << f.value("method", "") << ")\n";
    if (f.contains("function_change")) {
      out << FunctionEffectText(f);
      continue;
    }
    out << "   effect: " << SignedPercent(Num(e, "estimate")) << " CPU per request, "
        << ConfidenceText(Num(e, "confidence")) << " interval [" << SignedPercent(Num(e, "lo"))
        << ", " << SignedPercent(Num(e, "hi")) << "]; threshold "
        << SignedPercent(Num(f, "threshold")) << " (" << f.value("threshold_source", "") << ")\n";
    out << "   mean " << HumanCount(Num(f, "mean_before")) << " -> "
        << HumanCount(Num(f, "mean_after")) << " " << f.value("unit", "") << " per request; "
        << f.value("samples_before", uint64_t{0}) << " vs " << f.value("samples_after", uint64_t{0})
        << " samples\n";
    const nlohmann::json& top = f.value("top_functions", nlohmann::json::array());
    if (!top.empty()) {
      out << "   top functions (added self cost per request";
      if (Num(f, "explained_share") > 0)
        out << "; they explain " << FixedDigits(Num(f, "explained_share") * 100, 0)
            << "% of the profiled growth";
      out << "):\n";
      int i = 0;
      for (const nlohmann::json& c : top) {
        out << "     " << ++i << ") " << FunctionName(c.value("function", "")) << "  +"
            << HumanCount(Num(c, "added")) << " (" << HumanCount(Num(c, "before")) << " -> "
            << HumanCount(Num(c, "after")) << ")\n";
        std::string path;
        for (const nlohmann::json& p : c.value("path", nlohmann::json::array()))
          path += (path.empty() ? "" : " > ") + ShortName(p.get<std::string>());
        if (!path.empty()) out << "        path: " << path << "\n";
      }
    }
  }
  return out.str();
}

std::string SkipsText(const nlohmann::json& skipped) {
  Table t;
  t.header = {"kind", "endpoint or function", "cause", "why skipped"};
  t.numeric = {false, false, false, false};
  for (const nlohmann::json& f : skipped)
    t.rows.push_back({f.value("kind", ""), Judged(f), f.value("cause", ""), f.value("reason", "")});
  return t.Render();
}

}  // namespace cpuledger::cli
