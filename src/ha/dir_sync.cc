#include "ha/dir_sync.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/file_time.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/scoped_fd.h"
#include "transfer/bulk.h"
#include "transfer/file_transfer.h"

namespace relive::ha {
namespace {

constexpr uint64_t kBlock = 64 * 1024;
constexpr uint64_t kMaxWrite = 1 << 20;  // one kWrite event carries at most this much

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "/" + b; }

bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

}  // namespace

std::set<std::pair<dev_t, ino_t>> shared_writable_files(const std::vector<pid_t>& pids) {
  std::set<std::pair<dev_t, ino_t>> out;
  for (pid_t pid : pids) {
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    for (std::string line; std::getline(maps, line);) {
      // start-end perms offset major:minor inode path
      std::istringstream in(line);
      std::string range, perms, offset, dev;
      unsigned long long inode = 0;
      if (!(in >> range >> perms >> offset >> dev >> inode) || inode == 0) continue;
      if (perms.size() < 4 || perms[1] != 'w' || perms[3] != 's') continue;
      unsigned major = 0, minor = 0;
      if (std::sscanf(dev.c_str(), "%x:%x", &major, &minor) != 2) continue;
      out.insert({makedev(major, minor), static_cast<ino_t>(inode)});
    }
  }
  return out;
}

Result<std::vector<DirChange>> DirTracker::scan(const std::vector<pid_t>& writers) {
  mapped_now_ = shared_writable_files(writers);
  Tree now;
  std::vector<DirChange> writes;
  RELIVE_RETURN_IF_ERROR(make_dirs(root_));
  RELIVE_RETURN_IF_ERROR(walk("", &now, &writes));
  std::vector<DirChange> out;
  // Removals first (a path may change type), then directories parents first (map order), then
  // file contents.
  for (const auto& [path, old] : committed_) {
    auto it = now.find(path);
    if (it == now.end() || it->second.is_dir != old.is_dir || it->second.is_link != old.is_link ||
        (old.is_link && it->second.link_target != old.link_target)) {
      out.push_back({DirChange::Kind::kRemove, path, 0, 0, ""});
    }
  }
  for (const auto& [path, st] : now) {
    auto it = committed_.find(path);
    bool is_new = it == committed_.end() || it->second.is_dir != st.is_dir ||
                  it->second.is_link != st.is_link;
    if (st.is_dir && (is_new || it->second.mode != st.mode)) {
      out.push_back({DirChange::Kind::kMkdir, path, 0, st.mode, ""});
    } else if (st.is_link && (is_new || it->second.link_target != st.link_target)) {
      out.push_back({DirChange::Kind::kSymlink, path, 0, 0, st.link_target});
    }
  }
  for (DirChange& w : writes) out.push_back(std::move(w));
  pending_ = std::move(now);
  mapped_last_ = mapped_now_;
  return out;
}

void DirTracker::commit() { committed_ = pending_; }

void DirTracker::reset() {
  committed_.clear();
  pending_.clear();
  mapped_last_.clear();
}

Status DirTracker::walk(const std::string& rel, Tree* out, std::vector<DirChange>* changes) {
  std::string dir_path = join(root_, rel);
  DIR* d = ::opendir(dir_path.c_str());
  if (d == nullptr) return PosixError("open directory " + dir_path, errno);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    std::string path = join(rel, n), full = root_ + "/" + path;
    int64_t read_at = realtime_now_ns();
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;  // removed while we looked: the next epoch sees it gone
      return PosixError("stat " + full, errno);
    }
    FileState fs;
    fs.mode = st.st_mode & 07777;
    if (S_ISDIR(st.st_mode)) {
      fs.is_dir = true;
      (*out)[path] = fs;
      RELIVE_RETURN_IF_ERROR(walk(path, out, changes));
    } else if (S_ISLNK(st.st_mode)) {
      fs.is_link = true;
      char buf[4096];
      ssize_t len = ::readlink(full.c_str(), buf, sizeof buf);
      if (len < 0) return PosixError("readlink " + full, errno);
      fs.link_target.assign(buf, static_cast<size_t>(len));
      (*out)[path] = fs;
    } else if (S_ISREG(st.st_mode)) {
      fs.size = static_cast<uint64_t>(st.st_size);
      fs.mtime_ns = mtime_ns(st);
      fs.ctime_ns = ctime_ns(st);
      fs.settled = timestamps_settled(st, read_at);
      fs.ino = st.st_ino;
      FileId id{st.st_dev, st.st_ino};
      bool mapped = mapped_now_.count(id) != 0 || mapped_last_.count(id) != 0;
      RELIVE_RETURN_IF_ERROR(scan_file(path, &fs, mapped, changes));
      (*out)[path] = std::move(fs);
    } else {
      return Status::Unsupported(fmt::format(
          "{} is neither a regular file, a directory nor a symlink: it cannot be replicated",
          full));
    }
  }
  return Status::Ok();
}

Status DirTracker::scan_file(const std::string& rel, FileState* st, bool mapped,
                             std::vector<DirChange>* changes) {
  auto it = committed_.find(rel);
  const FileState* old =
      it != committed_.end() && !it->second.is_dir && !it->second.is_link ? &it->second : nullptr;
  if (old != nullptr && old->settled && !mapped && old->size == st->size &&
      old->mtime_ns == st->mtime_ns && old->ctime_ns == st->ctime_ns && old->ino == st->ino &&
      old->mode == st->mode) {
    st->block_hashes = old->block_hashes;
    return Status::Ok();
  }
  bool fresh = old == nullptr || old->ino != st->ino;
  // A fresh file (new, or replaced by another inode) starts from empty on the backup, so that
  // the zero blocks skipped below are zero there too.
  if (fresh) changes->push_back({DirChange::Kind::kSize, rel, 0, st->mode, ""});
  if (fresh || old->size != st->size || old->mode != st->mode) {
    changes->push_back({DirChange::Kind::kSize, rel, st->size, st->mode, ""});
  }
  ScopedFd fd(::open((root_ + "/" + rel).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + root_ + "/" + rel, errno);
  std::string block(kBlock, '\0');
  DirChange* run = nullptr;  // the kWrite being extended by consecutive changed blocks
  for (uint64_t off = 0;; off += kBlock) {
    ssize_t n = ::pread(fd.get(), block.data(), kBlock, static_cast<off_t>(off));
    if (n < 0) return PosixError("read " + rel, errno);
    if (n == 0) break;
    std::string_view data(block.data(), static_cast<size_t>(n));
    uint64_t h = hash64(data);
    size_t index = st->block_hashes.size();
    st->block_hashes.push_back(h);
    bool same = !fresh && index < old->block_hashes.size() && old->block_hashes[index] == h &&
                (off + static_cast<uint64_t>(n) <= old->size);
    if (same || (fresh && all_zero(data))) {
      run = nullptr;
      continue;
    }
    if (run != nullptr && run->data.size() + data.size() <= kMaxWrite) {
      run->data.append(data);
    } else {
      changes->push_back({DirChange::Kind::kWrite, rel, off, 0, std::string(data)});
      run = &changes->back();
    }
    if (static_cast<uint64_t>(n) < kBlock) break;
  }
  // The file may have grown while we read it; what we read is what the block hashes describe.
  return Status::Ok();
}

Status send_dir_changes(security::Channel* channel, const std::vector<DirChange>& changes) {
  transfer::BulkSender out(channel);
  for (const DirChange& c : changes) {
    std::string ev =
        transfer::event_header(static_cast<uint32_t>(c.kind), static_cast<uint32_t>(c.path.size()));
    transfer::append_u64(&ev, c.value);
    transfer::append_u64(&ev, c.mode);
    ev += c.path;
    ev += c.data;
    RELIVE_RETURN_IF_ERROR(out.add(ev));
  }
  // An empty epoch still sends one (empty) segment so that the receiver's read ends.
  std::string end = transfer::event_header(0, 0);
  transfer::append_u64(&end, 0);
  transfer::append_u64(&end, 0);
  RELIVE_RETURN_IF_ERROR(out.add(end));
  return out.flush();
}

Result<std::vector<DirChange>> receive_dir_changes(security::Channel* channel, uint32_t count,
                                                   uint64_t max_bytes) {
  transfer::BulkReceiver in(channel);
  std::vector<DirChange> out;
  uint64_t bytes = 0;
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> events, in.next());
    for (const std::string& ev : events) {
      if (ev.size() < 24) return Status::Corruption("directory change event too short");
      uint32_t kind = transfer::event_u32(ev, 0), path_len = transfer::event_u32(ev, 4);
      if (kind == 0) {
        if (out.size() != count) {
          return Status::Corruption(
              fmt::format("epoch announced {} directory changes, carried {}", count, out.size()));
        }
        return out;
      }
      if (kind > static_cast<uint32_t>(DirChange::Kind::kSymlink) || 24 + path_len > ev.size()) {
        return Status::Corruption("malformed directory change event");
      }
      DirChange c;
      c.kind = static_cast<DirChange::Kind>(kind);
      c.value = transfer::event_u64(ev, 8);
      c.mode = static_cast<uint32_t>(transfer::event_u64(ev, 16) & 07777);
      c.path = ev.substr(24, path_len);
      c.data = ev.substr(24 + path_len);
      if (!transfer::safe_relative_name(c.path)) {
        return Status::Corruption("directory change names an unsafe path: " + c.path);
      }
      bytes += c.data.size();
      if (bytes > max_bytes || out.size() >= count) {
        return Status::Corruption("directory changes exceed what the epoch announced");
      }
      out.push_back(std::move(c));
    }
  }
}

Status apply_dir_changes(const std::string& root, const std::vector<DirChange>& changes) {
  RELIVE_RETURN_IF_ERROR(make_dirs(root));
  for (const DirChange& c : changes) {
    std::string path = root + "/" + c.path;
    switch (c.kind) {
      case DirChange::Kind::kRemove: {
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) break;  // gone with its parent already
        if (S_ISDIR(st.st_mode)) {
          RELIVE_RETURN_IF_ERROR(remove_tree(path));
        } else if (::unlink(path.c_str()) != 0) {
          return PosixError("remove " + path, errno);
        }
        break;
      }
      case DirChange::Kind::kMkdir:
        if (::mkdir(path.c_str(), c.mode) != 0 && errno != EEXIST) {
          return PosixError("mkdir " + path, errno);
        }
        if (::chmod(path.c_str(), c.mode) != 0) return PosixError("chmod " + path, errno);
        break;
      case DirChange::Kind::kSymlink:
        if (::symlink(c.data.c_str(), path.c_str()) != 0) {
          return PosixError("symlink " + path, errno);
        }
        break;
      case DirChange::Kind::kSize: {
        ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, c.mode));
        if (!fd.valid()) return PosixError("create " + path, errno);
        if (::ftruncate(fd.get(), static_cast<off_t>(c.value)) != 0 ||
            ::fchmod(fd.get(), c.mode) != 0) {
          return PosixError("resize " + path, errno);
        }
        break;
      }
      case DirChange::Kind::kWrite: {
        ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
        if (!fd.valid()) return PosixError("open " + path, errno);
        if (::pwrite(fd.get(), c.data.data(), c.data.size(), static_cast<off_t>(c.value)) !=
            static_cast<ssize_t>(c.data.size())) {
          return PosixError("write " + path, errno);
        }
        break;
      }
    }
  }
  return Status::Ok();
}

uint64_t dir_change_bytes(const std::vector<DirChange>& changes) {
  uint64_t n = 0;
  for (const DirChange& c : changes) n += c.data.size();
  return n;
}

}  // namespace relive::ha
