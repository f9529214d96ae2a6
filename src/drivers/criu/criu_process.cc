#include "drivers/criu/criu_process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "common/file_util.h"
#include "drivers/criu/criu_binary.h"

namespace relive::criu {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void exec_child(const std::vector<std::string>& argv, int status_w,
                             const std::string& output, bool hw_breakpoints,
                             const std::vector<std::string>& env) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
  int null = ::open("/dev/null", O_RDONLY);
  int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (null < 0 || out < 0) ::_exit(127);
  ::dup2(null, 0), ::dup2(out, 1), ::dup2(out, 2);
  ::dup2(status_w, 3);  // the status fd CRIU is told about
  ::close_range(4, ~0u, 0);
  ::setsid();
  if (!hw_breakpoints) ::setenv("CRIU_FAULT", "130", 1);
  for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));  // lives until exec
  std::vector<char*> c;
  for (const auto& a : argv) c.push_back(const_cast<char*>(a.c_str()));
  c.push_back(nullptr);
  ::execv(c[0], c.data());
  ::_exit(127);
}

Result<std::string> binary(const CriuRunOptions& run) {
  if (!run.criu.empty()) return run.criu;
  return find_criu();
}

}  // namespace

Result<CriuProcess> CriuProcess::start(std::vector<std::string> argv, const CriuRunOptions& run,
                                       const std::string& output_file, const std::string& log,
                                       const std::string& what, const std::vector<std::string>& env,
                                       bool append_status_fd) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return PosixError("pipe", errno);
  ScopedFd r(p[0]), w(p[1]);
  if (append_status_fd) argv.insert(argv.end(), {"--status-fd", "3"});
  pid_t pid = ::fork();
  if (pid < 0) return PosixError("fork", errno);
  if (pid == 0) exec_child(argv, w.get(), output_file, run.hw_breakpoints, env);
  return CriuProcess(pid, std::move(r), log, what);
}

CriuProcess::CriuProcess(CriuProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      status_(std::move(o.status_)),
      log_(std::move(o.log_)),
      what_(std::move(o.what_)) {}

CriuProcess::~CriuProcess() { kill(); }

void CriuProcess::kill() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);  // its own session: helpers it forked go too
  ::kill(pid_, SIGKILL);
  int st;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

Status CriuProcess::failure(int wait_status) const {
  std::string how = WIFEXITED(wait_status)
                        ? fmt::format("exit status {}", WEXITSTATUS(wait_status))
                        : fmt::format("killed by signal {}", WTERMSIG(wait_status));
  auto log_text = read_file(log_);
  return Status::IoError(fmt::format("{} failed ({}): {} [log: {}]", what_, how,
                                     summarize_criu_errors(log_text.ok() ? *log_text : "", ""),
                                     log_));
}

Status CriuProcess::wait_ready(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return Status::Aborted(what_ + " is not running");
  pollfd pfd{status_.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (n < 0 && errno == EINTR);
  if (n == 0)
    return Status::IoError(what_ + ": not ready after " + std::to_string(timeout.count()) + " ms");
  char c;
  ssize_t got = ::read(status_.get(), &c, 1);
  if (got == 1) return Status::Ok();
  // EOF without the byte: CRIU exited (or closed it) before becoming ready.
  int st = 0;
  if (::waitpid(pid_, &st, 0) == pid_) {
    pid_ = -1;
    return failure(st);
  }
  return Status::IoError(what_ + " closed its status fd without becoming ready");
}

Status CriuProcess::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return Status::Aborted(what_ + " is not running");
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t got = ::waitpid(pid_, &st, WNOHANG);
    if (got == pid_) {
      pid_ = -1;
      if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return Status::Ok();
      return failure(st);
    }
    if (Clock::now() > deadline) {
      kill();
      return Status::IoError(what_ + " did not finish in time and was killed [log: " + log_ + "]");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Result<CriuProcess> start_lazy_dump(const LazyDumpOptions& o) {
  RELIVE_ASSIGN_OR_RETURN(std::string criu, binary(o.dump.run));
  std::vector<std::string> argv = dump_argv(criu, o.dump);
  argv.insert(argv.end(),
              {"--lazy-pages", "--address", o.address, "--port", std::to_string(o.port)});
  argv.insert(argv.end(), o.tls_args.begin(), o.tls_args.end());
  std::string log =
      o.dump.log_file.front() == '/' ? o.dump.log_file : o.dump.images_dir + "/" + o.dump.log_file;
  return CriuProcess::start(argv, o.dump.run, o.dump.images_dir + "/../lazy-dump.out", log,
                            "criu dump --lazy-pages");
}

Result<CriuProcess> start_lazy_pages(const LazyPagesOptions& o) {
  RELIVE_ASSIGN_OR_RETURN(std::string criu, binary(o.run));
  std::string log = o.images_dir + "/../lazy-pages.log";
  std::vector<std::string> argv = {criu, "lazy-pages", "-D", o.images_dir, "-o", log, "-v4"};
  if (o.port != 0) {
    argv.insert(argv.end(),
                {"--page-server", "--address", o.address, "--port", std::to_string(o.port)});
  }
  argv.insert(argv.end(), o.tls_args.begin(), o.tls_args.end());
  return CriuProcess::start(argv, o.run, o.images_dir + "/../lazy-pages.out", log,
                            "criu lazy-pages");
}

}  // namespace relive::criu
