// src/cli/commands.h — one function per `cpuledger` subcommand; main.cc wires
// them into CLI11. Each returns the process exit code: 0 ok, 1 the command
// failed (message on stderr), 2 bad usage.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace cpuledger::cli {

// AddDoctorCommand() etc. — register the subcommand and its flags on `app`;
// the callback runs the command and stores its exit code in *exit_code.
void AddDoctorCommand(CLI::App& app, int* exit_code);
void AddServeCommand(CLI::App& app, int* exit_code);
void AddReportCommand(CLI::App& app, int* exit_code);
void AddSimulateCommand(CLI::App& app, int* exit_code);
void AddDiffCommand(CLI::App& app, int* exit_code);
void AddChangepointsCommand(CLI::App& app, int* exit_code);
void AddDetectCommand(CLI::App& app, int* exit_code);
void AddAlertsCommand(CLI::App& app, int* exit_code);

}  // namespace cpuledger::cli
