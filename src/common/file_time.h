// File timestamps as evidence of change, and their limits. The kernel stamps mtime and ctime
// from a clock that advances once per tick, so a file written just after a fine-grained clock
// reading can carry an older time (measured: up to 7 ms), and two writes in one tick carry the
// same time. A write through a shared mapping to an already-dirty page does not update mtime
// at all. So "same timestamps" proves "unchanged" only for a file whose timestamps were already
// older than the comparison point by more than a tick when they were read: any later write then
// carries a later time. relive uses a margin far larger than any tick, and reads the content
// of everything else.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>

namespace relive {

// Far above a kernel tick (1-10 ms) and the 1 s granularity of the coarsest Linux file
// systems still in use: used where a wider margin costs only a re-read.
inline constexpr std::chrono::nanoseconds kFileTimeMargin = std::chrono::seconds(2);
// Above any kernel tick, for file systems with nanosecond timestamps: used where a wider
// margin would sweep in many unchanged files (a container's freshly unpacked root file system).
inline constexpr std::chrono::nanoseconds kTickMargin = std::chrono::milliseconds(100);

// CLOCK_REALTIME now, in nanoseconds (the clock file timestamps are taken from).
int64_t realtime_now_ns();

int64_t mtime_ns(const struct stat& st);
int64_t ctime_ns(const struct stat& st);

// True when `st` (read at `read_at_ns`, CLOCK_REALTIME) has timestamps old enough that any
// write after the read changes them: both mtime and ctime are more than kFileTimeMargin older.
bool timestamps_settled(const struct stat& st, int64_t read_at_ns);

// True when the file system stores whole seconds only (FAT, ext3 with small inodes): both
// timestamps of `st` have a zero fraction.
bool whole_second_timestamps(const struct stat& st);

}  // namespace relive
