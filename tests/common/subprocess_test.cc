#include "common/subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "common/file_util.h"
#include "common/private_tmpfs.h"
#include "test_util.h"

namespace relive {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// True once `pid` no longer exists (reaped, not a zombie), within a generous deadline.
bool vanishes(pid_t pid) {
  for (auto end = std::chrono::steady_clock::now() + seconds(20);
       std::chrono::steady_clock::now() < end;) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return false;
}

TEST(Subprocess, RunReportsExitCodeAndOutput) {
  auto r = run({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->term_signal, 0);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->output, "out\nerr\n");
  EXPECT_EQ(r->describe(), "exit status 3");
}

TEST(Subprocess, RunCheckedNamesTheCommandAndItsOutput) {
  EXPECT_TRUE(run_checked({"/bin/true"}).ok());
  Status s = run_checked({"/bin/sh", "-c", "echo nope >&2; exit 2"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "/bin/sh -c echo nope >&2; exit 2: exit status 2: nope");
}

TEST(Subprocess, RunSucceeds) {
  auto r = run({"true"});  // found on PATH
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->ok());
}

TEST(Subprocess, RunReportsTheKillingSignal) {
  auto r = run({"/bin/sh", "-c", "kill -SEGV $$"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->term_signal, SIGSEGV);
  EXPECT_EQ(r->describe(), "killed by signal 11");
}

TEST(Subprocess, TimeoutKillsAndReapsTheTree) {
  std::string dir = "/tmp/relive-subprocess-test-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  // The child leaves a grandchild behind that holds the output open; both must go.
  auto r = run({"/bin/sh", "-c", "sleep 600 & echo $! > " + dir + "/grandchild; exec sleep 600"},
               {.timeout = milliseconds(300)});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->ok());
  auto text = read_file(dir + "/grandchild");
  ASSERT_TRUE(text.ok());
  pid_t grandchild = std::atoi(text->c_str());
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(vanishes(grandchild));
  std::filesystem::remove_all(dir);
}

TEST(Subprocess, MissingProgramIsAnError) {
  auto r = run({"/nonexistent/relive-no-such-program"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("relive-no-such-program"), std::string::npos);
  EXPECT_FALSE(run({"relive-no-such-program-on-path"}).ok());
  EXPECT_FALSE(run({}).ok());
}

TEST(Subprocess, BadWorkingDirectoryIsAnError) {
  auto r = run({"/bin/true"}, {.cwd = "/nonexistent-relive-dir"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("working directory"), std::string::npos);
}

TEST(Subprocess, MissingNetworkNamespaceIsNotFound) {
  auto r = run({"/bin/true"}, {.netns = "relive-no-such-netns"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_FALSE(run({"/bin/true"}, {.netns = "a/b"}).ok());
}

TEST(Subprocess, RunsInsideTheNamedNetworkNamespace) {
  std::string ns = "relive-subprocess-" + std::to_string(::getpid());
  auto added = run({"/usr/sbin/ip", "netns", "add", ns});
  ASSERT_TRUE(added.ok() && added->ok()) << (added.ok() ? added->output : "");
  auto inside = run({"/bin/readlink", "/proc/self/ns/net"}, {.netns = ns});
  auto outside = run({"/bin/readlink", "/proc/self/ns/net"});
  auto expected = run({"/usr/bin/stat", "-L", "-c", "net:[%i]", "/run/netns/" + ns});
  (void)run({"/usr/sbin/ip", "netns", "del", ns});
  ASSERT_TRUE(inside.ok() && outside.ok() && expected.ok());
  EXPECT_TRUE(inside->ok()) << inside->output;
  EXPECT_EQ(inside->output, expected->output);
  EXPECT_NE(inside->output, outside->output);
}

TEST(Subprocess, EnvironmentAndWorkingDirectory) {
  auto r = run({"/bin/sh", "-c", "echo $RELIVE_TEST_VAR; pwd"},
               {.env = {"RELIVE_TEST_VAR=hello"}, .cwd = "/tmp"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->output, "hello\n/tmp\n");
}

TEST(Subprocess, ArgumentsNeverSeeAShell) {
  auto r = run({"/bin/echo", "a;b $(id)"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->output, "a;b $(id)\n");
}

TEST(Subprocess, StdinIsDevNull) {
  auto r = run({"/bin/cat"}, {.timeout = seconds(60)});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok()) << r->describe();
  EXPECT_EQ(r->output, "");
}

TEST(Subprocess, DiscardedOutputGoesToDevNull) {
  for (const char* fd : {"/proc/self/fd/1", "/proc/self/fd/2"}) {
    auto r = run({"/usr/bin/test", "-c", fd}, {.discard_output = true});  // a character device
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_TRUE(r->ok()) << fd << ": " << r->describe();
    EXPECT_EQ(r->output, "");
    // Without it, the program writes into our memfd (a regular file).
    auto shown = run({"/usr/bin/test", "-c", fd});
    ASSERT_TRUE(shown.ok());
    EXPECT_FALSE(shown->ok()) << fd;
  }
}

TEST(Subprocess, ChildGetsNoStrayFdsAndDefaultSignals) {
  int stray = ::fcntl(0, F_DUPFD, 77);  // not close-on-exec: must still not reach the child
  ASSERT_GE(stray, 77);
  ::signal(SIGPIPE, SIG_IGN);
  auto r = run({"/bin/sh", "-c", "ls /proc/self/fd; grep SigIgn /proc/self/status"});
  ::signal(SIGPIPE, SIG_DFL);
  ::close(stray);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output.find(std::to_string(stray) + "\n"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("SigIgn:\t0000000000000000"), std::string::npos) << r->output;
}

TEST(Subprocess, ExtraFdReachesTheChild) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  SpawnOptions o;
  o.fds = {{p[1], 5}};
  auto child = Subprocess::spawn({"/bin/sh", "-c", "echo hi >&5"}, o);
  ASSERT_TRUE(child.ok()) << child.status().to_string();
  ::close(p[1]);
  char buf[8] = {};
  EXPECT_EQ(::read(p[0], buf, sizeof buf), 3);
  EXPECT_STREQ(buf, "hi\n");
  ::close(p[0]);
  auto st = child->wait();
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->ok());
}

TEST(Subprocess, DestructorKillsAndReaps) {
  pid_t pid = -1;
  {
    auto child = Subprocess::spawn({"/bin/sleep", "600"});
    ASSERT_TRUE(child.ok()) << child.status().to_string();
    pid = child->pid();
    EXPECT_TRUE(child->running());
  }
  EXPECT_TRUE(vanishes(pid));  // neither running nor a zombie
}

TEST(Subprocess, MoveTransfersOwnership) {
  auto child = Subprocess::spawn({"/bin/sleep", "600"});
  ASSERT_TRUE(child.ok());
  pid_t pid = child->pid();
  Subprocess moved = std::move(*child);
  EXPECT_FALSE(child->valid());
  EXPECT_EQ(moved.pid(), pid);
  EXPECT_TRUE(moved.running());
  moved.kill();
  EXPECT_FALSE(moved.valid());
  EXPECT_TRUE(vanishes(pid));
}

TEST(Subprocess, WaitAndTryWait) {
  auto child = Subprocess::spawn({"/bin/sh", "-c", "exit 7"});
  ASSERT_TRUE(child.ok());
  std::optional<ExitStatus> st;
  for (auto end = std::chrono::steady_clock::now() + seconds(20);
       !st && std::chrono::steady_clock::now() < end;) {
    st = child->try_wait();
    if (!st) std::this_thread::sleep_for(milliseconds(2));
  }
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->exit_code, 7);
  EXPECT_FALSE(child->valid());
  EXPECT_FALSE(child->wait().ok());  // nothing left to wait for
}

TEST(Subprocess, TryWaitWithinLeavesARunningChildRunning) {
  auto child = Subprocess::spawn({"/bin/sleep", "600"});
  ASSERT_TRUE(child.ok());
  EXPECT_FALSE(child->try_wait(milliseconds(50)).has_value());
  EXPECT_TRUE(child->running());
  child->signal(SIGKILL);
  auto st = child->try_wait(milliseconds(60000));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->term_signal, SIGKILL);
}

TEST(Subprocess, SignalEndsIt) {
  auto child = Subprocess::spawn({"/bin/sleep", "600"});
  ASSERT_TRUE(child.ok());
  child->signal(SIGTERM);
  auto st = child->wait();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->term_signal, SIGTERM);
}

TEST(Subprocess, ReleasedChildIsLeftRunning) {
  auto child = Subprocess::spawn({"/bin/sleep", "600"});
  ASSERT_TRUE(child.ok());
  pid_t pid = child->release();
  EXPECT_FALSE(child->valid());
  *child = Subprocess();  // would kill it if it were still owned
  EXPECT_EQ(::kill(pid, 0), 0);
  ::kill(pid, SIGKILL);
  int ws;
  EXPECT_EQ(::waitpid(pid, &ws, 0), pid);
}

TEST(Subprocess, KeptFdsAreInherited) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  int kept = ::fcntl(p[1], F_DUPFD, 60);
  ::close(p[1]);
  auto r = run({"/bin/bash", "-c", "echo kept >&" + std::to_string(kept)}, {.keep_fds = {kept}});
  ::close(kept);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok()) << r->output;
  char buf[16] = {};
  EXPECT_EQ(::read(p[0], buf, sizeof buf), 5);
  EXPECT_STREQ(buf, "kept\n");
  ::close(p[0]);
}

TEST(Subprocess, ForkCallRunsAFunctionAndReportsItsCode) {
  auto child = Subprocess::fork_call([] { return 9; });
  ASSERT_TRUE(child.ok()) << child.status().to_string();
  auto st = child->wait();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->exit_code, 9);
  auto throwing = Subprocess::fork_call([]() -> int { throw std::runtime_error("x"); });
  ASSERT_TRUE(throwing.ok());
  EXPECT_EQ(throwing->wait()->exit_code, 70);
}

TEST(Subprocess, PreExecHookFailureIsReported) {
  SpawnOptions o;
  o.pre_exec = [](const void*) { return EPERM; };
  auto child = Subprocess::spawn({"/bin/true"}, o);
  ASSERT_FALSE(child.ok());
  EXPECT_NE(child.status().message().find("pre-exec"), std::string::npos);
}

// The child sees the tmpfs at the path, in a mount namespace of its own: what it writes there
// is read back through the PrivateTmpfs after it has gone, and never reaches the caller's
// directory or mount table.
TEST(Subprocess, PrivateTmpfsMountedOnlyForTheChild) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount namespace)";
  relive::testing::TempDir dir;
  Result<PrivateTmpfs> tmpfs = PrivateTmpfs::create("relive-subprocess-test");
  ASSERT_TRUE(tmpfs.ok()) << tmpfs.status().to_string();
  RunOptions o;
  o.mounts = {{tmpfs->fd(), dir.path()}};
  // "$1" is the directory, an argument: the script is a constant.
  auto r = run(
      {"/bin/sh", "-c", "echo made-inside > \"$1\"/file && stat -f -c %T \"$1\"", "sh", dir.path()},
      o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->ok()) << r->output;
  EXPECT_EQ(r->output, "tmpfs\n");
  Result<std::string> made = tmpfs->read("file");
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  EXPECT_EQ(*made, "made-inside\n");
  EXPECT_NE(::access((dir / "file").c_str(), F_OK), 0) << "the tmpfs reached the caller";
  Result<std::string> mounts = read_file("/proc/self/mountinfo");
  ASSERT_TRUE(mounts.ok());
  EXPECT_EQ(mounts->find("relive-subprocess-test"), std::string::npos) << *mounts;
  EXPECT_EQ(tmpfs->read("missing").status().code(), Status::Code::kNotFound);
}

TEST(Subprocess, MountOnAMissingPathIsAnError) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount namespace)";
  Result<PrivateTmpfs> tmpfs = PrivateTmpfs::create("relive-subprocess-test");
  ASSERT_TRUE(tmpfs.ok()) << tmpfs.status().to_string();
  SpawnOptions o;
  o.mounts = {{tmpfs->fd(), "/nonexistent-relive-mount-point"}};
  auto child = Subprocess::spawn({"/bin/true"}, o);
  ASSERT_FALSE(child.ok());
  EXPECT_NE(child.status().message().find("mounting its private file systems"), std::string::npos)
      << child.status().to_string();
  EXPECT_FALSE(Subprocess::spawn({"/bin/true"}, {.mounts = {{-1, "/tmp"}}}).ok());
}

}  // namespace
}  // namespace relive
