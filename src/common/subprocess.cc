#include "common/subprocess.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string_view>

#include "common/file_util.h"

namespace relive {
namespace {

constexpr size_t kMaxOutput = size_t{1} << 20;

// The set-up steps a child can fail in, reported to the parent through the error pipe.
enum class Step : int { kSession, kNetns, kMounts, kFds, kCwd, kPreExec, kExec };

const char* step_name(Step s) {
  switch (s) {
    case Step::kSession:
      return "setsid";
    case Step::kNetns:
      return "entering the network namespace";
    case Step::kMounts:
      return "mounting its private file systems";
    case Step::kFds:
      return "setting up its fds";
    case Step::kCwd:
      return "entering its working directory";
    case Step::kPreExec:
      return "its pre-exec set-up";
    case Step::kExec:
      return "exec";
  }
  return "set-up";
}

struct ChildError {
  Step step;
  int err;
};

// Everything the child uses, built by the parent before the clone.
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  int netns_fd = -1;
  std::vector<std::pair<int, const char*>> mounts;  // {detached mount, path}; in a new mount ns
  const char* cwd = nullptr;
  std::vector<std::pair<int, int>> fds;  // {source, target}, targets 0, 1, 2 first
  int max_target = 2;
  bool new_session = false;
  int (*pre_exec)(const void*) = nullptr;
  const void* pre_exec_arg = nullptr;
  int error_fd = -1;
};

[[noreturn]] void child_fail(int error_fd, Step step, int err) {
  ChildError e{step, err};
  (void)!::write(error_fd, &e, sizeof e);
  ::_exit(127);
}

// Moves every source fd above the targets, then onto its target (dup2 clears close-on-exec),
// keeps the error pipe just above them and closes everything else. Returns the error pipe's fd.
int arrange_fds(ChildPlan& p) {
  int base = p.max_target + 2;
  int err = ::fcntl(p.error_fd, F_DUPFD_CLOEXEC, base);
  if (err < 0) ::_exit(127);
  for (auto& [source, target] : p.fds) {
    source = ::fcntl(source, F_DUPFD_CLOEXEC, base);  // no allocation: the vector's own slot
    if (source < 0) child_fail(err, Step::kFds, errno);
  }
  for (const auto& [source, target] : p.fds) {
    if (::dup2(source, target) < 0) child_fail(err, Step::kFds, errno);
  }
  int keep = p.max_target + 1;
  if (::dup3(err, keep, O_CLOEXEC) < 0) child_fail(err, Step::kFds, errno);
  ::close_range(static_cast<unsigned>(keep) + 1, ~0U, 0);
  return keep;
}

// In the child's new mount namespace: every mount private first (so that nothing attached here
// propagates to the caller's namespace), then each detached mount moved onto its path.
void attach_mounts(const ChildPlan& p) {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    child_fail(p.error_fd, Step::kMounts, errno);
  for (const auto& [fd, path] : p.mounts) {
    if (::move_mount(fd, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) != 0)
      child_fail(p.error_fd, Step::kMounts, errno);
  }
}

// The child between clone and exec: async-signal-safe system calls only (no allocation, no
// locks, no exceptions). Every signal is blocked on entry (the parent blocked them around the
// clone), so no handler inherited from the parent can run here.
[[noreturn]] void child_exec(ChildPlan& p) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);
  if (p.new_session && ::setsid() < 0) child_fail(p.error_fd, Step::kSession, errno);
  if (p.netns_fd >= 0 && ::setns(p.netns_fd, CLONE_NEWNET) != 0) {
    child_fail(p.error_fd, Step::kNetns, errno);
  }
  if (!p.mounts.empty()) attach_mounts(p);
  int error_fd = arrange_fds(p);
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) child_fail(error_fd, Step::kCwd, errno);
  if (p.pre_exec != nullptr) {
    if (int e = p.pre_exec(p.pre_exec_arg); e != 0) child_fail(error_fd, Step::kPreExec, e);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(p.path, p.argv, p.envp);
  child_fail(error_fd, Step::kExec, errno);
}

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

// argv[0] as execve needs it: as is with a '/', else the first executable match on PATH.
Result<std::string> resolve(const std::string& program) {
  if (program.empty()) return Status::InvalidArgument("empty program name");
  if (program.find('/') != std::string::npos) return program;
  const char* env_path = std::getenv("PATH");
  std::string_view path = env_path != nullptr ? env_path : "/usr/local/bin:/usr/bin:/bin";
  while (!path.empty()) {
    size_t colon = path.find(':');
    std::string dir(path.substr(0, colon));
    path = colon == std::string_view::npos ? std::string_view() : path.substr(colon + 1);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return Status::NotFound("cannot execute " + program + ": not found on PATH");
}

Result<ScopedFd> open_netns(const std::string& netns) {
  if (netns.empty()) return ScopedFd();
  if (netns.front() != '/' && netns.find('/') != std::string::npos) {
    return Status::InvalidArgument("network namespace name '" + netns + "' contains '/'");
  }
  std::string path = netns.front() == '/' ? netns : "/run/netns/" + netns;
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.valid()) return fd;
  if (errno == ENOENT) return Status::NotFound("network namespace '" + netns + "' does not exist");
  return PosixError("open network namespace " + path, errno);
}

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

// Kills `pid` and all its descendants. It is stopped first so that it cannot fork while we look
// (CRIU's half-restored tasks are its children and would otherwise outlive it).
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

// clone3 with a pidfd; in the child, runs child_exec. All signals stay blocked across the
// clone so that no handler runs in the child before it resets them.
Result<std::pair<pid_t, ScopedFd>> clone_child(ChildPlan& plan, uint64_t flags) {
  int pidfd = -1;
  clone_args args{};
  args.flags = CLONE_PIDFD | flags;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) child_exec(plan);
  int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return PosixError("clone3", err);
  return std::make_pair(static_cast<pid_t>(pid), ScopedFd(pidfd));
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

// Whether the child behind `pidfd` exits (its pidfd turns readable) within `limit`.
bool exits_within(int pidfd, std::chrono::milliseconds limit) {
  pollfd p{.fd = pidfd, .events = POLLIN, .revents = 0};
  int n;
  do {
    n = ::poll(&p, 1, static_cast<int>(limit.count()));
  } while (n < 0 && errno == EINTR);
  return n != 0;
}

int waitpid_retrying(pid_t pid, int* status, int flags) {
  int r;
  do {
    r = ::waitpid(pid, status, flags);
  } while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (timed_out) return "timed out and was killed";
  if (term_signal != 0) return "killed by signal " + std::to_string(term_signal);
  return "exit status " + std::to_string(exit_code);
}

ExitStatus ExitStatus::from_wait_status(int ws) {
  ExitStatus s;
  if (WIFEXITED(ws)) s.exit_code = WEXITSTATUS(ws);
  if (WIFSIGNALED(ws)) s.term_signal = WTERMSIG(ws);
  return s;
}

Result<Subprocess> Subprocess::spawn(const std::vector<std::string>& argv_in,
                                     const SpawnOptions& o) {
  if (argv_in.empty()) return Status::InvalidArgument("cannot start a program: empty argv");
  RELIVE_ASSIGN_OR_RETURN(std::string path, resolve(argv_in[0]));
  RELIVE_ASSIGN_OR_RETURN(ScopedFd netns, open_netns(o.netns));
  ScopedFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null.valid()) return PosixError("open /dev/null", errno);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return PosixError("pipe", errno);
  ScopedFd error_read(pipe_fds[0]), error_write(pipe_fds[1]);
  std::vector<std::string> argv = argv_in, env = merged_env(o.env);
  std::vector<char*> c_argv = c_array(argv), c_env = c_array(env);

  ChildPlan plan;
  plan.path = path.c_str();
  plan.argv = c_argv.data();
  plan.envp = c_env.data();
  plan.netns_fd = netns.get();
  plan.cwd = o.cwd.empty() ? nullptr : o.cwd.c_str();
  int out = o.discard_output ? null.get() : o.output_fd;
  plan.fds.emplace_back(null.get(), 0);
  if (out >= 0) plan.fds.emplace_back(out, 1), plan.fds.emplace_back(out, 2);
  for (const auto& [source, target] : o.fds) {
    if (target <= 2) return Status::InvalidArgument("extra child fds must be numbered above 2");
    plan.fds.emplace_back(source, target);
    plan.max_target = std::max(plan.max_target, target);
  }
  for (const ChildMount& m : o.mounts) {
    if (m.fd < 0 || m.path.empty())
      return Status::InvalidArgument("a child mount needs a mount fd and a path");
    plan.mounts.emplace_back(m.fd, m.path.c_str());
  }
  plan.new_session = o.new_session;
  plan.pre_exec = o.pre_exec;
  plan.pre_exec_arg = o.pre_exec_arg;
  plan.error_fd = error_write.get();

  uint64_t flags = o.clone_flags | (o.mounts.empty() ? 0 : uint64_t{CLONE_NEWNS});
  RELIVE_ASSIGN_OR_RETURN(auto child, clone_child(plan, flags));
  Subprocess p(child.first, std::move(child.second), o.new_session);
  error_write.reset();
  ChildError e{};
  ssize_t n;
  do {
    n = ::read(error_read.get(), &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return p;  // exec closed the pipe
  p.kill();
  if (n != sizeof e)
    return Status::IoError("starting " + argv_in[0] + ": no report from the child");
  return PosixError("starting " + argv_in[0] + ": " + step_name(e.step), e.err);
}

Result<Subprocess> Subprocess::fork_call(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid < 0) return PosixError("fork", errno);
  if (pid == 0) {
    // The parent's stop handlers only set its flags: in this copy they would swallow the
    // SIGTERM meant to end it (relived's on_stop, say).
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaction(s, &dfl, nullptr);
    int code = 70;
    try {
      code = body();
    } catch (...) {  // must not unwind into the parent's stack frames copied by fork()
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) {
    int err = errno;
    ::kill(pid, SIGKILL);
    int ws;
    waitpid_retrying(pid, &ws, 0);
    return PosixError("pidfd_open", err);
  }
  return Subprocess(pid, std::move(pidfd), false);
}

Subprocess::Subprocess(Subprocess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), pidfd_(std::move(o.pidfd_)), own_group_(o.own_group_) {}

Subprocess& Subprocess::operator=(Subprocess&& o) noexcept {
  if (this != &o) {
    kill();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    own_group_ = o.own_group_;
  }
  return *this;
}

bool Subprocess::running() const {
  if (pid_ <= 0) return false;
  pollfd p{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 0) == 0;
}

void Subprocess::signal(int sig) const {
  if (pid_ <= 0) return;
  if (own_group_) ::kill(-pid_, sig);
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0);
}

Result<ExitStatus> Subprocess::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return Status::InvalidArgument("wait: no child process");
  bool timed_out = timeout.count() > 0 && !exits_within(pidfd_.get(), timeout);
  if (timed_out) {
    if (own_group_) ::kill(-pid_, SIGKILL);
    kill_tree(pid_);
  }
  int ws = 0;
  if (waitpid_retrying(pid_, &ws, 0) < 0)
    return PosixError("waitpid " + std::to_string(pid_), errno);
  pid_ = -1;
  pidfd_.reset();
  ExitStatus s = ExitStatus::from_wait_status(ws);
  s.timed_out = timed_out;
  return s;
}

std::optional<ExitStatus> Subprocess::try_wait(std::chrono::milliseconds within) {
  if (pid_ <= 0) return std::nullopt;
  if (within.count() > 0) (void)exits_within(pidfd_.get(), within);
  int ws = 0;
  if (waitpid_retrying(pid_, &ws, WNOHANG) != pid_) return std::nullopt;
  pid_ = -1;
  pidfd_.reset();
  return ExitStatus::from_wait_status(ws);
}

void Subprocess::kill() {
  if (pid_ <= 0) return;
  signal(SIGKILL);
  int ws;
  waitpid_retrying(pid_, &ws, 0);
  pid_ = -1;
  pidfd_.reset();
}

pid_t Subprocess::release() {
  pidfd_.reset();
  return std::exchange(pid_, -1);
}

Result<RunResult> run(const std::vector<std::string>& argv, const RunOptions& o) {
  ScopedFd out(::memfd_create("relive-command-output", MFD_CLOEXEC));
  if (!out.valid()) return PosixError("memfd_create", errno);
  SpawnOptions so;
  so.env = o.env;
  so.netns = o.netns;
  so.cwd = o.cwd;
  so.output_fd = out.get();
  so.discard_output = o.discard_output;
  for (int fd : o.keep_fds) so.fds.emplace_back(fd, fd);
  so.mounts = o.mounts;
  RELIVE_ASSIGN_OR_RETURN(Subprocess child, Subprocess::spawn(argv, so));
  RELIVE_ASSIGN_OR_RETURN(ExitStatus status, child.wait(o.timeout));
  RunResult r;
  static_cast<ExitStatus&>(r) = status;
  r.output = read_tail(out.get());
  return r;
}

Status run_checked(const std::vector<std::string>& argv, const RunOptions& options) {
  RELIVE_ASSIGN_OR_RETURN(RunResult r, run(argv, options));
  if (r.ok()) return Status::Ok();
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  std::string out = r.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return Status::IoError(cmd + ": " + r.describe() + (out.empty() ? "" : ": " + out));
}

Result<ScopedFd> open_output_file(const std::string& path, bool append) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
  ScopedFd fd(::open(path.c_str(), flags, 0600));
  if (!fd.valid()) return PosixError("open " + path, errno);
  return fd;
}

}  // namespace relive
