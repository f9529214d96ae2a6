// How relive's own processes allocate. On the guests relive runs on (PVM), a page fault costs
// microseconds, and glibc serves every allocation over 128 KiB with a fresh mmap that it unmaps
// on free: a migration moving 4 MiB segments then faults on every page of every segment (the
// profile of a 256 MiB transfer was two thirds page faults). Keeping big blocks in the heap and
// not trimming it lets the buffers be reused, fault-free.
#pragma once

namespace relive {

// Call once at the start of main(), before any thread exists.
void keep_freed_memory();

}  // namespace relive
