#include "migrate/crtr_replay.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "common/file_util.h"
#include "common/logging.h"
#include "replay/replay_checkpoint.h"
#include "replay/replay_session.h"
#include "trace/trace_dir.h"
#include "trace/trace_reader.h"
#include "tracee/cpu_binding.h"
#include "tracee/process_setup.h"

namespace relive::migrate {

CrtrReplay::~CrtrReplay() { abort(); }

Status CrtrReplay::start(const std::string& trace_dir, const std::string& criu) {
  std::string events = trace::events_path(trace_dir);
  events_fd_ = ScopedFd(::open(events.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!events_fd_.valid()) return PosixError("create " + events, errno);
  criu::RestoreOptions ro;
  ro.run.criu = criu;
  ro.images_dir = std::filesystem::absolute(trace::checkpoint_dir(trace_dir)).string();
  ro.shell_job = true;
  ro.log_file = ro.images_dir + "/../../replay-restore.log";
  ro.pidfile = ro.images_dir + "/../../replay-restore.pid";
  RELIVE_ASSIGN_OR_RETURN(ns_, container::restore_in_new_pid_namespace(ro));
  thread_ = std::thread(&CrtrReplay::replay_main, this, trace_dir, ns_.root_pid);
  return Status::Ok();
}

Result<bool> CrtrReplay::wait_for_more() {
  std::unique_lock<std::mutex> lock(mu_);
  caught_up_ = appended_;  // everything written to the log so far has been read
  cv_.wait(lock, [&] { return generation_ != seen_ || final_ || aborted_; });
  if (aborted_) return Status::Aborted("the migration was aborted");
  if (generation_ != seen_) {
    seen_ = generation_;
    return true;
  }
  return false;  // final, and nothing new since the last read
}

void CrtrReplay::replay_main(std::string trace_dir, pid_t pid) {
  // Armed while the restored process is still stopped and untraced (arming seizes it).
  if (auto k = transfer::HashKeeper::start(pid, transfer::kHashKeeperPeriod); k.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    keeper_ = std::move(*k);
  } else {
    RELIVE_LOG_DEBUG("replayed memory hashed at the end: {}", k.status().to_string());
  }
  Status st = replay::seize_restored(pid);
  tracee::Task task(pid);
  if (st.ok()) st = tracee::setup_process(task, false, /*map_scratch=*/false).status();
  Result<trace::TraceReader> reader =
      st.ok() ? trace::TraceReader::open(trace_dir) : Result<trace::TraceReader>(st);
  std::vector<std::pair<pid_t, int32_t>> others;
  if (reader.ok()) {
    auto seized = replay::seize_restored_threads(pid, reader->header());
    if (seized.ok())
      others = std::move(*seized);
    else
      reader = seized.status();
  }
  if (reader.ok()) {
    // The program's output already went out at the source: the replay's goes nowhere.
    ScopedFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    // The replay thread and the replayed process on one CPU (tracee/cpu_binding.h); the
    // process is killed once its pages are taken, so its masks need not come back.
    Result<tracee::CpuBinding> cpu = tracee::CpuBinding::bind_caller(kAnyCpu);
    if (cpu.ok()) cpu->bind_process(pid);
    replay::ReplaySession::Mode mode = replay::turn_on_dispatch_everywhere(pid, others);
    replay::ReplaySession session(mode, &*reader, {null.get(), null.get()});
    session.add_initial_thread(pid, reader->header().initial_tid);
    for (const auto& [tid, rec] : others) session.add_initial_thread(tid, rec, /*leader=*/false);
    session.follow([this] { return wait_for_more(); });
    session.park_at_detach();
    Result<int> r = session.run();
    st = r.status();
    events_ = session.events();
    RELIVE_LOG_DEBUG("replayed {} events ({} through the syscall buffer)", session.events(),
                     session.buffered());
    replayed_pid_ = session.leader_tid();
  } else {
    st = reader.status();
  }
  std::unique_lock<std::mutex> lock(mu_);
  result_ = st;
  done_ = true;
  cv_.notify_all();
  // The tracee stays stopped while this thread (its tracer) lives: until release().
  cv_.wait(lock, [&] { return released_; });
  ::kill(pid, SIGKILL);
}

Status CrtrReplay::append_log(std::string_view bytes, bool final) {
  if (!bytes.empty()) RELIVE_RETURN_IF_ERROR(write_all(events_fd_.get(), bytes));
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  appended_ += bytes.size();
  final_ = final_ || final;
  cv_.notify_all();
  return Status::Ok();
}

uint64_t CrtrReplay::bytes_behind() {
  std::lock_guard<std::mutex> lock(mu_);
  return appended_ - caught_up_;
}

Result<transfer::PageHashTable> CrtrReplay::hashes() {
  RELIVE_RETURN_IF_ERROR(finish());
  transfer::HashKeeper* keeper = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    keeper = keeper_.get();  // kept (armed) until release(): disarming a live process is slow
  }
  if (keeper != nullptr && keeper->pid() == replayed_pid_) {
    Status frozen = keeper->freeze();
    if (frozen.ok()) return keeper->table();
    RELIVE_LOG_DEBUG("replayed memory hashed whole: {}", frozen.to_string());
  }
  return transfer::PageHashTable::of_anonymous_memory(replayed_pid_);
}

bool CrtrReplay::hashed_once() {
  std::lock_guard<std::mutex> lock(mu_);
  return keeper_ == nullptr || keeper_->hashed_once();
}

Status CrtrReplay::finish() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_; });
  return result_;
}

void CrtrReplay::release() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
      cv_.notify_all();
    }
    thread_.join();
  }
  if (ns_.init_pid > 0) ::kill(ns_.init_pid, SIGKILL);
  ns_ = {};
  replayed_pid_ = 0;
  keeper_.reset();  // its process is gone: nothing left to unprotect
}

void CrtrReplay::abort() {
  if (ns_.init_pid > 0) ::kill(ns_.init_pid, SIGKILL);  // a replay busy with its tracee ends too
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }
  release();
}

}  // namespace relive::migrate
