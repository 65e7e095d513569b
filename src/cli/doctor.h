// src/cli/doctor.h — `cpuledger doctor`: can this machine count CPU work, how,
// and at what cost per read?
//
// For every counter source it says whether it opens and, if not, why in
// words a user can act on (the errno, perf_event_paranoid and the sysctl that
// fixes it, seccomp, "a VM without a virtual PMU"); which source cpuledger
// will use and, when several sources give the same unit, the read costs it
// chose by; and the measured cost of one read (median of many rounds), timed
// with Kernel::MonotonicNs() so a fake kernel plays the costs too.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "counters/counters.h"

namespace cpuledger::cli {

// SourceReport — what the doctor found for one source.
struct SourceReport {
  counters::Source source = counters::Source::kThreadCpuTime;
  bool available = false;
  std::string reason;              // why not, when !available
  std::vector<std::string> notes;  // caveats when available ("user space only", ...)
  std::string method;              // "rdpmc", "read", "clock_gettime"; empty when unavailable
  double read_ns = -1;             // median cost of CounterSet::Read(); -1 when unavailable
  double primary_read_ns = -1;     // median cost of CounterSet::ReadPrimary()
};

// Candidate — one source CounterSet::Open timed against another of the same
// unit when it chose (kAuto without a PMU: task_clock and thread_cputime).
struct Candidate {
  counters::Source source = counters::Source::kThreadCpuTime;
  double read_ns = -1;  // the cost Open measured (MeasureReadNs)
  bool chosen = false;
};

// DoctorReport — the whole diagnosis.
struct DoctorReport {
  int perf_event_paranoid = 0;  // INT32_MIN when unreadable
  bool virtual_machine = false;
  std::string requested;       // "auto" or the forced source
  std::string selected;        // the source cpuledger will use; empty if none opens
  std::string selected_error;  // why the requested source did not open
  double floor_ns = 0;         // median cost of Kernel::MonotonicNs() (clock_gettime)
  std::vector<SourceReport> sources;
  std::vector<Candidate> choice;  // why `selected`: the timed candidates; empty when one opened
};

// RunDoctor() — probes every source and measures read costs.
// COST: opens each source once and reads it ~50k times (tens of ms).
DoctorReport RunDoctor(counters::SourceRequest requested, counters::Kernel& kernel);

// FormatDoctorText() — the human report.
std::string FormatDoctorText(const DoctorReport& report);

// DoctorJson() — the machine report (`cpuledger doctor --json`).
nlohmann::json DoctorJson(const DoctorReport& report);

}  // namespace cpuledger::cli
