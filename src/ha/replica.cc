#include "ha/replica.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <unistd.h>

#include <filesystem>

#include "common/file_util.h"
#include "common/logging.h"
#include "common/scoped_fd.h"
#include "common/subprocess.h"
#include "ha/patch_bundle.h"
#include "transfer/file_transfer.h"

namespace relive::ha {
namespace m = relive::migration;
namespace {

// `cp -a from to`, run directly (no shell).
Status copy_tree(const std::string& from, const std::string& to) {
  RELIVE_ASSIGN_OR_RETURN(RunResult r, relive::run({"/bin/cp", "-a", from, to},
                                                   {.timeout = std::chrono::seconds(120)}));
  if (!r.ok()) return Status::IoError("copying the committed epoch: " + r.output);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Replica>> Replica::open(const std::string& dir, uint64_t max_epoch_bytes) {
  RELIVE_RETURN_IF_ERROR(remove_tree(dir));
  RELIVE_RETURN_IF_ERROR(make_dirs(dir));
  return std::unique_ptr<Replica>(new Replica(dir, max_epoch_bytes));
}

Status Replica::begin(const m::HaEpoch& e) {
  if (staged_ && staged_->full_pages) (void)remove_tree(staged_->full_pages_dir);
  if (staged_) {
    for (const auto& [index, fd] : staged_->full_disks)
      ::unlink((disk_path(index) + ".new").c_str());
  }
  staged_.reset();
  ::unlink(spill_path().c_str());
  RELIVE_RETURN_IF_ERROR(remove_tree(staging()));
  RELIVE_RETURN_IF_ERROR(make_dirs(staging()));
  if (!e.full && !committed_) {
    return Status::Aborted(
        fmt::format("epoch {} is a delta, but this backup has no epoch yet", e.epoch));
  }
  if (e.patch && e.full) {
    return Status::Corruption(fmt::format("epoch {} is both full and a patch", e.epoch));
  }
  if (!e.full && e.epoch <= *committed_) {
    return Status::Aborted(
        fmt::format("epoch {} is not newer than the committed {}", e.epoch, *committed_));
  }
  Staged s;
  s.epoch = e;
  if (e.full) {
    s.full_pages_dir = fmt::format("{}/pages-{}", dir_, e.epoch);
    (void)remove_tree(s.full_pages_dir);
    RELIVE_ASSIGN_OR_RETURN(transfer::PageCache pc, transfer::PageCache::create(s.full_pages_dir));
    s.full_pages = std::make_unique<transfer::PageCache>(std::move(pc));
  }
  staged_.emplace(std::move(s));
  return Status::Ok();
}

Status Replica::receive_images(security::Channel* channel, const m::FileBatch& batch) {
  if (!staged_) return Status::Aborted("images outside an epoch");
  if (batch.dir != "images") return Status::InvalidArgument("unknown file batch " + batch.dir);
  RELIVE_RETURN_IF_ERROR(transfer::receive_files(channel, batch, staging()));
  staged_->images = true;
  return Status::Ok();
}

Status Replica::receive_pages(security::Channel* channel) {
  if (!staged_) return Status::Aborted("pages outside an epoch");
  Staged& s = *staged_;
  RELIVE_RETURN_IF_ERROR(transfer::read_page_round(
      channel, [&](pid_t pid, uint64_t vaddr, std::string_view pages) -> Status {
        if (pid >= kVmDiskPidBase) {
          return stage_disk(static_cast<uint32_t>(pid - kVmDiskPidBase), vaddr, pages);
        }
        if (s.full_pages) return s.full_pages->put(pid, vaddr, pages);
        if (s.page_bytes + pages.size() <= max_bytes_ && !s.spill.valid()) {
          s.page_bytes += pages.size();
          s.page_runs.emplace_back(pid, vaddr, std::string(pages));
          return Status::Ok();
        }
        // More than limits.max_epoch_bytes: the rest waits on disk (a failure to write it,
        // a full disk, refuses the epoch and keeps the last one).
        if (!s.spill.valid()) {
          s.spill.reset(::open(spill_path().c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
          if (!s.spill.valid()) return PosixError("create " + spill_path(), errno);
        }
        if (::pwrite(s.spill.get(), pages.data(), pages.size(),
                     static_cast<off_t>(s.spilled_bytes)) != static_cast<ssize_t>(pages.size())) {
          return PosixError("write " + spill_path(), errno == 0 ? ENOSPC : errno);
        }
        s.spilled.emplace_back(pid, vaddr, s.spilled_bytes, pages.size());
        s.spilled_bytes += pages.size();
        return Status::Ok();
      }));
  if (s.spill.valid()) {
    RELIVE_LOG_INFO(
        "epoch {}: {} MiB of its pages wait on disk (more than "
        "limits.max_epoch_bytes in memory)",
        s.epoch.epoch, s.spilled_bytes >> 20);
  }
  s.pages = true;
  return Status::Ok();
}

Status Replica::receive_dir(security::Channel* channel, const m::HaDir& d) {
  if (!staged_) return Status::Aborted("directory changes outside an epoch");
  RELIVE_ASSIGN_OR_RETURN(staged_->changes, receive_dir_changes(channel, d.changes, max_bytes_));
  staged_->dir = true;
  return Status::Ok();
}

Status Replica::commit(uint64_t epoch) {
  if (!staged_ || staged_->epoch.epoch != epoch) {
    return Status::Aborted(fmt::format("commit of epoch {}, which was not staged", epoch));
  }
  Staged& s = *staged_;
  if (!s.images || !s.pages || !s.dir) {
    return Status::Aborted(fmt::format("epoch {} is incomplete", epoch));
  }
  if (s.epoch.patch) RELIVE_RETURN_IF_ERROR(check_staged_patch());
  // Everything has arrived and been checked; from here on, only local writes.
  std::string files = dir_ + "/files";
  if (s.epoch.full) {
    RELIVE_RETURN_IF_ERROR(remove_tree(files));
    if (!pages_dir_.empty()) (void)remove_tree(pages_dir_);
    pages_ = std::move(s.full_pages);
    pages_dir_ = s.full_pages_dir;
  } else {
    for (const auto& [pid, vaddr, bytes] : s.page_runs) {
      RELIVE_RETURN_IF_ERROR(pages_->put(pid, vaddr, bytes));
    }
    std::string buf;
    for (const auto& [pid, vaddr, at, len] : s.spilled) {
      buf.resize(len);
      if (::pread(s.spill.get(), buf.data(), len, static_cast<off_t>(at)) !=
          static_cast<ssize_t>(len)) {
        return PosixError("read " + spill_path(), errno == 0 ? EIO : errno);
      }
      RELIVE_RETURN_IF_ERROR(pages_->put(pid, vaddr, buf));
    }
    if (s.spill.valid()) {
      s.spill.reset();
      ::unlink(spill_path().c_str());
    }
  }
  RELIVE_RETURN_IF_ERROR(commit_disks());
  RELIVE_RETURN_IF_ERROR(apply_dir_changes(files, s.changes));
  if (s.epoch.patch) {
    // A fast epoch: the base dump's images stay; the patch bundle it carries replaces the last
    // one (build() unpacks it over the base).
    std::string bundle = staging() + "/" + kPatchBundle;
    std::string to = dir_ + "/committed/" + kPatchBundle;
    if (::rename(bundle.c_str(), to.c_str()) != 0) return PosixError("rename " + to, errno);
    committed_ = epoch;
    staged_.reset();
    return Status::Ok();
  }
  std::string committed = dir_ + "/committed", old = dir_ + "/committed.old";
  RELIVE_RETURN_IF_ERROR(remove_tree(old));
  if (::rename(committed.c_str(), old.c_str()) != 0 && errno != ENOENT) {
    return PosixError("rename " + committed, errno);
  }
  if (::rename(staging().c_str(), committed.c_str()) != 0) {
    return PosixError("rename " + staging(), errno);
  }
  (void)remove_tree(old);
  committed_ = epoch;
  staged_.reset();
  return Status::Ok();
}

// A fast epoch carries one file, the patch bundle, and every file in it must decode.
Status Replica::check_staged_patch() const {
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(staging(), ec)) {
    if (f.path().filename() != kPatchBundle) {
      return Status::Corruption("a fast epoch carries " + f.path().filename().string());
    }
  }
  if (ec) return Status::IoError("listing " + staging() + ": " + ec.message());
  RELIVE_ASSIGN_OR_RETURN(std::string raw, read_file(staging() + "/" + kPatchBundle));
  RELIVE_ASSIGN_OR_RETURN(BundleFiles files, decode_patch_bundle(raw));
  return check_patch_bundle(files);
}

Status Replica::materialize(const std::string& images_out, const std::string& directory_out) {
  if (!committed_) return Status::Aborted("the backup has no committed epoch");
  if (stage_epoch_ == committed_) {
    if (Status s = use_stage(images_out, directory_out); s.ok()) return s;
  }
  return build(images_out, directory_out);
}

// Replaces what `directory_out` holds by a copy of `from`.
Status replace_directory(const std::string& from, const std::string& directory_out) {
  RELIVE_RETURN_IF_ERROR(make_dirs(directory_out));
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(directory_out, ec)) {
    RELIVE_RETURN_IF_ERROR(remove_tree(e.path().string()));
  }
  if (ec) return Status::IoError("listing " + directory_out + ": " + ec.message());
  return copy_tree(from + "/.", directory_out + "/");
}

Status Replica::build(const std::string& images_out, const std::string& directory_out) {
  RELIVE_RETURN_IF_ERROR(remove_tree(images_out));
  // cp -a keeps modes, times and sparse files; the copies are local, small next to the restore.
  RELIVE_RETURN_IF_ERROR(copy_tree(dir_ + "/committed", images_out));
  RELIVE_RETURN_IF_ERROR(replace_directory(dir_ + "/files", directory_out));
  // After fast epochs: their files (pagemaps among them) over the base's images.
  RELIVE_RETURN_IF_ERROR(unpack_patch_bundle(images_out));
  return pages_->rebuild_pages_images(images_out);
}

std::string Replica::stage_dir(uint64_t epoch) const {
  return fmt::format("{}/stage-{}", dir_, epoch);
}

Status Replica::use_stage(const std::string& images_out, const std::string& directory_out) {
  std::string stage = stage_dir(*stage_epoch_);
  stage_epoch_.reset();  // consumed, whatever happens below
  RELIVE_RETURN_IF_ERROR(remove_tree(images_out));
  std::string images = stage + "/images";
  if (::rename(images.c_str(), images_out.c_str()) != 0) {
    RELIVE_RETURN_IF_ERROR(copy_tree(images, images_out));  // another file system
  }
  Status s = replace_directory(stage + "/files", directory_out);
  (void)remove_tree(stage);
  return s;
}

Status Replica::stage() {
  if (!committed_) return Status::Aborted("the backup has no committed epoch");
  if (stage_epoch_ == committed_) return Status::Ok();
  if (stage_epoch_) {
    (void)remove_tree(stage_dir(*stage_epoch_));  // superseded by the newer commit
    stage_epoch_.reset();
  }
  std::string final_dir = stage_dir(*committed_), tmp = final_dir + ".tmp";
  RELIVE_RETURN_IF_ERROR(remove_tree(tmp));
  RELIVE_RETURN_IF_ERROR(make_dirs(tmp));
  Status s = build(tmp + "/images", tmp + "/files");
  if (s.ok()) {
    (void)remove_tree(final_dir);
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0) s = PosixError("rename " + tmp, errno);
  }
  if (!s.ok()) {
    (void)remove_tree(tmp);
    return s.with_context("staging epoch " + std::to_string(*committed_));
  }
  stage_epoch_ = committed_;
  return Status::Ok();
}

}  // namespace relive::ha

namespace relive::ha {

Status Replica::materialize_vm(const std::string& images_out, const std::string& ram_file,
                               uint64_t bytes) {
  if (!committed_) return Status::Aborted("the backup has no committed epoch");
  RELIVE_RETURN_IF_ERROR(remove_tree(images_out));
  RELIVE_RETURN_IF_ERROR(copy_tree(dir_ + "/committed", images_out));
  ::unlink(ram_file.c_str());
  ScopedFd fd(::open(ram_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return PosixError("create " + ram_file, errno);
  constexpr uint64_t kChunk = 2 << 20;
  std::string buf(kChunk, '\0');
  for (uint64_t off = 0; off < bytes; off += kChunk) {
    uint64_t len = std::min(kChunk, bytes - off);
    RELIVE_RETURN_IF_ERROR(pages_->read_run(kVmRamPid, off, len, buf.data()));
    if (::pwrite(fd.get(), buf.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len))
      return PosixError("write " + ram_file, errno);
  }
  return Status::Ok();
}

}  // namespace relive::ha

namespace relive::ha {

std::string Replica::disk_path(uint32_t index) const {
  return fmt::format("{}/disk-{}.raw", dir_, index);
}

Status Replica::stage_disk(uint32_t index, uint64_t offset, std::string_view bytes) {
  Staged& s = *staged_;
  if (index >= kMaxVmDisks) {
    return Status::Corruption(fmt::format("epoch {} names disk {}", s.epoch.epoch, index));
  }
  if (!s.epoch.full) {
    s.disk_bytes += bytes.size();
    if (s.disk_bytes + s.page_bytes > max_bytes_) {
      return Status::InvalidArgument(fmt::format(
          "epoch {} carries more than limits.max_epoch_bytes ({})", s.epoch.epoch, max_bytes_));
    }
    s.disk_writes.emplace_back(index, offset, std::string(bytes));
    return Status::Ok();
  }
  auto it = s.full_disks.find(index);
  if (it == s.full_disks.end()) {
    std::string path = disk_path(index) + ".new";
    ::unlink(path.c_str());
    ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return PosixError("create " + path, errno);
    it = s.full_disks.emplace(index, std::move(fd)).first;
  }
  s.disk_bytes += bytes.size();
  if (::pwrite(it->second.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset)) !=
      static_cast<ssize_t>(bytes.size())) {
    return PosixError("write " + disk_path(index) + ".new", errno);
  }
  return Status::Ok();
}

// A full epoch's copies replace the disks; a delta's writes go into them.
Status Replica::commit_disks() {
  Staged& s = *staged_;
  last_disk_bytes_ = s.disk_bytes;
  if (s.epoch.full) {
    for (uint32_t i = 0; i < kMaxVmDisks; ++i) {
      if (!s.full_disks.count(i)) ::unlink(disk_path(i).c_str());  // not part of the VM now
    }
    for (auto& [index, fd] : s.full_disks) {
      fd.reset();
      std::string path = disk_path(index);
      if (::rename((path + ".new").c_str(), path.c_str()) != 0)
        return PosixError("rename " + path + ".new", errno);
    }
    s.full_disks.clear();
    return Status::Ok();
  }
  std::map<uint32_t, ScopedFd> open;
  for (const auto& [index, offset, bytes] : s.disk_writes) {
    ScopedFd& fd = open[index];
    if (!fd.valid()) {
      fd = ScopedFd(::open(disk_path(index).c_str(), O_WRONLY | O_CLOEXEC));
      if (!fd.valid()) return PosixError("open " + disk_path(index), errno);
    }
    if (::pwrite(fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset)) !=
        static_cast<ssize_t>(bytes.size())) {
      return PosixError("write " + disk_path(index), errno);
    }
  }
  return Status::Ok();
}

Status Replica::take_disk(uint32_t index, const std::string& path) {
  if (!committed_) return Status::Aborted("the backup has no committed epoch");
  std::string from = disk_path(index);
  if (::access(from.c_str(), F_OK) != 0) {
    return Status::NotFound(fmt::format("the backup has no copy of disk {} ({})", index, from));
  }
  ::unlink(path.c_str());
  if (::rename(from.c_str(), path.c_str()) != 0) {
    RELIVE_RETURN_IF_ERROR(copy_tree(from, path));  // another file system
    ::unlink(from.c_str());
  }
  return Status::Ok();
}

}  // namespace relive::ha
