// The CRIU driver: dumps a process tree to an images directory and restores it, by running the
// CRIU 4.1+ command line (found by find_criu()).
//
// Two facts about this platform shape it (ENVIRONMENT.md):
//  - CRIU's hardware breakpoints never fire in this VM, which leaves `criu dump` and
//    `criu restore` waiting forever for a stop that never comes. The driver therefore sets
//    CRIU_FAULT=130 (CRIU's FI_NO_BREAKPOINTS), which makes CRIU single-step to the sigreturn
//    with PTRACE_SYSCALL instead; it works everywhere and costs a few extra ptrace stops.
//  - PID 1 reaps orphans only every ~1.5 s: a restore that needs the PID of a process that was
//    just killed fails with "File exists" until that PID is reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/criu/criu_stats.h"
#include "relive/result.h"

namespace relive::criu {

// How CRIU itself is run; shared by every command.
struct CriuRunOptions {
  std::string criu;                   // path of the binary; empty: find_criu()
  std::chrono::seconds timeout{300};  // then CRIU is killed; zero: no limit
  bool hw_breakpoints = false;        // true: let CRIU use them (not on this VM, see above)
};

struct DumpOptions {
  pid_t pid = 0;               // root of the tree to dump
  std::string images_dir;      // created if missing; also CRIU's work dir (logs, stats)
  bool leave_running = false;  // otherwise CRIU kills the tree after a successful dump
  bool leave_stopped = false;
  bool tcp_established = false;
  bool shell_job = false;  // needed only if the tree holds a terminal
  bool ext_unix_sk = false;
  bool file_locks = false;
  std::string parent_images;  // --prev-images-dir; relative to images_dir, as CRIU requires
  std::vector<std::string> extra_args;
  std::string log_file = "dump.log";  // relative paths are inside images_dir
  CriuRunOptions run;
};

struct RestoreOptions {
  std::string images_dir;
  // Must stay true: without --restore-detached CRIU remains the tree's parent until the tree
  // exits, which a run-to-completion driver cannot offer (restore() returns Unsupported).
  bool detached = true;
  // --restore-sibling: the restored root becomes a child of the calling process (which can then
  // waitpid it). Otherwise a detached tree is reparented to PID 1 (or the nearest subreaper) and
  // is NOT our child. Caveat: if CRIU is killed on timeout midway, a root it already created is
  // our child too and is not killed by the driver (CRIU restores the dumped PIDs, so it is the
  // root PID recorded at dump time).
  bool as_child = false;
  bool leave_stopped = false;
  bool tcp_established = false;
  bool shell_job = false;
  std::string pidfile;  // where CRIU writes the root's PID; default <images_dir>/restore.pid
  // Each "fd[N]:KEY" becomes --inherit-fd; fd N must be open in the caller without O_CLOEXEC.
  std::vector<std::string> inherit_fds;
  std::vector<std::string> extra_args;
  std::string log_file = "restore.log";
  CriuRunOptions run;
};

// Dumps the tree rooted at options.pid. Returns the stats CRIU recorded (fields it did not
// record stay -1). On failure, an IoError quoting CRIU's last error lines and the log's path.
Result<CriuStats> dump(const DumpOptions& options);

// Restores a tree from options.images_dir and returns its root PID (read from the pidfile). See
// RestoreOptions::as_child for whose child the tree is. Restore timings: read_stats(images_dir).
// Before running CRIU, fails with Corruption when a pages image is shorter than its pagemap says
// (CRIU would hang on it; see image_check.h).
Result<pid_t> restore(const RestoreOptions& options);

// `criu check`: Ok iff CRIU says "Looks good".
Status check(const CriuRunOptions& run = {});

// --- exposed for tests ---
// The last `max_lines` "Error (" lines of a CRIU log without their timestamps (falling back to
// the last lines of CRIU's stdout/stderr), joined with "; ".
std::string summarize_criu_errors(std::string_view log, std::string_view output,
                                  size_t max_lines = 5);
std::vector<std::string> dump_argv(const std::string& criu, const DumpOptions& options);
std::vector<std::string> restore_argv(const std::string& criu, const RestoreOptions& options,
                                      const std::string& pidfile);

}  // namespace relive::criu
