// runc containers, the source's half: runc drives CRIU (it knows the container's cgroups,
// mounts, external network namespace and stdio), relive ships the images plus the bundle's
// config.json and root file system (container/runc_bundle.h) and keeps the usual protocol:
// the container is paused (frozen) from the freeze on and `runc checkpoint --leave-running`
// leaves it paused, so that until the destination commits a rollback only resumes it; after the
// commit Source::end_source() kills and deletes it.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/file_util.h"
#include "container/runc_bundle.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"
#include "migrate/criu_tls.h"
#include "migrate/page_server_relay.h"
#include "migrate/precopy_rounds.h"
#include "migrate/source.h"
#include "transfer/file_transfer.h"

namespace relive::migrate {
namespace {

namespace fs = std::filesystem;

// Where one runc dump's files go, inside the source's work dir.
struct RuncDump {
  std::string fs_dir;  // the three bundle entries
  container::Runc::CriuArgs args;
};

Result<RuncDump> prepare_dump(Source* s) {
  RuncDump d;
  std::string work = s->work_path();
  d.fs_dir = work + "/fs";
  RELIVE_RETURN_IF_ERROR(make_dirs(d.fs_dir));
  RELIVE_ASSIGN_OR_RETURN(std::string criu, criu::find_criu());
  RELIVE_ASSIGN_OR_RETURN(std::string runner, criu::criu_with_compat(work, criu));
  d.args = {runner, s->images_dir(), work + "/criu", s->options().tcp_established, ""};
  RELIVE_RETURN_IF_ERROR(make_dirs(d.args.work));
  return d;
}

// The freeze: the traffic lock, `runc pause` (the freezer cgroup), then the bundle entries,
// so that the root file system and the memory are one moment. The whole root file system
// travels: the destination has no base image to apply changes to (docs/container.md).
Status pause_and_capture(Source* s, const RuncDump& d) {
  RELIVE_RETURN_IF_ERROR(s->freeze_begins());
  const container::RuncState& st = s->runc_state();
  s->progress("phase=pause");
  RELIVE_RETURN_IF_ERROR(s->runc().pause(st.id));
  s->container_paused();
  container::RuncArchiveInfo info{st.id, st.bundle, st.rootfs, st.created, "", true};
  RELIVE_ASSIGN_OR_RETURN(info.runc_version, s->runc().version());
  s->progress("phase=rootfs");
  return container::capture_bundle(st, info, d.fs_dir);
}

// Every regular file runc left in the images dir: CRIU's images and runc's descriptors.json.
Result<std::vector<std::string>> all_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file()) out.push_back(e.path().filename().string());
  if (ec) return Status::IoError("list " + dir + ": " + ec.message());
  return out;
}

Status ship(Source* s, const RuncDump& d, bool without_pages = false) {
  RELIVE_ASSIGN_OR_RETURN(auto files, all_files(s->images_dir()));
  if (without_pages)
    std::erase_if(files, [](const std::string& f) { return f.starts_with("pages-"); });
  s->progress(fmt::format("phase=images files={}", files.size()));
  RELIVE_ASSIGN_OR_RETURN(uint64_t bytes,
                          transfer::send_files(&s->link(), "images", s->images_dir(), files));
  s->add_bytes("images", bytes);
  std::vector<std::string> entries = {container::kRuncInfoEntry, container::kRuncConfigEntry,
                                      container::kRuncRootfsEntry};
  s->progress("phase=bundle");
  RELIVE_ASSIGN_OR_RETURN(bytes, transfer::send_files(&s->link(), "bundle", d.fs_dir, entries));
  s->add_bytes("bundle", bytes);
  s->report().rounds = 1;
  return Status::Ok();
}

// CRIU's TLS for the page-server link, through a CRIU configuration file (runc has no flags
// for it). Empty when the migration is insecure.
Result<std::string> tls_config(const Source& s) {
  std::vector<std::string> args =
      criu_tls_args(s.options().tls_dir, s.options().node_name, s.options().insecure);
  if (args.empty()) return std::string();
  std::string text;
  for (size_t i = 0; i < args.size(); ++i) {
    bool takes_value = i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0;
    text += args[i].substr(2) + (takes_value ? " " + args[i + 1] : "") + "\n";
    if (takes_value) ++i;
  }
  std::string path = s.work_path() + "/criu-tls.conf";
  RELIVE_RETURN_IF_ERROR(write_file_atomic(path, text));
  return path;
}

// CRIU names a container's processes by their PIDs inside its PID namespace (the last field of
// NSpid in /proc/PID/status); pre-copy's pages must carry those. A process gone meanwhile (a
// shell's `sleep`) is left out: what the dump holds of untracked processes ships whole.
std::map<pid_t, pid_t> dump_pids(const std::vector<pid_t>& tree) {
  std::map<pid_t, pid_t> out;
  for (pid_t p : tree) {
    std::ifstream in("/proc/" + std::to_string(p) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("NSpid:", 0) != 0) continue;
      std::istringstream fields(line.substr(6));
      for (pid_t v; fields >> v;) out[p] = v;
    }
  }
  return out;
}

}  // namespace

// Pre-copy of a runc container: relive's rounds while it runs (precopy_rounds.h); then runc
// pauses it (the freezer), the last dirty set is read and the tracker dropped — neither needs
// the frozen tasks to run — and runc checkpoints it; only the dump's pages the destination does
// not hold unchanged travel with the other images.
Status run_runc_precopy(Source* s) {
  RELIVE_ASSIGN_OR_RETURN(RuncDump d, prepare_dump(s));
  RELIVE_ASSIGN_OR_RETURN(PrecopyRounds rounds, PrecopyRounds::arm(s, dump_pids(s->tree())));
  RELIVE_ASSIGN_OR_RETURN(bool converged, rounds.iterate());
  if (!converged && s->options().strategy == "auto") {
    RELIVE_RETURN_IF_ERROR(rounds.disarm());
    s->switch_strategy("postcopy", "pre-copy stopped converging");
    return run_runc_postcopy(s);
  }
  RELIVE_RETURN_IF_ERROR(pause_and_capture(s, d));
  RELIVE_RETURN_IF_ERROR(rounds.finish_stopped());
  s->progress("phase=dump");
  RELIVE_RETURN_IF_ERROR(s->runc().checkpoint(s->runc_state().id, d.args, /*leave_running=*/true));
  RELIVE_RETURN_IF_ERROR(s->release_address());
  RELIVE_ASSIGN_OR_RETURN(uint64_t delta, rounds.ship_final_delta());
  s->progress(fmt::format("phase=final pages={}", delta));
  RELIVE_RETURN_IF_ERROR(ship(s, d, /*without_pages=*/true));
  migration::Restore r;
  r.pages_from_cache = true;
  return s->switch_over(r);
}

Status run_runc_stop_copy(Source* s) {
  RELIVE_ASSIGN_OR_RETURN(RuncDump d, prepare_dump(s));
  RELIVE_RETURN_IF_ERROR(pause_and_capture(s, d));
  s->progress("phase=dump");
  // The container was paused: runc leaves it paused (CRIU restores the freezer's state).
  RELIVE_RETURN_IF_ERROR(s->runc().checkpoint(s->runc_state().id, d.args, /*leave_running=*/true));
  RELIVE_RETURN_IF_ERROR(s->release_address());
  RELIVE_RETURN_IF_ERROR(ship(s, d));
  return s->switch_over(migration::Restore{});
}

Status run_runc_postcopy(Source* s) {
  RELIVE_ASSIGN_OR_RETURN(RuncDump d, prepare_dump(s));
  RELIVE_ASSIGN_OR_RETURN(PageServerEndpoint pages, page_server_endpoint(s));
  RELIVE_ASSIGN_OR_RETURN(d.args.config_file, tls_config(*s));
  RELIVE_RETURN_IF_ERROR(pause_and_capture(s, d));
  s->progress("phase=dump (lazy)");
  // --leave-running: after the last page runc leaves the container paused, and the source
  // decides (end_source after the commit, resume on a failure before it).
  RELIVE_ASSIGN_OR_RETURN(
      criu::CriuProcess dump,
      s->runc().start_lazy_checkpoint(s->runc_state().id, d.args,
                                      fmt::format("{}:{}", pages.criu_address, pages.criu_port),
                                      /*leave_running=*/true));
  s->tree_owned_by_criu();  // the switch-over must not end the container: CRIU serves its pages
  RELIVE_RETURN_IF_ERROR(dump.wait_ready(s->options().criu_timeout));
  RELIVE_RETURN_IF_ERROR(s->release_address());
  RELIVE_RETURN_IF_ERROR(ship(s, d));
  migration::Restore r;
  r.lazy_pages_port = pages.announced_port;
  RELIVE_RETURN_IF_ERROR(s->switch_over(r));
  s->progress("phase=pages (post-copy)");
  Status served = dump.wait(std::chrono::minutes(30));
  Status ended = s->end_source();
  if (!served.ok()) return served.with_context("post-copy page transfer after the switch-over");
  return ended;
}

}  // namespace relive::migrate
