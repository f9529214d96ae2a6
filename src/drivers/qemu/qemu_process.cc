#include "drivers/qemu/qemu_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <utility>

namespace relive::qemu {
namespace {

constexpr int kControlFd = 3;  // in the guard: the read end of the owner's pipe
constexpr int kInfoFd = 4;     // in the guard: where it reports QEMU's pid
constexpr char kRelease = 'r';

// QEMU itself, in the guard's child. Only async-signal-safe calls from here on.
[[noreturn]] void exec_qemu(char* const* argv, const char* cwd, const char* log) {
  ::close(kControlFd);
  ::close(kInfoFd);
  int in = ::open("/dev/null", O_RDONLY);
  int out = ::open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (in >= 0) ::dup2(in, 0);
  if (out >= 0) ::dup2(out, 1), ::dup2(out, 2);
  if (cwd[0] != '\0' && ::chdir(cwd) != 0) {
    static const char kMsg[] = "relive: cannot enter QEMU's working directory\n";
    (void)!::write(2, kMsg, sizeof(kMsg) - 1);
    ::_exit(126);
  }
  ::execvp(argv[0], argv);
  static const char kMsg[] = "relive: cannot execute QEMU\n";
  (void)!::write(2, kMsg, sizeof(kMsg) - 1);
  ::_exit(127);
}

// After QEMU died unreleased: the launch's files go (async-signal-safe: unlink only).
[[noreturn]] void unreleased_exit(char* const* remove, int code) {
  for (char* const* f = remove; *f != nullptr; ++f) ::unlink(*f);
  ::_exit(code);
}

// The guard (a Subprocess::fork_call child): starts QEMU, then waits for the owner's release, the
// owner's end of file (kill QEMU), or QEMU's exit, whichever comes first.
[[noreturn]] void guard(int control, int info, char* const* argv, const char* cwd, const char* log,
                        char* const* remove) {
  ::setsid();  // a kill of the owner's process group must leave the guard to do its job
  int c = ::fcntl(control, F_DUPFD, 10), i = ::fcntl(info, F_DUPFD, 10);
  if (c < 0 || i < 0 || ::dup2(c, kControlFd) < 0 || ::dup2(i, kInfoFd) < 0) ::_exit(120);
  ::syscall(SYS_close_range, kInfoFd + 1, ~0U, 0);
  pid_t q = ::fork();
  if (q < 0) ::_exit(121);
  if (q == 0) exec_qemu(argv, cwd, log);
  if (::write(kInfoFd, &q, sizeof(q)) != sizeof(q)) {
    ::kill(q, SIGKILL);
    ::_exit(122);
  }
  ::close(kInfoFd);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, q, 0));
  for (;;) {
    pollfd p[2] = {{kControlFd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int r = ::poll(p, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 100);
    if (r < 0 && errno != EINTR) break;
    int st;
    if (::waitpid(q, &st, WNOHANG) == q)
      unreleased_exit(remove, WIFEXITED(st) ? WEXITSTATUS(st) : 128);
    if (r > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      char byte = 0;
      ssize_t n = ::read(kControlFd, &byte, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n == 1 && byte == kRelease) ::_exit(0);
      break;  // end of file: the owner is gone
    }
  }
  ::kill(q, SIGKILL);
  ::waitpid(q, nullptr, 0);
  unreleased_exit(remove, 0);
}

}  // namespace

Result<QemuProcess> QemuProcess::start(const QemuLaunch& launch) {
  if (launch.argv.empty()) return Status::InvalidArgument("QEMU command line is empty");
  std::vector<char*> argv;
  for (const std::string& a : launch.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> remove;
  for (const std::string& f : launch.remove_unless_released)
    remove.push_back(const_cast<char*>(f.c_str()));
  remove.push_back(nullptr);
  std::string log = launch.log_file.empty() ? "/dev/null" : launch.log_file;
  int control[2], info[2];
  if (::pipe2(control, O_CLOEXEC) != 0) return PosixError("pipe", errno);
  ScopedFd control_read(control[0]), control_write(control[1]);
  if (::pipe2(info, O_CLOEXEC) != 0) return PosixError("pipe", errno);
  ScopedFd info_read(info[0]), info_write(info[1]);
  RELIVE_ASSIGN_OR_RETURN(Subprocess g, Subprocess::fork_call([&]() -> int {
                            guard(control[0], info[1], argv.data(), launch.cwd.c_str(), log.c_str(),
                                  remove.data());
                          }));
  control_read.reset();
  info_write.reset();
  pid_t q = -1;
  ssize_t n;
  do {
    n = ::read(info_read.get(), &q, sizeof(q));
  } while (n < 0 && errno == EINTR);
  if (n != sizeof(q)) {
    (void)g.wait();
    return Status::IoError("the QEMU guard process failed to start QEMU");
  }
  return QemuProcess(std::move(g), q, std::move(control_write), launch.log_file);
}

QemuProcess::QemuProcess(QemuProcess&& o) noexcept
    : guard_(std::move(o.guard_)),
      qemu_pid_(std::exchange(o.qemu_pid_, -1)),
      control_(std::move(o.control_)),
      log_(std::move(o.log_)),
      released_(o.released_) {}

bool QemuProcess::running() const {
  if (qemu_pid_ <= 0) return false;
  if (released_) return ::kill(qemu_pid_, 0) == 0;
  // The guard outlives QEMU by exactly the time it takes to notice its exit.
  return guard_.running();
}

Status QemuProcess::release() {
  if (released_) return Status::Ok();
  if (!running()) return Status::IoError("QEMU exited before it could be released");
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &block, &old);
  ssize_t n = ::write(control_.get(), &kRelease, 1);
  int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (n != 1) return PosixError("releasing QEMU from its guard", err);
  Result<ExitStatus> st = guard_.wait();
  control_.reset();
  released_ = true;
  if (!st.ok() || !st->ok()) return Status::IoError("QEMU exited while it was being released");
  return Status::Ok();
}

void QemuProcess::kill() {
  if (released_ || !guard_.valid()) return;
  control_.reset();  // the guard kills QEMU and exits
  (void)guard_.wait();
}

std::string QemuProcess::log_tail() const {
  std::ifstream in(log_);
  std::string line, tail;
  std::vector<std::string> lines;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > 8) lines.erase(lines.begin());
  }
  for (const std::string& l : lines) tail += (tail.empty() ? "" : " | ") + l;
  return tail;
}

}  // namespace relive::qemu
