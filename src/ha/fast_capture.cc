#include "ha/fast_capture.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "common/file_util.h"
#include "common/process_tree.h"
#include "common/scoped_fd.h"
#include "dirty/page_reader.h"
#include "dirty/seized_thread.h"
#include "dirty/uffd_install.h"
#include "ha/thread_state.h"
#include "tracee/process_info.h"

namespace relive::ha {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kPage = criu::kImagePageSize;

std::vector<pid_t> sorted(std::vector<pid_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Whether every page of `need` lies inside `have` (both sorted and disjoint).
bool covered(const std::vector<dirty::PageRange>& need, const std::vector<dirty::PageRange>& have) {
  size_t j = 0;
  for (const dirty::PageRange& r : need) {
    uint64_t at = r.start;
    while (at < r.end()) {
      while (j < have.size() && have[j].end() <= at) ++j;
      if (j == have.size() || have[j].start > at) return false;
      at = std::min(r.end(), have[j].end());
    }
  }
  return true;
}

std::vector<criu::VaddrRange> to_vaddr(const std::vector<dirty::PageRange>& v) {
  std::vector<criu::VaddrRange> out;
  out.reserve(v.size());
  for (const dirty::PageRange& r : v) out.push_back({r.start, r.pages});
  return out;
}

// Sorted, merged union of two sorted, merged range lists.
std::vector<criu::VaddrRange> merge(const std::vector<criu::VaddrRange>& a,
                                    const std::vector<criu::VaddrRange>& b) {
  std::vector<criu::VaddrRange> all(a);
  all.insert(all.end(), b.begin(), b.end());
  std::sort(all.begin(), all.end(),
            [](const criu::VaddrRange& x, const criu::VaddrRange& y) { return x.start < y.start; });
  std::vector<criu::VaddrRange> out;
  for (const criu::VaddrRange& r : all) {
    if (!out.empty() && out.back().end() >= r.start) {
      uint64_t end = std::max(out.back().end(), r.end());
      out.back().pages = (end - out.back().start) / kPage;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// An address below the stack pointer of `t` with `len` writable bytes, for the results of
// injected calls: below the red zone, where only signal frames would write.
Result<uint64_t> scratch_below_stack(const dirty::SeizedThread& t,
                                     const std::vector<tracee::Mapping>& maps, uint64_t len) {
  uint64_t addr = (t.resume_regs().rsp - 512 - len) & ~uint64_t{63};
  for (const tracee::Mapping& m : maps) {
    if (m.start <= addr && addr + len <= m.end && m.perms.size() >= 2 && m.perms[1] == 'w')
      return addr;
  }
  return Status::Aborted("no room below a thread's stack pointer for the timer and handler checks");
}

}  // namespace

Result<std::unique_ptr<FastCapture>> FastCapture::arm(pid_t root) {
  std::unique_ptr<FastCapture> f(new FastCapture(root));
  RELIVE_ASSIGN_OR_RETURN(std::vector<pid_t> tree, process_tree(root));
  for (pid_t pid : sorted(tree)) {
    Proc p;
    p.pid = pid;
    RELIVE_ASSIGN_OR_RETURN(p.ns_pid, pid_in_namespace(pid));
    RELIVE_ASSIGN_OR_RETURN(p.syscall_insn, dirty::find_syscall_insn(pid));
    RELIVE_ASSIGN_OR_RETURN(dirty::DirtyTracker t, dirty::DirtyTracker::arm(pid));
    p.tracker = std::make_unique<dirty::DirtyTracker>(std::move(t));
    f->procs_.push_back(std::move(p));
  }
  return f;
}

Status FastCapture::note_cut() {
  noted_ = false;
  RELIVE_ASSIGN_OR_RETURN(std::vector<pid_t> tree, process_tree(root_));
  std::vector<pid_t> armed;
  for (const Proc& p : procs_) armed.push_back(p.pid);
  if (sorted(tree) != armed) return Status::Aborted("the process tree changed while arming");
  for (Proc& p : procs_) {
    RELIVE_ASSIGN_OR_RETURN(p.fp, fingerprint_process(p.pid));
    p.ns_tid.clear();
    RELIVE_ASSIGN_OR_RETURN(std::vector<pid_t> tids, tasks_of(p.pid));
    for (pid_t tid : tids) {
      RELIVE_ASSIGN_OR_RETURN(p.ns_tid[tid], pid_in_namespace(tid));
    }
  }
  return Status::Ok();
}

Status FastCapture::note_images(const std::string& images_dir) {
  for (Proc& p : procs_) {
    if (p.fp.items.empty()) return Status::Aborted("the dump's cut was not fingerprinted");
    RELIVE_ASSIGN_OR_RETURN(std::string map,
                            read_file(fmt::format("{}/pagemap-{}.img", images_dir, p.ns_pid)));
    RELIVE_ASSIGN_OR_RETURN(p.base_map, criu::decode_pagemap_image(map));
    p.base_present = criu::present_ranges(p.base_map);
    RELIVE_ASSIGN_OR_RETURN(std::string core,
                            read_file(fmt::format("{}/core-{}.img", images_dir, p.ns_pid)));
    RELIVE_ASSIGN_OR_RETURN(p.core, criu::decode_task_core(core));
    if (p.core.real != criu::ITimer{} || p.core.virt != criu::ITimer{} ||
        p.core.prof != criu::ITimer{}) {
      return Status::Aborted(
          fmt::format("process {} has an interval timer armed (its time left is not captured "
                      "by fast epochs)",
                      p.ns_pid));
    }
    p.extra.clear();
    p.pending_extra.clear();
  }
  noted_ = true;
  return Status::Ok();
}

void FastCapture::base_committed() { ready_ = noted_; }

void FastCapture::fast_committed() {
  for (Proc& p : procs_) p.extra = p.pending_extra;
}

Status FastCapture::check_kernel_state(Proc& p, dirty::SeizedThread& leader) {
  // Interval timers: none was armed at the base (note_images); one armed since is a change.
  RELIVE_ASSIGN_OR_RETURN(auto maps, tracee::read_maps(p.pid));
  if (!covered(dirty::trackable_ranges(maps), p.tracker->tracked())) {
    return Status::Aborted(
        fmt::format("process {} has a writable mapping the tracker does not cover", p.ns_pid));
  }
  RELIVE_ASSIGN_OR_RETURN(uint64_t scratch, scratch_below_stack(leader, maps, 64));
  dirty::SeizedThread& self = leader;
  for (int which : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) {
    RELIVE_RETURN_IF_ERROR(
        self.call_ok("getitimer", SYS_getitimer, {static_cast<uint64_t>(which), scratch}).status());
    itimerval v{};
    RELIVE_RETURN_IF_ERROR(leader.task().read_mem(scratch, &v, sizeof v));
    if (v.it_value.tv_sec != 0 || v.it_value.tv_usec != 0 || v.it_interval.tv_sec != 0 ||
        v.it_interval.tv_usec != 0) {
      return Status::Aborted(fmt::format("process {} armed an interval timer", p.ns_pid));
    }
  }
  // Handlers: which signals are caught or ignored is in the fingerprint; where a caught one's
  // handler points, its flags and mask are not, so they are read and compared with the base's.
  for (const criu::SigAction& a : p.core.sigactions) {
    if (a.handler <= 1) continue;  // SIG_DFL, SIG_IGN: a change shows in SigCgt / SigIgn
    struct {
      uint64_t handler, flags, restorer, mask;
    } now{};
    RELIVE_RETURN_IF_ERROR(self.call_ok("rt_sigaction", SYS_rt_sigaction,
                                        {static_cast<uint64_t>(a.signo), 0, scratch, 8})
                               .status());
    RELIVE_RETURN_IF_ERROR(leader.task().read_mem(scratch, &now, sizeof now));
    if (now.handler != a.handler || now.flags != a.flags || now.restorer != a.restorer ||
        now.mask != a.mask) {
      return Status::Aborted(
          fmt::format("process {} changed its handler of signal {}", p.ns_pid, a.signo));
    }
  }
  return Status::Ok();
}

Status FastCapture::capture(CapturedEpoch* e, const DirScan& scan) {
  if (!ready_) return Status::Aborted("no base dump to patch yet");
  auto t0 = Clock::now();
  std::vector<pid_t> armed;
  for (const Proc& p : procs_) armed.push_back(p.pid);
  RELIVE_ASSIGN_OR_RETURN(std::vector<pid_t> tree, process_tree(root_));
  if (sorted(tree) != armed) return Status::Aborted("the process tree changed");

  // Freeze: every thread of every process, until no new one appears. Any return from here on
  // releases them (SeizedThread's destructor).
  std::vector<dirty::SeizedThread> held;
  std::vector<std::pair<size_t, pid_t>> held_of;  // (proc index, global tid)
  std::vector<size_t> leader_of(procs_.size(), SIZE_MAX);
  for (size_t i = 0; i < procs_.size(); ++i) {
    Proc& p = procs_[i];
    std::set<pid_t> seen;
    for (bool grew = true; grew;) {
      grew = false;
      RELIVE_ASSIGN_OR_RETURN(std::vector<pid_t> tids, tasks_of(p.pid));
      for (pid_t tid : tids) {
        if (seen.count(tid)) continue;
        if (!p.ns_tid.count(tid)) {
          return Status::Aborted(fmt::format("process {} started a thread", p.ns_pid));
        }
        Result<dirty::SeizedThread> t =
            dirty::SeizedThread::seize_thread(p.pid, tid, p.syscall_insn);
        if (!t.ok()) {
          return t.status().code() == Status::Code::kNotFound
                     ? Status::Aborted(fmt::format("a thread of process {} exited", p.ns_pid))
                     : t.status();
        }
        if (tid == p.pid) leader_of[i] = held.size();
        held.push_back(std::move(*t));
        held_of.emplace_back(i, tid);
        seen.insert(tid);
        grew = true;
      }
    }
    if (seen.size() != p.ns_tid.size()) {
      return Status::Aborted(fmt::format("a thread of process {} exited", p.ns_pid));
    }
    if (leader_of[i] == SIZE_MAX) {
      return Status::Aborted(fmt::format("the main thread of process {} exited", p.ns_pid));
    }
  }
  RELIVE_ASSIGN_OR_RETURN(tree, process_tree(root_));
  if (sorted(tree) != armed) return Status::Aborted("the process tree changed");

  // Everything CRIU dumped besides memory and registers must be as at the base.
  FastState state;
  for (size_t i = 0; i < procs_.size(); ++i) {
    Proc& p = procs_[i];
    RELIVE_ASSIGN_OR_RETURN(ProcessFingerprint now, fingerprint_process(p.pid));
    if (std::optional<std::string> d = first_difference(p.fp, now)) {
      // Offsets of regular files are put back at the backup; anything else takes a CRIU dump.
      std::optional<std::vector<int>> moved = offset_only_changes(p.fp, now);
      if (!moved) return Status::Aborted(fmt::format("process {}: {}", p.ns_pid, *d));
      for (int fd : *moved) {
        const std::string& pos = now.items.at(fmt::format("fdpos/{}", fd));
        size_t digits = pos.find_first_of("0123456789");
        if (digits == std::string::npos) {
          return Status::Aborted(fmt::format("process {}: fd {} has no offset", p.ns_pid, fd));
        }
        state.offsets.push_back(
            {p.ns_pid, fd, static_cast<int64_t>(std::strtoll(pos.c_str() + digits, nullptr, 10))});
      }
    }
    if (now.has_posix_timers) {
      return Status::Aborted(fmt::format(
          "process {} has POSIX timers (their time left is not captured by fast epochs)",
          p.ns_pid));
    }
    RELIVE_RETURN_IF_ERROR(check_kernel_state(p, held[leader_of[i]]));
  }

  // Memory: from here on the trackers have been reset, so a failure makes the next base.
  ready_ = false;
  std::string pages_file = e->images_dir + "/fast-pages";
  ScopedFd out(::open(pages_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) return PosixError("create " + pages_file, errno);
  uint64_t offset = 0;
  for (Proc& p : procs_) {
    RELIVE_ASSIGN_OR_RETURN(std::vector<dirty::PageRange> dirty, p.tracker->collect());
    auto sink = [&](uint64_t vaddr, std::string_view bytes) -> Status {
      RELIVE_RETURN_IF_ERROR(write_all(out.get(), bytes));
      e->runs.push_back({p.ns_pid, vaddr, bytes.size() / kPage, pages_file, offset});
      offset += bytes.size();
      e->changed_pages += bytes.size() / kPage;
      return Status::Ok();
    };
    RELIVE_ASSIGN_OR_RETURN(dirty::ReadReport r, dirty::read_pages(p.pid, dirty, sink));
    if (!r.missing.empty()) {
      return Status::Aborted(fmt::format("pages of process {} vanished while frozen", p.ns_pid));
    }
    p.pending_extra = merge(p.extra, criu::subtract(to_vaddr(dirty), p.base_present));
  }
  for (size_t k = 0; k < held.size(); ++k) {
    Proc& p = procs_[held_of[k].first];
    RELIVE_ASSIGN_OR_RETURN(ThreadState s,
                            capture_thread(held[k], p.ns_pid, p.ns_tid.at(held_of[k].second)));
    state.threads.push_back(std::move(s));
  }
  RELIVE_ASSIGN_OR_RETURN(e->dir, scan(tree));
  for (dirty::SeizedThread& t : held) RELIVE_RETURN_IF_ERROR(t.release());
  e->frozen = Clock::now() - t0;

  // The files the backup's copy of the base takes from this epoch.
  RELIVE_RETURN_IF_ERROR(
      write_file_atomic(e->images_dir + "/" + kThreadsImage, encode_fast_state(state)));
  e->image_files.push_back(kThreadsImage);
  for (Proc& p : procs_) {
    RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage map,
                            criu::with_present_pages(p.base_map, p.pending_extra));
    std::string name = fmt::format("pagemap-{}.img", p.ns_pid);
    RELIVE_RETURN_IF_ERROR(
        write_file_atomic(e->images_dir + "/" + name, criu::encode_pagemap_image(map)));
    e->image_files.push_back(name);
  }
  e->patch = true;
  ready_ = true;
  return Status::Ok();
}

}  // namespace relive::ha
