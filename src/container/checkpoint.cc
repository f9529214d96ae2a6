// relive container checkpoint: CRIU dump of a process tree, packed into one archive.
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <filesystem>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/work_dir.h"
#include "container/archive_file.h"
#include "container/image_summary.h"
#include "container/manifest_facts.h"
#include "container/pre_dump.h"
#include "container/runc_container.h"
#include "drivers/criu/criu.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"
#include "relive/container.h"

namespace relive {
namespace {

using Clock = std::chrono::steady_clock;
using container::Manifest;

constexpr const char* kPidTreeFsNote =
    "process tree checkpointed by PID: no root file system is captured. Deleted-but-open files "
    "(CRIU ghost files), pipe and socket queues and memfds are inside the CRIU images; regular "
    "files still on disk are reopened by path and must exist, unchanged in size, on the "
    "destination.";

Status check_inputs(const ContainerCheckpointOptions& o) {
  if (o.pid <= 0) return Status::InvalidArgument("container checkpoint: no --pid given");
  if (o.archive.empty()) return Status::InvalidArgument("container checkpoint: no -o ARCHIVE");
  if (::kill(o.pid, 0) != 0 && errno == ESRCH) {
    return Status::NotFound("container checkpoint: no process " + std::to_string(o.pid));
  }
  std::error_code ec;
  auto parent = std::filesystem::absolute(o.archive, ec).parent_path();
  if (ec || !std::filesystem::is_directory(parent, ec)) {
    return Status::NotFound("container checkpoint: directory " + parent.string() +
                            " of the archive does not exist");
  }
  return Status::Ok();
}

// The dumped tree, left stopped by CRIU (--leave-stopped) until the archive is safe: then it
// is killed, as `criu dump` would have done; if packing fails, it is resumed instead, so a
// failed checkpoint never costs the workload.
class StoppedTree {
 public:
  explicit StoppedTree(std::vector<pid_t> pids) : pids_(std::move(pids)) {}
  ~StoppedTree() { signal_all(SIGCONT); }
  StoppedTree(const StoppedTree&) = delete;
  StoppedTree& operator=(const StoppedTree&) = delete;
  void kill_all() {
    signal_all(SIGKILL);
    pids_.clear();
  }

 private:
  void signal_all(int sig) {
    for (pid_t p : pids_) ::kill(p, sig);
  }
  std::vector<pid_t> pids_;
};

std::vector<pid_t> tree_pids(const std::vector<container::ProcessInfo>& procs, pid_t root) {
  std::vector<pid_t> out;
  for (const auto& p : procs) out.push_back(p.pid);
  if (out.empty()) out.push_back(root);
  return out;
}

Result<criu::CriuStats> run_dump(const ContainerCheckpointOptions& o, const std::string& images,
                                 const std::string& criu_path) {
  criu::DumpOptions d;
  d.pid = o.pid;
  d.images_dir = images;
  d.leave_running = o.leave_running;
  d.leave_stopped = !o.leave_running;
  d.tcp_established = o.tcp_established;
  d.run.criu = criu_path;
  d.run.timeout = o.criu_timeout;
  // In the images dir, the log would become an entry of the archive.
  d.log_file = std::filesystem::path(images).parent_path().string() + "/dump.log";
  return criu::dump(d);
}

}  // namespace

Result<ContainerCheckpointResult> checkpoint_container(const ContainerCheckpointOptions& o) {
  if (!o.name.empty()) {
    if (o.pid != 0) return Status::InvalidArgument("container checkpoint: give a NAME or --pid");
    return container::checkpoint_runc_container(o);
  }
  RELIVE_RETURN_IF_ERROR(check_inputs(o));
  RELIVE_ASSIGN_OR_RETURN(std::string criu_path, criu::find_criu());
  RELIVE_ASSIGN_OR_RETURN(criu::CriuVersion version, criu::criu_version(criu_path));
  RELIVE_ASSIGN_OR_RETURN(WorkDir work, WorkDir::create(o.work_dir, "ckpt"));
  std::string images = work.path() + "/images";
  RELIVE_ASSIGN_OR_RETURN(std::string runner, criu::criu_with_compat(work.path(), criu_path));
  ContainerCheckpointResult result;
  RELIVE_ASSIGN_OR_RETURN(container::PreDumpReport pre,
                          container::pre_dump(o.pid, o.pre_dump_rounds));
  container::fill_pre_dump(pre, &result);
  if (o.progress) o.progress("phase=dump");
  auto start = Clock::now();
  auto stats = run_dump(o, images, runner);
  if (!stats.ok()) {
    // CRIU's log is worth keeping (the error quotes its path); the images are not.
    (void)remove_tree(images);
    work.keep();
    return stats.status();
  }
  result.dump_ms = ms_since(start);
  auto summary = container::summarize_images_dir(images);
  StoppedTree stopped(
      o.leave_running
          ? std::vector<pid_t>{}
          : tree_pids(summary.ok() ? summary->processes : std::vector<container::ProcessInfo>{},
                      o.pid));
  if (!summary.ok()) return summary.status().with_context("CRIU's images of the dump");
  start = Clock::now();
  Manifest m;
  container::fill_host_facts(&m, kPidTreeFsNote);
  m.criu_version = version.to_string();
  m.root_pid = o.pid;
  m.processes = summary->processes;
  m.tcp_established = o.tcp_established;
  container::fill_stats(*stats, &m);
  RELIVE_RETURN_IF_ERROR(container::list_entries(images, &m));
  for (const auto& e : m.entries) result.images_bytes += e.size;
  if (o.progress) o.progress("phase=pack remaining=" + std::to_string(result.images_bytes));
  RELIVE_ASSIGN_OR_RETURN(result.archive_bytes, container::write_archive(o.archive, images, m));
  if (o.progress) o.progress("phase=packed bytes=" + std::to_string(result.archive_bytes));
  result.pack_ms = ms_since(start);
  stopped.kill_all();
  result.frozen_ms = stats->frozen_ms;
  result.pages_written = stats->pages_written;
  result.processes = m.processes.size();
  return result;
}

}  // namespace relive
