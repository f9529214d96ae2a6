// MetricsEndpoint: relived's Prometheus scrape target. An HTTP/1.1 server (Boost.Beast) on its
// own thread answers GET (and HEAD) /metrics with the registry's text exposition, anything else
// with 404 or 405, and a request it cannot parse with 400 (then closes). It runs apart from the
// migrations and the HA loop: a slow or silent client costs one connection slot for at most
// `io_timeout` per request, a request larger than the limits is refused, and at most
// `max_connections` are open at once (more are closed on accept). Plain HTTP: bind it to
// loopback or a management network (docs/metrics.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/metrics.h"
#include "relive/result.h"

namespace relive::net {

class MetricsEndpoint {
 public:
  struct Options {
    std::chrono::milliseconds io_timeout{10000};  // per request read and per response write
    int max_connections = 32;
    uint32_t max_header_bytes = 8192;
    uint64_t max_body_bytes = 4096;
  };

  // Listens on `address` ("HOST:PORT"; port 0 picks a free one) and serves `registry`, which
  // must outlive the endpoint. InvalidArgument for a bad address, IoError when it cannot bind.
  static Result<std::unique_ptr<MetricsEndpoint>> start(const std::string& address,
                                                        const metrics::Registry* registry,
                                                        const Options& options);
  static Result<std::unique_ptr<MetricsEndpoint>> start(const std::string& address,
                                                        const metrics::Registry* registry) {
    return start(address, registry, Options{});
  }
  // Stops serving: closes the listener and every connection, joins the thread.
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  uint16_t port() const;

  class Impl;

 private:
  explicit MetricsEndpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace relive::net
