#include "ha/tcp_stream_capture.h"

#include <fmt/format.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

#include "common/scoped_fd.h"

namespace relive::ha {
namespace {

using criu::TcpStreamState;

// glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link its wrappers.
int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_getfd(int pidfd, int fd) {
  return static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
}

Status sockopt_error(const char* what, int fd) {
  return PosixError(fmt::format("{} on a duplicate (fd {}) of the socket", what, fd), errno);
}

int get_int(int fd, int level, int name, int* v) {
  socklen_t len = sizeof *v;
  return ::getsockopt(fd, level, name, v, &len);
}

// The socket's TCP_INFO, or an error unless it is a TCP socket.
Result<tcp_info> tcp_socket_info(int fd) {
  int domain = 0, protocol = 0;
  if (get_int(fd, SOL_SOCKET, SO_DOMAIN, &domain) != 0) {
    return errno == ENOTSOCK ? Status::InvalidArgument("the fd is not a socket")
                             : sockopt_error("SO_DOMAIN", fd);
  }
  if (get_int(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) != 0) return sockopt_error("SO_PROTOCOL", fd);
  if ((domain != AF_INET && domain != AF_INET6) || protocol != IPPROTO_TCP)
    return Status::InvalidArgument(
        fmt::format("the socket is not TCP (domain {}, protocol {})", domain, protocol));
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) != 0) return sockopt_error("TCP_INFO", fd);
  return ti;
}

// The states criu/sk-inet.c dumps with --tcp-established.
bool dumpable(int state) {
  switch (state) {
    case TCP_ESTABLISHED:
    case TCP_FIN_WAIT1:
    case TCP_FIN_WAIT2:
    case TCP_CLOSE_WAIT:
    case TCP_LAST_ACK:
    case TCP_CLOSING:
    case TCP_SYN_SENT:
      return true;
    default:
      return false;
  }
}

// A socket in repair mode, for one capture. leave() puts back what entering changed: repair
// off without a window probe (the kernel also resets sk_reuse then) and SO_REUSEADDR.
class RepairMode {
 public:
  static Result<RepairMode> enter(int fd) {
    int on = 0, reuse = 0;
    if (get_int(fd, SOL_TCP, TCP_REPAIR, &on) != 0) return sockopt_error("get TCP_REPAIR", fd);
    if (on != 0) return Status::Aborted("the socket is already in TCP repair mode");
    if (get_int(fd, SOL_SOCKET, SO_REUSEADDR, &reuse) != 0)
      return sockopt_error("get SO_REUSEADDR", fd);
    int one = 1;
    if (::setsockopt(fd, SOL_TCP, TCP_REPAIR, &one, sizeof one) != 0)
      return sockopt_error("TCP_REPAIR on", fd);
    return RepairMode(fd, reuse);
  }
  RepairMode(RepairMode&& o) noexcept : fd_(std::exchange(o.fd_, -1)), reuse_(o.reuse_) {}
  RepairMode& operator=(RepairMode&&) = delete;
  ~RepairMode() { (void)leave(); }

  Status leave() {
    int fd = std::exchange(fd_, -1);
    if (fd < 0) return Status::Ok();
    int v = TCP_NO_QUEUE;
    (void)::setsockopt(fd, SOL_TCP, TCP_REPAIR_QUEUE, &v, sizeof v);
    v = TCP_REPAIR_OFF_NO_WP;
    if (::setsockopt(fd, SOL_TCP, TCP_REPAIR, &v, sizeof v) != 0) {
      // Kernels before 4.14 have no TCP_REPAIR_OFF_NO_WP; they send the window probe.
      v = TCP_REPAIR_OFF;
      if (errno != EINVAL || ::setsockopt(fd, SOL_TCP, TCP_REPAIR, &v, sizeof v) != 0)
        return sockopt_error("TCP_REPAIR off", fd);
    }
    if (reuse_ != 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse_, sizeof reuse_) != 0)
      return sockopt_error("SO_REUSEADDR", fd);
    return Status::Ok();
  }

 private:
  RepairMode(int fd, int reuse) : fd_(fd), reuse_(reuse) {}
  int fd_;
  int reuse_;
};

// Queue lengths as libsoccr's refresh_sk() computes them; the FIN is not data.
Status read_lengths(int fd, int state, uint32_t* inq, uint32_t* outq, uint32_t* unsq) {
  int in = 0, out = 0, unsent = 0;
  if (::ioctl(fd, SIOCOUTQ, &out) != 0) return sockopt_error("SIOCOUTQ", fd);
  if (::ioctl(fd, SIOCOUTQNSD, &unsent) != 0) return sockopt_error("SIOCOUTQNSD", fd);
  if (::ioctl(fd, SIOCINQ, &in) != 0) return sockopt_error("SIOCINQ", fd);
  if (in < 0 || out < 0 || unsent < 0 || unsent > out)
    return Status::IoError(
        fmt::format("odd queue lengths: in {} out {} unsent {}", in, out, unsent));
  bool fin_in_sndq = state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING ||
                     state == TCP_LAST_ACK;
  if (fin_in_sndq && out > 0) --out;
  if (fin_in_sndq && unsent > 0) --unsent;
  *inq = static_cast<uint32_t>(in);
  *outq = static_cast<uint32_t>(out);
  *unsq = static_cast<uint32_t>(unsent);
  return Status::Ok();
}

// Selects `queue`, reads its sequence number and peeks its `len` bytes (one more is asked for,
// to be sure there are not more).
Status read_queue(int fd, int queue, uint32_t len, uint32_t* seq, std::string* bytes) {
  if (::setsockopt(fd, SOL_TCP, TCP_REPAIR_QUEUE, &queue, sizeof queue) != 0)
    return sockopt_error("TCP_REPAIR_QUEUE", fd);
  socklen_t sl = sizeof *seq;
  if (::getsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, seq, &sl) != 0)
    return sockopt_error("TCP_QUEUE_SEQ", fd);
  bytes->assign(size_t{len} + 1, '\0');
  ssize_t got = len == 0 ? 0 : ::recv(fd, bytes->data(), bytes->size(), MSG_PEEK | MSG_DONTWAIT);
  if (got < 0) return sockopt_error("MSG_PEEK", fd);
  if (static_cast<size_t>(got) != len)
    return Status::IoError(fmt::format(
        "queue {} holds {} bytes, {} were expected (was the process running?)", queue, got, len));
  bytes->resize(len);
  return Status::Ok();
}

// A receive-queue peek starts at SO_PEEK_OFF and moves it; set it to 0 for the peek, put it
// back after (TCP has SO_PEEK_OFF since Linux 6.10; -1, the default, means off).
Status read_recv_queue(int fd, uint32_t len, uint32_t* seq, std::string* bytes) {
  int peek_off = -1;
  if (get_int(fd, SOL_SOCKET, SO_PEEK_OFF, &peek_off) != 0) return sockopt_error("SO_PEEK_OFF", fd);
  int zero = 0;
  if (peek_off >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) != 0)
    return sockopt_error("set SO_PEEK_OFF", fd);
  Status st = read_queue(fd, TCP_RECV_QUEUE, len, seq, bytes);
  if (peek_off >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &peek_off, sizeof peek_off) != 0)
    return sockopt_error("restore SO_PEEK_OFF", fd);
  return st;
}

Status read_timestamp_and_window(int fd, TcpStreamState* s) {
  if ((s->opt_mask & TCPI_OPT_TIMESTAMPS) != 0) {
    int ts = 0;
    if (get_int(fd, SOL_TCP, TCP_TIMESTAMP, &ts) != 0) return sockopt_error("TCP_TIMESTAMP", fd);
    s->timestamp = static_cast<uint32_t>(ts);
  }
  tcp_repair_window w{};
  socklen_t len = sizeof w;
  if (::getsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &w, &len) != 0)
    return errno == ENOPROTOOPT ? Status::Ok() : sockopt_error("TCP_REPAIR_WINDOW", fd);
  s->window = criu::TcpWindow{w.snd_wl1, w.snd_wnd, w.max_window, w.rcv_wnd, w.rcv_wup};
  return Status::Ok();
}

// Everything dump_tcp_conn_state() records that changes, in libsoccr_save()'s order.
Result<TcpStreamState> read_in_repair(int fd) {
  RELIVE_ASSIGN_OR_RETURN(tcp_info ti, tcp_socket_info(fd));
  TcpStreamState s;
  s.tcp_state = ti.tcpi_state;
  s.opt_mask = ti.tcpi_options;
  uint32_t inq = 0, outq = 0;
  RELIVE_RETURN_IF_ERROR(read_lengths(fd, s.tcp_state, &inq, &outq, &s.unsq_len));
  RELIVE_RETURN_IF_ERROR(read_timestamp_and_window(fd, &s));
  RELIVE_RETURN_IF_ERROR(read_recv_queue(fd, inq, &s.inq_seq, &s.inq));
  RELIVE_RETURN_IF_ERROR(read_queue(fd, TCP_SEND_QUEUE, outq, &s.outq_seq, &s.outq));
  return s;
}

}  // namespace

Result<TcpStreamState> read_tcp_stream(pid_t pid, int fd) {
  ScopedFd pidfd(pidfd_open(pid));
  if (!pidfd.valid()) return PosixError(fmt::format("pidfd_open({})", pid), errno);
  ScopedFd sock(pidfd_getfd(pidfd.get(), fd));
  if (!sock.valid()) return PosixError(fmt::format("pidfd_getfd({}, fd {})", pid, fd), errno);
  RELIVE_ASSIGN_OR_RETURN(tcp_info ti, tcp_socket_info(sock.get()));
  if (!dumpable(ti.tcpi_state))
    return Status::Unsupported(
        fmt::format("TCP socket fd {} of {} is in state {}, which CRIU does not dump", fd, pid,
                    int{ti.tcpi_state}));
  RELIVE_ASSIGN_OR_RETURN(RepairMode repair, RepairMode::enter(sock.get()));
  Result<TcpStreamState> s = read_in_repair(sock.get());
  Status left = repair.leave();
  if (!s.ok()) return s.status().with_context(fmt::format("reading fd {} of {}", fd, pid));
  if (!left.ok()) return left;
  return s;
}

}  // namespace relive::ha
