// The network identity that moves with a migrated workload: its service address (an IPv4
// address clients connect to). The source fences it with a lock (packets to and from it are
// dropped, so nothing is acknowledged that the destination would not have) and gives it up; the
// destination takes it over and announces it with a gratuitous ARP so that the clients' and the
// switch's caches point at the new host at once.
#pragma once

#include <netinet/in.h>

#include <string>

#include "relive/result.h"

namespace relive::net {

struct ServiceAddress {
  in_addr ip{};
  int prefix = 32;
  std::string text;  // "198.18.0.100" (no prefix)
  std::string cidr;  // "198.18.0.100/24"
};

// Parses "A.B.C.D/N" (or "A.B.C.D", prefix 32).
Result<ServiceAddress> parse_service_address(const std::string& cidr);

// The interface of this network namespace that holds an address in the same subnet as `a`, or
// else the one holding `a` itself: where the address lives on this host.
Result<std::string> interface_for(const ServiceAddress& a);

// True when `a` is assigned to an interface here.
bool address_present(const ServiceAddress& a);

Status add_address(const ServiceAddress& a, const std::string& dev);
Status remove_address(const ServiceAddress& a, const std::string& dev);

// Broadcasts a gratuitous ARP (an unsolicited reply, then a request) for `a` from `dev`.
Status announce(const ServiceAddress& a, const std::string& dev);

// Drops every packet to or from the address (iptables in this namespace) while it lives; the
// workload's peers see a pause, not a reset or an acknowledgement. Move-only.
class TrafficLock {
 public:
  static Result<TrafficLock> engage(const ServiceAddress& a);
  TrafficLock(TrafficLock&& o) noexcept : ip_(std::move(o.ip_)) { o.ip_.clear(); }
  TrafficLock& operator=(TrafficLock&&) = delete;
  ~TrafficLock() { release(); }
  void release();

 private:
  explicit TrafficLock(std::string ip) : ip_(std::move(ip)) {}
  std::string ip_;
};

}  // namespace relive::net
