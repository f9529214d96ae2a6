// DirtyTracker against real processes (tests/subjects/dirty_writer.c): exactness of collect(),
// multi-threaded targets, mappings outside tracking, disarm, stopped and traced targets.
#include "dirty/dirty_tracker.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/ptrace.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include "common/file_util.h"
#include "common/process_tree.h"
#include "dirty/page_reader.h"
#include "dirty/subject_process.h"
#include "netns_hosts.h"

namespace relive::dirty {
namespace {

using testing::SubjectProcess;

using Buffer = testing::WriterBuffer;

std::string write_cmd(const std::set<uint64_t>& pages) {
  std::string cmd = "w";
  for (uint64_t p : pages) cmd += " " + std::to_string(p);
  return cmd;
}

std::set<uint64_t> page_set(const std::vector<PageRange>& ranges) {
  std::set<uint64_t> out;
  for (const PageRange& r : ranges)
    for (uint64_t i = 0; i < r.pages; ++i) out.insert(r.start + i * kPageSize);
  return out;
}

// The pages of `dirty` inside the buffer, as buffer page indexes.
std::set<uint64_t> in_buffer(const std::vector<PageRange>& dirty, const Buffer& b) {
  std::set<uint64_t> out;
  for (uint64_t a : page_set(dirty))
    if (a >= b.addr && a < b.addr + b.pages * kPageSize) out.insert((a - b.addr) / kPageSize);
  return out;
}

bool covered(const std::vector<PageRange>& ranges, uint64_t addr) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [&](const PageRange& r) { return addr >= r.start && addr < r.end(); });
}

std::vector<std::string> uffd_fds(pid_t pid) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec))
    if (std::filesystem::read_symlink(e.path(), ec).string().find("userfaultfd") !=
        std::string::npos)
      out.push_back(e.path().filename().string());
  return out;
}

char state_of(pid_t pid) {
  auto stat = read_file(fmt::format("/proc/{}/stat", pid));
  if (!stat.ok()) return '?';
  return (*stat)[stat->rfind(')') + 2];
}

std::string tracer_of(pid_t pid) {
  auto status = read_file(fmt::format("/proc/{}/status", pid));
  size_t at = status.ok() ? status->find("TracerPid:\t") : std::string::npos;
  return at == std::string::npos ? "?" : status->substr(at + 11, status->find('\n', at) - at - 11);
}

// Writes `pages` and checks the next collect() holds exactly them within the buffer; returns
// the number of dirty pages reported outside it (false positives: stdio buffers, stack...).
size_t expect_exact_round(DirtyTracker& t, SubjectProcess& s, const Buffer& b,
                          const std::set<uint64_t>& pages) {
  EXPECT_EQ(s.cmd(write_cmd(pages)), "ok");
  auto dirty = t.collect();
  EXPECT_TRUE(dirty.ok()) << dirty.status().to_string();
  if (!dirty.ok()) return 0;
  EXPECT_EQ(in_buffer(*dirty, b), pages);
  return page_set(*dirty).size() - in_buffer(*dirty, b).size();
}

TEST(DirtyTracker, CollectReturnsExactlyTheWrittenPages) {
  SubjectProcess s("dirty_writer", {"16"});
  Buffer b = testing::writer_buffer(s);
  ASSERT_EQ(b.pages, 4096u);
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(tracer_of(s.pid()), "0") << "armed, the process runs untraced";
  EXPECT_TRUE(covered(t->tracked(), b.addr));
  EXPECT_TRUE(covered(t->tracked(), b.addr + (b.pages - 1) * kPageSize));
  auto first = t->collect();
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_TRUE(in_buffer(*first, b).empty());
  std::set<uint64_t> pages{0, 1, 17, 100, 4095};
  for (uint64_t p = 200; p < 264; ++p) pages.insert(p);
  size_t fp = expect_exact_round(*t, s, b, pages);
  std::printf("false positives outside the buffer: %zu pages\n", fp);
  EXPECT_LT(fp, 32u);
}

TEST(DirtyTracker, SecondCollectWithoutWritesIsEmpty) {
  SubjectProcess s("dirty_writer", {"4"});
  Buffer b = testing::writer_buffer(s);
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  expect_exact_round(*t, s, b, {3, 4, 5});
  // The subject answers before it is back waiting for the next command, and what it writes on
  // its way there (its stack, stdio) may come after that collect: once it sleeps in its read,
  // one collect takes those, and the next must find nothing.
  ASSERT_TRUE(
      testing::eventually([&] { return task_state(s.pid()) == 'S'; }, std::chrono::seconds(30)))
      << "the subject never went back to waiting";
  ASSERT_TRUE(t->collect().ok());
  auto again = t->collect();
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_TRUE(again->empty()) << page_set(*again).size() << " pages";
}

TEST(DirtyTracker, MultiThreadedTarget) {
  SubjectProcess s("dirty_writer", {"16", "4"});
  Buffer b = testing::writer_buffer(s);
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  size_t fp = 0;
  for (uint64_t round = 0; round < 5; ++round) {
    std::set<uint64_t> pages;
    for (uint64_t p = round; p < b.pages; p += 7 + round) pages.insert(p);
    fp += expect_exact_round(*t, s, b, pages);
  }
  std::printf("false positives outside the buffer over 5 rounds: %zu pages\n", fp);
  EXPECT_EQ(s.cmd("check"), "ok");
}

TEST(DirtyTracker, DroppedPagesAreReportedOnce) {
  SubjectProcess s("dirty_writer", {"4"});
  Buffer b = testing::writer_buffer(s);
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  ASSERT_EQ(s.cmd("d 10 5"), "ok");  // zero-filled without a write
  auto dirty = t->collect();
  ASSERT_TRUE(dirty.ok()) << dirty.status().to_string();
  EXPECT_EQ(in_buffer(*dirty, b), (std::set<uint64_t>{10, 11, 12, 13, 14}));
  auto again = t->collect();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(in_buffer(*again, b).empty());
  expect_exact_round(*t, s, b, {11, 30});  // written after the drop: reported again
}

TEST(DirtyTracker, NewMappingIsOutsideTracked) {
  SubjectProcess s("dirty_writer", {"4"});
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  std::string got = s.cmd("m 4");
  ASSERT_EQ(got.substr(0, 3), "ok ");
  uint64_t addr = std::stoull(got.substr(3), nullptr, 16);
  for (uint64_t a = addr; a < addr + (4u << 20); a += kPageSize)
    ASSERT_FALSE(covered(t->tracked(), a));
  auto dirty = t->collect();
  ASSERT_TRUE(dirty.ok()) << dirty.status().to_string();
}

TEST(DirtyTracker, RemappedRangeLeavesTracked) {
  SubjectProcess s("dirty_writer", {"4"});
  Buffer b = testing::writer_buffer(s);
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  ASSERT_EQ(s.cmd("w 1 2"), "ok");
  ASSERT_EQ(s.cmd("r 100 10"), "ok");  // unregistered memory inside a tracked range
  auto dirty = t->collect();
  ASSERT_TRUE(dirty.ok()) << dirty.status().to_string();
  std::set<uint64_t> in = in_buffer(*dirty, b);
  EXPECT_TRUE(in.count(1) && in.count(2));
  for (uint64_t p = 100; p < 110; ++p)
    EXPECT_FALSE(covered(t->tracked(), b.addr + p * kPageSize)) << p;
  EXPECT_TRUE(covered(t->tracked(), b.addr + 99 * kPageSize));
  EXPECT_TRUE(covered(t->tracked(), b.addr + 110 * kPageSize));
  expect_exact_round(*t, s, b, {5, 99, 110});
}

TEST(DirtyTracker, DisarmLeavesNothingBehind) {
  SubjectProcess s("dirty_writer", {"4", "2"});
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  // Armed, the process holds nothing of relive's: no descriptor, no tracer.
  EXPECT_TRUE(uffd_fds(s.pid()).empty());
  EXPECT_EQ(tracer_of(s.pid()), "0");
  Status disarmed = t->disarm();
  ASSERT_TRUE(disarmed.ok()) << disarmed.to_string();
  EXPECT_FALSE(t->armed());
  EXPECT_TRUE(uffd_fds(s.pid()).empty());
  EXPECT_EQ(tracer_of(s.pid()), "0");
  EXPECT_EQ(s.cmd("w 1 2 3 500"), "ok");
  EXPECT_EQ(s.cmd("check"), "ok");
  EXPECT_TRUE(s.alive());
}

TEST(DirtyTracker, DestructorDisarms) {
  SubjectProcess s("dirty_writer", {"1"});
  {
    auto t = DirtyTracker::arm(s.pid());
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    EXPECT_EQ(s.cmd("w 1 2"), "ok");
  }
  // Unregistered: writes no longer fault into a dead userfaultfd, memory intact.
  EXPECT_EQ(s.cmd("w 3 4"), "ok");
  EXPECT_EQ(s.cmd("check"), "ok");
}

bool stopped_again(pid_t pid) {
  for (int i = 0; i < 6000 && state_of(pid) != 'T'; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return state_of(pid) == 'T';
}

TEST(DirtyTracker, GroupStoppedProcessStaysStopped) {
  SubjectProcess s("dirty_writer", {"4"});
  Buffer b = testing::writer_buffer(s);
  ASSERT_EQ(::kill(s.pid(), SIGSTOP), 0);
  for (int i = 0; i < 6000 && state_of(s.pid()) != 'T'; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(state_of(s.pid()), 'T');
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  // Let go by ptrace, a group-stopped process is runnable for a moment before it stops again;
  // a wrongly resumed one would sit in its command read ('S') instead, never 'T'.
  EXPECT_TRUE(stopped_again(s.pid())) << "arm() must leave a stopped process stopped";
  ASSERT_EQ(::kill(s.pid(), SIGCONT), 0);
  expect_exact_round(*t, s, b, {7, 8});
  ASSERT_EQ(::kill(s.pid(), SIGSTOP), 0);
  for (int i = 0; i < 6000 && state_of(s.pid()) != 'T'; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(t->disarm().ok());
  EXPECT_TRUE(stopped_again(s.pid())) << "disarm() must leave a stopped process stopped";
  EXPECT_TRUE(uffd_fds(s.pid()).empty());
  ASSERT_EQ(::kill(s.pid(), SIGCONT), 0);
  EXPECT_EQ(s.cmd("check"), "ok");
}

TEST(DirtyTracker, ArmOnMissingProcessIsNotFound) {
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(gone, nullptr, 0), gone);
  auto t = DirtyTracker::arm(gone);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Status::Code::kNotFound) << t.status().to_string();
}

TEST(DirtyTracker, ArmOnTracedProcessFailsAndLeavesItAlone) {
  SubjectProcess s("dirty_writer", {"1"});
  ASSERT_EQ(::ptrace(PTRACE_SEIZE, s.pid(), nullptr, 0), 0);
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Status::Code::kUnsupported) << t.status().to_string();
  EXPECT_NE(t.status().message().find("already traced"), std::string::npos);
  std::printf("%s\n", t.status().to_string().c_str());
  EXPECT_TRUE(uffd_fds(s.pid()).empty());
  ASSERT_EQ(::ptrace(PTRACE_INTERRUPT, s.pid(), nullptr, 0), 0);
  ASSERT_EQ(::waitpid(s.pid(), nullptr, __WALL), s.pid());
  ASSERT_EQ(::ptrace(PTRACE_DETACH, s.pid(), nullptr, 0), 0);
  EXPECT_EQ(s.cmd("w 1"), "ok");
  EXPECT_EQ(s.cmd("check"), "ok");
}

// The program closing every descriptor it did not open (closefrom) cannot end the tracking:
// the only userfaultfd descriptor is relive's.
TEST(DirtyTracker, ProgramClosingDescriptorsDoesNotEndTracking) {
  SubjectProcess s("dirty_writer", {"1"});
  auto t = DirtyTracker::arm(s.pid());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  for (int fd = 900; fd < 1024; ++fd) ASSERT_EQ(s.cmd("c " + std::to_string(fd)), "ok");
  EXPECT_EQ(s.cmd("w 7"), "ok");
  auto dirty = t->collect();
  ASSERT_TRUE(dirty.ok()) << dirty.status().to_string();
  EXPECT_FALSE(dirty->empty());
  EXPECT_TRUE(t->disarm().ok());
  EXPECT_EQ(s.cmd("check"), "ok");
}

}  // namespace
}  // namespace relive::dirty
