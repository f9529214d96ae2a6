# The migration commands, version 1: the bodies of the control protocol's Request messages
# (schemas/protocol.capnp, Request.body) that a source sends to the destination's relived while
# it migrates a workload. Request.command names the union member ("migrate.begin" for begin,
# "migrate.files" for files, ...); src/wire/migration_codec.* converts, src/wire/migration_types.h
# holds the plain C++ types, and src/migrate/ drives the exchange:
#
#   source                               destination (relived)
#   begin                        ->      checks it can host the workload; Ack
#   files (+ bulk segments)      ->      stores the files, checks each checksum; Ack
#   pages (+ bulk segments)      ->      pre-copy round: writes pages into its page cache; Ack
#   log (+ bulk segments)        ->      CR/TR round: appends to the trace, replays it; Ack
#   verify                       ->      CR/TR: replay done, memory checked; Ack (verify: pages that differ)
#   restore                      ->      takes the service address, restores, runs; Ack (outcome)
#   commit / abort               ->      the source has ended / the migration is off; Ack
#
# The relived HA pair (src/ha/) holds the same kind of conversation, primary to backup, once per
# epoch: haEpoch, then files (the epoch's CRIU images but its pages), pages (the pages that
# changed since the last epoch, or all of them when `full`), haDir (+ bulk segments: the
# workload directory's changes, src/ha/dir_sync.h), haCommit (the backup applies the epoch
# atomically, then acks: only now may the primary release the epoch's output). haHeartbeat
# keeps an idle link alive; haStatus and haSwitchover come from `relive ha`.
#
# A VM (kind vm) migrates through QEMU's own migration stream, QEMU to QEMU; the control link
# only sets it up and decides the switch-over:
#   begin (vmArgs, capabilities) ->      starts QEMU -incoming, paused; Ack (vmBegin: its port, pid)
#     (vmDisks: first creates an image per disk and starts QEMU on them, exporting them over
#     NBD with QEMU's TLS: the Ack's nbdPort; the source mirrors each disk there, and switches
#     over once every mirror is in sync)
#   vmProgress (JSON)            ->      the source QEMU's query-migrate, at least every few
#                                        seconds (it also keeps the link alive); Ack
#   commit                       ->      lets the VM run here (QEMU cont); Ack once it runs
#   abort                        ->      kills the incoming QEMU; Ack
#
# Replies: an Ack (schemas/protocol.capnp) carries a MigrationReply, flat, in its `reply` field;
# src/wire/migration_codec.* converts. A reply that leaves out a field reads as its default.

# Bulk data follows its command as LZ4 segments (schemas/trace.capnp describes the segment
# format); each segment event starts with an 8-byte little-endian header: files: u32 file index,
# u32 zero; pages: u32 pid, u32 page count, then u64 vaddr, then the pages; a page round ends
# with an event of pid 0 and 0 pages.
#
# Evolution: only add fields and union members; never renumber, retype or reuse an ordinal.

@0xc3b1f7a05e9d2c44;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("relive::wire");

enum WorkloadKind {
  process @0;      # one process (relive migrate --pid)
  processTree @1;  # a process tree (relive container migrate --pid)
  runc @2;         # a runc container
  vm @3;           # a QEMU virtual machine (relive migrate --vm)
}

enum Strategy {
  stopCopy @0;
  precopy @1;
  postcopy @2;
  crtr @3;
  logShipping @4;  # vm: QEMU record/replay log shipped to a replaying QEMU (docs/vm.md)
}

struct Begin {
  kind @0 :WorkloadKind;
  strategy @1 :Strategy;
  name @2 :Text;            # container name, or a label
  serviceAddress @3 :Text;  # "198.18.0.100/24": moved with the workload; "" for none
  tcpEstablished @4 :Bool;
  sourceNode @5 :Text;
  rootPid @6 :Int32;
  vmArgs @7 :List(Text);          # vm: QEMU's command line, monitors removed (argv[0] a basename)
  vmCapabilities @8 :List(Text);  # vm: migration capabilities both QEMUs need ("postcopy-ram")
  vmMultifdChannels @9 :UInt8;    # vm: with the "multifd" capability
  vmTapMac @10 :Text;             # vm with serviceAddress: the MAC of the source host's tap
  vmDisks @11 :List(VmDisk);      # vm: its disks; empty (an older source) keeps them in place
  vmSharedStorage @12 :Bool;      # vm: the disks stay where they are (each path must exist there)
}

# A VM's disk (storage migration): the destination creates an image like it and exports it over
# NBD (TLS) for the source's mirror; with vmSharedStorage it only checks that `path` exists.
struct VmDisk {
  device @0 :Text;        # the drive's id (-drive id=), also the NBD export's name
  path @1 :Text;          # the image at the source
  format @2 :Text;        # "raw" or "qcow2"
  virtualSize @3 :UInt64; # bytes
  backingFile @4 :Text;   # a qcow2 overlay's base (the same path at the destination); "" for none
  backingFormat @5 :Text;
  backingHash @6 :Text;   # XXH3-128 of the base file, 32 hex digits: the destination's must match
}

struct FileEntry {
  name @0 :Text;      # relative path inside `dir`, no ".." components
  size @1 :UInt64;
  checksum @2 :Text;  # XXH3-128, 32 lowercase hex digits
}

struct FileBatch {
  dir @0 :Text;  # "images", "trace", ...: where at the destination
  files @1 :List(FileEntry);
}

struct PageRound {
  round @0 :UInt32;
  pages @1 :UInt64;  # pages in the bulk segments that follow
}

struct LogRound {
  round @0 :UInt32;
  bytes @1 :UInt64;  # trace event bytes that follow (whole segments of the trace's log)
  final @2 :Bool;    # the source is frozen: this is the last round
  icount @3 :UInt64;  # vm log shipping: the replay may run up to this guest instruction count
}

struct Restore {
  lazyPagesAddress @0 :Text;  # post-copy: where the source's CRIU page server listens
  lazyPagesPort @1 :UInt16;
  pagesFromCache @2 :Bool;    # pre-copy: rebuild pages images from the page cache + shipped delta
  pagesFromReplay @3 :Bool;   # CR/TR: pages images from the replayed process (+ shipped pages)
  frozenMs @4 :Float64;       # how long the workload had been frozen when the source sent this
                              # (0: not said); the destination adds its own time to the resume
                              # for its downtime metric (docs/metrics.md)
}

struct HaEpoch {
  epoch @0 :UInt64;
  full @1 :Bool;      # a full sync: the backup starts over from this epoch alone
  primary @2 :Text;   # the sender's peer name
  patch @3 :Bool;     # a fast epoch: its images replace only the committed files they name
}

struct HaDir {
  changes @0 :UInt32;  # change events in the bulk segments that follow
  bytes @1 :UInt64;    # file content bytes among them
}

struct MigrationCommand {
  union {
    begin @0 :Begin;
    files @1 :FileBatch;
    pages @2 :PageRound;
    log @3 :LogRound;
    restore @4 :Restore;
    commit @5 :Void;
    abort @6 :Text;  # why
    verify @7 :Void;  # CR/TR: finish the replay, compare its memory with the source's page hashes
    haEpoch @8 :HaEpoch;
    haDir @9 :HaDir;
    haCommit @10 :UInt64;     # the epoch number
    haHeartbeat @11 :UInt64;  # the last epoch the sender committed
    haStatus @12 :Void;       # Ack detail: the node's status as JSON
    haSwitchover @13 :Void;   # to the primary: hand over to the backup without losing anything
    vmProgress @14 :Text;  # vm: the source QEMU's query-migrate answer, JSON
  }
}

struct PageRange {
  start @0 :UInt64;  # virtual address of the first page
  pages @1 :UInt64;
}

struct OutcomeReply {   # restore and commit: the restored workload
  rootPid @0 :Int32;    # its root (a VM: QEMU's pid)
  restoreMs @1 :Float64;
  confirmMs @2 :Float64;  # from the restore until it was seen running
}

struct VerifyReply {    # CR/TR verify
  differing @0 :List(PageRange);  # pages the replay did not reproduce
  replayedEvents @1 :UInt64;
}

struct VmBeginReply {   # a VM destination's answer to begin
  port @0 :UInt16;      # where its incoming QEMU listens (0 for log shipping)
  pid @1 :Int32;
  dir @2 :Text;         # its VM directory
  nbdPort @3 :UInt16;   # storage migration: where its NBD server (TLS) exports the new disks
}

struct LogRoundReply {  # VM log shipping: where the replay stands
  icount @0 :UInt64;    # a round that is not the last: the replay's instruction count
  replayMs @1 :Float64; # the last round: the final replay, savevm and loadvm times
  savevmMs @2 :Float64;
  loadMs @3 :Float64;
  logBytesBehind @4 :UInt64;  # a process's CR/TR round: log bytes its replay has not caught up on
  hashingBehind @5 :Bool;     # ... and its replayed memory not hashed once yet (freeze would wait)
}

struct MigrationReply {
  union {
    none @0 :Void;
    outcome @1 :OutcomeReply;
    verify @2 :VerifyReply;
    vmBegin @3 :VmBeginReply;
    logRound @4 :LogRoundReply;
  }
}
