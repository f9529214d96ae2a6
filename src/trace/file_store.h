// FileStore: the trace's content-addressed copies of files (files/ in a trace directory). The
// recorder saves the executable, the interpreter and every mapped file as they were at record
// time, so that replay maps the same bytes even if the originals change; the replayer checks a
// copy against its name before it trusts it.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "relive/result.h"

namespace relive::trace {

// Not thread-safe: one recorder thread adds files.
class FileStore {
 public:
  // Opens the store in `files_dir`, creating the directory if needed.
  static Result<FileStore> open(const std::string& files_dir);

  // Saves the current contents of the regular file at `path` under the name
  // hash128_hex(contents) (common/hash.h) and returns that name. Contents already in the store
  // are not copied again, and a file already added and unchanged since (same device, inode,
  // size, mtime and ctime, and those timestamps were settled when it was read:
  // common/file_time.h) costs a single stat(2); a recently changed file is read again. A copy
  // is read-only and keeps the original's execute bits. NotFound if `path` does not exist.
  // With `memo` kReadAgain the file is read whatever its stat says (a file written through a
  // shared mapping changes without its timestamps moving) and not remembered.
  enum class Memo { kUse, kReadAgain };
  Result<std::string> add(const std::string& path, Memo memo = Memo::kUse);

  // Makes the copies added so far durable: their data, then the directory holding their names.
  // A copy is complete under its name as soon as add() returns (it is renamed there whole), but
  // it is synced here, once per recording, rather than one fdatasync per file as it is added:
  // the writeback add() starts runs meanwhile, and the syncs then share one journal commit
  // (a bare `relive record true` stores four files and spent ~9 ms of ~36 ms in their syncs).
  // A store cut short by a crash before sync() holds names whose contents may be torn;
  // verify() reports those as Corruption.
  Status sync();

  // Where the copy named `name` lives. Does not check that it exists; see verify().
  std::string path_of(const std::string& name) const { return dir_ + "/" + name; }

  // Checks that the copy named `name` exists and that its contents hash to its name; returns
  // its path. Corruption otherwise (including a name that is not 32 hex digits, which could
  // otherwise point outside the store).
  Result<std::string> verify(const std::string& name) const;

  // True for names add() produces: 32 lowercase hex digits.
  static bool is_valid_name(std::string_view name);

  const std::string& dir() const { return dir_; }
  // How many times add() read a file's contents (rather than trusting its memo).
  uint64_t contents_read() const { return contents_read_; }

 private:
  // What identifies an unchanged file without reading it.
  struct FileKey {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    auto operator<=>(const FileKey&) const = default;
  };
  static FileKey key_of(const struct stat& st);

  explicit FileStore(std::string dir) : dir_(std::move(dir)) {}
  Result<std::string> add_from_fd(int fd, const std::string& path, mode_t mode);
  Result<std::string> copy_in(int fd, const std::string& path, mode_t mode);

  std::string dir_;
  std::map<FileKey, std::string> known_;  // files added so far -> their names
  std::vector<std::string> unsynced_;     // names copied since the last sync()
  uint64_t tmp_counter_ = 0;
  uint64_t contents_read_ = 0;
};

}  // namespace relive::trace
