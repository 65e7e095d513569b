#include "cli/doctor.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <sstream>
#include <utility>

namespace cpuledger::cli {
namespace {

using counters::CounterSet;
using counters::Source;

// The doctor samples more than CounterSet::Open does (it has the time): 25k reads.
constexpr int kRounds = 25;
constexpr int kReadsPerRound = 1000;

template <typename F>
double DoctorCostNs(counters::Kernel& kernel, F&& call) {
  return counters::MedianCostNs(kernel, std::forward<F>(call), kRounds, kReadsPerRound);
}

std::string FormatNs(double ns) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), ns >= 1000 ? "%.2f us" : "%.0f ns", ns >= 1000 ? ns / 1000 : ns);
  return buf;
}

}  // namespace

DoctorReport RunDoctor(counters::SourceRequest requested, counters::Kernel& kernel) {
  DoctorReport report;
  report.perf_event_paranoid = counters::ReadPerfEventParanoid(kernel);
  report.virtual_machine = counters::RunningInVirtualMachine(kernel);
  report.requested = std::string(counters::RequestName(requested));
  report.floor_ns = DoctorCostNs(kernel, [&kernel] { return kernel.MonotonicNs(); });

  for (const counters::SourceInfo& info : counters::kSources) {
    SourceReport s;
    s.source = info.source;
    counters::Options options;
    options.source = info.request;
    Result<CounterSet> set = CounterSet::Open(options, kernel);
    if (!set.ok()) {
      s.reason = set.status().message();
    } else {
      s.available = true;
      s.notes = set->attempts().back().notes;
      s.method = std::string(counters::ReadMethodName(set->method()));
      s.read_ns = DoctorCostNs(kernel, [&] { return set->Read().cpu_ns; });
      s.primary_read_ns = DoctorCostNs(kernel, [&] { return set->ReadPrimary(); });
    }
    report.sources.push_back(std::move(s));
  }

  counters::Options chosen;
  chosen.source = requested;
  Result<CounterSet> set = CounterSet::Open(chosen, kernel);
  if (!set.ok()) {
    report.selected_error = set.status().message();
    return report;
  }
  report.selected = std::string(counters::SourceName(set->source()));
  for (const counters::Attempt& a : set->attempts())
    if (a.status.ok()) report.choice.push_back({a.source, a.read_ns, a.source == set->source()});
  return report;
}

std::string FormatDoctorText(const DoctorReport& r) {
  std::ostringstream out;
  out << "cpuledger doctor\n\n";
  out << "  perf_event_paranoid: "
      << (r.perf_event_paranoid == INT_MIN ? std::string("unreadable")
                                           : std::to_string(r.perf_event_paranoid))
      << "\n";
  out << "  virtual machine:     " << (r.virtual_machine ? "yes" : "no") << "\n";
  out << "  clock_gettime floor: " << FormatNs(r.floor_ns) << " per call\n\n";
  out << "counter sources (in fallback order):\n";
  for (const SourceReport& s : r.sources) {
    out << "  " << counters::SourceName(s.source) << ": ";
    if (!s.available) {
      out << "not available\n      why: " << s.reason << "\n";
      continue;
    }
    out << "available, read via " << s.method << ", " << FormatNs(s.read_ns) << " per read ("
        << FormatNs(s.primary_read_ns) << " primary only, "
        << static_cast<int>(s.read_ns / std::max(r.floor_ns, 1.0) + 0.5) << "x the floor)\n";
    for (const std::string& note : s.notes) out << "      note: " << note << "\n";
  }
  out << "\n";
  if (!r.selected.empty()) {
    out << "cpuledger will use: " << r.selected;
    if (r.selected != "hardware")
      out << " (cpu_ns only: instructions and cycles will be marked not available)";
    out << (r.requested == "auto" ? "" : " (forced by request)") << "\n";
    if (r.choice.size() > 1) {
      out << "  chosen as the cheapest read of the sources giving the same unit (timed at "
             "start):\n";
      for (const Candidate& c : r.choice)
        out << "    " << counters::SourceName(c.source) << ": " << FormatNs(c.read_ns)
            << (c.chosen ? "  <- chosen" : "") << "\n";
    }
  } else {
    out << "cpuledger cannot count with the requested source '" << r.requested
        << "': " << r.selected_error << "\n";
  }
  return out.str();
}

nlohmann::json DoctorJson(const DoctorReport& r) {
  nlohmann::json j;
  j["perf_event_paranoid"] = r.perf_event_paranoid == INT_MIN
                                 ? nlohmann::json(nullptr)
                                 : nlohmann::json(r.perf_event_paranoid);
  j["virtual_machine"] = r.virtual_machine;
  j["requested"] = r.requested;
  j["selected"] = r.selected.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.selected);
  if (!r.selected_error.empty()) j["selected_error"] = r.selected_error;
  j["floor_ns"] = r.floor_ns;
  j["choice"] = nlohmann::json::array();  // the timed candidates when several gave one unit
  for (const Candidate& c : r.choice)
    j["choice"].push_back(
        {{"source", counters::SourceName(c.source)}, {"read_ns", c.read_ns}, {"chosen", c.chosen}});
  j["sources"] = nlohmann::json::array();
  for (const SourceReport& s : r.sources) {
    nlohmann::json js;
    js["source"] = counters::SourceName(s.source);
    js["available"] = s.available;
    if (s.available) {
      js["method"] = s.method;
      js["read_ns"] = s.read_ns;
      js["primary_read_ns"] = s.primary_read_ns;
      js["notes"] = s.notes;
    } else {
      js["reason"] = s.reason;
    }
    j["sources"].push_back(js);
  }
  return j;
}

}  // namespace cpuledger::cli
