// Helpers for integration tests that drive the real relive binary and real programs.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace relive::testing {

struct RunResult {
  int exit_code = -1;  // 128+signal when killed
  std::string out;
  std::string err;
};

// Runs argv (no shell) with stdout/stderr captured; optional stdin file; kills it after
// `timeout_s` seconds.
RunResult run(const std::vector<std::string>& argv, int timeout_s = 120,
              const std::string& stdin_path = "/dev/null");
// Runs a /bin/sh -c snippet; returns its exit code.
int sh(const std::string& script);

// $RELIVE_BIN/relive (the build's binary).
std::string relive_bin();
std::string test_bin_dir();  // $RELIVE_TEST_BIN
// The test VM guest (scripts/build-guest.sh): vmlinux and initramfs.cpio.gz, built once under
// the build directory (or $RELIVE_GUEST_DIR); "" when it cannot be built (no bootstrap).
std::string test_guest_dir();
// QEMU (TCG, 256 MiB, nothing but what is asked) booting the test guest in `guest_dir` with
// `kernel_args` after "console=ttyS0 quiet", its serial port in serial.log of the working
// directory and its monitor on `qmp_socket`. Callers add disks and network.
std::vector<std::string> test_guest_argv(const std::string& guest_dir,
                                         const std::string& qmp_socket,
                                         const std::string& kernel_args);
// A fresh empty directory under /tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_all(const std::string& path);
void write_all_to(const std::string& path, const std::string& data);

// Polls `cond` every 20 ms until it holds (true) or `limit` has passed (false).
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace relive::testing
