// The counter subject the migration tests move: a Python loop appending 0, 1, 2, ... to a file
// every 20 ms, and how they read it back (the last count; whether no count was lost or
// repeated across the move).
#pragma once

#include <cstdlib>
#include <sstream>
#include <string>

#include "test_util.h"

namespace relive::testing {

inline constexpr const char* kCounter = R"(
import sys, time
f = open(sys.argv[1], 'a')
i = 0
while True:
    f.write(f"{i}\n"); f.flush(); i += 1; time.sleep(0.02)
)";

inline int last_count(const std::string& file) {
  std::istringstream in(read_all(file));
  int last = -1;
  for (std::string l; std::getline(in, l);) last = std::atoi(l.c_str());
  return last;
}

inline bool contiguous(const std::string& file) {
  std::istringstream in(read_all(file));
  int expect = 0;
  for (std::string l; std::getline(in, l); ++expect)
    if (std::atoi(l.c_str()) != expect) return false;
  return expect > 0;
}

}  // namespace relive::testing
