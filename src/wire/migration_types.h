// Plain C++ types of the migration commands (schemas/migration.capnp, whose header comment
// describes the exchange). Free of Cap'n Proto; src/wire/migration_codec.h converts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "relive/result.h"

namespace relive::migration {

enum class WorkloadKind : uint8_t { kProcess, kProcessTree, kRunc, kVm };
enum class Strategy : uint8_t { kStopCopy, kPrecopy, kPostcopy, kCrtr, kLogShipping };

// A VM's disk for storage migration (schemas/migration.capnp, VmDisk).
struct VmDisk {
  std::string device;  // -drive id=, the NBD export's name
  std::string path;    // the image at the source
  std::string format;  // "raw" or "qcow2"
  uint64_t virtual_size = 0;
  std::string backing_file;  // qcow2 overlay: its base, same path at the destination
  std::string backing_format;
  std::string backing_hash;  // XXH3-128 hex of the base file
  bool operator==(const VmDisk&) const = default;
};

struct Begin {
  WorkloadKind kind = WorkloadKind::kProcess;
  Strategy strategy = Strategy::kStopCopy;
  std::string name;
  std::string service_address;  // CIDR, "" for none
  bool tcp_established = false;
  std::string source_node;
  int32_t root_pid = 0;
  std::vector<std::string> vm_args;          // kVm: QEMU's command line (vm_command_line.h)
  std::vector<std::string> vm_capabilities;  // kVm: capabilities the destination enables too
  uint8_t vm_multifd_channels = 0;
  // kVm with service_address: the source host's tap MAC, which the destination's tap takes
  // (the guest's ARP cache points at it).
  std::string vm_tap_mac;
  // kVm: the disks the destination creates and the source mirrors into (none: they stay where
  // they are, as an older source expects); with vm_shared_storage they only must exist there.
  std::vector<VmDisk> vm_disks;
  bool vm_shared_storage = false;
  bool operator==(const Begin&) const = default;
};

struct FileEntry {
  std::string name;
  uint64_t size = 0;
  std::string checksum;  // XXH3-128 hex
  bool operator==(const FileEntry&) const = default;
};

struct FileBatch {
  std::string dir;
  std::vector<FileEntry> files;
  bool operator==(const FileBatch&) const = default;
};

struct PageRound {
  uint32_t round = 0;
  uint64_t pages = 0;
  bool operator==(const PageRound&) const = default;
};

struct LogRound {
  uint32_t round = 0;
  uint64_t bytes = 0;
  bool final = false;
  uint64_t icount = 0;  // VM log shipping: the replay may run up to here (0: no limit)
  bool operator==(const LogRound&) const = default;
};

struct Restore {
  std::string lazy_pages_address;
  uint16_t lazy_pages_port = 0;
  bool pages_from_cache = false;
  bool pages_from_replay = false;
  double frozen_ms = 0;  // the workload's downtime so far, as the source measured it (0: unknown)
  bool operator==(const Restore&) const = default;
};

struct Commit {
  bool operator==(const Commit&) const = default;
};

struct Abort {
  std::string reason;
  bool operator==(const Abort&) const = default;
};

struct Verify {
  bool operator==(const Verify&) const = default;
};

// A VM's migration progress (the source QEMU's query-migrate, JSON); also the link's keepalive.
struct VmProgress {
  std::string json;
  bool operator==(const VmProgress&) const = default;
};

// The HA pair's commands (src/ha/), carried by the same conversation.
struct HaEpoch {
  uint64_t epoch = 0;
  bool full = false;
  std::string primary;
  bool patch = false;  // a fast epoch: its images replace only the committed files they name
  bool operator==(const HaEpoch&) const = default;
};

struct HaDir {
  uint32_t changes = 0;
  uint64_t bytes = 0;
  bool operator==(const HaDir&) const = default;
};

struct HaCommit {
  uint64_t epoch = 0;
  bool operator==(const HaCommit&) const = default;
};

struct HaHeartbeat {
  uint64_t committed = 0;
  bool operator==(const HaHeartbeat&) const = default;
};

struct HaStatus {
  bool operator==(const HaStatus&) const = default;
};

struct HaSwitchover {
  bool operator==(const HaSwitchover&) const = default;
};

using Command =
    std::variant<Begin, FileBatch, PageRound, LogRound, Restore, Commit, Abort, Verify, HaEpoch,
                 HaDir, HaCommit, HaHeartbeat, HaStatus, HaSwitchover, VmProgress>;

// The destination's typed replies (MigrationReply in schemas/migration.capnp), carried in an
// Ack. A field the peer left out reads as its default.
struct PageRange {
  uint64_t start = 0;
  uint64_t pages = 0;
  bool operator==(const PageRange&) const = default;
};

struct OutcomeReply {  // restore, commit
  int32_t root_pid = 0;
  double restore_ms = 0;
  double confirm_ms = 0;
  bool operator==(const OutcomeReply&) const = default;
};

struct VerifyReply {  // CR/TR verify
  std::vector<PageRange> differing;
  uint64_t replayed_events = 0;
  bool operator==(const VerifyReply&) const = default;
};

struct VmBeginReply {  // a VM destination's begin
  uint16_t port = 0;
  int32_t pid = 0;
  std::string dir;
  uint16_t nbd_port = 0;  // storage migration: the NBD server exporting the new disks
  bool operator==(const VmBeginReply&) const = default;
};

struct LogRoundReply {  // VM log shipping; a process's CR/TR round
  uint64_t icount = 0;
  double replay_ms = 0;
  double savevm_ms = 0;
  double load_ms = 0;
  // CR/TR of a process: the log bytes appended since the destination's replay last ran out of
  // log (an upper bound on how far behind it is).
  uint64_t log_bytes_behind = 0;
  // ... and the replayed memory has not been hashed once yet: a freeze now would wait for it.
  bool hashing_behind = false;
  bool operator==(const LogRoundReply&) const = default;
};

using Reply = std::variant<std::monostate, OutcomeReply, VerifyReply, VmBeginReply, LogRoundReply>;

// The reply's member of MigrationReply's union: "none", "outcome", "verify", "vmBegin",
// "logRound".
const char* reply_kind_name(const Reply& reply);

// The reply of kind T that the command answered by `reply` expects (OutcomeReply for a restore
// or a commit, VmBeginReply, ...): Corruption naming `what`, the kind that came and the kind
// expected when the peer answered with another.
template <typename T>
Result<T> reply_as(const Reply& reply, std::string_view what) {
  if (const T* r = std::get_if<T>(&reply)) return *r;
  return Status::Corruption(std::string(what) + ": the peer answered with a '" +
                            reply_kind_name(reply) + "' reply, expected '" +
                            reply_kind_name(Reply{T{}}) + "'");
}

// The Request.command string of each alternative: "migrate.begin", "migrate.files", ...,
// "ha.epoch", ...
const char* command_name(const Command& command);

const char* strategy_name(Strategy s);
const char* workload_kind_name(WorkloadKind k);

}  // namespace relive::migration
