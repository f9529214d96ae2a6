#include "ha/fast_capture.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/file_util.h"
#include "common/logging.h"
#include "common/process_tree.h"
#include "common/scoped_fd.h"
#include "dirty/page_reader.h"
#include "dirty/seized_thread.h"
#include "dirty/uffd_install.h"
#include "ha/patch_bundle.h"
#include "ha/tcp_stream_capture.h"
#include "ha/thread_state.h"
#include "tracee/process_info.h"

namespace relive::ha {
namespace {

// The fingerprint read while the workload is frozen: the mappings' flags are read after.
constexpr FingerprintOptions kWhileFrozen{.vma_flags = false};

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

// The fd number of a "fd/N", "fdpos/N" or "fdq/N" key; -1 for other keys.
int fd_of(const std::string& key, std::string_view prefix) {
  if (!key.starts_with(prefix)) return -1;
  return std::atoi(key.c_str() + prefix.size());
}

// Whether a socket's "fdq" text is an established-like TCP connection's (not a listener's).
bool is_tcp_stream(const std::string& fdq) {
  return fdq.find(" tcp_state=") != std::string::npos &&
         fdq.find(" tcp_state=10 ") == std::string::npos;
}

// What a tcp-stream patch cannot change: the "fdq" text of a TCP socket without the counters
// that its sequence numbers, queues and windows move, and without the buffer sizes (autotuned
// as the connection runs; the base's values are restored).
std::string tcp_identity(const std::string& fdq) {
  std::string out;
  size_t at = 0;
  while (at < fdq.size()) {
    size_t end = fdq.find(' ', at);
    if (end == std::string::npos) end = fdq.size();
    std::string_view token(fdq.data() + at, end - at);
    bool moving = false;
    for (std::string_view p :
         {"inq=", "outq=", "rcvbuf=", "sndbuf=", "acked=", "received=", "snd_wnd=", "unsent="}) {
      moving = moving || token.starts_with(p);
    }
    if (!moving) {
      out.append(token);
      out += ' ';
    }
    at = end + 1;
  }
  return out;
}

// The socket's inode from a "fd/N" item ("-> socket:[12345]\n..."); 0 if it is not a socket.
uint64_t socket_inode(const std::string& fd_item) {
  size_t at = fd_item.find("socket:[");
  return at == std::string::npos ? 0 : std::strtoull(fd_item.c_str() + at + 8, nullptr, 10);
}

// The peer of a TCP connection is in the workload's own host (loopback, or its own address):
// its segments are not held with the workload's input.
bool local_peer(const std::string& fdq) {
  auto field = [&](const char* name) {
    size_t at = fdq.find(name);
    if (at == std::string::npos) return std::string();
    at += std::strlen(name);
    return fdq.substr(at, fdq.find(' ', at) - at);
  };
  std::string name = field(" name="), peer = field(" peer=");
  // Hex of a sockaddr: family (2 bytes), port (2), then an IPv4 address (4) or, for IPv6,
  // flowinfo (4) and the address (16).
  if (peer.size() < 16 || name.size() < 16) return true;
  bool v4 = peer.compare(0, 4, "0200") == 0;
  std::string peer_addr = v4 ? peer.substr(8, 8) : peer.substr(16, 32);
  std::string name_addr = v4 ? name.substr(8, 8) : name.substr(16, 32);
  if (peer_addr == name_addr) return true;
  if (v4) return peer_addr.compare(0, 2, "7f") == 0;
  return peer_addr == "00000000000000000000000000000001" ||
         (peer_addr.compare(0, 24, "00000000000000000000ffff") == 0 &&
          peer_addr.compare(24, 2, "7f") == 0);
}

}  // namespace

std::optional<std::string> shared_memory_written(const std::vector<tracee::Mapping>& maps) {
  for (const tracee::Mapping& m : maps) {
    if (m.perms.size() < 4 || m.perms[1] != 'w' || m.perms[3] != 's') continue;
    const std::string& p = m.path;
    bool saved = p.empty() || p.starts_with("/dev/zero") || p.starts_with("/SYSV") ||
                 p.starts_with("/memfd:") || p.starts_with("/dev/shm/") || p.starts_with("[") ||
                 p.ends_with(" (deleted)");
    if (saved) {
      return fmt::format("shared memory at {:#x}-{:#x} ({})", m.start, m.end,
                         p.empty() ? "anonymous" : p);
    }
  }
  return std::nullopt;
}

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
    RELIVE_ASSIGN_OR_RETURN(p.fp, fingerprint_process(p.pid, kWhileFrozen));
    RELIVE_ASSIGN_OR_RETURN(p.base_vma_flags, read_vma_flags(p.pid));
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
    p.tcp_base.clear();
    p.tcp_patched.clear();
    for (const auto& [key, value] : p.fp.items) {
      int fd = fd_of(key, "fdq/");
      if (fd < 0 || !is_tcp_stream(value)) continue;
      uint64_t ino = socket_inode(p.fp.items[fmt::format("fd/{}", fd)]);
      std::string name = fmt::format("tcp-stream-{:x}.img", ino);
      Result<std::string> image = read_file(images_dir + "/" + name);
      if (ino != 0 && image.ok()) p.tcp_base[fd] = {name, std::move(*image)};
    }
  }
  noted_ = true;
  return Status::Ok();
}

void FastCapture::base_committed() { ready_ = noted_; }

void FastCapture::fast_committed() {
  for (Proc& p : procs_) {
    p.extra = p.pending_extra;
    p.tcp_patched = p.pending_tcp;
  }
}

Status FastCapture::check_kernel_state(Proc& p, dirty::SeizedThread& leader) {
  // Interval timers: none was armed at the base (note_images); one armed since is a change.
  RELIVE_ASSIGN_OR_RETURN(auto maps, tracee::read_maps(p.pid));
  if (std::optional<std::string> shm = shared_memory_written(maps)) {
    return Status::Aborted(fmt::format("process {} has writable {}", p.ns_pid, *shm));
  }
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

Status FastCapture::capture_changes(Proc& p, const ProcessFingerprint& now, FastState* state,
                                    Files* files) {
  ProcessFingerprint base = p.fp, rest = now;
  std::set<int> streams = p.tcp_patched;
  for (const auto& [key, value] : now.items) {
    auto b = base.items.find(key);
    if (b == base.items.end() || b->second == value) continue;
    if (int fd = fd_of(key, "fdpos/"); fd >= 0) {
      size_t digits = value.find_first_of("0123456789");
      if (digits == std::string::npos) continue;  // left in: reported below
      state->offsets.push_back(
          {p.ns_pid, fd, static_cast<int64_t>(std::strtoll(value.c_str() + digits, nullptr, 10))});
    } else if (int q = fd_of(key, "fdq/");
               q >= 0 && p.tcp_base.count(q) && tcp_identity(b->second) == tcp_identity(value)) {
      if (local_peer(value)) {
        return Status::Aborted(fmt::format(
            "process {}: fd {} is a TCP connection within the workload's host", p.ns_pid, q));
      }
      streams.insert(q);
    } else {
      continue;
    }
    base.items.erase(key);
    rest.items.erase(key);
  }
  if (std::optional<std::string> d = first_difference(base, rest)) {
    return Status::Aborted(fmt::format("process {}: {}", p.ns_pid, *d));
  }
  // Each stream is read and patched on its own; many are split between two threads.
  std::vector<int> order(streams.begin(), streams.end());
  std::vector<Result<std::string>> patched(order.size(), Status::Aborted("not read"));
  auto patch = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      Result<criu::TcpStreamState> tcp = read_tcp_stream(p.pid, order[i]);
      patched[i] = tcp.ok() ? criu::patch_tcp_stream_image(p.tcp_base.at(order[i]).second, *tcp)
                            : Result<std::string>(tcp.status());
    }
  };
  size_t half = order.size() >= 8 ? order.size() / 2 : order.size();
  std::thread other;
  if (half < order.size()) other = std::thread(patch, half, order.size());
  patch(0, half);
  if (other.joinable()) other.join();
  for (size_t i = 0; i < order.size(); ++i) {
    if (!patched[i].ok()) {
      return Status::Aborted(fmt::format("process {}: fd {}: {}", p.ns_pid, order[i],
                                         patched[i].status().to_string()));
    }
    files->emplace_back(p.tcp_base.at(order[i]).first, std::move(*patched[i]));
  }
  p.pending_tcp = std::move(streams);
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
  auto t_frozen = Clock::now();
  std::chrono::nanoseconds t_fp{0}, t_changes{0}, t_kernel{0};
  FastState state;
  Files files;  // written out once the threads run again
  for (size_t i = 0; i < procs_.size(); ++i) {
    Proc& p = procs_[i];
    auto t = Clock::now();
    RELIVE_ASSIGN_OR_RETURN(ProcessFingerprint now, fingerprint_process(p.pid, kWhileFrozen));
    t_fp += Clock::now() - t;
    t = Clock::now();
    RELIVE_RETURN_IF_ERROR(capture_changes(p, now, &state, &files));
    t_changes += Clock::now() - t;
    t = Clock::now();
    if (now.has_posix_timers) {
      return Status::Aborted(fmt::format(
          "process {} has POSIX timers (their time left is not captured by fast epochs)",
          p.ns_pid));
    }
    RELIVE_RETURN_IF_ERROR(check_kernel_state(p, held[leader_of[i]]));
    t_kernel += Clock::now() - t;
  }
  auto t_pages = Clock::now();

  // Memory: from here on the trackers have been reset, so a failure makes the next base.
  ready_ = false;
  std::string pages_file = e->images_dir + "/fast-pages";
  std::vector<std::vector<dirty::PageRange>> dirty_of(procs_.size());
  uint64_t dirty_bytes = 0;
  for (size_t i = 0; i < procs_.size(); ++i) {
    RELIVE_ASSIGN_OR_RETURN(dirty_of[i], procs_[i].tracker->collect());
    for (const dirty::PageRange& r : dirty_of[i]) dirty_bytes += r.pages * kPage;
  }
  std::string& pages = pages_;  // written out once the threads run again
  if (pages.capacity() > 4 * dirty_bytes + (64u << 20)) std::string().swap(pages);
  pages.clear();
  pages.reserve(dirty_bytes);
  for (size_t i = 0; i < procs_.size(); ++i) {
    Proc& p = procs_[i];
    const std::vector<dirty::PageRange>& dirty = dirty_of[i];
    auto sink = [&](uint64_t vaddr, std::string_view bytes) -> Status {
      e->runs.push_back({p.ns_pid, vaddr, bytes.size() / kPage, pages_file, pages.size()});
      pages.append(bytes);
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
  auto t_scan = Clock::now();
  RELIVE_ASSIGN_OR_RETURN(e->dir, scan(tree));
  auto t_release = Clock::now();
  for (dirty::SeizedThread& t : held) RELIVE_RETURN_IF_ERROR(t.release());
  e->frozen = Clock::now() - t0;
  auto us = [](std::chrono::nanoseconds d) { return d.count() / 1000; };
  RELIVE_LOG_DEBUG(
      "fast capture: {} threads seized in {} us, fingerprints {} us, changes ({} offsets, {} TCP "
      "streams) {} us, timers and handlers {} us, {} pages and registers {} us, directory {} us, "
      "release {} us",
      held.size(), us(t_frozen - t0), us(t_fp), state.offsets.size(), files.size(), us(t_changes),
      us(t_kernel), e->changed_pages, us(t_scan - t_pages), us(t_release - t_scan),
      us(Clock::now() - t_release));

  // The files the backup's copy of the base takes from this epoch, in one bundle.
  files.emplace_back(kThreadsImage, encode_fast_state(state));
  for (Proc& p : procs_) {
    RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage map,
                            criu::with_present_pages(p.base_map, p.pending_extra));
    files.emplace_back(fmt::format("pagemap-{}.img", p.ns_pid), criu::encode_pagemap_image(map));
  }
  // Scratch files, rewritten every epoch: no fsync.
  auto write = [](const std::string& path, std::string_view bytes) -> Status {
    ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return PosixError("create " + path, errno);
    return write_all(fd.get(), bytes);
  };
  RELIVE_RETURN_IF_ERROR(write(e->images_dir + "/" + kPatchBundle, encode_patch_bundle(files)));
  e->image_files.push_back(kPatchBundle);
  RELIVE_RETURN_IF_ERROR(write(pages_file, pages));
  // The mappings' flags (madvise, mlock on a whole mapping change nothing else /proc shows) are
  // read now that the workload runs again: smaps costs ~30 ms per resident GiB, too long to
  // hold it frozen, and at most a tenth of relived's time is spent on it (a large process's are
  // read every few epochs). Changed since the base: this epoch is dropped and a CRIU epoch
  // taken in its place (its flags at the cut are then unknown). The epochs since the last read
  // may carry the base's flags; changed and changed back between two reads goes unseen.
  auto t_flags = Clock::now();
  if (t_flags >= next_flags_check_) {
    RELIVE_RETURN_IF_ERROR(check_vma_flags());
    auto took = Clock::now() - t_flags;
    next_flags_check_ = Clock::now() + 9 * took;
    RELIVE_LOG_DEBUG("fast capture: mapping flags read in {} us after the release", us(took));
  }
  e->patch = true;
  ready_ = true;
  return Status::Ok();
}

Status FastCapture::check_vma_flags() {
  for (Proc& p : procs_) {
    RELIVE_ASSIGN_OR_RETURN(std::string flags, read_vma_flags(p.pid));
    if (flags != p.base_vma_flags) {
      return Status::Aborted(fmt::format(
          "memory mapping flags changed in process {} (madvise or mlock of a whole mapping)",
          p.ns_pid));
    }
  }
  return Status::Ok();
}

}  // namespace relive::ha
