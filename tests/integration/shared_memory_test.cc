// The processes of one recording run one at a time, so what they write to memory they share is
// deterministic: Python multiprocessing (a Pool; a Value under its lock: /dev/shm files mapped
// shared) records and replays. A file mapping shared with a process outside the recording is
// refused with a clear error: its writes could not be replayed.
#include <gtest/gtest.h>

#include <string>

#include "netns_hosts.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

constexpr const char* kMultiprocessing = R"(
import multiprocessing as mp
def square(x): return x * x
def add(v, n):
    for _ in range(n):
        with v.get_lock(): v.value += 1
if __name__ == "__main__":
    with mp.Pool(2) as pool:
        print(sum(pool.map(square, range(100))))
    v = mp.Value("i", 0)
    ps = [mp.Process(target=add, args=(v, 200)) for _ in range(2)]
    for p in ps: p.start()
    for p in ps: p.join()
    print(v.value)
)";

TEST(SharedMemory, PythonMultiprocessingPoolAndSharedValueRecordAndReplay) {
  TempDir d;
  write_all_to(d / "mp.py", kMultiprocessing);
  RunResult r =
      run({relive_bin(), "record", "-o", d / "t", "--", "/usr/bin/python3", d / "mp.py"}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "328350\n400\n");
  RunResult dump = run({relive_bin(), "dump", d / "t"});
  EXPECT_NE(dump.out.find(" shared "), std::string::npos) << "no shared mapping was recorded";
  ASSERT_EQ(sh("rm -f " + d / "mp.py"), 0);  // replay needs nothing from outside
  RunResult rep = run({relive_bin(), "replay", d / "t"}, 300);
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, r.out);
}

// Another process (not recorded) holds the file open while the recorded one maps it shared.
TEST(SharedMemory, AMappingSharedWithAProcessOutsideTheRecordingIsRefused) {
  TempDir d;
  std::string file = d / "shared.bin";
  ASSERT_EQ(sh("head -c 4096 /dev/zero > " + file), 0);
  Background holder({"/usr/bin/python3", "-c",
                     "import sys, time; f = open(sys.argv[1], 'r+b'); print('open', flush=True); "
                     "time.sleep(600)",
                     file},
                    d / "holder.out");
  ASSERT_TRUE(eventually([&] { return read_all(d / "holder.out") == "open\n"; }, seconds(60)));
  RunResult r = run({relive_bin(), "record", "-o", d / "t", "--", "/usr/bin/python3", "-c",
                     "import mmap, sys; f = open(sys.argv[1], 'r+b'); m = mmap.mmap(f.fileno(), "
                     "4096); m[0] = 1; print('mapped')",
                     file});
  EXPECT_EQ(r.exit_code, 125) << r.out << r.err;
  EXPECT_NE(r.err.find("outside the recording"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::to_string(holder.pid())), std::string::npos)
      << "the error names the other process: " << r.err;
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace relive::testing
