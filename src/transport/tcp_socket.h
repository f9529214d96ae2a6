// Non-blocking TCP sockets with deadlines: every wait goes through poll() with the time left, so
// no call can block forever on a silent or vanished peer. The building blocks of the network
// channels (src/security/stream_channel.h, tls_channel.h); framing and encryption live there.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/scoped_fd.h"
#include "relive/result.h"

namespace relive::transport {

// A point in (monotonic) time by which an operation must finish.
class Deadline {
 public:
  static Deadline after(std::chrono::milliseconds timeout) {
    return Deadline(std::chrono::steady_clock::now() + timeout);
  }
  // Milliseconds left, 0 once passed; the argument poll() takes.
  int remaining_ms() const;
  bool passed() const { return remaining_ms() == 0; }

 private:
  explicit Deadline(std::chrono::steady_clock::time_point at) : at_(at) {}
  std::chrono::steady_clock::time_point at_;
};

// Waits until `fd` is ready for `events` (POLLIN/POLLOUT). IoError("timed out ... <what>")
// when the deadline passes first; a hang-up counts as ready (the next read reports it).
Status wait_ready(int fd, short events, Deadline deadline, std::string_view what);

// A listening socket on `host` (numeric address, e.g. "127.0.0.1") and `port` (0: ephemeral).
Result<ScopedFd> tcp_listen(const std::string& host, uint16_t port);
// The port a socket is bound to.
Result<uint16_t> local_port(int fd);
// "address:port" of the connected peer, or "?" when unknown.
std::string peer_address(int fd);

// The next connection on `listen_fd`, non-blocking; `*peer` receives its address.
Result<ScopedFd> tcp_accept(int listen_fd, Deadline deadline, std::string* peer);
// A connected non-blocking socket to host:port (name or numeric address).
Result<ScopedFd> tcp_connect(const std::string& host, uint16_t port, Deadline deadline);

// Writes all of `data`; never raises SIGPIPE (a vanished peer is an Aborted Status).
Status send_all(int fd, std::string_view data, Deadline deadline);
// Reads exactly `len` bytes. Aborted("peer closed the connection") on end of stream.
Status recv_exact(int fd, char* buf, size_t len, Deadline deadline);

}  // namespace relive::transport
