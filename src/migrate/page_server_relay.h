// Where post-copy's page server listens. CRIU's page server (the source of post-copy's memory,
// pulled by the destination's lazy-pages daemon over CRIU's own TLS) has no rate option. Without
// a cap it listens on every address and the destination connects to it directly, as before.
// With --max-bandwidth it listens on loopback only and the destination is given the port of a
// relive relay (transfer/throttled_relay.h) that forwards the stream through the migration's
// RateLimiter, so the pages share one budget with relive's channel. The relay was chosen over
// shaping the socket in the kernel (tc/tbf on the source's interface) because it meters exactly
// this migration's bytes, needs no qdisc on an interface other traffic shares, and cleans up with
// the process; its cost is one more copy of each page through loopback on the source.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "migrate/source.h"
#include "transfer/throttled_relay.h"

namespace relive::migrate {

struct PageServerEndpoint {
  std::string criu_address;  // where CRIU's page server binds
  uint16_t criu_port = 0;
  uint16_t announced_port = 0;  // what the destination's lazy-pages daemon connects to
  // Set when capped; must live until CRIU's page server has served the last page.
  std::unique_ptr<transfer::ThrottledRelay> relay;
};

Result<PageServerEndpoint> page_server_endpoint(Source* s);

}  // namespace relive::migrate
