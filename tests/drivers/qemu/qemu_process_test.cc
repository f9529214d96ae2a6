// QemuProcess: QEMU dies with its owner unless released.
#include "drivers/qemu/qemu_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "test_util.h"

namespace relive::qemu {
namespace {

QemuLaunch idle_qemu(const testing::TempDir& dir) {
  QemuLaunch l;
  l.argv = {"qemu-system-x86_64", "-accel", "tcg", "-S", "-nodefaults",
            "-display",           "none",   "-m",  "64"};
  l.log_file = dir / "qemu.log";
  return l;
}

bool gone(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    if (::kill(pid, 0) != 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(QemuProcess, DestructionKillsQemu) {
  testing::TempDir dir;
  pid_t pid;
  {
    Result<QemuProcess> p = QemuProcess::start(idle_qemu(dir));
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    pid = p->pid();
    EXPECT_TRUE(p->running());
  }
  EXPECT_TRUE(gone(pid));
}

TEST(QemuProcess, ReleasedQemuOutlivesItsOwner) {
  testing::TempDir dir;
  pid_t pid;
  {
    Result<QemuProcess> p = QemuProcess::start(idle_qemu(dir));
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    pid = p->pid();
    ASSERT_TRUE(p->release().ok());
    EXPECT_TRUE(p->release().ok());  // idempotent
  }
  EXPECT_EQ(::kill(pid, 0), 0);
  ::kill(pid, SIGKILL);
  EXPECT_TRUE(gone(pid));
}

TEST(QemuProcess, OwnerKilledOutrightTakesQemuWithIt) {
  testing::TempDir dir;
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t owner = ::fork();
  if (owner == 0) {
    Result<QemuProcess> p = QemuProcess::start(idle_qemu(dir));
    pid_t q = p.ok() ? p->pid() : -1;
    (void)!::write(report[1], &q, sizeof(q));
    ::pause();  // until SIGKILL: no destructor runs
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t q = -1;
  ASSERT_EQ(::read(report[0], &q, sizeof(q)), static_cast<ssize_t>(sizeof(q)));
  ::close(report[0]);
  ASSERT_GT(q, 0);
  EXPECT_EQ(::kill(q, 0), 0);
  ::kill(owner, SIGKILL);
  ::waitpid(owner, nullptr, 0);
  EXPECT_TRUE(gone(q));
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

TEST(QemuProcess, UnreleasedQemuTakesItsFilesWithIt) {
  testing::TempDir dir;
  QemuLaunch l = idle_qemu(dir);
  std::string image = dir / "disk.raw";
  ASSERT_EQ(testing::sh("truncate -s 1M " + image), 0);
  l.remove_unless_released = {image, dir / "never-existed"};
  {
    Result<QemuProcess> p = QemuProcess::start(l);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    EXPECT_TRUE(exists(image));
  }
  EXPECT_FALSE(exists(image));
}

TEST(QemuProcess, ReleasedQemuKeepsItsFiles) {
  testing::TempDir dir;
  QemuLaunch l = idle_qemu(dir);
  std::string image = dir / "disk.raw";
  ASSERT_EQ(testing::sh("truncate -s 1M " + image), 0);
  l.remove_unless_released = {image};
  pid_t pid;
  {
    Result<QemuProcess> p = QemuProcess::start(l);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    pid = p->pid();
    ASSERT_TRUE(p->release().ok());
  }
  ::kill(pid, SIGKILL);
  EXPECT_TRUE(gone(pid));
  EXPECT_TRUE(exists(image));
}

TEST(QemuProcess, NoticesQemuExitingByItself) {
  testing::TempDir dir;
  QemuLaunch l = idle_qemu(dir);
  l.argv.push_back("-no-such-option");
  Result<QemuProcess> p = QemuProcess::start(l);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  for (int i = 0; i < 500 && p->running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(p->running());
  EXPECT_FALSE(p->release().ok());
  EXPECT_NE(p->log_tail().find("no-such-option"), std::string::npos) << p->log_tail();
}

TEST(QemuProcess, MissingBinaryIsReportedInTheLog) {
  testing::TempDir dir;
  QemuLaunch l = idle_qemu(dir);
  l.argv[0] = "/nonexistent/qemu";
  Result<QemuProcess> p = QemuProcess::start(l);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  for (int i = 0; i < 500 && p->running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(p->running());
  EXPECT_NE(p->log_tail().find("cannot execute"), std::string::npos) << p->log_tail();
}

}  // namespace
}  // namespace relive::qemu
