// relive container restore: verify the whole archive, unpack it privately, restore the tree
// with CRIU into a new PID namespace.
#include <signal.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/work_dir.h"
#include "container/archive_file.h"
#include "container/pid_namespace.h"
#include "container/runc_container.h"
#include "drivers/criu/criu.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"
#include "relive/container.h"

namespace relive {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kDefaultStateDir = "/run/relive/containers";

// A name becomes a file name: keep it to a conservative alphabet.
Status check_name(const std::string& name) {
  if (name.empty()) return Status::Ok();
  bool ok = name.size() <= 64 && name[0] != '.' && name[0] != '-';
  for (char c : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  }
  if (ok) return Status::Ok();
  return Status::InvalidArgument("container name '" + name +
                                 "': use up to 64 of A-Z a-z 0-9 - _ . (not first . or -)");
}

Result<std::string> write_state(const ContainerRestoreOptions& o,
                                const container::NamespaceRestore& ns) {
  std::string dir = o.state_dir.empty() ? kDefaultStateDir : o.state_dir;
  RELIVE_RETURN_IF_ERROR(make_dirs(dir));
  nlohmann::json j = {
      {"name", o.name},
      {"archive", std::filesystem::absolute(o.archive).string()},
      {"root_pid", ns.root_pid},
      {"ns_root_pid", ns.ns_root_pid},
      {"init_pid", ns.init_pid},
      {"restored_at_ns", std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count()},
  };
  std::string path = dir + "/" + o.name + ".json";
  RELIVE_RETURN_IF_ERROR(write_file_atomic(path, j.dump(2) + "\n"));
  return path;
}

criu::RestoreOptions criu_options(const ContainerRestoreOptions& o, const std::string& images,
                                  const container::Manifest& m, const std::string& criu) {
  criu::RestoreOptions r;
  r.run.criu = criu;
  r.images_dir = images;
  r.as_child = false;  // the namespace's init adopts the tree
  r.tcp_established = m.tcp_established;
  r.run.timeout = o.criu_timeout;
  // Outside the images dir, which holds only verified archive entries.
  r.log_file = std::filesystem::path(images).parent_path().string() + "/restore.log";
  r.pidfile = std::filesystem::path(images).parent_path().string() + "/restore.pid";
  return r;
}

}  // namespace

Result<ContainerRestoreResult> restore_container(const ContainerRestoreOptions& o) {
  RELIVE_RETURN_IF_ERROR(check_name(o.name));
  ContainerRestoreResult result;
  auto start = Clock::now();
  if (o.progress) o.progress("phase=verify");
  // Everything is checked before anything is written: a bad archive costs nothing.
  auto verified = container::verify_archive(o.archive);
  if (!verified.ok()) return verified.status().with_context(o.archive);
  result.verify_ms = ms_since(start);
  if (container::is_runc_archive(*verified)) {
    return container::restore_runc_container(o, result.verify_ms);
  }

  RELIVE_ASSIGN_OR_RETURN(WorkDir work, WorkDir::create(o.work_dir, "restore"));
  std::string images = work.path() + "/images";
  RELIVE_RETURN_IF_ERROR(make_dirs(images));
  start = Clock::now();
  if (o.progress) o.progress("phase=unpack");
  // Verified again while unpacking: the file may have changed since the first pass.
  auto manifest = container::unpack_archive(o.archive, images);
  if (!manifest.ok()) return manifest.status().with_context(o.archive);
  result.unpack_ms = ms_since(start);

  RELIVE_ASSIGN_OR_RETURN(std::string criu_path, criu::find_criu());
  RELIVE_ASSIGN_OR_RETURN(std::string runner, criu::criu_with_compat(work.path(), criu_path));
  start = Clock::now();
  if (o.progress) o.progress("phase=restore");
  auto ns = container::restore_in_new_pid_namespace(criu_options(o, images, *manifest, runner));
  if (!ns.ok()) {
    // CRIU's log is worth keeping (the error quotes its path); the unpacked images are not.
    (void)remove_tree(images);
    work.keep();
    return ns.status();
  }
  result.restore_ms = ms_since(start);
  result.root_pid = ns->root_pid;
  result.ns_root_pid = ns->ns_root_pid;
  result.init_pid = ns->init_pid;
  if (!o.name.empty()) {
    auto state = write_state(o, *ns);
    if (!state.ok()) {
      ::kill(ns->init_pid, SIGKILL);  // the namespace, and the tree with it
      return state.status().with_context("state file");
    }
    result.state_file = *state;
  }
  return result;
}

}  // namespace relive
