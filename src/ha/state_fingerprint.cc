#include "ha/state_fingerprint.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <thread>

#include "common/scoped_fd.h"

namespace relive::ha {
namespace {

using Items = std::map<std::string, std::string>;

// A value that equals no other, for an item that could not be read: it always counts as changed.
std::string unreadable(int err) {
  static std::atomic<uint64_t> serial{0};
  return "unreadable #" + std::to_string(serial.fetch_add(1) + 1) + ": " + std::strerror(err);
}

// The reads share one buffer per thread; a view into it lives until the next read.
std::vector<char>& read_buffer() {
  thread_local std::vector<char> buf(64 * 1024);
  return buf;
}

// How a /proc file is printed: one record (a short read means the end) or several (read to EOF).
enum class Records { kOne, kMany };

// Reads `name` under the directory `dir` whole. Returns 0 or an errno.
int read_at(int dir, const char* name, Records records, std::string_view* out) {
  ScopedFd fd(::openat(dir, name, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  std::vector<char>& buf = read_buffer();
  size_t len = 0;
  for (;;) {
    if (len == buf.size()) buf.resize(buf.size() * 2);
    ssize_t n = ::read(fd.get(), buf.data() + len, buf.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    len += static_cast<size_t>(n);
    if (n == 0 || (records == Records::kOne && len < buf.size())) break;
  }
  *out = std::string_view(buf.data(), len);
  return 0;
}

// The item `key` = the text of the file `name` (or an unreadable marker).
void put_file(int dir, const char* name, Records records, const std::string& key, Items* items) {
  std::string_view text;
  int err = read_at(dir, name, records, &text);
  (*items)[key] = err == 0 ? std::string(text) : unreadable(err);
}

void put_link(int dir, const char* name, const std::string& key, Items* items) {
  char target[4096];
  ssize_t n = ::readlinkat(dir, name, target, sizeof target);
  (*items)[key] = n >= 0 ? std::string(target, static_cast<size_t>(n)) : unreadable(errno);
}

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// The numeric names in the directory `name` under `dir`, ascending. Returns 0 or an errno.
int list_numbers(int dir, const char* name, std::vector<int>* out) {
  ScopedFd fd(::openat(dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  alignas(8) char buf[16384];
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd.get(), buf, sizeof buf);
    if (n < 0) return errno;
    if (n == 0) break;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<const struct dirent64*>(buf + off);
      off += d->d_reclen;
      if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
      out->push_back(std::atoi(d->d_name));
    }
  }
  std::sort(out->begin(), out->end());
  return 0;
}

std::string join(const std::vector<int>& numbers) {
  std::string out;
  for (int n : numbers) out += std::to_string(n) + " ";
  return out;
}

// The fields of a /proc stat line after the command name (which may hold spaces and
// parentheses), so that fields[0] is field 3 (state); and the command name.
bool split_stat(std::string_view text, std::string_view* comm,
                std::vector<std::string_view>* fields) {
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    return false;
  *comm = text.substr(open + 1, close - open - 1);
  size_t i = close + 1;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
    size_t end = text.find_first_of(" \n", i);
    if (end == std::string_view::npos) end = text.size();
    if (end > i) fields->push_back(text.substr(i, end - i));
    i = end;
  }
  return true;
}

// Fields numbered as in proc(5), "?" where the kernel prints fewer.
std::string pick_fields(const std::vector<std::string_view>& fields,
                        std::initializer_list<int> numbers) {
  std::string out;
  for (int n : numbers) {
    size_t i = static_cast<size_t>(n - 3);
    out += std::to_string(n) + "=";
    out += i < fields.size() ? fields[i] : std::string_view("?");
    out += " ";
  }
  return out;
}

// ppid pgrp session tty_nr tpgid priority nice starttime startcode endcode startstack
// exit_signal rt_priority policy start_data end_data start_brk arg_start arg_end env_start
// env_end exit_code; not state, counters, times, sizes or the CPU last run on.
constexpr std::initializer_list<int> kProcessStatFields = {
    4, 5, 6, 7, 8, 18, 19, 22, 26, 27, 28, 38, 40, 41, 45, 46, 47, 48, 49, 50, 51, 52};
constexpr std::initializer_list<int> kThreadStatFields = {18, 19, 40, 41};

// /proc status lines that move while a process merely runs, or that the fast capture saves
// itself (SigBlk).
bool volatile_status_line(std::string_view label) {
  static constexpr std::string_view kDenied[] = {"State",
                                                 "TracerPid",
                                                 "SigBlk",
                                                 "HugetlbPages",
                                                 "voluntary_ctxt_switches",
                                                 "nonvoluntary_ctxt_switches"};
  if (label.starts_with("Vm") || label.starts_with("Rss")) return true;
  return std::find(std::begin(kDenied), std::end(kDenied), label) != std::end(kDenied);
}

bool all_zero(std::string_view value) {
  return value.find_first_not_of("0 \t") == std::string_view::npos;
}

// A thread's status without the volatile lines. SigQ (queued/limit) counts the signals queued to
// all processes of the user: kept only while this thread has a signal pending, when it tells how
// many of them are queued.
std::string filter_status(std::string_view text) {
  std::string out;
  size_t sigq_at = std::string::npos, sigq_len = 0;
  bool pending = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl == std::string_view::npos ? text.size() : nl + 1);
    text.remove_prefix(line.size());
    std::string_view label = line.substr(0, line.find(':'));
    if (volatile_status_line(label)) continue;
    if (label == "SigPnd" || label == "ShdPnd") {
      pending |= !all_zero(line.substr(label.size() + 1, line.size() - label.size() - 2));
    }
    if (label == "SigQ") sigq_at = out.size(), sigq_len = line.size();
    out += line;
  }
  if (sigq_at != std::string::npos && !pending) out.erase(sigq_at, sigq_len);
  return out;
}

void put_thread(int proc, int tid, Items* items) {
  const std::string dir = "task/" + std::to_string(tid);
  const std::string key = "thread/" + std::to_string(tid);
  std::string_view text, comm;
  std::vector<std::string_view> fields;
  int err = read_at(proc, (dir + "/stat").c_str(), Records::kOne, &text);
  if (err == 0 && split_stat(text, &comm, &fields)) {
    (*items)[key + "/stat"] =
        "comm=" + std::string(comm) + " " + pick_fields(fields, kThreadStatFields);
  } else {
    (*items)[key + "/stat"] = unreadable(err == 0 ? EBADMSG : err);
  }
  err = read_at(proc, (dir + "/status").c_str(), Records::kOne, &text);
  (*items)[key + "/status"] = err == 0 ? filter_status(text) : unreadable(err);
  void* head = nullptr;
  size_t len = 0;
  (*items)[key + "/robust_list"] =
      ::syscall(SYS_get_robust_list, tid, &head, &len) == 0
          ? std::to_string(reinterpret_cast<uintptr_t>(head)) + " " + std::to_string(len)
          : unreadable(errno);
}

Status put_threads(int proc, Items* items) {
  std::vector<int> tids;
  int err = list_numbers(proc, "task", &tids);
  if (err == ENOENT || err == ESRCH) return Status::NotFound("the process is gone");
  if (err != 0) return PosixError("list threads", err);
  (*items)["threads"] = join(tids);
  for (int tid : tids) put_thread(proc, tid, items);
  return Status::Ok();
}

// The VmFlags lines of smaps, one per mapping (the mappings themselves are in "maps"); 0 or
// the errno.
int vma_flags_at(int proc, std::string* out) {
  std::string_view text;
  int err = read_at(proc, "smaps", Records::kMany, &text);
  if (err != 0) return err;
  out->clear();
  for (size_t at = text.find("VmFlags:"); at != std::string_view::npos;
       at = text.find("VmFlags:", at + 1)) {
    size_t nl = text.find('\n', at);
    *out += text.substr(at + 8, (nl == std::string_view::npos ? text.size() : nl + 1) - at - 8);
  }
  return 0;
}

void put_vma_flags(int proc, Items* items) {
  std::string out;
  int err = vma_flags_at(proc, &out);
  (*items)["vmflags"] = err != 0 ? unreadable(err) : std::move(out);
}

// Process-wide items other than threads and descriptors.
Status put_process(int proc, const FingerprintOptions& options, ProcessFingerprint* fp) {
  Items* items = &fp->items;
  std::string_view text, comm;
  std::vector<std::string_view> fields;
  int err = read_at(proc, "stat", Records::kOne, &text);
  if (err == ENOENT || err == ESRCH) return Status::NotFound("the process is gone");
  if (err != 0) return PosixError("read stat", err);
  if (!split_stat(text, &comm, &fields)) return Status::Corruption("unparsable /proc stat");
  (*items)["stat"] = pick_fields(fields, kProcessStatFields);
  put_file(proc, "maps", Records::kMany, "maps", items);
  if (options.vma_flags) put_vma_flags(proc, items);
  put_file(proc, "limits", Records::kOne, "limits", items);
  put_file(proc, "timers", Records::kMany, "timers", items);
  fp->has_posix_timers = !(*items)["timers"].empty();
  put_file(proc, "personality", Records::kOne, "personality", items);
  put_file(proc, "oom_score_adj", Records::kOne, "oom_score_adj", items);
  put_file(proc, "loginuid", Records::kOne, "loginuid", items);
  put_file(proc, "cgroup", Records::kOne, "cgroup", items);
  err = read_at(proc, "auxv", Records::kOne, &text);
  (*items)["auxv"] = err == 0 ? hex(text) : unreadable(err);
  for (const char* link : {"cwd", "root", "exe"}) put_link(proc, link, link, items);
  for (const char* ns : {"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
                         "time_for_children", "user", "uts"}) {
    put_link(proc, (std::string("ns/") + ns).c_str(), std::string("ns/") + ns, items);
  }
  return Status::Ok();
}

// ---- descriptors ----

enum class FdKind { kRegular, kPipe, kSocket, kTerminal, kOther };

std::string errno_text(int err) { return "e" + std::to_string(err); }

// An int ioctl's result, or the errno it failed with (stable: not "unreadable").
std::string ioctl_int(int fd, unsigned long request) {
  int v = 0;
  return ::ioctl(fd, request, &v) == 0 ? std::to_string(v) : errno_text(errno);
}

std::string sockopt_int(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  return ::getsockopt(fd, level, name, &v, &len) == 0 ? std::to_string(v) : errno_text(errno);
}

std::string address(int fd, bool peer) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len)
               : ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  if (r != 0) return errno_text(errno);
  return hex(std::string_view(reinterpret_cast<const char*>(&a), std::min<size_t>(len, sizeof a)));
}

constexpr int kTcpListen = 10;  // include/net/tcp_states.h

// What moves a TCP socket's dumped state (sequence numbers, queues, windows, connection state),
// but not counters that keepalives and retransmissions move (segments, bytes sent).
std::string tcp_state(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return " tcp=" + errno_text(errno);
  std::string out = " tcp_state=" + std::to_string(ti.tcpi_state) +
                    " options=" + std::to_string(ti.tcpi_options) +
                    " wscale=" + std::to_string(ti.tcpi_snd_wscale) + "/" +
                    std::to_string(ti.tcpi_rcv_wscale);
  if (ti.tcpi_state == kTcpListen) {
    // For a listening socket these are the accept queue length and its limit.
    return out + " backlog=" + std::to_string(ti.tcpi_unacked) + "/" +
           std::to_string(ti.tcpi_sacked);
  }
  if (len >= offsetof(tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) {
    out += " acked=" + std::to_string(ti.tcpi_bytes_acked) +
           " received=" + std::to_string(ti.tcpi_bytes_received);
  } else {
    out += " acked=? received=?";
  }
  if (len >= offsetof(tcp_info, tcpi_snd_wnd) + sizeof ti.tcpi_snd_wnd)
    out += " snd_wnd=" + std::to_string(ti.tcpi_snd_wnd);
  return out + " unsent=" + ioctl_int(fd, SIOCOUTQNSD);
}

std::string socket_state(int fd) {
  std::string domain = sockopt_int(fd, SOL_SOCKET, SO_DOMAIN);
  std::string protocol = sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL);
  bool tcp = (domain == std::to_string(AF_INET) || domain == std::to_string(AF_INET6)) &&
             protocol == std::to_string(IPPROTO_TCP);
  std::string out = "socket domain=" + domain + " type=" + sockopt_int(fd, SOL_SOCKET, SO_TYPE) +
                    " protocol=" + protocol + " name=" + address(fd, false) +
                    " peer=" + address(fd, true) + " inq=" + ioctl_int(fd, SIOCINQ) +
                    " outq=" + ioctl_int(fd, SIOCOUTQ);
  uint32_t mem[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof mem;
  if (::getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0) {
    out += " rcvbuf=" + std::to_string(mem[SK_MEMINFO_RCVBUF]) +
           " sndbuf=" + std::to_string(mem[SK_MEMINFO_SNDBUF]);
    // Datagrams queued (the ioctls show only the first one's size); TCP's are in its sequence
    // numbers, and its allocations move with transmit completions.
    if (!tcp) {
      out += " rmem=" + std::to_string(mem[SK_MEMINFO_RMEM_ALLOC]) +
             " wmem=" + std::to_string(mem[SK_MEMINFO_WMEM_ALLOC]);
    }
  } else {
    out += " meminfo=" + errno_text(errno);
  }
  return tcp ? out + tcp_state(fd) : out;
}

std::string terminal_state(int fd) {
  termios t{};
  winsize w{};
  std::string out = "tty termios=";
  out += ::ioctl(fd, TCGETS, &t) == 0
             ? hex(std::string_view(reinterpret_cast<const char*>(&t), sizeof t))
             : errno_text(errno);
  out += " winsize=";
  out += ::ioctl(fd, TIOCGWINSZ, &w) == 0
             ? hex(std::string_view(reinterpret_cast<const char*>(&w), sizeof w))
             : errno_text(errno);
  return out;
}

// The state of descriptor `target_fd` that its fdinfo does not show, read through a duplicate.
std::string hidden_state(int pidfd, int target_fd, FdKind kind) {
  ScopedFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target_fd, 0)));
  if (!dup.valid()) return unreadable(errno);
  switch (kind) {
    case FdKind::kPipe:
      return "pipe inq=" + ioctl_int(dup.get(), FIONREAD) +
             " size=" + std::to_string(::fcntl(dup.get(), F_GETPIPE_SZ));
    case FdKind::kSocket:
      return socket_state(dup.get());
    case FdKind::kTerminal:
      return terminal_state(dup.get());
    default:
      return "";
  }
}

FdKind kind_of(int proc, const std::string& fd_path, std::string_view target) {
  if (target.starts_with("pipe:")) return FdKind::kPipe;
  if (target.starts_with("socket:")) return FdKind::kSocket;
  if (!target.starts_with("/")) return FdKind::kOther;
  struct stat st {};
  if (::fstatat(proc, fd_path.c_str(), &st, 0) != 0) return FdKind::kOther;
  if (S_ISREG(st.st_mode)) return FdKind::kRegular;
  if (S_ISFIFO(st.st_mode)) return FdKind::kPipe;
  if (S_ISCHR(st.st_mode) && ::major(st.st_rdev) >= 136 && ::major(st.st_rdev) <= 143)
    return FdKind::kTerminal;  // Unix98 pty slaves
  if (S_ISCHR(st.st_mode) && (::major(st.st_rdev) == 4 || ::major(st.st_rdev) == 5))
    return FdKind::kTerminal;  // consoles, serial lines, /dev/tty, /dev/ptmx
  return FdKind::kOther;
}

constexpr const char* kKindNames[] = {"regular", "pipe", "socket", "terminal", "other"};

void put_fd(int proc, int pidfd, int fd, Items* items) {
  const std::string n = std::to_string(fd);
  const std::string link = "fd/" + n;
  char target[4096];
  ssize_t tn = ::readlinkat(proc, link.c_str(), target, sizeof target);
  if (tn < 0) {
    (*items)[link] = unreadable(errno);
    return;
  }
  std::string_view tv(target, static_cast<size_t>(tn));
  FdKind kind = kind_of(proc, link, tv);
  std::string value =
      "-> " + std::string(tv) + "\nkind " + kKindNames[static_cast<int>(kind)] + "\n";
  std::string_view info;
  int err = read_at(proc, ("fdinfo/" + n).c_str(), Records::kOne, &info);
  if (err != 0) {
    (*items)[link] = unreadable(err);
    return;
  }
  if (kind == FdKind::kRegular && info.starts_with("pos:")) {
    size_t nl = info.find('\n');
    (*items)["fdpos/" + n] = std::string(info.substr(0, nl));
    info.remove_prefix(nl == std::string_view::npos ? info.size() : nl + 1);
    // CRIU's restore refuses a regular file whose size differs from the dumped one unless it is
    // open O_WRONLY | O_APPEND (files-reg.c, should_check_size): the size is part of the state.
    size_t f = info.find("flags:");
    long flags = f == std::string_view::npos ? -1 : std::strtol(info.data() + f + 6, nullptr, 8);
    if (flags < 0 || (flags & O_ACCMODE) != O_WRONLY || (flags & O_APPEND) == 0) {
      struct stat st {};
      (*items)["fdsize/" + n] = ::fstatat(proc, link.c_str(), &st, 0) == 0
                                    ? std::to_string(st.st_size)
                                    : unreadable(errno);
    }
  }
  (*items)[link] = value + std::string(info);
  if (kind == FdKind::kPipe || kind == FdKind::kSocket || kind == FdKind::kTerminal)
    (*items)["fdq/" + n] = hidden_state(pidfd, fd, kind);
}

void put_fds(int proc, pid_t pid, Items* items) {
  std::vector<int> fds;
  int err = list_numbers(proc, "fd", &fds);
  if (err != 0) {
    (*items)["fds"] = unreadable(err);
    return;
  }
  (*items)["fds"] = join(fds);
  ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  // A server's sockets cost a dozen system calls each, while the process is frozen: many
  // descriptors are read by two threads (the reads are independent; read_at's buffer is
  // per thread).
  constexpr size_t kSplit = 16;
  size_t half = fds.size() >= kSplit ? fds.size() / 2 : fds.size();
  Items second;
  std::thread other;
  if (half < fds.size()) {
    other = std::thread([&] {
      for (size_t i = half; i < fds.size(); ++i) put_fd(proc, pidfd.get(), fds[i], &second);
    });
  }
  for (size_t i = 0; i < half; ++i) put_fd(proc, pidfd.get(), fds[i], items);
  if (other.joinable()) other.join();
  items->merge(second);
}

// ---- comparison ----

// "fd/5" -> "fd 5", "thread/812/status" -> "thread 812 status", "maps" -> "memory map".
std::string describe(const std::string& key) {
  if (key == "maps") return "memory map";
  if (key == "vmflags") return "memory mapping flags";
  if (key == "threads") return "thread set";
  if (key == "fds") return "fd set";
  if (key == "timers") return "posix timers";
  auto rest = [&](size_t prefix) { return key.substr(prefix); };
  if (key.starts_with("fdpos/")) return "fd " + rest(6) + " offset";
  if (key.starts_with("fdsize/")) return "fd " + rest(7) + " file size";
  if (key.starts_with("fdq/")) return "fd " + rest(4) + " queued data";
  if (key.starts_with("fd/")) return "fd " + rest(3);
  std::string words = key;
  std::replace(words.begin(), words.end(), '/', ' ');
  return words;
}

// " (label)" of the first line that differs, for items of several lines.
std::string first_line_label(std::string_view a, std::string_view b) {
  if (a.find('\n') == std::string_view::npos && b.find('\n') == std::string_view::npos) return "";
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  size_t nl = i == 0 ? std::string_view::npos : a.rfind('\n', i - 1);
  size_t start = nl == std::string_view::npos ? 0 : nl + 1;
  std::string_view line = (start < a.size() ? a : b).substr(start);
  line = line.substr(0, std::min({line.find('\n'), line.find(':'), size_t{40}}));
  return " (" + std::string(line) + ")";
}

std::optional<std::string> difference_in(const Items& base, const Items& now,
                                         const std::string& key) {
  auto b = base.find(key);
  auto n = now.find(key);
  if (b == base.end() && n == now.end()) return std::nullopt;
  if (b == base.end()) return describe(key) + " appeared";
  if (n == now.end()) return describe(key) + " disappeared";
  if (b->second == n->second) return std::nullopt;
  return describe(key) + " changed" + first_line_label(b->second, n->second);
}

}  // namespace

Result<ProcessFingerprint> fingerprint_process(pid_t pid, const FingerprintOptions& options) {
  const std::string dir = "/proc/" + std::to_string(pid);
  ScopedFd proc(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!proc.valid() && errno == ENOENT) return Status::NotFound("no process " + dir);
  if (!proc.valid()) return PosixError("open " + dir, errno);
  ProcessFingerprint fp;
  fp.pid = pid;
  RELIVE_RETURN_IF_ERROR(put_process(proc.get(), options, &fp));
  RELIVE_RETURN_IF_ERROR(put_threads(proc.get(), &fp.items));
  put_fds(proc.get(), pid, &fp.items);
  // Exited while being read: what was read may be partial.
  if (::faccessat(proc.get(), "stat", R_OK, 0) != 0 && (errno == ENOENT || errno == ESRCH))
    return Status::NotFound("process " + std::to_string(pid) + " exited");
  return fp;
}

Result<std::string> read_vma_flags(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  ScopedFd proc(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!proc.valid() && errno == ENOENT) return Status::NotFound("no process " + dir);
  if (!proc.valid()) return PosixError("open " + dir, errno);
  std::string out;
  if (int err = vma_flags_at(proc.get(), &out); err != 0) {
    if (err == ENOENT || err == ESRCH) return Status::NotFound("process " + dir + " exited");
    return PosixError("read " + dir + "/smaps", err);
  }
  return out;
}

std::optional<std::string> first_difference(const ProcessFingerprint& base,
                                            const ProcessFingerprint& now) {
  if (base.pid != now.pid) return "process id changed";
  for (const char* key : {"threads", "fds", "maps"}) {
    if (auto d = difference_in(base.items, now.items, key)) return d;
  }
  for (const auto& [key, value] : base.items) {
    if (auto d = difference_in(base.items, now.items, key)) return d;
  }
  for (const auto& [key, value] : now.items) {
    if (!base.items.contains(key)) return describe(key) + " appeared";
  }
  if (base.has_posix_timers != now.has_posix_timers) return "posix timers changed";
  return std::nullopt;
}

std::optional<std::vector<int>> offset_only_changes(const ProcessFingerprint& base,
                                                    const ProcessFingerprint& now) {
  if (base.pid != now.pid || base.items.size() != now.items.size()) return std::nullopt;
  std::vector<int> fds;
  for (auto b = base.items.begin(), n = now.items.begin(); b != base.items.end(); ++b, ++n) {
    if (b->first != n->first) return std::nullopt;
    if (b->second == n->second) continue;
    if (!b->first.starts_with("fdpos/")) return std::nullopt;
    fds.push_back(std::atoi(b->first.c_str() + 6));
  }
  std::sort(fds.begin(), fds.end());
  return fds;
}

}  // namespace relive::ha
