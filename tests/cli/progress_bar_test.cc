#include "cli/progress_bar.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace relive::cli {
namespace {

using Clock = ProgressBar::Clock;
using std::chrono::seconds;

// What a ProgressBar writes, read back from a memory stream.
class Captured {
 public:
  Captured() : f_(::open_memstream(&buf_, &len_)) {}
  ~Captured() {
    if (f_) std::fclose(f_);
    std::free(buf_);
  }
  std::FILE* file() { return f_; }
  std::string text() {
    std::fflush(f_);
    return std::string(buf_, len_);
  }

 private:
  char* buf_ = nullptr;
  size_t len_ = 0;
  std::FILE* f_;
};

TEST(ProgressLine, ParsesMigrationReports) {
  ProgressReport r = parse_progress_line("phase=precopy round=2 pages=812 bytes=3325952");
  EXPECT_EQ(r.phase, "precopy");
  EXPECT_EQ(r.round, 2);
  EXPECT_EQ(r.bytes, 3325952u);
  EXPECT_FALSE(r.remaining);
  EXPECT_FALSE(r.note);
  r = parse_progress_line("phase=restore sent=1048576 frozen_for=120ms");
  EXPECT_EQ(r.phase, "restore");
  EXPECT_EQ(r.bytes, 1048576u);
  r = parse_progress_line("vm: pass 3 remaining=1048576 dirty_pages_rate=10 mbps=800.0");
  EXPECT_EQ(r.phase, "vm: pass");
  EXPECT_EQ(r.round, 3);
  EXPECT_EQ(r.remaining, 1048576u);
  ASSERT_TRUE(r.rate);
  EXPECT_DOUBLE_EQ(*r.rate, 100e6);
  r = parse_progress_line("auto: precopy (the tree is small)");
  EXPECT_TRUE(r.note);
  EXPECT_EQ(r.phase, "auto: precopy (the tree is small)");
}

TEST(ProgressLine, IgnoresGarbageNumbers) {
  ProgressReport r = parse_progress_line("phase=x bytes=lots remaining=-3 round=");
  EXPECT_EQ(r.phase, "x");
  EXPECT_FALSE(r.bytes);
  EXPECT_FALSE(r.remaining);
  EXPECT_FALSE(r.round);
}

TEST(ProgressFormat, BytesAndDurations) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(12.0 * 1024 * 1024), "12.0 MiB");
  EXPECT_EQ(format_bytes(300.0 * 1024 * 1024 * 1024), "300 GiB");
  EXPECT_EQ(format_duration(7), "0:07");
  EXPECT_EQ(format_duration(754), "12:34");
  EXPECT_EQ(format_duration(3723), "1:02:03");
}

TEST(ProgressBar, RendersBytesRateAndElapsed) {
  Captured out;
  ProgressBar bar(out.file(), true, 80);
  Clock::time_point t0{};
  bar.update("phase=precopy round=0 pages=256 bytes=1048576", t0 + seconds(1));
  bar.update("phase=precopy round=1 pages=256 bytes=5242880", t0 + seconds(3));
  // 4 MiB more in 2 s; 2 s since the first report.
  EXPECT_EQ(bar.render(t0 + seconds(3)), "relive: precopy 1  5.00 MiB  2.00 MiB/s  0:02");
}

TEST(ProgressBar, RendersABarAndEtaWhenTheRemainderIsKnown) {
  Captured out;
  ProgressBar bar(out.file(), true, 80);
  Clock::time_point t0{};
  // QEMU: 64 MiB left at 8 Mbit/s = 1 MB/s: about 67 s.
  bar.update("vm: pass 2 remaining=67108864 mbps=8.0", t0);
  EXPECT_EQ(bar.render(t0), "relive: vm: pass 2 [" + std::string(22, '.') +
                                "]  64.0 MiB left  977 KiB/s  ETA 1:07");
  // Bytes done and remaining: a fraction.
  bar.update("phase=pack bytes=3145728 remaining=1048576 link_rate=1048576B/s", t0 + seconds(1));
  EXPECT_EQ(bar.render(t0 + seconds(1)), "relive: pack [" + std::string(20, '#') +
                                             std::string(7, '.') +
                                             "]  75%  3.00 MiB  1.00 MiB/s  ETA 0:01");
  // The bar fills the line: 80 columns less the last.
  EXPECT_EQ(bar.render(t0 + seconds(1)).size(), 79u);
}

TEST(ProgressBar, NeverWiderThanTheTerminal) {
  Captured out;
  ProgressBar bar(out.file(), true, 30);
  bar.update("phase=a-very-long-phase-name-indeed round=12 bytes=123456789 remaining=99",
             Clock::time_point{});
  std::string line = bar.render(Clock::time_point{});
  EXPECT_EQ(line.size(), 29u) << line;
  EXPECT_EQ(line.rfind("relive: a-very-long-phase", 0), 0u) << line;
}

TEST(ProgressBar, RedrawsInPlaceOnATerminal) {
  Captured out;
  {
    ProgressBar bar(out.file(), true, 80);
    bar.update("phase=dump", Clock::time_point{});
    bar.update("auto: switching from precopy to stop-copy: not converging",
               Clock::time_point{} + seconds(1));
    bar.update("phase=restore", Clock::time_point{} + seconds(2));
  }  // the destructor ends the line
  EXPECT_EQ(out.text(),
            "\rrelive: dump  0:00\x1b[K"
            "\r\x1b[Krelive: auto: switching from precopy to stop-copy: not converging\n"
            "relive: dump  0:01"
            "\rrelive: restore  0:02\x1b[K"
            "\n");
}

TEST(ProgressBar, PlainLinesWhenNotATerminal) {
  Captured out;
  {
    ProgressBar bar(out.file(), false, 80);
    bar.update("phase=precopy round=1 pages=3 bytes=12288", Clock::time_point{});
    bar.update("auto: precopy (small)", Clock::time_point{});
    bar.update("phase=restore sent=12288", Clock::time_point{});
    bar.finish();
  }
  // Exactly the reports, as before the bar existed: scripts and tests grep them.
  EXPECT_EQ(out.text(),
            "relive: phase=precopy round=1 pages=3 bytes=12288\n"
            "relive: auto: precopy (small)\n"
            "relive: phase=restore sent=12288\n");
}

}  // namespace
}  // namespace relive::cli
