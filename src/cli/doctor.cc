#include "cli/doctor.h"

#include <time.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <sstream>

namespace cpuledger::cli {
namespace {

using counters::CounterSet;
using counters::Source;

constexpr int kRounds = 25;
constexpr int kReadsPerRound = 1000;

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// MedianCostNs() — the median over rounds of the mean cost of one call.
template <typename F>
double MedianCostNs(F&& call) {
  std::vector<double> per_call;
  per_call.reserve(kRounds);
  volatile uint64_t sink = 0;
  for (int round = 0; round < kRounds; ++round) {
    const uint64_t t0 = MonotonicNs();
    for (int i = 0; i < kReadsPerRound; ++i) sink = sink + call();
    per_call.push_back(static_cast<double>(MonotonicNs() - t0) / kReadsPerRound);
  }
  std::nth_element(per_call.begin(), per_call.begin() + kRounds / 2, per_call.end());
  return per_call[kRounds / 2];
}

counters::SourceRequest RequestFor(Source source) {
  switch (source) {
    case Source::kHardware:
      return counters::SourceRequest::kHardware;
    case Source::kTaskClock:
      return counters::SourceRequest::kTaskClock;
    case Source::kThreadCpuTime:
      return counters::SourceRequest::kThreadCpuTime;
  }
  return counters::SourceRequest::kAuto;
}

std::string RequestName(counters::SourceRequest request) {
  switch (request) {
    case counters::SourceRequest::kAuto:
      return "auto";
    case counters::SourceRequest::kHardware:
      return "hardware";
    case counters::SourceRequest::kTaskClock:
      return "task_clock";
    case counters::SourceRequest::kThreadCpuTime:
      return "thread_cputime";
  }
  return "auto";
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
  report.requested = RequestName(requested);
  report.floor_ns = MedianCostNs([] { return MonotonicNs(); });

  for (Source source : counters::kAllSources) {
    SourceReport s;
    s.source = source;
    counters::Options options;
    options.source = RequestFor(source);
    Result<CounterSet> set = CounterSet::Open(options, kernel);
    if (!set.ok()) {
      s.reason = set.status().message();
    } else {
      s.available = true;
      s.notes = set->attempts().back().notes;
      s.method = std::string(counters::ReadMethodName(set->method()));
      s.read_ns = MedianCostNs([&] { return set->Read().cpu_ns; });
      s.primary_read_ns = MedianCostNs([&] { return set->ReadPrimary(); });
    }
    report.sources.push_back(std::move(s));
  }

  counters::Options chosen;
  chosen.source = requested;
  Result<CounterSet> set = CounterSet::Open(chosen, kernel);
  if (set.ok()) {
    report.selected = std::string(counters::SourceName(set->source()));
  } else {
    report.selected_error = set.status().message();
  }
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
