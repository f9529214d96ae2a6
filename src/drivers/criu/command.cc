#include "drivers/criu/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <map>
#include <string_view>

#include "common/file_util.h"
#include "common/scoped_fd.h"

namespace relive::criu {
namespace {

constexpr size_t kMaxOutput = size_t{1} << 20;

std::string_view env_key(std::string_view kv) { return kv.substr(0, kv.find('=')); }

std::vector<std::string> merged_env(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    bool overridden = std::any_of(extra.begin(), extra.end(),
                                  [&](const std::string& x) { return env_key(x) == env_key(kv); });
    if (!overridden) out.emplace_back(kv);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::vector<char*> c_array(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Owns posix_spawn's attribute and file-action objects and fills them in.
class SpawnSetup {
 public:
  SpawnSetup() {
    ::posix_spawn_file_actions_init(&actions_);
    ::posix_spawnattr_init(&attr_);
  }
  ~SpawnSetup() {
    ::posix_spawn_file_actions_destroy(&actions_);
    ::posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  // Errors here are only ENOMEM, which posix_spawn would report again; they are not checked.
  void prepare(int output_fd, bool discard_output) {
    ::posix_spawn_file_actions_addopen(&actions_, 0, "/dev/null", O_RDONLY, 0);
    if (discard_output) {
      ::posix_spawn_file_actions_addopen(&actions_, 1, "/dev/null", O_WRONLY, 0);
      ::posix_spawn_file_actions_adddup2(&actions_, 1, 2);
    } else {
      ::posix_spawn_file_actions_adddup2(&actions_, output_fd, 1);
      ::posix_spawn_file_actions_adddup2(&actions_, output_fd, 2);
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    ::posix_spawnattr_setsigmask(&attr_, &none);
    ::posix_spawnattr_setsigdefault(&attr_, &all);
    ::posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

// Parent of every process, from /proc/<pid>/stat ("pid (comm) state ppid ..."; comm may hold
// spaces and parentheses, hence the last ')'). This kernel has no /proc/<pid>/task/*/children.
std::multimap<pid_t, pid_t> children_by_parent() {
  std::multimap<pid_t, pid_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    pid_t pid = 0, ppid = 0;
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc()) continue;
    auto stat = read_file(e.path().string() + "/stat");
    if (!stat.ok()) continue;
    size_t close = stat->rfind(')');
    if (close == std::string::npos || close + 4 >= stat->size()) continue;
    const char* p = stat->data() + close + 4;  // past ") S "
    if (std::from_chars(p, stat->data() + stat->size(), ppid).ec == std::errc()) {
      out.emplace(ppid, pid);
    }
  }
  return out;
}

// Kills `pid` and all its descendants. It is stopped first so that it cannot fork while we look;
// CRIU's half-restored tasks are its children and would otherwise outlive it (spinning, in one
// CRIU 4.1.1 failure mode).
void kill_tree(pid_t pid) {
  ::kill(pid, SIGSTOP);
  auto children = children_by_parent();
  std::vector<pid_t> tree = {pid};
  for (size_t i = 0; i < tree.size(); ++i) {
    auto [lo, hi] = children.equal_range(tree[i]);
    for (auto it = lo; it != hi; ++it) tree.push_back(it->second);
  }
  for (auto it = tree.rbegin(); it != tree.rend(); ++it) ::kill(*it, SIGKILL);
}

// Waits up to `timeout` (zero: forever) for `pid` to end, killing it and its descendants when
// the time is up. Always reaps it.
Status wait_child(pid_t pid, std::chrono::milliseconds timeout, CommandResult* result) {
  if (timeout.count() > 0) {
    ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    pollfd p{.fd = pidfd.get(), .events = POLLIN, .revents = 0};
    int n = -1;
    if (pidfd.valid()) {
      do {
        n = ::poll(&p, 1, static_cast<int>(timeout.count()));
      } while (n < 0 && errno == EINTR);
    }
    if (n == 0) {
      kill_tree(pid);
      result->timed_out = true;
    }
  }
  int ws = 0;
  while (::waitpid(pid, &ws, 0) < 0) {
    if (errno != EINTR) return PosixError("waitpid " + std::to_string(pid), errno);
  }
  if (WIFEXITED(ws)) result->exit_code = WEXITSTATUS(ws);
  if (WIFSIGNALED(ws)) result->term_signal = WTERMSIG(ws);
  return Status::Ok();
}

// The last kMaxOutput bytes written to `fd`.
std::string read_tail(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {};
  auto size = static_cast<size_t>(st.st_size);
  size_t from = size > kMaxOutput ? size - kMaxOutput : 0;
  std::string out(size - from, '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(from + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

}  // namespace

std::string CommandResult::describe() const {
  if (timed_out) return "timed out and was killed";
  if (term_signal != 0) return "killed by signal " + std::to_string(term_signal);
  return "exit status " + std::to_string(exit_code);
}

Result<CommandResult> run_command(const std::vector<std::string>& argv,
                                  const CommandOptions& options) {
  if (argv.empty()) return Status::InvalidArgument("run_command: empty argv");
  ScopedFd out(::memfd_create("relive-command-output", MFD_CLOEXEC));
  if (!out.valid()) return PosixError("memfd_create", errno);
  SpawnSetup setup;
  setup.prepare(out.get(), options.discard_output);
  std::vector<std::string> args = argv;
  std::vector<std::string> env = merged_env(options.env);
  std::vector<char*> c_args = c_array(args), c_env = c_array(env);
  pid_t pid = -1;
  int err =
      ::posix_spawn(&pid, c_args[0], setup.actions(), setup.attr(), c_args.data(), c_env.data());
  if (err != 0) return PosixError("spawn " + argv[0], err);
  CommandResult result;
  RELIVE_RETURN_IF_ERROR(wait_child(pid, options.timeout, &result));
  result.output = read_tail(out.get());
  return result;
}

}  // namespace relive::criu
