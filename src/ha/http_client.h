// A minimal blocking HTTP/1.1 client for etcd's v3 JSON gateway: one POST per connection
// ("Connection: close"), bodies delimited by Content-Length, chunked encoding or end of stream.
// Plain TCP only. Every call is bounded by a deadline, so a hung etcd cannot stall a failover
// decision for longer than the caller chose.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "relive/result.h"

namespace relive::ha {

struct HttpEndpoint {
  std::string host;  // numeric IPv4/IPv6 or a name getaddrinfo resolves
  uint16_t port = 0;
  std::string url() const;  // "http://host:port"
};

// Parses "http://HOST:PORT" (a trailing '/' is allowed).
Result<HttpEndpoint> parse_http_endpoint(std::string_view url);

struct HttpResponse {
  int status = 0;    // 200, 404, ...
  std::string body;  // de-chunked
};

// Parses a whole HTTP/1.1 response as received (status line, headers, body by Content-Length,
// chunked encoding or the rest). IoError for anything else: a bad status line, a non-numeric or
// oversized length, a truncated body.
Result<HttpResponse> parse_http_response(std::string_view raw);

// POSTs `body` (Content-Type: application/json) to `path`. IoError when the endpoint cannot be
// reached, times out, or answers something that is not HTTP; any HTTP status is a response.
Result<HttpResponse> http_post(const HttpEndpoint& ep, std::string_view path, std::string_view body,
                               std::chrono::milliseconds timeout);

}  // namespace relive::ha
