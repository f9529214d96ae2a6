// ThrottledRelay: a TCP relay on the source that meters a stream relive does not write itself.
// Post-copy's memory flows from CRIU's page server to the destination's lazy-pages daemon, and
// CRIU has no rate option; with --max-bandwidth the page server listens on loopback only and the
// destination connects to this relay instead, which forwards both directions and takes the
// source-to-destination bytes from the migration's RateLimiter (the same one relive's channel
// uses, so the sum of both streams is capped). CRIU's TLS runs end to end through it: the relay
// sees ciphertext only and needs no keys. The kernel's socket buffers between CRIU and the relay
// stay on this host; only what the relay writes crosses the link, so the cap holds on the wire.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/scoped_fd.h"
#include "relive/result.h"
#include "transfer/rate_limit.h"

namespace relive::transfer {

class ThrottledRelay {
 public:
  struct Options {
    std::string listen_host = "0.0.0.0";  // where the destination connects
    uint16_t listen_port = 0;             // 0: an ephemeral port (see port())
    std::string target_host = "127.0.0.1";
    uint16_t target_port = 0;
    // Bound on connecting to the target and on each write (a stalled peer ends its connection).
    std::chrono::milliseconds io_timeout{60000};
  };

  // Listens and serves connections in background threads until destroyed.
  static Result<std::unique_ptr<ThrottledRelay>> start(const Options& options,
                                                       std::shared_ptr<RateLimiter> limiter);
  // Stops: closes every connection and joins every thread.
  ~ThrottledRelay();
  ThrottledRelay(const ThrottledRelay&) = delete;
  ThrottledRelay& operator=(const ThrottledRelay&) = delete;

  uint16_t port() const { return port_; }

 private:
  struct Connection {
    ScopedFd down;  // the peer that connected to us
    ScopedFd up;    // the target
  };
  ThrottledRelay(Options o, std::shared_ptr<RateLimiter> limiter)
      : o_(std::move(o)), limiter_(std::move(limiter)) {}
  void accept_loop();
  void serve(ScopedFd down);
  // Copies `from` to `to` until end of stream, an error, or stop; metered: through limiter_.
  void pump(int from, int to, bool metered);
  bool wait_readable(int fd);  // false once stopping

  Options o_;
  std::shared_ptr<RateLimiter> limiter_;
  ScopedFd listen_;
  uint16_t port_ = 0;
  ScopedFd stop_read_, stop_write_;  // a byte in this pipe tells every thread to end
  std::thread acceptor_;
  std::mutex mu_;  // guards the two below
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<std::thread> pumps_;
};

}  // namespace relive::transfer
