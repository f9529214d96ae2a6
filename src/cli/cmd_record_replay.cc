// relive record | replay | dump
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "common/logging.h"
#include "relive/record.h"
#include "relive/replay.h"
#include "trace/dump.h"
#include "tracee/cpu_binding.h"

namespace relive::cli {

int report_failure(const Status& status) {
  RELIVE_LOG_ERROR("{}", status.to_string());
  return status.is_divergence() ? kExitDivergence : kExitError;
}

namespace {

// --cpu any|none|N (tracee/cpu_binding.h).
void add_cpu_option(CLI::App* cmd, int* cpu) {
  cmd->add_option_function<std::string>(
         "--cpu",
         [cpu](const std::string& text) {
           Result<int> choice = tracee::parse_cpu_choice(text);
           if (!choice.ok()) throw CLI::ValidationError(choice.status().message());
           *cpu = *choice;
         },
         "Bind the tracer and the program to one CPU: any (one picked), none, or a CPU number; "
         "each ptrace stop costs several times less on one CPU")
      ->default_str("any");
}

}  // namespace

void register_record(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<RecordOptions>();
  auto* cmd = app.add_subcommand("record", "Record a program (from exec, or attached with --pid)");
  cmd->add_option("-o,--output", opts->trace_dir, "Trace directory to create")->required();
  cmd->add_option("--pid", opts->attach_pid, "Attach to this running process instead");
  cmd->add_flag("--live", opts->live,
                "With --pid: flush the log every 20 ms; SIGUSR1 stops recording with the process "
                "frozen at a syscall boundary; the trace is not synced to disk at the end (used by "
                "relive migrate --strategy crtr, which ships it as it grows)");
  cmd->add_option("--spin-limit", opts->spin_limit_ms,
                  "Milliseconds a thread may run without a syscall, in a loop that cannot be "
                  "preempted replayably, while others wait, before recording stops (0: no limit)")
      ->capture_default_str();
  add_cpu_option(cmd, &opts->cpu);
  cmd->add_flag("!--no-syscall-buffer", opts->syscall_buffer,
                "Trace every clock call and every call of libc's syscall sites (reads, writes, "
                "socket sends and receives, stat, poll, ...; no patched sites) instead of letting "
                "the program log them itself");
  cmd->add_option("command", opts->argv, "Program and arguments (after --)");
  cmd->callback([opts, exit_code] {
    if (opts->argv.empty() == (opts->attach_pid == 0)) {
      *exit_code =
          report_failure(Status::InvalidArgument("give either -- PROGRAM ARGS... or --pid PID"));
      return;
    }
    Result<RecordResult> r = record_trace(*opts);
    if (!r.ok()) {
      *exit_code = report_failure(r.status());
      return;
    }
    *exit_code = exit_code_of(r->wait_status);  // relive's status is the program's
  });
}

void register_replay(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<ReplayOptions>();
  auto* cmd = app.add_subcommand("replay", "Re-execute a recorded trace exactly");
  cmd->add_option("trace", opts->trace_dir, "Trace directory")->required();
  add_cpu_option(cmd, &opts->cpu);
  cmd->add_flag(
      "!--no-syscall-buffer", opts->syscall_buffer,
      "Replay every buffered call (clock calls and those of patched libc sites) through a "
      "stop instead of from "
      "the program's buffer");
  cmd->callback([opts, exit_code] {
    Result<ReplayResult> r = replay_trace(*opts);
    if (!r.ok()) {
      *exit_code = report_failure(r.status());
      return;
    }
    spdlog::debug("replayed {} events ({} through the syscall buffer)", r->events, r->buffered);
    *exit_code = exit_code_of(r->wait_status);
  });
}

void register_dump(CLI::App& app, int* exit_code) {
  auto dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("dump", "Print a trace's header and events, one per line");
  cmd->add_option("trace", *dir, "Trace directory")->required();
  cmd->add_flag("--json", *json, "JSON Lines output");
  cmd->callback([dir, json, exit_code] {
    Status st = trace::dump_trace(*dir, *json, stdout);
    std::fflush(stdout);
    *exit_code = st.ok() ? 0 : report_failure(st);
  });
}

}  // namespace relive::cli
