#include "trace/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "common/file_time.h"
#include "common/file_util.h"
#include "common/scoped_fd.h"

namespace relive::trace {
namespace {

constexpr size_t kChunkBytes = 1u << 20;

struct StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};

// Same digits as hash128_hex() in common/hash.h, which names the copies.
std::string hex128(XXH128_hash_t h) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

// Streams `fd` from its start to its end through XXH3-128 and, when out_fd >= 0, into out_fd:
// files may be far larger than memory. Returns the name of the contents.
Result<std::string> hash_stream(int fd, const std::string& path, int out_fd) {
  std::unique_ptr<XXH3_state_t, StateDeleter> state(XXH3_createState());
  if (!state || XXH3_128bits_reset(state.get()) != XXH_OK) {
    return Status::IoError("cannot allocate a hash state");
  }
  std::vector<char> buf(kChunkBytes);
  for (off_t offset = 0;;) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("read " + path, errno);
    if (n == 0) break;
    XXH3_128bits_update(state.get(), buf.data(), static_cast<size_t>(n));
    if (out_fd >= 0) RELIVE_RETURN_IF_ERROR(write_all(out_fd, std::string_view(buf.data(), n)));
    offset += n;
  }
  return hex128(XXH3_128bits_digest(state.get()));
}

// Read-only for everyone, executable where the original was: replay may exec the copy.
mode_t copy_mode(mode_t original) { return 0444 | (original & 0111); }

// Adds execute bits to an existing copy when a later original with the same contents had them.
Status ensure_mode(const std::string& path, mode_t want) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return PosixError("stat " + path, errno);
  if ((st.st_mode & want) == want) return Status::Ok();
  if (::chmod(path.c_str(), (st.st_mode & 07777) | want) != 0) {
    return PosixError("chmod " + path, errno);
  }
  return Status::Ok();
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

}  // namespace

Result<FileStore> FileStore::open(const std::string& files_dir) {
  RELIVE_RETURN_IF_ERROR(make_dirs(files_dir));
  return FileStore(files_dir);
}

bool FileStore::is_valid_name(std::string_view name) {
  if (name.size() != 32) return false;
  for (char c : name) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

FileStore::FileKey FileStore::key_of(const struct stat& st) {
  return {st.st_dev, st.st_ino, st.st_size, mtime_ns(st), ctime_ns(st)};
}

Result<std::string> FileStore::add(const std::string& path, Memo memo) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound(path + ": no such file");
    return PosixError("stat " + path, errno);
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + ": not a regular file");
  if (auto it = known_.find(key_of(st)); memo == Memo::kUse && it != known_.end())
    return it->second;

  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + path, errno);
  ++contents_read_;
  int64_t read_at = realtime_now_ns();
  struct stat before;
  if (::fstat(fd.get(), &before) != 0) return PosixError("fstat " + path, errno);
  RELIVE_ASSIGN_OR_RETURN(std::string name, add_from_fd(fd.get(), path, before.st_mode));
  // Remember the file only if it did not change while it was read, and only if its timestamps
  // were settled: a write in the same clock tick as its last one would not change its key, and
  // a later, unchanged stat would wrongly map new contents to this name.
  struct stat after;
  if (memo == Memo::kUse && ::fstat(fd.get(), &after) == 0 && key_of(after) == key_of(before) &&
      timestamps_settled(before, read_at)) {
    known_[key_of(before)] = name;
  }
  return name;
}

Result<std::string> FileStore::add_from_fd(int fd, const std::string& path, mode_t mode) {
  RELIVE_ASSIGN_OR_RETURN(std::string name, hash_stream(fd, path, -1));
  if (exists(path_of(name))) {
    RELIVE_RETURN_IF_ERROR(ensure_mode(path_of(name), copy_mode(mode)));
    return name;
  }
  return copy_in(fd, path, mode);
}

// Copies through a temporary file that is renamed to its content name only once complete, so a
// name in the store always holds whole contents (durable once sync() returns). The name comes
// from this second read: the file may have changed since it was first hashed.
Result<std::string> FileStore::copy_in(int fd, const std::string& path, mode_t mode) {
  std::string tmp =
      dir_ + "/.tmp-" + std::to_string(::getpid()) + "-" + std::to_string(tmp_counter_++);
  ScopedFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out.valid()) return PosixError("create " + tmp, errno);
  Result<std::string> name = hash_stream(fd, path, out.get());
  Status s = name.ok() ? Status::Ok() : name.status();
  if (s.ok() && ::fchmod(out.get(), copy_mode(mode)) != 0) s = PosixError("fchmod " + tmp, errno);
  // Start the writeback now; sync() waits for it. Only a hint: sync() is what must succeed.
  if (s.ok()) (void)::sync_file_range(out.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
  out.reset();
  if (s.ok() && ::rename(tmp.c_str(), path_of(*name).c_str()) != 0) {
    s = PosixError("rename " + tmp, errno);
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  unsynced_.push_back(*name);
  return name;
}

Status FileStore::sync() {
  if (unsynced_.empty()) return Status::Ok();
  for (const std::string& name : unsynced_) {
    ScopedFd fd(::open(path_of(name).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return PosixError("open " + path_of(name), errno);
    if (::fdatasync(fd.get()) != 0) return PosixError("fdatasync " + path_of(name), errno);
  }
  ScopedFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return PosixError("open " + dir_, errno);
  if (::fsync(dir.get()) != 0) return PosixError("fsync " + dir_, errno);
  unsynced_.clear();
  return Status::Ok();
}

Result<std::string> FileStore::verify(const std::string& name) const {
  if (!is_valid_name(name)) {
    return Status::Corruption("'" + name + "' is not the name of a stored file");
  }
  std::string path = path_of(name);
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return Status::Corruption(path + ": stored file is missing");
    return PosixError("open " + path, errno);
  }
  RELIVE_ASSIGN_OR_RETURN(std::string actual, hash_stream(fd.get(), path, -1));
  if (actual != name) {
    return Status::Corruption(path + ": contents hash to " + actual + ", not to their name");
  }
  return path;
}

}  // namespace relive::trace
