#include "migrate/page_server_relay.h"

#include <fmt/format.h>

namespace relive::migrate {

Result<PageServerEndpoint> page_server_endpoint(Source* s) {
  PageServerEndpoint e;
  RELIVE_ASSIGN_OR_RETURN(e.criu_port, free_port());
  if (s->options().max_bandwidth == 0) {
    e.criu_address = "0.0.0.0";
    e.announced_port = e.criu_port;
    return e;
  }
  e.criu_address = "127.0.0.1";
  transfer::ThrottledRelay::Options ro;
  ro.target_host = e.criu_address;
  ro.target_port = e.criu_port;
  ro.io_timeout = s->options().io_timeout;
  RELIVE_ASSIGN_OR_RETURN(e.relay, transfer::ThrottledRelay::start(ro, s->limiter()));
  e.announced_port = e.relay->port();
  s->progress(fmt::format("phase=page-server relay port={} (capped at {} B/s)", e.announced_port,
                          s->options().max_bandwidth));
  return e;
}

}  // namespace relive::migrate
