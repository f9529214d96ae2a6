// Containers: checkpoint a process tree into one portable, verified archive file, restore it
// (here or on another host) into a fresh PID namespace, and inspect an archive. The archive
// format is described in schemas/archive.capnp.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "relive/result.h"

namespace relive {

struct ContainerCheckpointOptions {
  pid_t pid = 0;                 // root of the tree to dump; or:
  std::string name;              // a runc container (exactly one of pid and name)
  bool whole_rootfs = false;     // runc: archive the whole rootfs, not only what changed
  std::string archive;           // the file to write; never left half-written
  bool leave_running = false;    // otherwise the tree is killed once it is safely dumped
  bool tcp_established = false;  // dump (and later restore) established TCP connections
  // Rounds of relive's dirty tracking before the dump (container/pre_dump.h). They copy memory
  // while the tree runs and report how much it writes, but do not shorten the freeze: without
  // soft-dirty bits CRIU's final dump writes every page.
  int pre_dump_rounds = 0;
  std::string work_dir;  // parent of the temporary images dir; empty: $TMPDIR or /tmp
  std::chrono::seconds criu_timeout{300};
  // Called with one line at each step ("phase=dump", "phase=pack bytes=N"); may be empty.
  std::function<void(const std::string&)> progress;
};

struct ContainerCheckpointResult {
  uint64_t archive_bytes = 0;
  uint64_t images_bytes = 0;  // uncompressed
  double frozen_ms = -1;      // how long CRIU kept the tree frozen
  uint64_t pages_written = 0;
  double dump_ms = 0;  // wall time of `criu dump`
  double pack_ms = 0;  // wall time of writing the archive
  size_t processes = 0;
  uint64_t rootfs_bytes = 0;  // runc: the size of the rootfs tar in the archive
  // With pre_dump_rounds: the pages each round copied, and those written after the last round
  // (what an incremental final dump would have had to add; CRIU's wrote pages_written).
  std::vector<uint64_t> pre_dump_pages;
  uint64_t pre_dump_final_dirty = 0;
  double pre_dump_ms = 0;
};

// Dumps the tree rooted at options.pid with CRIU and packs the images into options.archive.
// On any failure the archive does not exist afterwards and (CRIU's own guarantee on a failed
// dump) the tree keeps running.
// With options.name, the runc container of that name is checkpointed through `runc checkpoint`
// instead (src/container/runc_checkpoint.cc): it is paused, its bundle's config.json and rootfs
// changes are archived with CRIU's images, and it is resumed if anything fails; if packing fails
// after runc already ended it, it is restored from the images under its own name.
Result<ContainerCheckpointResult> checkpoint_container(const ContainerCheckpointOptions& options);

struct ContainerRestoreOptions {
  std::string archive;
  std::string name;    // a label for the restored tree: recorded in the state file; for an
                       // archive of a runc container, the new container's name (default: the old)
  std::string bundle;  // runc: the bundle to restore into (default: the source's bundle path)
  // Where restore state files go (<state_dir>/<name>.json); empty: /run/relive/containers.
  std::string state_dir;
  std::string work_dir;  // parent of the private unpack dir; empty: $TMPDIR or /tmp
  std::chrono::seconds criu_timeout{300};
  // Called with one line at each step ("phase=verify bytes=N", "phase=restore"); may be empty.
  std::function<void(const std::string&)> progress;
};

struct ContainerRestoreResult {
  pid_t root_pid = 0;      // the restored root, as seen from the caller's PID namespace
  pid_t ns_root_pid = 0;   // the same process inside its PID namespace (its dumped PID)
  pid_t init_pid = 0;      // the namespace's init (global PID); killing it ends the whole tree
  std::string state_file;  // empty when no name was given
  std::string runc_name;   // for a runc container: its name and bundle
  std::string bundle;
  double verify_ms = 0, unpack_ms = 0, restore_ms = 0;
};

// Verifies the whole archive (format version, every checksum) before anything else, unpacks it
// into a private directory and restores the tree with CRIU into a new PID namespace, so that its
// PIDs cannot clash with processes of this host. On failure nothing is left running. Call it
// from a single-threaded process (the namespace's init is forked from the caller).
// An archive of a runc container is restored as a runc container (`runc restore --detach`)
// instead: root_pid and init_pid are then its init, ns_root_pid is 1.
Result<ContainerRestoreResult> restore_container(const ContainerRestoreOptions& options);

// A description of an archive: manifest, process tree, memory, files, sockets, per-entry
// checksums (each verified). With `json`, one JSON object. A corrupt archive is a Corruption
// status whose message says where; the manifest, if it was readable, is still described in
// `*partial` (when not null).
Result<std::string> inspect_container(const std::string& archive, bool json,
                                      std::string* partial = nullptr);

}  // namespace relive
