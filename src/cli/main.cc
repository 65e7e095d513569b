// `cpuledger` — the command-line front end. One subcommand per file under
// src/cli; this file only wires them into CLI11.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"cpuledger: CPU cost per request for Python web services"};
  // CPULEDGER_VERSION: pyproject.toml's, as the Python package's __version__.
  app.set_version_flag("--version", CPULEDGER_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  cpuledger::cli::AddDoctorCommand(app, &exit_code);
  cpuledger::cli::AddServeCommand(app, &exit_code);
  cpuledger::cli::AddReportCommand(app, &exit_code);
  cpuledger::cli::AddSimulateCommand(app, &exit_code);
  cpuledger::cli::AddDiffCommand(app, &exit_code);
  cpuledger::cli::AddDetectCommand(app, &exit_code);
  cpuledger::cli::AddAlertsCommand(app, &exit_code);
  cpuledger::cli::AddChangepointsCommand(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
