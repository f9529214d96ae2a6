// relive container checkpoint NAME: a runc container, through `runc checkpoint`, packed into
// one archive with its bundle's config.json and its rootfs changes (runc_container.h).
#include <chrono>
#include <filesystem>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/work_dir.h"
#include "container/archive_file.h"
#include "container/image_summary.h"
#include "container/manifest_facts.h"
#include "container/pre_dump.h"
#include "container/runc.h"
#include "container/runc_bundle.h"
#include "container/runc_container.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"

namespace relive::container {
namespace {

using Clock = std::chrono::steady_clock;

std::string fs_note(const RuncArchiveInfo& info) {
  return std::string("runc container '") + info.name + "' (bundle " + info.bundle +
         "): relive-config.json is its config.json, relive-rootfs.tar " +
         (info.whole_rootfs ? "its whole root file system"
                            : "the files of its root file system whose data or status changed "
                              "since it was created (" +
                                  info.created + "); files it deleted are not recorded") +
         ". Open files, pipe and socket queues and memfds are in CRIU's images.";
}

// A container paused for the checkpoint: resumed when this goes, unless runc ended it (gone())
// or it was paused before relive came (then it stays as it was found).
class PausedContainer {
 public:
  static Result<PausedContainer> pause(const Runc& runc, const RuncState& s) {
    if (s.status == "paused") return PausedContainer(runc, "");
    if (s.status != "running") {
      return Status::InvalidArgument("container " + s.id + " is " + s.status + ", not running");
    }
    RELIVE_RETURN_IF_ERROR(runc.pause(s.id));
    return PausedContainer(runc, s.id);
  }
  PausedContainer(PausedContainer&& o) noexcept
      : runc_(o.runc_), name_(std::exchange(o.name_, {})) {}
  PausedContainer& operator=(PausedContainer&&) = delete;
  ~PausedContainer() {
    if (!name_.empty()) (void)runc_->resume(name_);
  }
  void gone() { name_.clear(); }
  void resume() {
    if (!name_.empty()) (void)runc_->resume(std::exchange(name_, {}));
  }

 private:
  PausedContainer(const Runc& runc, std::string name) : runc_(&runc), name_(std::move(name)) {}
  const Runc* runc_;  // outlives this (both live in checkpoint_runc_container)
  std::string name_;
};

Status check_inputs(const ContainerCheckpointOptions& o) {
  if (o.archive.empty()) return Status::InvalidArgument("container checkpoint: no -o ARCHIVE");
  std::error_code ec;
  auto parent = std::filesystem::absolute(o.archive, ec).parent_path();
  if (ec || !std::filesystem::is_directory(parent, ec)) {
    return Status::NotFound("container checkpoint: directory " + parent.string() +
                            " of the archive does not exist");
  }
  return Status::Ok();
}

// Everything after the dump: the fs entries join CRIU's images, all are hashed and packed.
Result<uint64_t> pack(const ContainerCheckpointOptions& o, const RuncState& s,
                      const std::string& images, const std::string& fs_dir,
                      const RuncArchiveInfo& info, const criu::CriuVersion& version,
                      const std::string& criu_work, Manifest* m) {
  RELIVE_ASSIGN_OR_RETURN(ImageSummary summary, summarize_images_dir(images));
  for (const char* e : {kRuncInfoEntry, kRuncConfigEntry, kRuncRootfsEntry}) {
    std::error_code ec;
    std::filesystem::rename(fs_dir + "/" + e, images + "/" + e, ec);
    if (ec) return Status::IoError(std::string("move ") + e + ": " + ec.message());
  }
  fill_host_facts(m, fs_note(info));
  m->criu_version = version.to_string();
  m->root_pid = s.pid;
  m->processes = summary.processes;
  m->tcp_established = o.tcp_established;
  fill_stats(criu::read_stats(criu_work), m);
  RELIVE_RETURN_IF_ERROR(list_entries(images, m));
  for (auto& e : m->entries) {
    if (is_runc_entry(e.name)) e.kind = EntryKind::kFsChange;
  }
  return write_archive(o.archive, images, *m);
}

}  // namespace

Result<ContainerCheckpointResult> checkpoint_runc_container(const ContainerCheckpointOptions& o) {
  RELIVE_RETURN_IF_ERROR(check_inputs(o));
  RELIVE_ASSIGN_OR_RETURN(Runc runc, Runc::find(o.criu_timeout));
  RELIVE_ASSIGN_OR_RETURN(RuncState s, runc.state(o.name));
  RELIVE_ASSIGN_OR_RETURN(std::string criu_path, criu::find_criu());
  RELIVE_ASSIGN_OR_RETURN(criu::CriuVersion version, criu::criu_version(criu_path));
  RELIVE_ASSIGN_OR_RETURN(WorkDir work, WorkDir::create(o.work_dir, "runc-ckpt"));
  RELIVE_ASSIGN_OR_RETURN(std::string runner, criu::criu_with_compat(work.path(), criu_path));
  RuncArchiveInfo info{o.name, s.bundle, s.rootfs, s.created, "", o.whole_rootfs};
  RELIVE_ASSIGN_OR_RETURN(info.runc_version, runc.version());
  std::string fs_dir = work.path() + "/fs", images = work.path() + "/images";
  Runc::CriuArgs args{runner, images, work.path() + "/criu", o.tcp_established, ""};
  RELIVE_RETURN_IF_ERROR(make_dirs(fs_dir));
  RELIVE_RETURN_IF_ERROR(make_dirs(args.work));

  ContainerCheckpointResult result;
  if (s.status == "running") {  // a paused container writes nothing: no rounds to make
    RELIVE_ASSIGN_OR_RETURN(PreDumpReport pre, pre_dump(s.pid, o.pre_dump_rounds));
    fill_pre_dump(pre, &result);
  }
  auto start = Clock::now();
  if (o.progress) o.progress("phase=dump");
  RELIVE_ASSIGN_OR_RETURN(PausedContainer paused, PausedContainer::pause(runc, s));
  RELIVE_RETURN_IF_ERROR(capture_bundle(s, info, fs_dir));
  Status dumped = runc.checkpoint(o.name, args, o.leave_running);
  if (!dumped.ok()) {
    (void)remove_tree(images);
    work.keep();  // CRIU's log, quoted by the error
    return dumped;
  }
  result.dump_ms = ms_since(start);
  result.frozen_ms = result.dump_ms;  // from the pause until runc ended it, or until resumed
  // Images and rootfs tar are one consistent moment: with --leave-running the container runs
  // on while they are packed.
  if (o.leave_running)
    paused.resume();
  else
    paused.gone();
  start = Clock::now();
  if (o.progress) o.progress("phase=pack");
  Manifest m;
  auto bytes = pack(o, s, images, fs_dir, info, version, args.work, &m);
  if (!bytes.ok()) {
    if (o.leave_running) return bytes.status();
    args.work = work.path() + "/criu-rollback";
    (void)make_dirs(args.work);
    Status back = runc.restore(o.name, s.bundle, args);
    work.keep();
    return bytes.status().with_context(
        back.ok() ? "packing failed; the container was restored from the images and runs on"
                  : "packing failed, and restoring the container from the images " + work.path() +
                        "/images failed too (" + back.to_string() + ")");
  }
  result.pack_ms = ms_since(start);
  result.archive_bytes = *bytes;
  for (const auto& e : m.entries) {
    if (e.name == kRuncRootfsEntry) result.rootfs_bytes = e.size;
    result.images_bytes += e.size;
  }
  result.pages_written = m.stats.pages_written;
  result.processes = m.processes.size();
  return result;
}

bool is_runc_archive(const Manifest& m) {
  for (const auto& e : m.entries) {
    if (e.name == kRuncInfoEntry && e.kind == EntryKind::kFsChange) return true;
  }
  return false;
}

}  // namespace relive::container
