// `cpuledger` — the command-line front end. One subcommand per file under
// src/cli; this file only wires them into CLI11.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/doctor.h"

namespace {

int RunDoctorCommand(bool json, const std::string& source) {
  using namespace cpuledger;
  Result<counters::SourceRequest> request =
      source.empty() ? counters::SourceRequestFromEnv() : counters::ParseSourceRequest(source);
  if (!request.ok()) {
    std::cerr << "cpuledger doctor: " << request.status().message() << "\n";
    return 2;
  }
  cli::DoctorReport report = cli::RunDoctor(*request, counters::RealKernel());
  if (json) {
    std::cout << cli::DoctorJson(report).dump(2) << "\n";
  } else {
    std::cout << cli::FormatDoctorText(report);
  }
  return report.selected.empty() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cpuledger: CPU cost per request for Python web services"};
  app.require_subcommand(1);

  bool doctor_json = false;
  std::string doctor_source;
  CLI::App* doctor = app.add_subcommand(
      "doctor", "Which CPU counter sources work on this machine, why not, and what a read costs");
  doctor->add_flag("--json", doctor_json, "Print the report as JSON");
  doctor->add_option("--source", doctor_source,
                     "Source to select: auto, hardware, task_clock, thread_cputime "
                     "(default: $CPULEDGER_COUNTER_SOURCE or auto)");

  CLI11_PARSE(app, argc, argv);
  if (doctor->parsed()) return RunDoctorCommand(doctor_json, doctor_source);
  return 0;
}
