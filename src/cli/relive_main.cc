// relive: record, replay and migrate Linux workloads. Commands are registered explicitly here.
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "common/logging.h"
#include "common/memory_policy.h"
#include "common/version.h"

int main(int argc, char** argv) {
  relive::init_logging();
  relive::keep_freed_memory();
  CLI::App app{"relive: record, replay, live-migrate and protect Linux workloads"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("relive ") + relive::kVersion);
  // Applied as soon as it is parsed: before any command's callback logs.
  app.add_option_function<std::string>(
         "--log-format",
         [](const std::string& f) {
           relive::LoggingOptions log;
           log.format = f == "json" ? relive::LogFormat::kJson : relive::LogFormat::kHuman;
           relive::init_logging(log);
         },
         "human (default) or json: log lines on stderr (give it before the command)")
      ->check(CLI::IsMember({"human", "json"}));
  int exit_code = 0;
  relive::cli::register_record(app, &exit_code);
  relive::cli::register_replay(app, &exit_code);
  relive::cli::register_dump(app, &exit_code);
  relive::cli::register_container(app, &exit_code);
  relive::cli::register_keys(app, &exit_code);
  relive::cli::register_migrate(app, &exit_code);
  relive::cli::register_ha(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : relive::cli::kExitError;
  }
  return exit_code;
}
