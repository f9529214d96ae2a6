#include "drivers/criu/command.h"

#include <gtest/gtest.h>

namespace relive::criu {
namespace {

TEST(RunCommand, CollectsOutput) {
  auto r = run_command({"/bin/echo", "a;b $(id)"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->output, "a;b $(id)\n");  // one argument, never seen by a shell
}

TEST(RunCommand, DiscardOutputGivesTheProgramDevNull) {
  CommandOptions o;
  o.discard_output = true;
  for (const char* fd : {"/proc/self/fd/1", "/proc/self/fd/2"}) {
    auto r = run_command({"/usr/bin/test", "-c", fd}, o);  // a character device: /dev/null
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_TRUE(r->ok()) << fd << ": " << r->describe();
    // Without it, the program writes into our memfd (a regular file).
    auto shown = run_command({"/usr/bin/test", "-c", fd});
    ASSERT_TRUE(shown.ok());
    EXPECT_FALSE(shown->ok()) << fd;
  }
}

}  // namespace
}  // namespace relive::criu
