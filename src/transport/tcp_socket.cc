#include "transport/tcp_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>

namespace relive::transport {
namespace {

std::string format_address(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  }
  return fmt::format("{}:{}", host, port);
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // control messages are small
}

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const { freeaddrinfo(ai); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

Result<AddrInfoPtr> resolve(const std::string& host, uint16_t port, int flags) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    return Status::NotFound(fmt::format("resolve {}: {}", host, gai_strerror(rc)));
  }
  return AddrInfoPtr(res);
}

// One connect attempt to one address.
Result<ScopedFd> connect_one(const addrinfo& ai, const std::string& name, Deadline deadline) {
  ScopedFd fd(::socket(ai.ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return PosixError("socket", errno);
  if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0 && errno != EINPROGRESS) {
    return PosixError("connect " + name, errno);
  }
  RELIVE_RETURN_IF_ERROR(wait_ready(fd.get(), POLLOUT, deadline, "connect " + name));
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return PosixError("connect " + name, err);
  set_nodelay(fd.get());
  return fd;
}

}  // namespace

int Deadline::remaining_ms() const {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(at_ - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

Status wait_ready(int fd, short events, Deadline deadline, std::string_view what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, deadline.remaining_ms());
    if (n > 0) return Status::Ok();
    if (n == 0) return Status::IoError(fmt::format("timed out: {}", what));
    if (errno != EINTR) return PosixError(fmt::format("poll ({})", what), errno);
  }
}

Result<ScopedFd> tcp_listen(const std::string& host, uint16_t port) {
  RELIVE_ASSIGN_OR_RETURN(AddrInfoPtr ai, resolve(host, port, AI_PASSIVE | AI_NUMERICHOST));
  ScopedFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return PosixError("socket", errno);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  std::string name = fmt::format("{}:{}", host, port);
  if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) return PosixError("bind " + name, errno);
  if (::listen(fd.get(), SOMAXCONN) != 0) return PosixError("listen " + name, errno);
  return fd;
}

Result<uint16_t> local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return PosixError("getsockname", errno);
  }
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

std::string peer_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return format_address(ss);
}

Result<ScopedFd> tcp_accept(int listen_fd, Deadline deadline, std::string* peer) {
  for (;;) {
    RELIVE_RETURN_IF_ERROR(wait_ready(listen_fd, POLLIN, deadline, "waiting for a connection"));
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd =
        ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      set_nodelay(fd);
      *peer = format_address(ss);
      return ScopedFd(fd);
    }
    // A connection reset before accept, or another acceptor won the race: wait again.
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      return PosixError("accept", errno);
    }
  }
}

Result<ScopedFd> tcp_connect(const std::string& host, uint16_t port, Deadline deadline) {
  RELIVE_ASSIGN_OR_RETURN(AddrInfoPtr ai, resolve(host, port, 0));
  std::string name = fmt::format("{}:{}", host, port);
  Status last = Status::NotFound("no address for " + name);
  for (const addrinfo* a = ai.get(); a != nullptr; a = a->ai_next) {
    Result<ScopedFd> fd = connect_one(*a, name, deadline);
    if (fd.ok()) return fd;
    last = fd.status();
  }
  return last;
}

Status send_all(int fd, std::string_view data, Deadline deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (errno == EAGAIN || errno == EINTR) {
      RELIVE_RETURN_IF_ERROR(wait_ready(fd, POLLOUT, deadline, "sending"));
    } else if (errno == EPIPE || errno == ECONNRESET) {
      return Status::Aborted("peer closed the connection");
    } else {
      return PosixError("send", errno);
    }
  }
  return Status::Ok();
}

Status recv_exact(int fd, char* buf, size_t len, Deadline deadline) {
  while (len > 0) {
    ssize_t n = ::recv(fd, buf, len, 0);
    if (n > 0) {
      buf += n;
      len -= static_cast<size_t>(n);
    } else if (n == 0 || errno == ECONNRESET) {
      return Status::Aborted("peer closed the connection");
    } else if (errno == EAGAIN || errno == EINTR) {
      RELIVE_RETURN_IF_ERROR(wait_ready(fd, POLLIN, deadline, "receiving"));
    } else {
      return PosixError("recv", errno);
    }
  }
  return Status::Ok();
}

}  // namespace relive::transport
