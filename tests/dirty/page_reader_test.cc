#include "dirty/page_reader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sstream>

#include "common/scoped_fd.h"
#include "dirty/subject_process.h"

namespace relive::dirty {
namespace {

using testing::SubjectProcess;

uint64_t buffer_addr(const SubjectProcess& s) {
  std::istringstream in(s.hello().substr(3));
  uint64_t addr = 0;
  in >> std::hex >> addr;
  return addr;
}

// What /proc/PID/mem says is at [vaddr, vaddr + len).
std::string mem_at(pid_t pid, uint64_t vaddr, size_t len) {
  ScopedFd fd(::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDONLY | O_CLOEXEC));
  std::string out(len, '\0');
  EXPECT_EQ(::pread(fd.get(), out.data(), len, static_cast<off_t>(vaddr)),
            static_cast<ssize_t>(len));
  return out;
}

TEST(ReadPages, DeliversEveryPageAndListsVanishedOnes) {
  SubjectProcess s("dirty_writer", {"16"});
  uint64_t buf = buffer_addr(s);
  ASSERT_NE(buf, 0u);
  // Every other page of the buffer: more ranges than one process_vm_readv takes.
  std::vector<PageRange> ranges;
  for (uint64_t p = 0; p < 4096; p += 2) ranges.push_back({buf + p * kPageSize, 1});
  ranges.insert(ranges.begin() + 3, PageRange{0x10000, 4});  // never mapped (below mmap_min_addr)
  uint64_t bytes = 0;
  bool same = true;
  auto report = read_pages(s.pid(), ranges, [&](uint64_t vaddr, std::string_view data) {
    EXPECT_EQ(data.size() % kPageSize, 0u);
    same = same && data == mem_at(s.pid(), vaddr, data.size());
    bytes += data.size();
    return Status::Ok();
  });
  ASSERT_TRUE(report.ok()) << report.status().to_string();
  EXPECT_TRUE(same);
  EXPECT_EQ(report->pages_read, 2048u);
  EXPECT_EQ(bytes, 2048u * kPageSize);
  EXPECT_EQ(report->missing, (std::vector<PageRange>{{0x10000, 4}}));
}

TEST(ReadPages, SinkErrorStopsTheRead) {
  SubjectProcess s("dirty_writer", {"1"});
  uint64_t buf = buffer_addr(s);
  int calls = 0;
  auto report =
      read_pages(s.pid(), {{buf, 4}, {buf + 8 * kPageSize, 4}}, [&](uint64_t, std::string_view) {
        ++calls;
        return Status::IoError("disk full");
      });
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().message(), "disk full");
  EXPECT_EQ(calls, 1);
}

TEST(ReadPages, GoneProcessIsNotFound) {
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(gone, nullptr, 0), gone);
  auto report =
      read_pages(gone, {{0x400000, 1}}, [](uint64_t, std::string_view) { return Status::Ok(); });
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace relive::dirty
