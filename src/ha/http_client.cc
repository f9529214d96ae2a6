#include "ha/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "common/host_port.h"
#include "common/scoped_fd.h"

namespace relive::ha {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxResponse = 4 << 20;  // etcd answers for one key are tiny

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// Waits until `fd` is ready for `events`; IoError on timeout.
Status wait_fd(int fd, short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms_left(deadline));
    if (n > 0) return Status::Ok();
    if (n == 0) return Status::IoError(std::string(what) + ": timed out");
    if (errno != EINTR) return PosixError(what, errno);
  }
}

Result<ScopedFd> connect_to(const HttpEndpoint& ep, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res);
  if (rc != 0) return Status::IoError("resolve " + ep.host + ": " + gai_strerror(rc));
  Status last = Status::IoError("connect: no address");
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    ScopedFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
      last = PosixError("socket", errno);
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = PosixError("connect", errno);
      continue;
    }
    last = wait_fd(fd.get(), POLLOUT, deadline, "connect");
    int err = 0;
    socklen_t len = sizeof(err);
    if (last.ok() && ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
      last = PosixError("connect", err);
    }
    if (last.ok()) {
      ::freeaddrinfo(res);
      return fd;
    }
  }
  ::freeaddrinfo(res);
  return last;
}

Status send_all(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (errno == EAGAIN) {
      RELIVE_RETURN_IF_ERROR(wait_fd(fd, POLLOUT, deadline, "send"));
    } else if (errno != EINTR) {
      return PosixError("send", errno);
    }
  }
  return Status::Ok();
}

// Everything until the peer closes (the request said Connection: close).
Result<std::string> recv_all(int fd, Clock::time_point deadline) {
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      if (out.size() > kMaxResponse) return Status::IoError("response larger than 4 MiB");
    } else if (n == 0) {
      return out;
    } else if (errno == EAGAIN) {
      RELIVE_RETURN_IF_ERROR(wait_fd(fd, POLLIN, deadline, "receive"));
    } else if (errno != EINTR) {
      return PosixError("receive", errno);
    }
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The number at the start of `s` in `base`, which must be followed by nothing but `rest` (one of
// those characters, or the end).
template <typename T>
std::optional<T> leading_number(std::string_view s, int base, std::string_view rest) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  if (end != s.data() + s.size() && rest.find(*end) == std::string_view::npos) return std::nullopt;
  return v;
}

Result<std::string> dechunk(std::string_view in) {
  std::string out;
  for (;;) {
    size_t eol = in.find("\r\n");
    if (eol == std::string_view::npos) return Status::IoError("truncated chunked body");
    // "1a3f" or "1a3f;extension=..."
    std::optional<uint64_t> len = leading_number<uint64_t>(in.substr(0, eol), 16, "; \t");
    if (!len) return Status::IoError("bad chunk size line");
    in.remove_prefix(eol + 2);
    if (*len == 0) return out;  // trailers, if any, are ignored
    if (in.size() < 2 || *len > in.size() - 2) return Status::IoError("truncated chunk");
    out.append(in.substr(0, *len));
    in.remove_prefix(*len + 2);
  }
}

}  // namespace

Result<HttpResponse> parse_http_response(std::string_view raw) {
  size_t head_end = raw.find("\r\n\r\n");
  if (raw.substr(0, 5) != "HTTP/" || head_end == std::string_view::npos) {
    return Status::IoError("not an HTTP response (" + std::to_string(raw.size()) + " bytes)");
  }
  HttpResponse r;
  size_t sp = raw.find(' ');
  if (sp == std::string_view::npos || sp + 4 > head_end) return Status::IoError("bad status line");
  std::optional<int> status = leading_number<int>(raw.substr(sp + 1, 4), 10, " \r");
  if (!status || *status < 100 || *status > 999) return Status::IoError("bad status line");
  r.status = *status;
  std::string head = lower(std::string(raw.substr(0, head_end)));
  std::string_view body = raw.substr(head_end + 4);
  if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
    RELIVE_ASSIGN_OR_RETURN(r.body, dechunk(body));
  } else if (size_t cl = head.find("\r\ncontent-length:"); cl != std::string::npos) {
    std::string_view value = std::string_view(head).substr(cl + 17);
    value = value.substr(0, value.find("\r\n"));
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    std::optional<uint64_t> len = leading_number<uint64_t>(value, 10, " \t");
    if (!len) return Status::IoError("bad Content-Length");
    if (body.size() < *len) return Status::IoError("truncated body");
    r.body = std::string(body.substr(0, *len));
  } else {
    r.body = std::string(body);
  }
  return r;
}

std::string HttpEndpoint::url() const { return "http://" + format_host_port({host, port}); }

Result<HttpEndpoint> parse_http_endpoint(std::string_view url) {
  if (url.substr(0, 7) != "http://")
    return Status::InvalidArgument("'" + std::string(url) + "': not http://");
  std::string_view rest = url.substr(7);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  Result<HostPort> hp = parse_host_port(rest);
  if (!hp.ok())
    return Status::InvalidArgument("'" + std::string(url) + "': " + hp.status().message());
  return HttpEndpoint{hp->host, hp->port};
}

Result<HttpResponse> http_post(const HttpEndpoint& ep, std::string_view path, std::string_view body,
                               std::chrono::milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  RELIVE_ASSIGN_OR_RETURN(ScopedFd fd, connect_to(ep, deadline));
  std::string req = "POST " + std::string(path) + " HTTP/1.1\r\nHost: " + ep.host + ":" +
                    std::to_string(ep.port) +
                    "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n";
  req.append(body);
  RELIVE_RETURN_IF_ERROR(send_all(fd.get(), req, deadline));
  RELIVE_ASSIGN_OR_RETURN(std::string raw, recv_all(fd.get(), deadline));
  return parse_http_response(raw);
}

}  // namespace relive::ha
