// The processes of a tree, found through /proc (the trees a migration moves and a checkpoint's
// pre-dump tracks), and signals to all of them at once: freezing for a switch-over, resuming
// after a failed migration, ending after a successful one.
#pragma once

#include <sys/types.h>

#include <vector>

#include "relive/result.h"

namespace relive {

// `root` and all its descendants (children listed in /proc/PID/task/*/children), root first.
// NotFound when `root` does not exist.
Result<std::vector<pid_t>> process_tree(pid_t root);

// The threads of process `pid` (/proc/PID/task), the process itself first; empty when it is
// gone.
std::vector<pid_t> threads_of(pid_t pid);

// The state letter of task (process or thread) `tid` in /proc/TID/stat: 'R', 'S', 'D', 'T' (job
// stop), 't' (ptrace stop), 'Z'...; '\0' when the task is gone or its stat cannot be read.
char task_state(pid_t tid);

// Sends `sig` to each of `pids`; those that are gone are ignored.
void signal_all(const std::vector<pid_t>& pids, int sig);

// Every process in the PID namespace whose init has global PID `init_pid` (the init included),
// as global PIDs.
std::vector<pid_t> namespace_members(pid_t init_pid);

}  // namespace relive
