// The seccomp-bpf program installed before exec: syscalls whose policy is kAllow (and anonymous
// mmaps) run without stopping; rseq fails with ENOSYS; every other syscall stops for the tracer.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "relive/status.h"

namespace relive::tracee {

std::vector<sock_filter> build_seccomp_filter();

// Installs the filter on the calling thread (after PR_SET_NO_NEW_PRIVS). Async-signal-safe enough
// to call between fork and exec: the program is built before fork.
int install_seccomp_filter(const std::vector<sock_filter>& program);

}  // namespace relive::tracee
