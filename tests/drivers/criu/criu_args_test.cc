// Command lines and error summaries, without running CRIU.
#include <gtest/gtest.h>

#include "drivers/criu/criu.h"

namespace relive::criu {
namespace {

using Args = std::vector<std::string>;

TEST(CriuArgs, DumpCarriesEveryOption) {
  DumpOptions o;
  o.pid = 42;
  o.images_dir = "/img";
  o.leave_running = true;
  o.tcp_established = true;
  o.file_locks = true;
  o.parent_images = "../prev";
  o.extra_args = {"--ghost-limit", "1M"};
  EXPECT_EQ(dump_argv("criu", o),
            (Args{"criu", "dump", "-t", "42", "-D", "/img", "-o", "dump.log", "-v4",
                  "--leave-running", "--tcp-established", "--file-locks", "--prev-images-dir",
                  "../prev", "--ghost-limit", "1M"}));
}

TEST(CriuArgs, RestoreIsDetachedAndWritesAPidfile) {
  RestoreOptions o;
  o.images_dir = "/img";
  o.as_child = true;
  o.inherit_fds = {"fd[7]:pipe:[123]"};
  EXPECT_EQ(restore_argv("criu", o, "/img/restore.pid"),
            (Args{"criu", "restore", "-D", "/img", "-o", "restore.log", "-v4", "--restore-detached",
                  "--restore-sibling", "--pidfile", "/img/restore.pid", "--inherit-fd",
                  "fd[7]:pipe:[123]"}));
}

TEST(CriuArgs, NonDetachedRestoreIsUnsupported) {
  RestoreOptions o;
  o.images_dir = "/img";
  o.detached = false;
  EXPECT_TRUE(restore(o).status().is_unsupported());
}

TEST(CriuErrors, QuotesTheLastErrorLinesWithoutTimestamps) {
  std::string log =
      "(00.044612) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: "
      "Operation not permitted\n"
      "(00.045538) Warn  (compel/src/lib/infect.c:133): Unable to interrupt task: 9 (No such "
      "process)\n";
  for (int i = 1; i <= 7; ++i) {
    log += "(00.0700" + std::to_string(i) + ")  123: Error (criu/x.c:" + std::to_string(i) +
           "): failure " + std::to_string(i) + "\n";
  }
  // The task's PID stays: it tells which process of the tree failed.
  EXPECT_EQ(summarize_criu_errors(log, "ignored"),
            "123: Error (criu/x.c:3): failure 3; 123: Error (criu/x.c:4): failure 4; "
            "123: Error (criu/x.c:5): failure 5; 123: Error (criu/x.c:6): failure 6; "
            "123: Error (criu/x.c:7): failure 7");
}

TEST(CriuErrors, KeepsABenignErrorWhenItIsTheOnlyOne) {
  std::string log = "(00.1) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE\n";
  EXPECT_EQ(summarize_criu_errors(log, ""),
            "Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE");
}

TEST(CriuErrors, FallsBackToCriuOutput) {
  EXPECT_EQ(summarize_criu_errors("", "line1\n\nline2\n"), "line1; line2");
  EXPECT_EQ(summarize_criu_errors("", ""), "CRIU printed no error message");
}

}  // namespace
}  // namespace relive::criu
