// The relive command line: each command registers itself on the CLI11 app from main(); its
// callback stores the process exit code in `*exit_code`.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <string>

#include "relive/status.h"

namespace relive::metrics {
class Registry;
}

namespace relive::cli {

// Exit codes of relive's own (not the program's) outcomes.
inline constexpr int kExitError = 125;       // bad usage, bad trace, unsupported program
inline constexpr int kExitDivergence = 126;  // replay left the recorded path

void register_record(CLI::App& app, int* exit_code);
void register_replay(CLI::App& app, int* exit_code);
void register_dump(CLI::App& app, int* exit_code);
void register_container(CLI::App& app, int* exit_code);
void register_keys(CLI::App& app, int* exit_code);
// After register_container: adds `container migrate` to it.
void register_migrate(CLI::App& app, int* exit_code);

void register_ha(CLI::App& app, int* exit_code);

// relived --ha-config: serves as peer `name` of the HA pair until *stop.
// Its metrics go to `metrics` (null: none).
Status serve_ha(const std::string& config_path, const std::string& name,
                const std::string& state_dir, bool insecure, const std::atomic<bool>* stop,
                metrics::Registry* metrics = nullptr);

// Prints "relive: <status>" on stderr and returns the exit code for it.
int report_failure(const Status& status);

}  // namespace relive::cli
