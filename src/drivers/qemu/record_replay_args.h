// Command lines for shipping a TCG guest's record/replay log (relive migrate --vm --strategy
// log-shipping). The source QEMU runs with `-icount shift=...,rr=record,rrfile=FILE`: a
// deterministic full-system recording. The destination runs the same command line twice:
//   1. replaying: rr=replay on its own copy of the log, paused at the end of the log instead of
//      exiting (`-action shutdown=pause`: the source's `quit` is the log's last event), with a
//      qcow2 image that only holds the internal snapshot taken at the end of the replay;
//   2. live: rr=record on a new log (QEMU refuses a snapshot with a "replay" section anywhere
//      else), `-loadvm` of that snapshot, so the VM continues where the source stopped.
#pragma once

#include <string>
#include <vector>

#include "relive/result.h"

namespace relive::qemu {

// The -icount option of a recording QEMU.
struct RecordOptions {
  std::string rrfile;      // the log, as given (relative to QEMU's working directory)
  std::string rrsnapshot;  // rrsnapshot=, "" when the recording started at boot
};

// The recording options of `args` (a QEMU argv). InvalidArgument when QEMU does not record:
// no -icount, no rr=record, or no rrfile=. Unsupported when the recording starts from a
// snapshot (rrsnapshot=, or -loadvm): the replay would need that snapshot, which is not shipped.
Result<RecordOptions> record_options(const std::vector<std::string>& args);

// The replaying destination's argv: migratable_args(args) with rr=replay,rrfile=`log` (no
// rrsnapshot), `-action shutdown=pause`, the snapshot image `snapshot_image` as an if=none
// drive, paused (-S), with a QMP monitor on `qmp_socket`.
Result<std::vector<std::string>> replay_args(const std::vector<std::string>& args,
                                             const std::string& log,
                                             const std::string& snapshot_image,
                                             const std::string& qmp_socket);

// The live destination's argv: migratable_args(args) recording anew into `log`, the same
// snapshot drive, `-loadvm tag`, paused (-S), with a QMP monitor on `qmp_socket`.
Result<std::vector<std::string>> live_args(const std::vector<std::string>& args,
                                           const std::string& log,
                                           const std::string& snapshot_image,
                                           const std::string& tag, const std::string& qmp_socket);

}  // namespace relive::qemu
