// Restoring a CRIU image into a fresh PID namespace, so that the restored tree gets back the
// PIDs it was dumped with without clashing with the host's processes (or with a source process
// that just died and was not reaped yet; see ENVIRONMENT.md).
//
// Why this way, with CRIU 4.1.1: CRIU restores PIDs into the PID namespace it runs in; it only
// creates namespaces that the dumped tree had (--namespaces at dump), and a tree dumped from
// the host's namespace has none. So relive makes the namespace itself: a forked child clones
// with CLONE_NEWPID | CLONE_NEWNS and becomes the namespace's init (PID 1). It mounts a private
// /proc there, because CRIU looks its restored tasks up by their namespace PIDs in /proc (with
// the host's /proc, `criu restore` fails at once: "vdso: Can't open 11/maps on procfs"). The
// init runs `criu restore --restore-detached` (the tree is reparented to it) and then stays
// alive reaping orphans until the last process of the tree has exited: a PID namespace dies
// with its init, and every process in it with it.
#pragma once

#include <sys/types.h>

#include <string>

#include "drivers/criu/criu.h"
#include "relive/result.h"

namespace relive::container {

struct NamespaceRestore {
  pid_t init_pid = 0;     // the namespace's init, as seen from the caller; not our child
  pid_t ns_root_pid = 0;  // the restored root inside the namespace (its dumped PID)
  pid_t root_pid = 0;     // the restored root, as seen from the caller
};

// Runs criu::restore(options) as described above. options.as_child must be false (the tree is
// the init's, not ours). The caller must be single-threaded: the init is a fork() of it that
// goes on to allocate and spawn CRIU, which another thread holding a libc lock would deadlock. On
// failure the namespace is gone (its init exited, killing anything CRIU had started in it) and the
// Status is CRIU's error.
Result<NamespaceRestore> restore_in_new_pid_namespace(const criu::RestoreOptions& options);

// The PID, in the caller's namespace, of the process that has PID `ns_pid` in the PID namespace
// whose init has global PID `init_pid`; found through /proc/*/status NSpid lines.
Result<pid_t> global_pid_in_namespace(pid_t init_pid, pid_t ns_pid);

}  // namespace relive::container
