// A fingerprint of the kernel state of one process that a CRIU dump holds besides its memory
// contents and its threads' registers, read from outside through /proc and pidfd_getfd. The fast
// per-epoch capture (after one full CRIU "base" dump, each epoch copies only the written pages and
// the registers) is valid only while a process's fingerprint equals the one taken with the base;
// first_difference() says what moved. Taking a fingerprint changes nothing in the process; it may
// be running, ptrace-stopped or frozen (not while CRIU's parasite is mapped into it: that mapping
// shows in the memory map).
//
// Conservative by design: an item that cannot be read gets a value that differs from every other
// value (so it always counts as changed), and of the texts the kernel shows only the lines known
// to move while a process merely runs are left out (the per-thread /proc status lines State,
// TracerPid, Vm*, Rss*, HugetlbPages, the context switch counts; SigBlk, which the fast capture
// saves per thread with the registers; and SigQ while the thread has nothing pending, as it counts
// the signals queued to every process of the user).
//
// Not visible from outside, hence not covered: signal handler addresses and flags (only whether a
// signal is ignored or caught shows), itimers (setitimer), sigaltstack, clear_child_tid,
// pdeath_sig, child_subreaper, rseq registration, socket options other than the buffer sizes,
// the accept backlog of Unix listening sockets, per-thread cgroups and namespaces; the contents of
// files and of memfds. POSIX timers show only that they exist (not their remaining time), so a
// process with any (has_posix_timers) needs the full capture every epoch; an armed timerfd shows
// its remaining time, so it changes every epoch.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "relive/result.h"

namespace relive::ha {

struct FingerprintOptions {
  // The VmFlags of every mapping (from /proc/PID/smaps): mlock, madvise(MADV_DONTFORK,
  // MADV_DONTDUMP, MADV_HUGEPAGE, ...) on a whole mapping change nothing in /proc/PID/maps, yet
  // CRIU dumps them. The kernel walks the page tables to print smaps, so this costs time in
  // proportion to the resident memory; leave it on unless the workload is known not to use them.
  bool vma_flags = true;
};

// Keys (values are canonical text): "maps", "vmflags", "stat" (the fields of /proc/PID/stat that
// do not move while the process runs), "limits", "cwd", "root", "exe", "timers", "personality",
// "oom_score_adj", "loginuid", "cgroup", "auxv", "ns/<name>"; "threads" (the thread ids),
// "thread/<tid>/stat" (comm and scheduling), "thread/<tid>/status", "thread/<tid>/robust_list";
// "fds" (the open descriptor numbers), "fd/<n>" (link target, kind, fdinfo without the offset of
// a regular file), "fdpos/<n>" (the offset of a regular file), "fdsize/<n>" (its size, unless
// it is open O_WRONLY | O_APPEND: CRIU checks it at restore), "fdq/<n>" (queued data and
// buffers of a pipe, FIFO or socket; window and sequence progress of a TCP socket; termios of a
// terminal).
struct ProcessFingerprint {
  pid_t pid = 0;
  std::map<std::string, std::string> items;
  // /proc/PID/timers lists at least one POSIX timer, whose remaining time no fingerprint shows.
  bool has_posix_timers = false;
};

// NotFound when the process does not exist (or exits while being read).
Result<ProcessFingerprint> fingerprint_process(pid_t pid, const FingerprintOptions& options = {});

// The VmFlags of every mapping of `pid`, one line per mapping (the "vmflags" item). The kernel
// walks the page tables to print them: ~30 ms per GiB resident.
Result<std::string> read_vma_flags(pid_t pid);

// The first difference in words ("thread set changed", "fd 5 offset changed", "memory map
// changed", "thread 812 status changed (SigIgn)", ...); nullopt when the two are equal. Thread and
// descriptor sets and the memory map are compared first.
std::optional<std::string> first_difference(const ProcessFingerprint& base,
                                            const ProcessFingerprint& now);

// When the two differ in nothing but offsets of regular files: the descriptors whose offset moved
// (empty when the two are equal). nullopt when anything else differs.
std::optional<std::vector<int>> offset_only_changes(const ProcessFingerprint& base,
                                                    const ProcessFingerprint& now);

}  // namespace relive::ha
