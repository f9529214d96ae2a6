// CRIU commands that keep running while relive does other work: `criu dump --lazy-pages` (it
// serves the dumped memory to the destination after the images are written) and
// `criu lazy-pages` (the destination's daemon that fetches those pages while the restored tree
// already runs). Each reports readiness through --status-fd.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "common/subprocess.h"
#include "drivers/criu/criu.h"
#include "relive/result.h"

namespace relive::criu {

// A CRIU process started in the background. Move-only; the destructor kills and reaps it if it
// is still running.
class CriuProcess {
 public:
  // Starts argv (argv[0] the binary) with stdout/stderr to `output_file`, the platform's
  // environment (CRIU_FAULT, see criu.h) plus `env` ("NAME=value"), the status pipe on fd 3
  // and, when append_status_fd, "--status-fd 3" appended (a wrapper such as runc that takes it
  // before a positional argument gets it from the caller). `log` is CRIU's -o log, quoted in
  // errors. `ps_socket` >= 0: that socket becomes CRIU's fd 4, passed as --ps-socket 4.
  static Result<CriuProcess> start(std::vector<std::string> argv, const CriuRunOptions& run,
                                   const std::string& output_file, const std::string& log,
                                   const std::string& what,
                                   const std::vector<std::string>& env = {},
                                   bool append_status_fd = true, int ps_socket = -1);
  CriuProcess(CriuProcess&& o) noexcept = default;
  CriuProcess& operator=(CriuProcess&&) = delete;

  // Waits until CRIU says it is ready (its status fd), or fails with CRIU's error when it exits
  // first or `timeout` passes.
  Status wait_ready(std::chrono::milliseconds timeout);
  // Waits for CRIU to exit (at most `timeout`, then kills it): Ok when it exited with status 0.
  Status wait(std::chrono::milliseconds timeout);
  // SIGKILL and reap. Idempotent.
  void kill();
  pid_t pid() const { return child_.pid(); }

 private:
  CriuProcess(Subprocess child, ScopedFd status, std::string log, std::string what)
      : child_(std::move(child)),
        status_(std::move(status)),
        log_(std::move(log)),
        what_(std::move(what)) {}
  Status failure(const ExitStatus& status) const;

  Subprocess child_;  // killed (with its process group) and reaped when destroyed
  ScopedFd status_;
  std::string log_;
  std::string what_;
};

struct LazyDumpOptions {
  DumpOptions dump;                 // pid, images_dir, tcp_established, run ...
  std::string address = "0.0.0.0";  // where its page server listens
  uint16_t port = 0;
  std::vector<std::string> tls_args;  // --tls ... or empty
  // >= 0: serve on this connected socket (--ps-socket) instead of listening on address:port.
  int ps_socket = -1;
};
// `criu dump --lazy-pages`: ready once the images are written and the page server listens; it
// exits after the destination has fetched every page (or the page server was told to close:
// page_server.h), leaving the dumped tree as DumpOptions says (killed, or stopped).
Result<CriuProcess> start_lazy_dump(const LazyDumpOptions& options);

struct LazyPagesOptions {
  std::string images_dir;
  std::string address;  // the source's page server
  uint16_t port = 0;    // 0: no page server; the pages come from images_dir itself
  // >= 0: the page server is at the other end of this connected socket (LocalPageServer).
  int ps_socket = -1;
  std::vector<std::string> tls_args;
  CriuRunOptions run;
};
// `criu lazy-pages [--page-server]`: ready once it listens for the restore; exits when every
// page has been copied in (from the source's page server, or from the local images).
Result<CriuProcess> start_lazy_pages(const LazyPagesOptions& options);

}  // namespace relive::criu
