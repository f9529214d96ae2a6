// A real CRIU dump's pages image rebuilt from memory read out of the process with read_pages
// (as a pre-copy destination would assemble it from shipped pages) is byte-identical to CRIU's
// own, and restores.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "common/file_util.h"
#include "dirty/page_reader.h"
#include "dirty/subject_process.h"
#include "drivers/criu/criu.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/page_image.h"

namespace relive {
namespace {

namespace fs = std::filesystem;
using testing::SubjectProcess;

using PageMap = std::map<uint64_t, std::string>;

Status collect_into(PageMap* pages, uint64_t vaddr, std::string_view bytes) {
  for (size_t i = 0; i < bytes.size(); i += dirty::kPageSize)
    (*pages)[vaddr + i] = std::string(bytes.substr(i, dirty::kPageSize));
  return Status::Ok();
}

std::vector<dirty::PageRange> to_page_ranges(const std::vector<criu::VaddrRange>& ranges) {
  std::vector<dirty::PageRange> out;
  for (const auto& r : ranges) out.push_back({r.start, r.pages});
  return out;
}

TEST(CriuPageImage, RebuiltFromProcessMemoryMatchesCriuAndRestores) {
  auto criu_bin = criu::find_criu();
  if (!criu_bin.ok()) GTEST_SKIP() << criu_bin.status().to_string();
  testing::TempDir dir;
  std::string images = dir / "images", rebuilt = dir / "rebuilt";
  // With rseq, the kernel rewrites the thread's rseq area (cpu_id) whenever the task runs again,
  // which it does briefly after CRIU lets go: memory read after the dump would differ from it by
  // those bytes. The subject runs without rseq so that the comparison below is exact.
  ::setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1);
  SubjectProcess s("dirty_writer", {"8"});
  ::unsetenv("GLIBC_TUNABLES");
  pid_t pid = s.pid();
  uint64_t buf = std::stoull(s.hello().substr(3), nullptr, 16);
  ASSERT_EQ(s.cmd("w 1 5 9 1000"), "ok");
  ASSERT_EQ(s.cmd("d 100 10"), "ok");  // not present: not in the dump

  criu::DumpOptions dump;
  dump.pid = pid;
  dump.images_dir = images;
  dump.leave_stopped = true;
  auto dumped = criu::dump(dump);
  ASSERT_TRUE(dumped.ok()) << dumped.status().to_string();

  std::string pm_path = fmt::format("{}/pagemap-{}.img", images, pid);
  auto pm = read_file(pm_path);
  ASSERT_TRUE(pm.ok());
  auto decoded = criu::decode_pagemap_image(*pm);
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  auto present = criu::present_ranges(*decoded);
  PageMap memory;
  auto report = dirty::read_pages(
      pid, to_page_ranges(present),
      [&](uint64_t v, std::string_view b) { return collect_into(&memory, v, b); });
  ASSERT_TRUE(report.ok()) << report.status().to_string();
  EXPECT_TRUE(report->missing.empty());
  std::printf("dump: %zu present ranges, %llu pages read from the stopped process\n",
              present.size(), static_cast<unsigned long long>(report->pages_read));
  // The dropped pages are not in the dump; the written ones are.
  EXPECT_EQ(criu::subtract({{buf + 100 * 4096, 10}}, present),
            (std::vector<criu::VaddrRange>{{buf + 100 * 4096, 10}}));
  EXPECT_TRUE(criu::subtract({{buf + 4096, 1}}, present).empty());

  // Rebuild into a copy of the images directory and compare with CRIU's pages image.
  fs::copy(images, rebuilt);
  std::string pages_name = fmt::format("pages-{}.img", decoded->pages_id);
  fs::remove(rebuilt + "/" + pages_name);
  Status st = criu::rebuild_pages_image(
      *pm,
      [&](uint64_t vaddr, std::span<char> page) {
        auto it = memory.find(vaddr);
        if (it == memory.end()) return Status::NotFound("not read");
        std::memcpy(page.data(), it->second.data(), page.size());
        return Status::Ok();
      },
      rebuilt + "/" + pages_name);
  ASSERT_TRUE(st.ok()) << st.to_string();
  auto theirs = read_file(images + "/" + pages_name), ours = read_file(rebuilt + "/" + pages_name);
  ASSERT_TRUE(theirs.ok() && ours.ok());
  EXPECT_EQ(ours->size(), theirs->size());
  size_t first_diff = 0;
  while (first_diff < std::min(ours->size(), theirs->size()) &&
         (*ours)[first_diff] == (*theirs)[first_diff])
    ++first_diff;
  EXPECT_TRUE(*ours == *theirs) << "rebuilt pages image differs from CRIU's at byte " << first_diff;

  // extract_pages reads the same bytes back out of the dump.
  PageMap extracted;
  st = criu::extract_pages(images, pid, {{buf, 16}}, [&](uint64_t v, std::string_view b) {
    return collect_into(&extracted, v, b);
  });
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(extracted.size(), 16u);
  for (const auto& [v, bytes] : extracted) EXPECT_EQ(bytes, memory[v]) << std::hex << v;

  // The original goes; the tree restored from the rebuilt directory has the same memory.
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  criu::RestoreOptions restore;
  restore.images_dir = rebuilt;
  restore.as_child = true;
  restore.leave_stopped = true;  // its stdin pipe has no writer any more: it would exit at once
  // SubjectProcess reaps the original only at its end; do it now to free the PID.
  ::waitpid(pid, nullptr, 0);
  auto restored = criu::restore(restore);
  ASSERT_TRUE(restored.ok()) << restored.status().to_string();
  EXPECT_EQ(*restored, pid);
  PageMap after;
  report = dirty::read_pages(*restored, {{buf, 512}}, [&](uint64_t v, std::string_view b) {
    return collect_into(&after, v, b);
  });
  ASSERT_TRUE(report.ok()) << report.status().to_string();
  size_t differing = 0;
  for (const auto& [v, bytes] : after)
    if (memory.count(v) ? bytes != memory[v] : bytes != std::string(4096, '\0')) ++differing;
  EXPECT_EQ(differing, 0u);
  ::kill(*restored, SIGKILL);
  ::waitpid(*restored, nullptr, 0);
}

}  // namespace
}  // namespace relive
