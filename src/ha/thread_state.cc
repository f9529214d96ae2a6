#include "ha/thread_state.h"

#include <dirent.h>
#include <elf.h>
#include <fmt/format.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <utility>

#include "common/file_util.h"
#include "common/process_tree.h"

namespace relive::ha {
namespace {

constexpr std::string_view kMagic = "RLVTHRD1";
constexpr size_t kMaxXstate = 64 * 1024;  // far above any x86 XSAVE area
constexpr uint32_t kMaxThreads = 1 << 16;
constexpr uint32_t kMaxOffsets = 1 << 20;

void put_u32(std::string* out, uint32_t v) { out->append(reinterpret_cast<char*>(&v), 4); }
void put_u64(std::string* out, uint64_t v) { out->append(reinterpret_cast<char*>(&v), 8); }

class Cursor {
 public:
  explicit Cursor(std::string_view in) : in_(in) {}
  bool take(void* out, size_t n) {
    if (in_.size() < n) return false;
    std::memcpy(out, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool take(std::string* out, size_t n) {
    if (in_.size() < n) return false;
    out->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

// The threads of the tree at `root`, keyed by their (pid, tid) in the namespace.
Result<std::map<std::pair<pid_t, pid_t>, std::pair<pid_t, pid_t>>> threads_by_ns_ids(pid_t root) {
  RELIVE_ASSIGN_OR_RETURN(std::vector<pid_t> tree, process_tree(root));
  std::map<std::pair<pid_t, pid_t>, std::pair<pid_t, pid_t>> out;
  for (pid_t p : tree) {
    RELIVE_ASSIGN_OR_RETURN(pid_t ns_pid, pid_in_namespace(p));
    RELIVE_ASSIGN_OR_RETURN(std::vector<pid_t> tids, tasks_of(p));
    for (pid_t tid : tids) {
      RELIVE_ASSIGN_OR_RETURN(pid_t ns_tid, pid_in_namespace(tid));
      out[{ns_pid, ns_tid}] = {p, tid};
    }
  }
  return out;
}

}  // namespace

// The numeric entries of /proc/PID/task.
Result<std::vector<pid_t>> tasks_of(pid_t pid) {
  std::string path = fmt::format("/proc/{}/task", pid);
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return PosixError("open " + path, errno);
  std::vector<pid_t> out;
  while (dirent* e = ::readdir(d)) {
    pid_t tid = std::atoi(e->d_name);
    if (tid > 0) out.push_back(tid);
  }
  ::closedir(d);
  return out;
}

Result<pid_t> pid_in_namespace(pid_t id) {
  RELIVE_ASSIGN_OR_RETURN(std::string status, read_file(fmt::format("/proc/{}/status", id)));
  size_t at = status.find("\nNSpid:");
  if (at == std::string::npos) return Status::NotFound(fmt::format("no NSpid for {}", id));
  size_t end = status.find('\n', at + 1);
  std::string line =
      status.substr(at + 7, end == std::string::npos ? std::string::npos : end - at - 7);
  size_t last = line.find_last_not_of(" \t");
  if (last == std::string::npos) return Status::NotFound(fmt::format("no NSpid for {}", id));
  size_t first = line.find_last_of(" \t", last);
  return static_cast<pid_t>(std::atoi(line.c_str() + (first == std::string::npos ? 0 : first + 1)));
}

Result<ThreadState> capture_thread(const dirty::SeizedThread& t, pid_t pid, pid_t tid) {
  ThreadState s;
  s.pid = pid;
  s.tid = tid;
  s.regs = t.resume_regs();
  pid_t host = t.task().tid();
  s.xstate.resize(kMaxXstate);
  iovec iov{s.xstate.data(), s.xstate.size()};
  if (::ptrace(PTRACE_GETREGSET, host, NT_X86_XSTATE, &iov) != 0)
    return PosixError(fmt::format("PTRACE_GETREGSET NT_X86_XSTATE of thread {}", host), errno);
  s.xstate.resize(iov.iov_len);
  if (::ptrace(PTRACE_GETSIGMASK, host, sizeof s.sigmask, &s.sigmask) != 0)
    return PosixError(fmt::format("PTRACE_GETSIGMASK of thread {}", host), errno);
  return s;
}

Status apply_thread(dirty::SeizedThread* t, const ThreadState& s) {
  pid_t host = t->task().tid();
  std::string xstate = s.xstate;
  iovec iov{xstate.data(), xstate.size()};
  if (::ptrace(PTRACE_SETREGSET, host, NT_X86_XSTATE, &iov) != 0)
    return PosixError(fmt::format("PTRACE_SETREGSET NT_X86_XSTATE of thread {} ({} bytes; the "
                                  "backup's CPU must save the same state as the primary's)",
                                  host, xstate.size()),
                      errno);
  uint64_t mask = s.sigmask;
  if (::ptrace(PTRACE_SETSIGMASK, host, sizeof mask, &mask) != 0)
    return PosixError(fmt::format("PTRACE_SETSIGMASK of thread {}", host), errno);
  t->set_resume_regs(s.regs);
  return Status::Ok();
}

std::string encode_fast_state(const FastState& state) {
  std::string out(kMagic);
  put_u32(&out, static_cast<uint32_t>(state.threads.size()));
  for (const ThreadState& s : state.threads) {
    put_u32(&out, static_cast<uint32_t>(s.pid));
    put_u32(&out, static_cast<uint32_t>(s.tid));
    out.append(reinterpret_cast<const char*>(&s.regs), sizeof s.regs);
    put_u64(&out, s.sigmask);
    put_u32(&out, static_cast<uint32_t>(s.xstate.size()));
    out.append(s.xstate);
  }
  put_u32(&out, static_cast<uint32_t>(state.offsets.size()));
  for (const FileOffset& o : state.offsets) {
    put_u32(&out, static_cast<uint32_t>(o.pid));
    put_u32(&out, static_cast<uint32_t>(o.fd));
    put_u64(&out, static_cast<uint64_t>(o.pos));
  }
  return out;
}

Result<FastState> decode_fast_state(std::string_view image) {
  auto bad = [](const char* what) {
    return Status::Corruption(fmt::format("threads image: {}", what));
  };
  if (image.substr(0, kMagic.size()) != kMagic) return bad("bad magic");
  Cursor c(image.substr(kMagic.size()));
  uint32_t n = 0;
  if (!c.take(&n, 4)) return bad("truncated header");
  if (n == 0 || n > kMaxThreads) return bad("implausible thread count");
  FastState out;
  out.threads.resize(n);
  for (ThreadState& s : out.threads) {
    uint32_t pid = 0, tid = 0, xlen = 0;
    if (!c.take(&pid, 4) || !c.take(&tid, 4) || !c.take(&s.regs, sizeof s.regs) ||
        !c.take(&s.sigmask, 8) || !c.take(&xlen, 4)) {
      return bad("truncated thread");
    }
    if (pid == 0 || tid == 0 || pid > (1u << 22) || tid > (1u << 22)) return bad("bad thread ids");
    if (xlen > kMaxXstate) return bad("oversized FPU state");
    if (!c.take(&s.xstate, xlen)) return bad("truncated FPU state");
    s.pid = static_cast<pid_t>(pid);
    s.tid = static_cast<pid_t>(tid);
  }
  uint32_t offsets = 0;
  if (!c.take(&offsets, 4)) return bad("truncated offsets");
  if (offsets > kMaxOffsets) return bad("implausible offset count");
  out.offsets.resize(offsets);
  for (FileOffset& o : out.offsets) {
    uint32_t pid = 0, fd = 0;
    uint64_t pos = 0;
    if (!c.take(&pid, 4) || !c.take(&fd, 4) || !c.take(&pos, 8)) return bad("truncated offset");
    if (pid == 0 || pid > (1u << 22) || fd > (1u << 30) || pos > (uint64_t{1} << 62))
      return bad("bad file offset");
    o = {static_cast<pid_t>(pid), static_cast<int>(fd), static_cast<int64_t>(pos)};
  }
  if (!c.done()) return bad("trailing bytes");
  return out;
}

Status apply_fast_state(pid_t root, const FastState& state) {
  RELIVE_ASSIGN_OR_RETURN(auto restored, threads_by_ns_ids(root));
  if (restored.size() != state.threads.size()) {
    return Status::Aborted(fmt::format("the restored tree has {} threads, the epoch {}",
                                       restored.size(), state.threads.size()));
  }
  std::map<pid_t, uint64_t> insn;  // per global pid
  std::map<pid_t, size_t> one_of;  // namespace pid -> a held thread of that process
  std::vector<dirty::SeizedThread> held;
  held.reserve(state.threads.size());
  for (const ThreadState& s : state.threads) {
    auto it = restored.find({s.pid, s.tid});
    if (it == restored.end()) {
      return Status::Aborted(fmt::format("thread {} of process {} was not restored", s.tid, s.pid));
    }
    auto [pid, tid] = it->second;
    if (!insn.count(pid)) {
      RELIVE_ASSIGN_OR_RETURN(insn[pid], dirty::find_syscall_insn(pid));
    }
    RELIVE_ASSIGN_OR_RETURN(dirty::SeizedThread t,
                            dirty::SeizedThread::seize_thread(pid, tid, insn[pid]));
    RELIVE_RETURN_IF_ERROR(apply_thread(&t, s));
    one_of.emplace(s.pid, held.size());
    held.push_back(std::move(t));
  }
  for (const FileOffset& o : state.offsets) {
    auto it = one_of.find(o.pid);
    if (it == one_of.end()) {
      return Status::Aborted(
          fmt::format("file offsets for process {}, which has no thread", o.pid));
    }
    RELIVE_ASSIGN_OR_RETURN(
        int64_t at, held[it->second].call_ok(
                        "lseek", SYS_lseek,
                        {static_cast<uint64_t>(o.fd), static_cast<uint64_t>(o.pos), SEEK_SET}));
    if (at != o.pos) {
      return Status::Aborted(
          fmt::format("fd {} of process {} is at {}, not {}", o.fd, o.pid, at, o.pos));
    }
  }
  for (dirty::SeizedThread& t : held) RELIVE_RETURN_IF_ERROR(t.release());
  return Status::Ok();
}

}  // namespace relive::ha
