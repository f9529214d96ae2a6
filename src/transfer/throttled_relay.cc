#include "transfer/throttled_relay.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/logging.h"
#include "transport/tcp_socket.h"

namespace relive::transfer {

using transport::Deadline;

Result<std::unique_ptr<ThrottledRelay>> ThrottledRelay::start(
    const Options& options, std::shared_ptr<RateLimiter> limiter) {
  std::unique_ptr<ThrottledRelay> r(new ThrottledRelay(options, std::move(limiter)));
  RELIVE_ASSIGN_OR_RETURN(r->listen_,
                          transport::tcp_listen(options.listen_host, options.listen_port));
  RELIVE_ASSIGN_OR_RETURN(r->port_, transport::local_port(r->listen_.get()));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return PosixError("pipe2", errno);
  r->stop_read_ = ScopedFd(p[0]);
  r->stop_write_ = ScopedFd(p[1]);
  r->acceptor_ = std::thread([raw = r.get()] { raw->accept_loop(); });
  return r;
}

ThrottledRelay::~ThrottledRelay() {
  if (stop_write_.valid()) (void)!::write(stop_write_.get(), "x", 1);
  {
    // Unblocks a pump waiting in a write to a peer that no longer reads.
    std::lock_guard<std::mutex> l(mu_);
    for (auto& c : connections_) {
      ::shutdown(c->down.get(), SHUT_RDWR);
      ::shutdown(c->up.get(), SHUT_RDWR);
    }
  }
  if (acceptor_.joinable()) acceptor_.join();
  // The acceptor has ended: nobody adds pumps any more.
  for (std::thread& t : pumps_) t.join();
}

bool ThrottledRelay::wait_readable(int fd) {
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
    int n = ::poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || p[1].revents != 0) return false;
    if (p[0].revents != 0) return true;
  }
}

void ThrottledRelay::accept_loop() {
  while (wait_readable(listen_.get())) {
    std::string peer;
    Result<ScopedFd> down =
        transport::tcp_accept(listen_.get(), Deadline::after(o_.io_timeout), &peer);
    if (!down.ok()) {
      RELIVE_LOG_WARN("relay: accept: {}", down.status().to_string());
      continue;
    }
    serve(std::move(*down));
  }
}

void ThrottledRelay::serve(ScopedFd down) {
  Result<ScopedFd> up =
      transport::tcp_connect(o_.target_host, o_.target_port, Deadline::after(o_.io_timeout));
  if (!up.ok()) {
    RELIVE_LOG_WARN("relay: connect to {}:{}: {}", o_.target_host, o_.target_port,
                    up.status().to_string());
    return;  // the peer sees its connection closed
  }
  auto c = std::make_unique<Connection>(Connection{std::move(down), std::move(*up)});
  int d = c->down.get(), u = c->up.get();
  std::lock_guard<std::mutex> l(mu_);
  connections_.push_back(std::move(c));
  pumps_.emplace_back([this, u, d] { pump(u, d, /*metered=*/true); });
  pumps_.emplace_back([this, d, u] { pump(d, u, /*metered=*/false); });
}

void ThrottledRelay::pump(int from, int to, bool metered) {
  std::string buf(RateLimiter::kChunkBytes, '\0');
  auto write = [&](std::string_view bytes) {
    return transport::send_all(to, bytes, Deadline::after(o_.io_timeout));
  };
  while (wait_readable(from)) {
    ssize_t n = ::read(from, buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // end of stream, or the connection failed
    std::string_view bytes(buf.data(), static_cast<size_t>(n));
    Status s = metered ? limiter_->metered(bytes, write) : write(bytes);
    if (!s.ok()) {
      RELIVE_LOG_WARN("relay: {}", s.to_string());
      ::shutdown(from, SHUT_RD);
      break;
    }
  }
  // Passes the end of stream on; the other direction carries on until its own end.
  ::shutdown(to, SHUT_WR);
}

}  // namespace relive::transfer
