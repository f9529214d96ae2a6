// The protected workload's file-system writes, shipped with each epoch. The primary scans the
// workload directory while the workload is frozen for the epoch's checkpoint (so the files match
// the memory and file offsets CRIU saw) and sends what changed since the last scan: whole new
// files, changed 64 KiB blocks of changed files, new sizes, removals, new directories and
// symlinks. The backup keeps a replica of the directory and applies an epoch's changes only when
// the epoch commits, so a half-received epoch never touches it.
//
// Change detection is by block hash: an append to a large file ships its last block or two, not
// the file. A file is not read again only when its size, mtime, ctime, inode and mode are those
// of the last scan and its timestamps were settled then (common/file_time.h: a write within the
// same clock tick would not have changed them), and when no workload process maps it shared and
// writable (such writes need not touch mtime at all). Regular files, directories and symlinks
// are replicated; other file types (sockets, FIFOs, devices) are refused by scan() because a
// restore could not reproduce them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "relive/result.h"
#include "security/channel.h"

namespace relive::ha {

struct DirChange {
  enum class Kind : uint32_t { kMkdir = 1, kSize = 2, kWrite = 3, kRemove = 4, kSymlink = 5 };
  Kind kind = Kind::kWrite;
  std::string path;    // relative to the directory, no "." or ".." components
  uint64_t value = 0;  // kSize: the file's size; kWrite: the offset; kMkdir/kSize: mode in mode
  uint32_t mode = 0;
  std::string data;  // kWrite: the bytes at `value`; kSymlink: the target
  bool operator==(const DirChange&) const = default;
};

class DirTracker {
 public:
  explicit DirTracker(std::string root) : root_(std::move(root)) {}

  // What changed since the last successful scan (everything on the first, or after reset()).
  // The tracker's idea of the replica advances only when commit() is called for that scan.
  // `writers`: the workload's processes; files they map shared and writable (now or at the
  // last scan) are always read in full.
  Result<std::vector<DirChange>> scan(const std::vector<pid_t>& writers = {});
  // The backup now has the last scan's changes.
  void commit();
  // The backup has nothing: the next scan reports the whole directory.
  void reset();

 private:
  struct FileState {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    bool settled = false;  // the timestamps were settled when read (common/file_time.h)
    ino_t ino = 0;
    uint32_t mode = 0;
    std::vector<uint64_t> block_hashes;
    std::string link_target;  // symlinks
    bool is_dir = false;
    bool is_link = false;
    bool operator==(const FileState&) const = default;
  };
  using Tree = std::map<std::string, FileState>;
  using FileId = std::pair<dev_t, ino_t>;
  Status walk(const std::string& rel, Tree* out, std::vector<DirChange>* changes);
  Status scan_file(const std::string& rel, FileState* st, bool mapped,
                   std::vector<DirChange>* changes);

  std::string root_;
  Tree committed_;
  Tree pending_;
  std::set<FileId> mapped_now_;   // mapped shared+writable at this scan
  std::set<FileId> mapped_last_;  // ... and at the last one
};

// Sends `changes` as bulk segments (after the caller sent the HaDir command announcing them).
Status send_dir_changes(security::Channel* channel, const std::vector<DirChange>& changes);
// Receives `count` changes; Corruption on a malformed event or an unsafe path; at most
// `max_bytes` of file content.
Result<std::vector<DirChange>> receive_dir_changes(security::Channel* channel, uint32_t count,
                                                   uint64_t max_bytes);
// Applies changes to the directory at `root` (created if needed), in order.
Status apply_dir_changes(const std::string& root, const std::vector<DirChange>& changes);
// The files that `pids` map shared and writable, as (device, inode).
std::set<std::pair<dev_t, ino_t>> shared_writable_files(const std::vector<pid_t>& pids);
// Content bytes of `changes`.
uint64_t dir_change_bytes(const std::vector<DirChange>& changes);

}  // namespace relive::ha
