#include "ha/process_workload.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include "common/file_util.h"
#include "common/logging.h"
#include "common/process_tree.h"
#include "drivers/criu/criu.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"
#include "ha/thread_state.h"
#include "ha/workload_launch.h"

namespace relive::ha {
namespace {

class ProcessWorkload : public ProtectedWorkload {
 public:
  explicit ProcessWorkload(EpochCapture capture) : capture_(std::move(capture)) {}
  pid_t pid() const override { return capture_.pid(); }
  bool alive() override { return workload_alive(capture_.pid()); }
  void kill() override { kill_workload(capture_.pid()); }
  Result<CapturedEpoch> capture(uint64_t number, bool full) override {
    return capture_.capture(number, full);
  }
  void committed() override { capture_.committed(); }
  void reset() override { capture_.reset(); }

 private:
  EpochCapture capture_;
};

Result<std::unique_ptr<ProtectedWorkload>> protect(pid_t pid, const WorkloadConfig& w,
                                                   const std::string& netns_path,
                                                   const std::string& state_dir) {
  CaptureOptions co;
  co.pid = pid;
  co.netns_path = netns_path;
  co.work_dir = state_dir + "/epoch";
  co.directory = w.directory;
  RELIVE_ASSIGN_OR_RETURN(EpochCapture cap, EpochCapture::create(co));
  return std::unique_ptr<ProtectedWorkload>(new ProcessWorkload(std::move(cap)));
}

}  // namespace

Result<std::unique_ptr<ProtectedWorkload>> start_process_workload(const WorkloadConfig& w,
                                                                  const std::string& netns_path,
                                                                  const std::string& state_dir) {
  RELIVE_ASSIGN_OR_RETURN(pid_t pid, start_workload(w, netns_path));
  Result<std::unique_ptr<ProtectedWorkload>> p = protect(pid, w, netns_path, state_dir);
  if (!p.ok()) kill_workload(pid);
  return p;
}

Result<std::unique_ptr<ProtectedWorkload>> restore_process_workload(const WorkloadConfig& w,
                                                                    const std::string& netns_path,
                                                                    const std::string& state_dir,
                                                                    Replica* replica,
                                                                    OutputBuffer* input) {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
  };
  std::string images = state_dir + "/restore-images";
  Clock::time_point t0 = Clock::now();
  bool warm = replica->staged_epoch() == replica->committed_epoch();
  RELIVE_RETURN_IF_ERROR(replica->materialize(images, w.directory));
  Clock::time_point t1 = Clock::now();
  RELIVE_RETURN_IF_ERROR(input->set_pass_through(false));
  RELIVE_ASSIGN_OR_RETURN(std::string criu, criu::find_criu());
  RELIVE_ASSIGN_OR_RETURN(std::string wrapper, criu::criu_with_compat(images, criu, netns_path));
  criu::RestoreOptions ro;
  ro.images_dir = images;
  ro.tcp_established = true;
  ro.run.criu = wrapper;
  ro.run.timeout = std::chrono::seconds(60);
  // After fast epochs the images are the base dump with the latest pages: CRIU leaves the tree
  // stopped and every thread then gets the state of the last epoch before it runs again.
  std::string threads_image = images + "/" + kThreadsImage;
  bool patch = ::access(threads_image.c_str(), F_OK) == 0;
  FastState fast;
  if (patch) {
    RELIVE_ASSIGN_OR_RETURN(std::string raw, read_file(threads_image));
    RELIVE_ASSIGN_OR_RETURN(fast, decode_fast_state(raw));
    ro.leave_stopped = true;
  }
  Clock::time_point t2 = Clock::now();
  Result<pid_t> pid = criu::restore(ro);
  if (pid.ok() && patch) {
    Status applied = apply_fast_state(*pid, fast);
    Result<std::vector<pid_t>> tree = process_tree(*pid);
    if (applied.ok() && !tree.ok()) applied = tree.status();
    if (!applied.ok()) {
      kill_workload(*pid);
      pid = applied.with_context("giving the restored threads the last epoch's state");
    } else {
      signal_all(*tree, SIGCONT);
    }
  }
  (void)input->set_pass_through(true);
  if (!pid.ok()) return pid.status();
  RELIVE_LOG_INFO(
      "restore: images {} in {} ms, CRIU prepared in {} ms, criu restore {} ms{}",
      warm ? "moved from the stage" : "materialized", ms(t0, t1), ms(t1, t2), ms(t2, Clock::now()),
      patch
          ? fmt::format(" (base dump, {} threads set to the last fast epoch)", fast.threads.size())
          : "");
  Result<std::unique_ptr<ProtectedWorkload>> p = protect(*pid, w, netns_path, state_dir);
  if (!p.ok()) kill_workload(*pid);
  return p;
}

}  // namespace relive::ha
