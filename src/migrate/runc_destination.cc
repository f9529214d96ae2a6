#include "migrate/runc_destination.h"

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/process_tree.h"
#include "common/safe_name.h"
#include "container/runc_bundle.h"
#include "tracee/resume_check.h"

namespace relive::migrate {
namespace {

namespace fs = std::filesystem;

// CRIU leaves the restored tasks stopped; commit() resumes them and checks that they run.
constexpr const char* kLeaveStopped = "leave-stopped\n";

}  // namespace

Result<RuncIncoming> RuncIncoming::create(const std::string& name,
                                          const RuncDestinationOptions& o) {
  // The name comes from the source: it becomes runc's container id, a path and a cgroup.
  RELIVE_RETURN_IF_ERROR(check_name("container name", name));
  RELIVE_ASSIGN_OR_RETURN(container::Runc runc, container::Runc::find(o.timeout, o.runc_root));
  if (runc.state(name).ok())
    return Status::InvalidArgument("a runc container named '" + name + "' exists here already");
  return RuncIncoming(std::move(runc), name, o);
}

Status RuncIncoming::write_config(const std::string& fs_dir) {
  RELIVE_ASSIGN_OR_RETURN(std::string text, read_file(fs_dir + "/" + container::kRuncConfigEntry));
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("root") || !j["root"].is_object())
    return Status::Corruption("the source's config.json has no root");
  j["root"]["path"] = "rootfs";
  std::string netns =
      o_.netns.empty() ? "/proc/" + std::to_string(::getpid()) + "/ns/net" : o_.netns;
  if (j.contains("linux") && j["linux"].is_object()) {
    auto& l = j["linux"];
    if (l.contains("namespaces") && l["namespaces"].is_array()) {
      for (auto& ns : l["namespaces"])
        if (ns.is_object() && ns.contains("type") && ns["type"] == "network" && ns.contains("path"))
          ns["path"] = netns;
    }
    std::string cg = l.contains("cgroupsPath") && l["cgroupsPath"].is_string()
                         ? l["cgroupsPath"].get<std::string>()
                         : "";
    if (cg.empty() || cg[0] == '/') l["cgroupsPath"] = "/relive/" + o_.node_name + "/" + name_;
  }
  return write_file_atomic(bundle_ + "/config.json", j.dump(2) + "\n");
}

Status RuncIncoming::restore(const std::string& fs_dir, const std::string& images,
                             const std::string& work, const std::string& criu, bool tcp_established,
                             bool lazy_pages) {
  RELIVE_ASSIGN_OR_RETURN(std::string info_text,
                          read_file(fs_dir + "/" + container::kRuncInfoEntry));
  RELIVE_ASSIGN_OR_RETURN(container::RuncArchiveInfo info,
                          container::RuncArchiveInfo::from_json(info_text));
  if (!info.whole_rootfs) return Status::Corruption("the source sent only rootfs changes");
  bundle_ = o_.bundles + "/" + name_;
  // No container of this name exists (create() checked): a bundle left here is stale.
  RELIVE_RETURN_IF_ERROR(remove_tree(bundle_));
  RELIVE_RETURN_IF_ERROR(make_dirs(bundle_));
  RELIVE_RETURN_IF_ERROR(write_config(fs_dir));
  RELIVE_RETURN_IF_ERROR(container::prepare_bundle(fs_dir, info, bundle_));

  container::Runc::CriuArgs args{criu, images, work, tcp_established, work + "/criu-restore.conf"};
  RELIVE_RETURN_IF_ERROR(write_file_atomic(args.config_file, kLeaveStopped));
  restored_ = true;
  RELIVE_RETURN_IF_ERROR(lazy_pages ? runc_.restore_lazy(name_, bundle_, args)
                                    : runc_.restore(name_, bundle_, args));
  RELIVE_ASSIGN_OR_RETURN(container::RuncState s, runc_.state(name_));
  pid_ = s.pid;
  return Status::Ok();
}

Status RuncIncoming::commit() {
  if (pid_ <= 0) return Status::InvalidArgument("commit before restore");
  RELIVE_ASSIGN_OR_RETURN(std::vector<pid_t> tree, process_tree(pid_));
  RELIVE_RETURN_IF_ERROR(tracee::resume_and_confirm(tree));
  committed_ = true;
  return Status::Ok();
}

void RuncIncoming::undo() {
  if (committed_ || name_.empty()) return;
  if (restored_ && runc_.state(name_).ok()) (void)runc_.destroy(name_);
  if (!bundle_.empty()) (void)remove_tree(bundle_);
  name_.clear();
}

}  // namespace relive::migrate
