// Test harness for container checkpoint/restore with real CRIU: running the ct_* subjects
// (tests/subjects/ct_common.h describes their protocol) and owning what a restore leaves.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "drivers/criu/criu_binary.h"
#include "relive/container.h"
#include "test_util.h"

namespace relive::ct {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline bool wait_until(const std::function<bool()>& cond, milliseconds limit) {
  auto deadline = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

// Skips the test when no CRIU is installed at all (any other CRIU problem is a failure).
#define RELIVE_REQUIRE_CRIU()                                                        \
  do {                                                                               \
    auto criu_ = ::relive::criu::find_criu();                                        \
    if (!criu_.ok() && criu_.status().code() == ::relive::Status::Code::kNotFound) { \
      GTEST_SKIP() << criu_.status().to_string();                                    \
    }                                                                                \
    ASSERT_TRUE(criu_.ok()) << criu_.status().to_string();                           \
    ASSERT_EQ(::geteuid(), 0u) << "CRIU needs root";                                 \
  } while (0)

// A ct_* subject started by the test. It is our child until CRIU kills it; whatever happens,
// the destructor kills its whole process group (the subject is a session leader and its
// children stay in its group) and reaps it.
class Subject {
 public:
  Subject(const std::string& name, const std::string& result_file,
          const std::vector<std::string>& args = {})
      : result_(result_file) {
    std::string path = testing::test_bin_dir() + "/subjects/" + name;
    std::vector<std::string> argv = {path, result_file};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> c;
      for (auto& a : argv) c.push_back(a.data());
      c.push_back(nullptr);
      ::execv(c[0], c.data());
      ::_exit(127);
    }
  }
  ~Subject() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    reap();
  }
  Subject(const Subject&) = delete;
  Subject& operator=(const Subject&) = delete;

  pid_t pid() const { return pid_; }
  std::string result() const { return testing::read_all(result_); }
  // Waits for the subject's result file to start with `prefix`.
  bool wait_for(const std::string& prefix, milliseconds limit = milliseconds(20000)) const {
    return wait_until([&] { return result().rfind(prefix, 0) == 0; }, limit);
  }
  bool ready() const { return wait_for("READY"); }
  // Reaps the subject after CRIU killed it, freeing its PID; returns its wait status.
  int reap() {
    int ws = 0;
    while (pid_ > 0 && ::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return ws;
  }

 private:
  std::string result_;
  pid_t pid_ = -1;
};

// A restored tree: killing its namespace's init ends every process in the namespace.
class RestoredTree {
 public:
  explicit RestoredTree(const ContainerRestoreResult& r) : r_(r) {}
  ~RestoredTree() {
    if (r_.init_pid > 0) ::kill(r_.init_pid, SIGKILL);
  }
  RestoredTree(const RestoredTree&) = delete;
  RestoredTree& operator=(const RestoredTree&) = delete;
  const ContainerRestoreResult& result() const { return r_; }

 private:
  ContainerRestoreResult r_;
};

inline ContainerCheckpointOptions checkpoint_options(pid_t pid, const std::string& archive) {
  ContainerCheckpointOptions o;
  o.pid = pid;
  o.archive = archive;
  o.criu_timeout = std::chrono::seconds(60);
  return o;
}

inline ContainerRestoreOptions restore_options(const std::string& archive) {
  ContainerRestoreOptions o;
  o.archive = archive;
  o.criu_timeout = std::chrono::seconds(60);
  return o;
}

inline bool exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// The state letter of /proc/<pid>/stat ('S', 'R', 'T' for stopped, ...); 0 if gone.
inline char process_state(pid_t pid) {
  std::string stat = testing::read_all("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? 0 : stat[close + 2];
}

}  // namespace relive::ct
