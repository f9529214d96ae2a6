#include "drivers/criu/kdat_cache.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "common/scoped_fd.h"

namespace relive::criu {
namespace {
constexpr const char* kCache = "/run/criu.kdat";
constexpr int kTimeoutMs = 30000;

// The child's part of kdat_in_private_run(); async-signal-safe calls only (the parent may have
// threads). Exits 0 once the cache is copied to `out`.
[[noreturn]] void kdat_child(char* const argv[], int out) {
  if (::unshare(CLONE_NEWNS) != 0) ::_exit(10);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(11);
  if (::mount("relive-kdat", "/run", "tmpfs", 0, nullptr) != 0) ::_exit(12);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // CRIU needs SIGCHLD
  pid_t check = ::fork();
  if (check == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // killed with us on a timeout
    int null = ::open("/dev/null", O_RDWR);
    if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(null, 1) < 0 || ::dup2(null, 2) < 0) ::_exit(13);
    ::execve(argv[0], argv, environ);
    ::_exit(127);
  }
  if (check < 0) ::_exit(14);
  int ws = 0;
  while (::waitpid(check, &ws, 0) < 0 && errno == EINTR) {
  }
  int in = ::open(kCache, O_RDONLY | O_CLOEXEC);  // whatever `criu check` said, as before
  if (in < 0) ::_exit(15);
  char buf[4096];
  for (ssize_t n; (n = ::read(in, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || ::write(out, buf, static_cast<size_t>(n)) != n) ::_exit(16);
  }
  ::_exit(0);
}

// `criu check` in a private mount namespace whose /run is a fresh tmpfs, and the cache it wrote
// there. Run by a child of our own, not a shell: nothing is parsed from `criu`.
Result<std::string> kdat_in_private_run(const std::string& criu) {
  ScopedFd out(::memfd_create("relive-kdat", MFD_CLOEXEC));
  if (!out.valid()) return PosixError("memfd_create", errno);
  std::string path = criu, check = "check";
  char* argv[] = {path.data(), check.data(), nullptr};
  pid_t pid = ::fork();
  if (pid < 0) return PosixError("fork", errno);
  if (pid == 0) kdat_child(argv, out.get());
  ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  pollfd p{.fd = pidfd.get(), .events = POLLIN, .revents = 0};
  int n = 1;
  if (pidfd.valid()) {
    while ((n = ::poll(&p, 1, kTimeoutMs)) < 0 && errno == EINTR) {
    }
  }
  if (n == 0) ::kill(pid, SIGKILL);
  int ws = 0;
  while (::waitpid(pid, &ws, 0) < 0) {
    if (errno != EINTR) return PosixError("waitpid", errno);
  }
  if (n == 0) return Status::IoError("criu check timed out");
  if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) return Status::IoError("no cache made");
  struct stat st {};
  if (::fstat(out.get(), &st) != 0) return PosixError("fstat", errno);
  std::string data(static_cast<size_t>(st.st_size), '\0');
  if (::pread(out.get(), data.data(), data.size(), 0) != static_cast<ssize_t>(data.size()))
    return PosixError("read cache", errno);
  return data;
}

}  // namespace

KdatCache KdatCache::prime(const std::string& criu) {
  struct statfs s {};
  if (::statfs("/run", &s) == 0 && s.f_type == TMPFS_MAGIC) {
    return KdatCache(false, "/run is a tmpfs: CRIU keeps its own cache");
  }
  std::string tmp = std::string(kCache) + ".relive";
  Result<std::string> r = kdat_in_private_run(criu);
  if (!r.ok() || r->empty()) {
    return KdatCache(false, "could not make CRIU's kernel-feature cache");
  }
  FILE* f = ::fopen(tmp.c_str(), "we");
  bool written = f != nullptr && ::fwrite(r->data(), 1, r->size(), f) == r->size();
  if (f != nullptr) written = (::fclose(f) == 0) && written;
  if (!written || ::rename(tmp.c_str(), kCache) != 0) {
    ::unlink(tmp.c_str());
    return KdatCache(false, "could not install CRIU's kernel-feature cache");
  }
  return KdatCache(true, "installed CRIU's kernel-feature cache in /run (not a tmpfs here)");
}

KdatCache::~KdatCache() {
  if (installed_) ::unlink(kCache);
}

}  // namespace relive::criu
