#include "ha/vm_workload.h"

#include <fmt/format.h>
#include <unistd.h>

#include <thread>

#include "common/file_util.h"
#include "common/json_field.h"
#include "common/logging.h"
#include "drivers/qemu/qemu_process.h"
#include "drivers/qemu/qmp_client.h"
#include "drivers/qemu/vm_command_line.h"
#include "ha/disk_tracker.h"
#include "ha/ram_tracker.h"
#include "ha/workload_launch.h"

namespace relive::ha {
namespace {
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr auto kQmpTimeout = std::chrono::seconds(30);
constexpr auto kMigrationTimeout = std::chrono::seconds(120);
constexpr uint64_t kPage = 4096;

std::string ram_path(const WorkloadConfig& w, const VmPlace& p, const char* what) {
  return fmt::format("{}/relive-ha-{}-{}.{}", w.ram_dir, w.netns, p.peer, what);
}

// Waits until the migration QEMU is running (to the device-state file, or in from it) completes.
Status wait_migration(qemu::QmpClient* qmp, const char* what) {
  auto deadline = Clock::now() + kMigrationTimeout;
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json info, qmp->execute("query-migrate"));
    std::string status = json_value_or(info, "status", "");
    if (status == "completed") return Status::Ok();
    if (status == "failed" || status == "cancelled") {
      return Status::IoError(fmt::format("{}: QEMU's migration {}: {}", what, status,
                                         json_value_or(info, "error-desc", "no reason given")));
    }
    if (Clock::now() > deadline) return Status::IoError(fmt::format("{}: timed out", what));
    // MIGRATION events (the events capability) end the wait early.
    RELIVE_RETURN_IF_ERROR(qmp->next_event(milliseconds(2)).status());
  }
}

Status set_capabilities(qemu::QmpClient* qmp) {
  nlohmann::json caps = nlohmann::json::array();
  for (const char* c : {"x-ignore-shared", "events"})
    caps.push_back({{"capability", c}, {"state", true}});
  return qmp->execute("migrate-set-capabilities", {{"capabilities", caps}}).status();
}

// QMP cont after a migration to a file. QEMU reports the migration completed before its migration
// thread has finished cleaning up, and refuses cont until it has ("Migration is not finalized
// yet"): a matter of milliseconds, so retry.
Status resume(qemu::QmpClient* qmp) {
  auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    Status s = qmp->execute("cont").status();
    if (s.ok() || s.message().find("not finalized") == std::string::npos ||
        Clock::now() > deadline) {
      return s;
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
}

// Discards the events QEMU queued (STOP, RESUME, MIGRATION...): nobody reads them, and at 40
// epochs a second they would pile up.
void drain_events(qemu::QmpClient* qmp) {
  for (;;) {
    Result<std::optional<qemu::QmpEvent>> e = qmp->next_event(milliseconds(0));
    if (!e.ok() || !e->has_value()) return;
  }
}

class VmWorkload : public ProtectedWorkload {
 public:
  VmWorkload(pid_t pid, qemu::QmpClient qmp, RamTracker ram, DiskTracker disks,
             std::string ram_file, std::string work_dir)
      : pid_(pid),
        qmp_(std::move(qmp)),
        ram_(std::move(ram)),
        disks_(std::move(disks)),
        ram_file_(std::move(ram_file)),
        work_dir_(std::move(work_dir)) {}

  pid_t pid() const override { return pid_; }
  bool alive() override { return workload_alive(pid_); }
  // The RAM files go with the VM: on a tmpfs they hold the guest's memory until unlinked.
  void kill() override {
    kill_workload(pid_);
    ::unlink(ram_file_.c_str());
    ::unlink(ram_.shadow_file().c_str());
  }

  Result<CapturedEpoch> capture(uint64_t number, bool full) override {
    // A capture the backup never committed moved the shadow past what the backup has.
    full = full || unsynced_;
    unsynced_ = true;
    // The disks' bulk is copied while the guest runs; the cut adds what it wrote meanwhile.
    if (full) RELIVE_RETURN_IF_ERROR(disks_.copy_all(&qmp_).with_context("copying the disks"));
    auto t0 = Clock::now();
    RELIVE_RETURN_IF_ERROR(qmp_.execute("stop").status());
    std::vector<RamRun> runs = ram_.capture(full);
    Result<std::vector<DiskRun>> disk = disks_.capture(&qmp_, full);
    Status saved = disk.status().with_context("reading the epoch's disk writes");
    if (saved.ok()) {
      saved = qmp_.execute("migrate", {{"uri", "file:" + work_dir_ + "/vmstate"}}).status();
    }
    if (saved.ok()) saved = wait_migration(&qmp_, "saving the VM's device state");
    Status resumed = resume(&qmp_);
    drain_events(&qmp_);
    CapturedEpoch e;
    e.frozen = e.dump = Clock::now() - t0;
    RELIVE_RETURN_IF_ERROR(saved);
    RELIVE_RETURN_IF_ERROR(resumed);
    e.number = number;
    e.full = full;
    e.images_dir = work_dir_;
    e.image_files = {"vmstate"};
    e.total_pages = ram_.bytes() / kPage;
    for (const RamRun& r : runs) {
      e.runs.push_back({kVmRamPid, r.offset, r.pages, ram_.shadow_file(), r.offset});
      e.changed_pages += r.pages;
    }
    for (const DiskRun& r : *disk) {
      e.runs.push_back({kVmDiskPidBase + static_cast<pid_t>(r.disk), r.offset, r.bytes / kPage,
                        r.file, r.file_offset});
      e.disk_bytes += r.bytes;
    }
    return e;
  }
  void committed() override {
    unsynced_ = false;
    disks_.drop_copies();
  }
  void reset() override { unsynced_ = true; }

 private:
  pid_t pid_;
  qemu::QmpClient qmp_;
  RamTracker ram_;
  DiskTracker disks_;
  std::string ram_file_;
  std::string work_dir_;
  bool unsynced_ = true;
};

// Starts QEMU with `args`, connects to its monitor, and once `ready` has run on it, lets it live
// beyond relived (it is relived's child through the subreaper, like a process workload).
Result<std::unique_ptr<ProtectedWorkload>> launch(
    const WorkloadConfig& w, const VmPlace& place, const std::string& ram,
    const std::vector<std::string>& args, const std::function<Status(qemu::QmpClient*)>& ready) {
  std::string work = place.state_dir + "/vm";
  RELIVE_RETURN_IF_ERROR(make_dirs(work));
  RELIVE_RETURN_IF_ERROR(make_dirs(w.directory));
  qemu::QemuLaunch l;
  l.argv = args;
  l.cwd = w.directory;
  l.log_file = place.state_dir + "/qemu.log";
  RELIVE_ASSIGN_OR_RETURN(qemu::QemuProcess q, qemu::QemuProcess::start(l));
  Result<qemu::QmpClient> qmp = qemu::QmpClient::connect(work + "/qmp.sock", kQmpTimeout);
  if (!qmp.ok()) {
    return Status::IoError("QEMU did not come up: " + qmp.status().message() + "\n" + q.log_tail());
  }
  RELIVE_RETURN_IF_ERROR(set_capabilities(&*qmp));
  if (Status s = ready(&*qmp); !s.ok()) {
    return Status::FromCode(static_cast<uint32_t>(s.code()), s.message() + "\n" + q.log_tail());
  }
  RELIVE_ASSIGN_OR_RETURN(RamTracker t,
                          RamTracker::create(ram, ram_path(w, place, "shadow"), w.ram_bytes));
  RELIVE_ASSIGN_OR_RETURN(DiskTracker d, DiskTracker::create(&*qmp, w.disks, work));
  RELIVE_RETURN_IF_ERROR(q.release());
  return std::unique_ptr<ProtectedWorkload>(
      new VmWorkload(q.pid(), std::move(*qmp), std::move(t), std::move(d), ram, work));
}

}  // namespace

Result<std::vector<std::string>> vm_launch_args(const WorkloadConfig& w,
                                                const std::string& ram_file, const std::string& tap,
                                                const std::string& qmp_socket, bool incoming,
                                                const std::vector<std::string>& disk_files) {
  std::vector<std::string> a = w.command;
  for (size_t i = 0; i < disk_files.size() && i < w.disks.size(); ++i) {
    RELIVE_ASSIGN_OR_RETURN(a, qemu::with_drive_file(a, w.disks[i].id, disk_files[i]));
    RELIVE_ASSIGN_OR_RETURN(a, qemu::with_drive_suboption(a, w.disks[i].id, "format", "raw"));
  }
  a.insert(a.end(), {"-object",
                     fmt::format("memory-backend-file,id=relive-ram,size={},mem-path={},share=on",
                                 w.ram_bytes, ram_file),
                     "-machine", "memory-backend=relive-ram", "-netdev",
                     fmt::format("tap,id=relive-net,ifname={},script=no,downscript=no", tap),
                     "-qmp", fmt::format("unix:{},server=on,wait=off", qmp_socket)});
  if (incoming) a.insert(a.end(), {"-S", "-incoming", "defer"});
  return a;
}

Result<std::unique_ptr<ProtectedWorkload>> start_vm_workload(const WorkloadConfig& w,
                                                             const VmPlace& place) {
  std::string ram = ram_path(w, place, "ram");
  ::unlink(ram.c_str());  // a stale file would hand the booting guest old memory
  std::string qmp = place.state_dir + "/vm/qmp.sock";
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> args,
                          vm_launch_args(w, ram, place.tap, qmp, false, {}));
  return launch(w, place, ram, args, [](qemu::QmpClient*) { return Status::Ok(); });
}

Result<std::unique_ptr<ProtectedWorkload>> restore_vm_workload(const WorkloadConfig& w,
                                                               const VmPlace& place,
                                                               Replica* replica) {
  std::string ram = ram_path(w, place, "ram");
  std::string images = place.state_dir + "/restore-images";
  RELIVE_RETURN_IF_ERROR(replica->materialize_vm(images, ram, w.ram_bytes));
  // The disks as of the committed epoch: the replica's raw copies, moved to where this VM runs
  // on them (the primary's images stay where they were, on the primary's host).
  RELIVE_RETURN_IF_ERROR(make_dirs(place.state_dir + "/vm"));
  std::vector<std::string> disks;
  for (size_t i = 0; i < w.disks.size(); ++i) {
    disks.push_back(fmt::format("{}/vm/disk-{}.raw", place.state_dir, w.disks[i].id));
    RELIVE_RETURN_IF_ERROR(replica->take_disk(static_cast<uint32_t>(i), disks.back()));
  }
  std::string qmp = place.state_dir + "/vm/qmp.sock";
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> args,
                          vm_launch_args(w, ram, place.tap, qmp, true, disks));
  return launch(w, place, ram, args, [&](qemu::QmpClient* q) -> Status {
    RELIVE_RETURN_IF_ERROR(
        q->execute("migrate-incoming", {{"uri", "file:" + images + "/vmstate"}}).status());
    RELIVE_RETURN_IF_ERROR(wait_migration(q, "loading the VM's device state"));
    return resume(q);
  });
}

}  // namespace relive::ha
