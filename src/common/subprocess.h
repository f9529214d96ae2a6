// Child processes: the one place relive forks and executes another program. A Subprocess owns
// one started child through a pidfd and kills (SIGKILL) and reaps it when it goes out of scope,
// unless it was waited for or released; run() starts a program, waits for it with a timeout and
// returns its exit status and what it printed.
//
// Everything the child needs (argv, envp, the resolved binary, the namespace, mount and output
// fds) is prepared in the parent: between clone and exec the child makes only async-signal-safe
// system calls (subprocess.cc, child_exec), so starting a program from a threaded process is safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/scoped_fd.h"
#include "relive/result.h"

namespace relive {

// How a child ended.
struct ExitStatus {
  int exit_code = -1;   // meaningful when term_signal == 0 and !timed_out
  int term_signal = 0;  // the signal that ended it, if any
  bool timed_out = false;

  bool ok() const { return !timed_out && term_signal == 0 && exit_code == 0; }
  // "exit status 1", "killed by signal 11", "timed out and was killed".
  std::string describe() const;
  static ExitStatus from_wait_status(int wait_status);
};

// A file system a child sees in its own mount namespace (SpawnOptions::mounts).
struct ChildMount {
  int fd = -1;       // a detached mount: PrivateTmpfs::fd() (common/private_tmpfs.h)
  std::string path;  // where the child sees it (an existing directory)
};

// What the child gets besides argv. Defaults: stdin /dev/null, stdout and stderr inherited, the
// caller's environment, every other fd closed, an empty signal mask and default dispositions.
struct SpawnOptions {
  // "NAME=value" entries added to (or replacing those in) the caller's environment.
  std::vector<std::string> env{};
  // A network namespace to enter before exec: a name under /run/netns, or an absolute path.
  std::string netns{};
  std::string cwd{};            // "" for the caller's
  int output_fd = -1;           // stdout and stderr; -1 inherits the caller's
  bool discard_output = false;  // stdout and stderr to /dev/null (wins over output_fd)
  // Further fds the child gets: {fd in the caller, number in the child}.
  std::vector<std::pair<int, int>> fds{};
  bool new_session = false;  // setsid(): its own process group, killed with it
  // Extra clone3 flags, e.g. CLONE_NEWPID (the child is then the init of a new PID namespace).
  uint64_t clone_flags = 0;
  // When not empty, the child runs in a new mount namespace whose mounts are all private
  // (nothing it mounts or unmounts reaches the caller's), with each of these attached at its
  // path before exec; the caller's mount namespace never sees them.
  std::vector<ChildMount> mounts{};
  // Runs in the child just before exec; it must make only async-signal-safe calls and return 0
  // or an errno value (the start then fails with it).
  int (*pre_exec)(const void* arg) = nullptr;
  const void* pre_exec_arg = nullptr;
};

// A started child. Move-only.
class Subprocess {
 public:
  // Starts argv[0] (a path, or a name looked up on PATH when it has no '/'). Fails when the
  // program cannot be executed or the set-up (netns, cwd) fails, naming what failed.
  static Result<Subprocess> spawn(const std::vector<std::string>& argv,
                                  const SpawnOptions& options = {});

  // Forks a copy of this process that runs `body` and exits with what it returns (70 when an
  // exception escapes it): for helpers that run relive's own code rather than another program
  // (the log writer, the QEMU guard, the namespaced CRIU launcher). Unlike spawn(), the child
  // inherits fds, signal mask and dispositions; in a threaded process `body` must not need a
  // lock another thread may have held at the fork.
  static Result<Subprocess> fork_call(const std::function<int()>& body);

  Subprocess() = default;
  Subprocess(Subprocess&& o) noexcept;
  Subprocess& operator=(Subprocess&& o) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess() { kill(); }

  bool valid() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  // Not yet exited (it may be a zombie we have not reaped: that counts as exited).
  bool running() const;
  // Sends `sig` to it (and to its process group when it has its own session).
  void signal(int sig) const;
  // Waits for it to exit and reaps it. With a timeout (zero waits forever) it and every
  // descendant it left are SIGKILLed when the time is up, and the result says timed_out.
  Result<ExitStatus> wait(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // Its exit status once it has exited within `within` (it is then reaped); nullopt while it
  // still runs, and then it is left running.
  std::optional<ExitStatus> try_wait(
      std::chrono::milliseconds within = std::chrono::milliseconds(0));
  // SIGKILL (its process group too when it has its own session) and reap. Idempotent.
  void kill();
  // Lets it run on unowned: neither killed nor reaped by this object. Returns its pid.
  pid_t release();

 private:
  Subprocess(pid_t pid, ScopedFd pidfd, bool own_group)
      : pid_(pid), pidfd_(std::move(pidfd)), own_group_(own_group) {}

  pid_t pid_ = -1;
  ScopedFd pidfd_;
  bool own_group_ = false;
};

struct RunOptions {
  std::vector<std::string> env{};  // as SpawnOptions::env
  std::string netns{};             // as SpawnOptions::netns
  std::string cwd{};
  // After this long, SIGKILL the program and every descendant it left; zero waits forever.
  std::chrono::milliseconds timeout{0};
  // Give the program /dev/null as stdout and stderr (RunResult::output stays empty): for a
  // program that hands its stdio on to something that outlives it (runc restore --detach).
  bool discard_output = false;
  // Fds (above 2) the program inherits under the same numbers; every other one is closed.
  std::vector<int> keep_fds{};
  std::vector<ChildMount> mounts{};  // as SpawnOptions::mounts
};

struct RunResult : ExitStatus {
  std::string output;  // stdout and stderr, interleaved as written; the last 1 MiB of it
};

// Runs argv to completion with stdout and stderr into a memfd (so a descendant that keeps them
// open cannot stall us). Fails only when the program could not be started; a non-zero exit, a
// signal or a timeout is a RunResult.
Result<RunResult> run(const std::vector<std::string>& argv, const RunOptions& options = {});

// run(), then Ok only when the program exited with status 0; otherwise an IoError naming the
// command line, how it ended and what it printed.
Status run_checked(const std::vector<std::string>& argv, const RunOptions& options = {});

// The file at `path` opened for a child's output (created 0600, truncated or appended).
Result<ScopedFd> open_output_file(const std::string& path, bool append = false);

}  // namespace relive
