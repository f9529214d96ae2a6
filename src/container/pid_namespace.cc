#include "container/pid_namespace.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "common/file_util.h"
#include "common/scoped_fd.h"
#include "common/subprocess.h"

namespace relive::container {
namespace {

// The report the namespace's processes send back through a pipe, one line each:
//   "init <global pid>"       from the intermediate child, once it cloned the init
//   "ok <namespace pid>"      from the init, after CRIU restored the tree
//   "err <code> <message>"    from the init, when it failed
void report(int fd, const std::string& line) { (void)write_all(fd, line + "\n"); }

Status status_from(int code, std::string msg) {
  switch (static_cast<Status::Code>(code)) {
    case Status::Code::kCorruption:
      return Status::Corruption(std::move(msg));
    case Status::Code::kNotFound:
      return Status::NotFound(std::move(msg));
    case Status::Code::kUnsupported:
      return Status::Unsupported(std::move(msg));
    case Status::Code::kInvalidArgument:
      return Status::InvalidArgument(std::move(msg));
    default:
      return Status::IoError(std::move(msg));
  }
}

Status prepare_mounts() {
  // Private first, so that the /proc mounted next stays in this namespace.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return PosixError("make / private in the new mount namespace", errno);
  }
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return PosixError("mount /proc for the new PID namespace", errno);
  }
  return Status::Ok();
}

// PID 1 of the new namespace: restore, report, then reap until the tree is gone.
[[noreturn]] void init_main(int report_fd, const criu::RestoreOptions& options) {
  ::setsid();  // no controlling terminal: a hangup of the caller's must not reach the tree
  // The caller may have blocked or ignored SIGCHLD; the init must see its children exit.
  ::signal(SIGCHLD, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Nothing of the caller's but stdio and the report pipe may leak into the namespace.
  if (report_fd > 3) ::close_range(3, static_cast<unsigned>(report_fd) - 1, 0);
  ::close_range(static_cast<unsigned>(report_fd) + 1, ~0u, 0);
  Status st = prepare_mounts();
  Result<pid_t> pid = st.ok() ? criu::restore(options) : Result<pid_t>(st);
  if (pid.ok()) {
    report(report_fd, "ok " + std::to_string(*pid));
  } else {
    report(report_fd, "err " + std::to_string(static_cast<int>(pid.status().code())) + " " +
                          pid.status().message());
  }
  ::close(report_fd);
  if (!pid.ok()) ::_exit(1);
  int null = ::open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
  while (::waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
  }
  ::_exit(0);
}

// The intermediate child: clones the init and exits, so that the init is nobody's child (it is
// reparented to the host's init or subreaper) and the caller never has to reap it. The init runs
// relive's own code (criu::restore) in new PID and mount namespaces, so it is a raw clone here
// rather than a Subprocess (which either execs a program or forks without new namespaces).
[[noreturn]] void launcher_main(int report_fd, const criu::RestoreOptions& options) {
  long init = ::syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, nullptr, nullptr, nullptr,
                        nullptr);
  if (init == 0) init_main(report_fd, options);
  if (init < 0) {
    report(report_fd, "err " + std::to_string(static_cast<int>(Status::Code::kIoError)) +
                          " clone(CLONE_NEWPID | CLONE_NEWNS): " + std::strerror(errno));
    ::_exit(1);
  }
  report(report_fd, "init " + std::to_string(init));
  ::_exit(0);
}

// Reads the reports until the init closes its end, or until `limit` (zero: none) has passed:
// then Status::IoError, with what arrived so far in *partial.
Result<std::string> read_reports(int fd, std::chrono::milliseconds limit, std::string* partial) {
  std::string& all = *partial;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (limit.count() > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      int r = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return PosixError("poll restore report", errno);
      if (r == 0) {
        return Status::IoError(fmt::format("the namespaced restore reported nothing within {} s",
                                           limit.count() / 1000));
      }
    }
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("read restore report", errno);
    if (n == 0) return all;
    all.append(buf, static_cast<size_t>(n));
    if (all.size() > (1u << 20)) return Status::IoError("restore report too long");
  }
}

bool parse_int(std::string_view s, long* v) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size();
}

// Folds the reports into `out`; the first error wins.
Status parse_reports(std::string_view text, NamespaceRestore* out) {
  bool restored = false;
  while (!text.empty()) {
    std::string_view line = text.substr(0, text.find('\n'));
    text.remove_prefix(std::min(text.size(), line.size() + 1));
    long v = 0;
    if (line.rfind("init ", 0) == 0 && parse_int(line.substr(5), &v)) out->init_pid = v;
    if (line.rfind("ok ", 0) == 0 && parse_int(line.substr(3), &v)) {
      out->ns_root_pid = static_cast<pid_t>(v);
      restored = true;
    }
    if (line.rfind("err ", 0) == 0) {
      std::string_view rest = line.substr(4);
      size_t sp = rest.find(' ');
      long code = 0;
      (void)parse_int(rest.substr(0, sp), &code);
      return status_from(static_cast<int>(code),
                         std::string(sp == std::string_view::npos ? "" : rest.substr(sp + 1)));
    }
  }
  if (!restored || out->init_pid <= 0) {
    return Status::IoError("the restore's namespace init died without a report");
  }
  return Status::Ok();
}

// The last number of the "NSpid:" line of a /proc/<pid>/status text; 0 when absent.
pid_t innermost_pid(std::string_view status) {
  size_t at = status.find("\nNSpid:");
  if (at == std::string_view::npos) return 0;
  std::string_view line = status.substr(at + 7);
  line = line.substr(0, line.find('\n'));
  size_t last = line.find_last_of(" \t");
  long v = 0;
  return parse_int(line.substr(last + 1), &v) ? static_cast<pid_t>(v) : 0;
}

}  // namespace

Result<pid_t> global_pid_in_namespace(pid_t init_pid, pid_t ns_pid) {
  struct stat ns {};
  std::string init_ns = "/proc/" + std::to_string(init_pid) + "/ns/pid";
  if (::stat(init_ns.c_str(), &ns) != 0) return PosixError("stat " + init_ns, errno);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string dir = e.path().string();
    struct stat st {};
    if (::stat((dir + "/ns/pid").c_str(), &st) != 0 || st.st_ino != ns.st_ino ||
        st.st_dev != ns.st_dev) {
      continue;
    }
    auto status = read_file(dir + "/status");
    if (status.ok() && innermost_pid(*status) == ns_pid) {
      return static_cast<pid_t>(std::stol(e.path().filename().string()));
    }
  }
  return Status::NotFound("no process with PID " + std::to_string(ns_pid) +
                          " in the namespace of " + std::to_string(init_pid));
}

Result<NamespaceRestore> restore_in_new_pid_namespace(const criu::RestoreOptions& options) {
  if (options.as_child) return Status::InvalidArgument("a namespaced restore cannot be as_child");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return PosixError("pipe2", errno);
  ScopedFd read_end(fds[0]), write_end(fds[1]);
  RELIVE_ASSIGN_OR_RETURN(Subprocess launcher, Subprocess::fork_call([&]() -> int {
                            read_end.reset();
                            launcher_main(write_end.get(), options);
                          }));
  write_end.reset();
  // CRIU is killed after its own timeout; past that and a margin, something between fork and
  // exec is stuck (or the init is): give up on it rather than hold the caller for ever.
  std::chrono::milliseconds limit{0};
  if (options.run.timeout.count() > 0) limit = options.run.timeout + std::chrono::seconds(30);
  std::string partial;
  Result<std::string> reports = read_reports(read_end.get(), limit, &partial);
  if (!reports.ok()) {
    NamespaceRestore seen;
    (void)parse_reports(partial, &seen);
    if (seen.init_pid > 0) ::kill(seen.init_pid, SIGKILL);  // and with it the namespace
    return reports.status();  // `launcher` is killed and reaped as it goes
  }
  (void)launcher.wait();  // it exits right after cloning the init
  NamespaceRestore out;
  RELIVE_RETURN_IF_ERROR(parse_reports(*reports, &out));
  auto root = global_pid_in_namespace(out.init_pid, out.ns_root_pid);
  if (!root.ok()) {
    ::kill(out.init_pid, SIGKILL);  // a tree we cannot name is a tree nobody can manage
    return root.status();
  }
  out.root_pid = *root;
  return out;
}

}  // namespace relive::container
