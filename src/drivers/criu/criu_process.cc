#include "drivers/criu/criu_process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <optional>

#include "common/file_util.h"
#include "common/subprocess.h"
#include "drivers/criu/criu_binary.h"

namespace relive::criu {
namespace {

Result<std::string> binary(const CriuRunOptions& run) {
  if (!run.criu.empty()) return run.criu;
  return find_criu();
}

}  // namespace

Result<CriuProcess> CriuProcess::start(std::vector<std::string> argv, const CriuRunOptions& run,
                                       const std::string& output_file, const std::string& log,
                                       const std::string& what, const std::vector<std::string>& env,
                                       bool append_status_fd, int ps_socket) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return PosixError("pipe", errno);
  ScopedFd r(p[0]), w(p[1]);
  if (append_status_fd) argv.insert(argv.end(), {"--status-fd", "3"});
  if (ps_socket >= 0) argv.insert(argv.end(), {"--ps-socket", "4"});
  RELIVE_ASSIGN_OR_RETURN(ScopedFd out, open_output_file(output_file));
  SpawnOptions o;
  if (!run.hw_breakpoints) o.env.emplace_back("CRIU_FAULT=130");
  o.env.insert(o.env.end(), env.begin(), env.end());
  o.output_fd = out.get();
  o.fds = {{w.get(), 3}};  // the status fd CRIU is told about
  if (ps_socket >= 0) o.fds.emplace_back(ps_socket, 4);
  o.new_session = true;  // killed with the helpers it forks
  RELIVE_ASSIGN_OR_RETURN(Subprocess child, Subprocess::spawn(argv, o));
  return CriuProcess(std::move(child), std::move(r), log, what);
}

void CriuProcess::kill() { child_.kill(); }

Status CriuProcess::failure(const ExitStatus& status) const {
  std::string how = status.describe();
  auto log_text = read_file(log_);
  return Status::IoError(fmt::format("{} failed ({}): {} [log: {}]", what_, how,
                                     summarize_criu_errors(log_text.ok() ? *log_text : "", ""),
                                     log_));
}

Status CriuProcess::wait_ready(std::chrono::milliseconds timeout) {
  if (!child_.valid()) return Status::Aborted(what_ + " is not running");
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
  Result<ExitStatus> st = child_.wait();
  if (st.ok()) return failure(*st);
  return Status::IoError(what_ + " closed its status fd without becoming ready");
}

Status CriuProcess::wait(std::chrono::milliseconds timeout) {
  if (!child_.valid()) return Status::Aborted(what_ + " is not running");
  std::optional<ExitStatus> st = child_.try_wait(timeout);
  if (!st) {
    kill();
    return Status::IoError(what_ + " did not finish in time and was killed [log: " + log_ + "]");
  }
  return st->ok() ? Status::Ok() : failure(*st);
}

Result<CriuProcess> start_lazy_dump(const LazyDumpOptions& o) {
  RELIVE_ASSIGN_OR_RETURN(std::string criu, binary(o.dump.run));
  std::vector<std::string> argv = dump_argv(criu, o.dump);
  argv.push_back("--lazy-pages");
  if (o.ps_socket < 0)
    argv.insert(argv.end(), {"--address", o.address, "--port", std::to_string(o.port)});
  argv.insert(argv.end(), o.tls_args.begin(), o.tls_args.end());
  std::string log =
      o.dump.log_file.front() == '/' ? o.dump.log_file : o.dump.images_dir + "/" + o.dump.log_file;
  return CriuProcess::start(argv, o.dump.run, o.dump.images_dir + "/../lazy-dump.out", log,
                            "criu dump --lazy-pages", {}, true, o.ps_socket);
}

Result<CriuProcess> start_lazy_pages(const LazyPagesOptions& o) {
  RELIVE_ASSIGN_OR_RETURN(std::string criu, binary(o.run));
  std::string log = o.images_dir + "/../lazy-pages.log";
  std::vector<std::string> argv = {criu, "lazy-pages", "-D", o.images_dir, "-o", log, "-v4"};
  if (o.ps_socket >= 0) {
    argv.push_back("--page-server");
  } else if (o.port != 0) {
    argv.insert(argv.end(),
                {"--page-server", "--address", o.address, "--port", std::to_string(o.port)});
  }
  argv.insert(argv.end(), o.tls_args.begin(), o.tls_args.end());
  return CriuProcess::start(argv, o.run, o.images_dir + "/../lazy-pages.out", log,
                            "criu lazy-pages", {}, true, o.ps_socket);
}

}  // namespace relive::criu
