#include "test_util.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace relive::testing {
namespace {

// A test binary inherits descriptors from whatever runs it (CTest keeps its LastTest.log open
// on fd 3). Programs the tests start must not: CRIU would checkpoint that ever-growing file
// with its size and refuse to restore it once it grew ("File ... has bad size"). Every test
// binary links this file, so this runs before main() in each.
struct CloseInheritedOnExec {
  CloseInheritedOnExec() { ::close_range(3, ~0u, CLOSE_RANGE_CLOEXEC); }
} close_inherited_on_exec;

}  // namespace

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_all_to(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/relive-test-XXXXXX";
  path_ = ::mkdtemp(tmpl);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

RunResult run(const std::vector<std::string>& argv, int timeout_s, const std::string& stdin_path) {
  TempDir io;
  std::string out_path = io / "out", err_path = io / "err";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    int in = ::open(stdin_path.c_str(), O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0), ::dup2(out, 1), ::dup2(err, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  RunResult r;
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.err = "timed out after " + std::to_string(timeout_s) + " s\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_all(out_path);
  r.err += read_all(err_path);
  return r;
}

int sh(const std::string& script) { return run({"/bin/sh", "-c", script}).exit_code; }

std::string relive_bin() {
  const char* d = std::getenv("RELIVE_BIN");
  return std::string(d ? d : RELIVE_BUILD_DIR "/bin") + "/relive";
}

std::string test_bin_dir() {
  const char* d = std::getenv("RELIVE_TEST_BIN");
  return d ? d : RELIVE_BUILD_DIR "/tests";
}

std::string test_guest_dir() {
  static const std::string dir = [] {
    const char* d = std::getenv("RELIVE_GUEST_DIR");
    std::string out = d ? d : RELIVE_BUILD_DIR "/guest";
    RunResult r = run({RELIVE_SOURCE_DIR "/scripts/build-guest.sh", out}, 300);
    if (r.exit_code != 0) {
      std::fprintf(stderr, "build-guest.sh failed: %s\n", r.err.c_str());
      return std::string();
    }
    return out;
  }();
  return dir;
}

std::vector<std::string> test_guest_argv(const std::string& guest_dir,
                                         const std::string& qmp_socket,
                                         const std::string& kernel_args) {
  return {"qemu-system-x86_64",
          "-accel",
          "tcg",
          "-m",
          "256",
          "-nodefaults",
          "-no-user-config",
          "-display",
          "none",
          "-kernel",
          guest_dir + "/vmlinux",
          "-initrd",
          guest_dir + "/initramfs.cpio.gz",
          "-append",
          "console=ttyS0 quiet " + kernel_args,
          "-serial",
          "file:serial.log",
          "-qmp",
          "unix:" + qmp_socket + ",server=on,wait=off"};
}

}  // namespace relive::testing
