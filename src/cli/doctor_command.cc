// `cpuledger doctor [--json] [--source S]`
#include <iostream>

#include "cli/commands.h"
#include "cli/doctor.h"

namespace cpuledger::cli {

void AddDoctorCommand(CLI::App& app, int* exit_code) {
  struct Flags {
    bool json = false;
    std::string source;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "doctor", "Which CPU counter sources work on this machine, why not, and what a read costs");
  cmd->add_flag("--json", flags->json, "Print the report as JSON");
  cmd->add_option("--source", flags->source,
                  "Source to select: auto, hardware, task_clock, thread_cputime "
                  "(default: $CPULEDGER_COUNTER_SOURCE or auto)");
  cmd->callback([flags, exit_code] {
    Result<counters::SourceRequest> request = flags->source.empty()
                                                  ? counters::SourceRequestFromEnv()
                                                  : counters::ParseSourceRequest(flags->source);
    if (!request.ok()) {
      std::cerr << "cpuledger doctor: " << request.status().message() << "\n";
      *exit_code = 2;
      return;
    }
    DoctorReport report = RunDoctor(*request, counters::RealKernel());
    std::cout << (flags->json ? DoctorJson(report).dump(2) + "\n" : FormatDoctorText(report));
    *exit_code = report.selected.empty() ? 1 : 0;
  });
}

}  // namespace cpuledger::cli
