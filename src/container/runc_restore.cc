// relive container restore of an archive of a runc container: unpack, rebuild the bundle
// (config.json, rootfs changes), `runc restore --detach` under the requested name.
#include <chrono>
#include <filesystem>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/work_dir.h"
#include "container/archive_file.h"
#include "container/runc.h"
#include "container/runc_bundle.h"
#include "container/runc_container.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"

namespace relive::container {
namespace {

using Clock = std::chrono::steady_clock;

// A container runc restore may have left half made: deleted unless the restore succeeded.
class NewContainer {
 public:
  NewContainer(const Runc& runc, std::string name) : runc_(runc), name_(std::move(name)) {}
  ~NewContainer() {
    if (!name_.empty() && runc_.state(name_).ok()) (void)runc_.destroy(name_);
  }
  NewContainer(const NewContainer&) = delete;
  NewContainer& operator=(const NewContainer&) = delete;
  void keep() { name_.clear(); }

 private:
  const Runc& runc_;  // outlives this
  std::string name_;
};

// Moves the fsChange entries out of the images dir (runc hands that dir to CRIU) and reads
// the container's description.
Result<RuncArchiveInfo> split_entries(const std::string& images, const std::string& fs_dir) {
  RELIVE_RETURN_IF_ERROR(make_dirs(fs_dir));
  for (const char* e : {kRuncInfoEntry, kRuncConfigEntry, kRuncRootfsEntry}) {
    std::error_code ec;
    std::filesystem::rename(images + "/" + e, fs_dir + "/" + e, ec);
    if (ec) return Status::Corruption(std::string("the archive has no ") + e);
  }
  RELIVE_ASSIGN_OR_RETURN(std::string text, read_file(fs_dir + "/" + kRuncInfoEntry));
  return RuncArchiveInfo::from_json(text);
}

}  // namespace

Result<ContainerRestoreResult> restore_runc_container(const ContainerRestoreOptions& o,
                                                      double verify_ms) {
  ContainerRestoreResult result;
  result.verify_ms = verify_ms;
  RELIVE_ASSIGN_OR_RETURN(Runc runc, Runc::find(o.criu_timeout));
  RELIVE_ASSIGN_OR_RETURN(WorkDir work, WorkDir::create(o.work_dir, "runc-restore"));
  std::string images = work.path() + "/images", fs_dir = work.path() + "/fs";
  RELIVE_RETURN_IF_ERROR(make_dirs(images));
  auto start = Clock::now();
  if (o.progress) o.progress("phase=unpack");
  // Verified again while unpacking: the file may have changed since the first pass.
  auto manifest = unpack_archive(o.archive, images);
  if (!manifest.ok()) return manifest.status().with_context(o.archive);
  RELIVE_ASSIGN_OR_RETURN(RuncArchiveInfo info, split_entries(images, fs_dir));
  std::string name = o.name.empty() ? info.name : o.name;
  if (runc.state(name).ok()) {
    return Status::InvalidArgument("a runc container named '" + name + "' exists already");
  }
  std::string bundle = std::filesystem::absolute(o.bundle.empty() ? info.bundle : o.bundle);
  RELIVE_RETURN_IF_ERROR(prepare_bundle(fs_dir, info, bundle));
  result.unpack_ms = ms_since(start);

  RELIVE_ASSIGN_OR_RETURN(std::string criu_path, criu::find_criu());
  RELIVE_ASSIGN_OR_RETURN(std::string runner, criu::criu_with_compat(work.path(), criu_path));
  Runc::CriuArgs args{runner, images, work.path() + "/criu", manifest->tcp_established, ""};
  RELIVE_RETURN_IF_ERROR(make_dirs(args.work));
  start = Clock::now();
  if (o.progress) o.progress("phase=restore");
  NewContainer made(runc, name);
  Status st = runc.restore(name, bundle, args);
  if (!st.ok()) {
    (void)remove_tree(images);
    work.keep();  // runc's and CRIU's logs, quoted by the error
    return st;
  }
  RELIVE_ASSIGN_OR_RETURN(RuncState s, runc.state(name));
  made.keep();
  result.restore_ms = ms_since(start);
  result.root_pid = s.pid;
  result.init_pid = s.pid;
  result.ns_root_pid = 1;
  result.runc_name = name;
  result.bundle = bundle;
  return result;
}

}  // namespace relive::container
