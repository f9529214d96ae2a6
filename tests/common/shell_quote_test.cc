#include "common/shell_quote.h"

#include <gtest/gtest.h>

#include <string>

#include "common/subprocess.h"

namespace relive {
namespace {

// A quoted word must come out of /bin/sh (dash) exactly as it went in, whatever it holds.
TEST(ShellQuote, KeepsAnyTextOneWord) {
  for (std::string s : {"plain", "it's", "'; touch /tmp/pwned; '", "$(id) `id` ${IFS}", "a\nb", "",
                        "'''", "\\'\\", "tab\there", "\x01\x7f\xff"}) {
    auto r = relive::run({"/bin/sh", "-c", "printf %s " + shell_quote(s)});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->output, s);
  }
}

}  // namespace
}  // namespace relive
