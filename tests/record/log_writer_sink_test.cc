// The log writer's compression effort against its backlog: LZ4 at its best while the writer
// keeps up, faster the further the tracer gets ahead.
#include <gtest/gtest.h>

#include <string>

#include "record/event_sink.h"

namespace relive::record {
namespace {

TEST(LogWriterSink, CompressesLessTheFurtherTheTracerGetsAhead) {
  constexpr size_t kCap = size_t{32} << 20;
  EXPECT_EQ(compression_acceleration(0, kCap), 1);  // keeping up: LZ4 at its best
  int last = 1;
  for (size_t queued = 0; queued <= kCap; queued += kCap / 64) {
    int a = compression_acceleration(queued, kCap);
    EXPECT_GE(a, last) << queued;
    last = a;
  }
  EXPECT_GT(compression_acceleration(kCap / 2, kCap), 1);
  EXPECT_EQ(compression_acceleration(kCap, kCap), last);
}

}  // namespace
}  // namespace relive::record
