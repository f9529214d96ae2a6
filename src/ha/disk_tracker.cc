#include "ha/disk_tracker.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <thread>
#include <utility>

#include "common/json_field.h"
#include "common/scoped_fd.h"
#include "ha/nbd_library.h"

namespace relive::ha {
namespace {

constexpr uint64_t kBlock = 4096;        // bitmap granularity, and the unit runs are shipped in
constexpr uint64_t kChunk = 4ull << 20;  // one NBD read, one shipped run at most
constexpr auto kExportGone = std::chrono::seconds(10);

// A libnbd handle, closed with it; `lib` is the library that made it.
class Nbd {
 public:
  Nbd(const NbdLibrary* lib, nbd_handle* h) : lib_(lib), h_(h) {}
  Nbd(Nbd&& o) noexcept : lib_(o.lib_), h_(std::exchange(o.h_, nullptr)) {}
  Nbd& operator=(Nbd&&) = delete;
  ~Nbd() { reset(); }

  // Disconnects now (before the export is removed).
  void reset() {
    if (h_ != nullptr) lib_->close(std::exchange(h_, nullptr));
  }
  const NbdLibrary& lib() const { return *lib_; }
  nbd_handle* get() const { return h_; }

  Status error(const std::string& what) const {
    const char* e = lib_->get_error();
    return Status::IoError(fmt::format("{}: {}", what, e != nullptr ? e : "libnbd failed"));
  }

 private:
  const NbdLibrary* lib_;
  nbd_handle* h_;
};

// A client of export `name` on `socket`; `bitmap` (if any) as its block status context.
Result<Nbd> nbd_connect(const std::string& socket, const std::string& name,
                        const std::string& bitmap) {
  RELIVE_ASSIGN_OR_RETURN(const NbdLibrary* lib, nbd_library());
  Nbd h(lib, lib->create());
  if (h.get() == nullptr) return h.error("nbd_create");
  if (lib->set_export_name(h.get(), name.c_str()) == -1) return h.error("nbd export name");
  if (!bitmap.empty() &&
      lib->add_meta_context(h.get(), ("qemu:dirty-bitmap:" + bitmap).c_str()) == -1) {
    return h.error("nbd meta context");
  }
  if (lib->connect_unix(h.get(), socket.c_str()) == -1) {
    return h.error("connecting to QEMU's NBD export " + name);
  }
  return h;
}

// A read-only NBD export of `node`, with `bitmap` (closed) when given, for as long as it lives.
// Removed with mode hard (any connection dropped) and waited for, so that the node is free
// again for the device-state migration that follows.
class Export {
 public:
  static Result<Export> add(qemu::QmpClient* qmp, const std::string& node, const std::string& id,
                            const std::string& bitmap) {
    nlohmann::json args = {
        {"type", "nbd"}, {"id", id}, {"node-name", node}, {"name", id}, {"writable", false}};
    if (!bitmap.empty()) args["bitmaps"] = nlohmann::json::array({bitmap});
    RELIVE_RETURN_IF_ERROR(qmp->execute("block-export-add", args).status());
    return Export(qmp, id);
  }
  Export(Export&& o) noexcept : qmp_(std::exchange(o.qmp_, nullptr)), id_(std::move(o.id_)) {}
  Export& operator=(Export&&) = delete;
  ~Export() { (void)remove(); }

  Status remove() {
    if (qmp_ == nullptr) return Status::Ok();
    qemu::QmpClient* qmp = std::exchange(qmp_, nullptr);
    RELIVE_RETURN_IF_ERROR(
        qmp->execute("block-export-del", {{"id", id_}, {"mode", "hard"}}).status());
    auto deadline = std::chrono::steady_clock::now() + kExportGone;
    for (;;) {
      RELIVE_ASSIGN_OR_RETURN(nlohmann::json all, qmp->execute("query-block-exports"));
      bool there = false;
      for (const auto& e : all) there |= json_value_or(e, "id", std::string()) == id_;
      if (!there) return Status::Ok();
      if (std::chrono::steady_clock::now() > deadline)
        return Status::IoError("QEMU did not remove NBD export " + id_);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

 private:
  Export(qemu::QmpClient* qmp, std::string id) : qmp_(qmp), id_(std::move(id)) {}
  qemu::QmpClient* qmp_;
  std::string id_;
};

// The dirty extents [offset, offset + length) of the export's bitmap, merged and in order.
Result<std::vector<std::pair<uint64_t, uint64_t>>> dirty_extents(const Nbd& h, uint64_t size,
                                                                 const std::string& bitmap) {
  struct Ctx {
    std::string context;
    uint64_t at = 0;
    std::vector<std::pair<uint64_t, uint64_t>> out;
  } ctx{"qemu:dirty-bitmap:" + bitmap, 0, {}};
  auto cb = [](void* user, const char* context, uint64_t offset, uint32_t* entries, size_t n,
               int* error) -> int {
    auto* c = static_cast<Ctx*>(user);
    if (c->context != context) return 0;
    uint64_t at = offset;
    for (size_t i = 0; i + 1 < n; i += 2) {
      uint64_t len = entries[i];
      if (entries[i + 1] & 1) {  // dirty
        if (!c->out.empty() && c->out.back().first + c->out.back().second == at) {
          c->out.back().second += len;
        } else {
          c->out.emplace_back(at, len);
        }
      }
      at += len;
    }
    c->at = std::max(c->at, at);
    return 0;
  };
  while (ctx.at < size) {
    uint64_t from = ctx.at;
    uint64_t count = std::min<uint64_t>(size - from, 1ull << 30);
    if (h.lib().block_status(h.get(), count, from, nbd_extent_callback{cb, &ctx, nullptr}, 0) ==
        -1) {
      return h.error("reading the dirty bitmap " + bitmap);
    }
    if (ctx.at <= from) return Status::IoError("QEMU's NBD block status made no progress");
  }
  for (auto& [off, len] : ctx.out) len = std::min(len, size - off);
  return ctx.out;
}

Status copy_range(const Nbd& h, int fd, uint64_t offset, uint64_t bytes, uint64_t file_offset,
                  std::string* buf) {
  for (uint64_t done = 0; done < bytes; done += kChunk) {
    uint64_t n = std::min(kChunk, bytes - done);
    buf->resize(n);
    if (h.lib().pread(h.get(), buf->data(), n, offset + done, 0) == -1)
      return h.error("reading a disk");
    if (::pwrite(fd, buf->data(), n, static_cast<off_t>(file_offset + done)) !=
        static_cast<ssize_t>(n)) {
      return PosixError("writing a disk's epoch copy", errno);
    }
  }
  return Status::Ok();
}

// [offset, offset + bytes) of disk `disk`, as runs of at most kChunk.
void add_runs(uint32_t disk, uint64_t offset, uint64_t bytes, const std::string& file,
              uint64_t file_offset, std::vector<DiskRun>* out) {
  for (uint64_t done = 0; done < bytes; done += kChunk) {
    uint64_t n = std::min(kChunk, bytes - done);
    out->push_back({disk, offset + done, n, file, file_offset + done});
  }
}

}  // namespace

Result<DiskTracker> DiskTracker::create(qemu::QmpClient* qmp,
                                        const std::vector<VmDiskConfig>& disks,
                                        const std::string& work_dir) {
  DiskTracker t;
  t.work_dir_ = work_dir;
  if (disks.empty()) return t;
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json blocks, qmp->execute("query-block"));
  for (const VmDiskConfig& d : disks) {
    Disk disk;
    disk.id = d.id;
    for (const auto& b : blocks) {
      if (json_value_or(b, "device", std::string()) != d.id || !b.contains("inserted")) continue;
      const auto& in = b["inserted"];
      disk.node = json_value_or(in, "node-name", std::string());
      if (in.contains("image")) disk.size = json_value_or(in["image"], "virtual-size", uint64_t{0});
    }
    if (disk.node.empty()) return Status::NotFound("QEMU has no drive " + d.id + " with an image");
    if (disk.size == 0 || disk.size % kBlock != 0) {
      return Status::InvalidArgument(
          fmt::format("disk {} is {} bytes: a replicated disk's size must be a multiple of 4 KiB",
                      d.id, disk.size));
    }
    t.disks_.push_back(std::move(disk));
  }
  ::unlink(t.socket().c_str());
  RELIVE_RETURN_IF_ERROR(
      qmp->execute("nbd-server-start",
                   {{"addr", {{"type", "unix"}, {"data", {{"path", t.socket()}}}}}})
          .status());
  return t;
}

std::string DiskTracker::copy_file(size_t i, bool full) const {
  return fmt::format("{}/disk-{}.{}", work_dir_, i, full ? "full" : "delta");
}

Status DiskTracker::copy_all(qemu::QmpClient* qmp) {
  if (disks_.empty()) return Status::Ok();
  // Whatever bitmaps an earlier epoch left (a failed cut), gone; errors mean there were none.
  for (const Disk& d : disks_) {
    for (uint64_t g = generation_ > 2 ? generation_ - 2 : 0; g <= generation_; ++g) {
      (void)qmp->execute("block-dirty-bitmap-remove",
                         {{"node", d.id}, {"name", fmt::format("relive-{}", g)}});
    }
  }
  bitmap_ = fmt::format("relive-{}", ++generation_);
  nlohmann::json actions = nlohmann::json::array();
  for (const Disk& d : disks_) {
    actions.push_back({{"type", "block-dirty-bitmap-add"},
                       {"data", {{"node", d.id}, {"name", bitmap_}, {"granularity", kBlock}}}});
  }
  RELIVE_RETURN_IF_ERROR(qmp->execute("transaction", {{"actions", actions}}).status());
  std::string buf;
  for (size_t i = 0; i < disks_.size(); ++i) {
    std::string file = copy_file(i, true);
    ::unlink(file.c_str());
    ScopedFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return PosixError("create " + file, errno);
    std::string id = fmt::format("relive-copy-{}-{}", generation_, i);
    RELIVE_ASSIGN_OR_RETURN(Export ex, Export::add(qmp, disks_[i].node, id, ""));
    RELIVE_ASSIGN_OR_RETURN(Nbd h, nbd_connect(socket(), id, ""));
    RELIVE_RETURN_IF_ERROR(copy_range(h, fd.get(), 0, disks_[i].size, 0, &buf));
    h.reset();
    RELIVE_RETURN_IF_ERROR(ex.remove());
  }
  return Status::Ok();
}

Result<std::vector<DiskRun>> DiskTracker::capture(qemu::QmpClient* qmp, bool full) {
  std::vector<DiskRun> out;
  if (disks_.empty()) return out;
  if (bitmap_.empty()) return Status::Aborted("no dirty bitmap yet: the epoch must be full");
  std::string closed = std::exchange(bitmap_, "");
  std::string next = fmt::format("relive-{}", ++generation_);
  nlohmann::json actions = nlohmann::json::array();
  for (const Disk& d : disks_) {
    actions.push_back(
        {{"type", "block-dirty-bitmap-disable"}, {"data", {{"node", d.id}, {"name", closed}}}});
    actions.push_back({{"type", "block-dirty-bitmap-add"},
                       {"data", {{"node", d.id}, {"name", next}, {"granularity", kBlock}}}});
  }
  RELIVE_RETURN_IF_ERROR(qmp->execute("transaction", {{"actions", actions}}).status());
  bitmap_ = next;
  for (size_t i = 0; i < disks_.size(); ++i) {
    RELIVE_RETURN_IF_ERROR(read_dirty(qmp, i, closed, full, &out));
    RELIVE_RETURN_IF_ERROR(
        qmp->execute("block-dirty-bitmap-remove", {{"node", disks_[i].id}, {"name", closed}})
            .status());
  }
  return out;
}

void DiskTracker::drop_copies() {
  for (size_t i = 0; i < disks_.size(); ++i) ::unlink(copy_file(i, true).c_str());
}

Status DiskTracker::read_dirty(qemu::QmpClient* qmp, size_t i, const std::string& bitmap, bool full,
                               std::vector<DiskRun>* out) {
  const Disk& d = disks_[i];
  std::string file = copy_file(i, full);
  ScopedFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | (full ? 0 : O_TRUNC) | O_CLOEXEC, 0600));
  if (!fd.valid()) return PosixError("open " + file, errno);
  std::string id = fmt::format("relive-cut-{}-{}", generation_, i);
  RELIVE_ASSIGN_OR_RETURN(Export ex, Export::add(qmp, d.node, id, bitmap));
  RELIVE_ASSIGN_OR_RETURN(Nbd h, nbd_connect(socket(), id, bitmap));
  RELIVE_ASSIGN_OR_RETURN(auto extents, dirty_extents(h, d.size, bitmap));
  std::string buf;
  uint64_t packed = 0;
  for (const auto& [offset, bytes] : extents) {
    // Full: over the copy, at the disk's offsets; delta: one after the other.
    uint64_t at = full ? offset : packed;
    RELIVE_RETURN_IF_ERROR(copy_range(h, fd.get(), offset, bytes, at, &buf));
    if (!full) add_runs(static_cast<uint32_t>(i), offset, bytes, file, at, out);
    packed += bytes;
  }
  h.reset();
  RELIVE_RETURN_IF_ERROR(ex.remove());
  if (full) add_runs(static_cast<uint32_t>(i), 0, d.size, file, 0, out);
  return Status::Ok();
}

}  // namespace relive::ha
