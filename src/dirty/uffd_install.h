// The injected half of dirty tracking: creating, registering and removing an async
// write-protecting userfaultfd inside a process held by a SeizedThread. DirtyTracker's arm()
// and disarm() are built from these.
#pragma once

#include <sys/stat.h>

#include <vector>

#include "dirty/page_range.h"
#include "dirty/seized_thread.h"
#include "relive/result.h"
#include "tracee/process_info.h"

namespace relive::dirty {

// The mappings async WP can track: private and writable (anonymous, heap, stack, private file
// mappings), minus the kernel's special ones ([vvar], [vdso], [vsyscall]).
std::vector<PageRange> trackable_ranges(const std::vector<tracee::Mapping>& maps);

struct InstalledUffd {
  int fd = -1;                     // the descriptor's number inside the process
  ino_t inode = 0;                 // identifies this very userfaultfd in /proc/PID/fd
  std::vector<PageRange> tracked;  // registered and write-protected
};

// Creates the userfaultfd (moved to a descriptor number far above the program's own), registers
// each of `candidates` for async WP and write-protects it. A candidate the kernel refuses (a
// special mapping, or one unmapped meanwhile) is left out of `tracked`. On failure nothing
// remains in the process.
Result<InstalledUffd> install_uffd(SeizedThread& t, const std::vector<PageRange>& candidates);

// Closes descriptor `fd` in the process if it is still the userfaultfd `inode` (a program may
// have closed it and reused the number); Ok when it is already gone.
Status remove_uffd(SeizedThread& t, int fd, ino_t inode);

// Whether descriptor `fd` of `pid` is the userfaultfd `inode`. NotFound if the process is gone.
Result<bool> uffd_still_open(pid_t pid, int fd, ino_t inode);

}  // namespace relive::dirty
