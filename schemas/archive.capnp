# The relive container archive, format version 1 (container::kArchiveFormatVersion). This
# comment is the one description of the file layout; src/wire/archive_codec.* and
# src/wire/archive_reader.* implement it, src/wire/archive_types.h holds the plain C++ types.
#
# An archive is one file, written to a temporary name and renamed when complete:
#
#   header     offset  size  field
#                   0     8  magic "RLVCTAR\0"
#                   8     4  format version
#                  12     4  flags (0; any other value is rejected)
#                  16     4  manifest length (at most 16 MiB)
#                  20     8  XXH3-64 of the manifest bytes
#                  28     4  xxhash32 of header bytes 0..27
#   manifest   one Cap'n Proto message (flat array) whose root is ArchiveManifest
#   data       for each manifest entry, in manifest order, its bytes cut into chunks of
#              1 MiB (the last one shorter; an empty entry has no chunk), each chunk a frame:
#                   0     4  magic "RLCF"
#                   4     4  entry index (position in the manifest's entry list)
#                   8     4  chunk index within the entry: 0, 1, 2, ...
#                  12     4  raw length (exactly min(1 MiB, bytes of the entry left))
#                  16     4  compressed length (at most LZ4_compressBound(raw length))
#                  20     4  xxhash32 of the compressed bytes
#                  24     4  xxhash32 of frame bytes 0..23
#                  28     -  the LZ4 block (LZ4_compress_default) of the chunk
#   trailer         0     8  magic "RLVCTEND"
#                   8     8  length of the data section in bytes
#                  16     8  XXH3-64 of the manifest bytes (again: a truncated archive has no
#                            trailer, and a reader that streams can confirm the manifest it used)
#                  24     4  xxhash32 of trailer bytes 0..23
#              and nothing after it.
#
# Every entry's XXH3-128 (32 hex digits, of its uncompressed bytes) is in the manifest, so a
# reader verifies the whole archive before it restores anything. All integers are
# little-endian; xxhash32 is XXH32 with seed 0x52454c56 ("RELV"). The magic and the version
# keep their offsets in every format version.
#
# File-system state: for a process tree checkpointed by PID, CRIU's images already hold what
# the tree cannot find again on the destination: the contents of deleted-but-open files
# (ghost files, in ghost-file-*.img), pipe and socket queues, memfd contents. Regular files
# that still exist are restored by path and must exist on the destination. No entry of kind
# fsChange is written for such a tree; the kind is reserved for container root-fs changes.
#
# Evolution: only add fields; never renumber, retype or reuse an ordinal. Bump the format
# version when a reader of the old version would misread the new one.

@0xb7e4c1d2a3f59068;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("relive::wire");

enum ArchiveEntryKind {
  criuImage @0;  # a file of CRIU's images directory, restored by CRIU
  fsChange @1;   # reserved: a root-fs change of a container (not written in version 1)
}

struct ArchiveEntry {
  name @0 :Text;      # a plain file name: no '/', not "." or ".."; unique in the archive
  size @1 :UInt64;    # uncompressed bytes
  checksum @2 :Text;  # XXH3-128 of the uncompressed bytes, 32 lowercase hex digits
  kind @3 :ArchiveEntryKind;
}

struct ArchiveProcess {
  pid @0 :Int32;  # as dumped (in the source's PID namespace)
  ppid @1 :Int32;
  pgid @2 :Int32;
  sid @3 :Int32;
  threads @4 :UInt32;
  comm @5 :Text;
}

# Times CRIU measured while dumping, in microseconds; -1 when CRIU did not report one.
struct ArchiveDumpStats {
  freezingUs @0 :Int64;
  frozenUs @1 :Int64;
  memdumpUs @2 :Int64;
  memwriteUs @3 :Int64;
  pagesScanned @4 :UInt64;
  pagesWritten @5 :UInt64;
}

struct ArchiveManifest {
  formatVersion @0 :UInt32;
  sourceHost @1 :Text;
  kernel @2 :Text;          # uname -r and -v of the source
  criuVersion @3 :Text;
  createdRealtimeNs @4 :UInt64;
  reliveVersion @5 :Text;
  rootPid @6 :Int32;
  processes @7 :List(ArchiveProcess);
  entries @8 :List(ArchiveEntry);
  stats @9 :ArchiveDumpStats;
  tcpEstablished @10 :Bool;  # dumped with --tcp-established: restore needs it too
  fsNote @11 :Text;          # what file-system state the archive holds (see the header comment)
}
