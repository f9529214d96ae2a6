// Running a helper program (CRIU) to completion and collecting what it printed.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "relive/result.h"

namespace relive::criu {

struct CommandOptions {
  // "NAME=value" entries added to (or replacing those in) the caller's environment.
  std::vector<std::string> env;
  // After this long, SIGKILL the program and every descendant it left; zero waits forever.
  std::chrono::milliseconds timeout{0};
  // Give the program /dev/null as stdout and stderr (CommandResult::output stays empty): for a
  // program that hands its stdio on to something that outlives it (runc restore --detach).
  bool discard_output = false;
};

struct CommandResult {
  int exit_code = -1;   // meaningful when term_signal == 0 and !timed_out
  int term_signal = 0;  // the signal that ended it, if any
  bool timed_out = false;
  std::string output;  // stdout and stderr, interleaved as written; the last 1 MiB of it

  bool ok() const { return !timed_out && term_signal == 0 && exit_code == 0; }
  // "exit status 1", "killed by signal 11", "timed out and was killed".
  std::string describe() const;
};

// Runs argv[0] (a path; PATH is not searched) with stdin from /dev/null, stdout and stderr into
// a memfd (so a descendant that keeps them open cannot stall us), an empty signal mask and default
// signal dispositions (the caller may block SIGCHLD for a signalfd; CRIU needs it). Waits for it
// and always reaps it. Fails only when the program could not be started; a non-zero exit is a
// CommandResult.
Result<CommandResult> run_command(const std::vector<std::string>& argv,
                                  const CommandOptions& options = {});

}  // namespace relive::criu
