#include "ha/workload_network.h"

#include <fmt/format.h>

#include "drivers/criu/command.h"
#include "migrate/routed_tap.h"
#include "migrate/service_address.h"

namespace relive::ha {
namespace {

Status sh(const std::string& script) {
  RELIVE_ASSIGN_OR_RETURN(criu::CommandResult r, criu::run_command({"/bin/sh", "-ec", script},
                                                                   {{}, std::chrono::seconds(20)}));
  if (!r.ok()) {
    return Status::IoError(fmt::format("network setup failed ({}): {}", r.describe(), r.output));
  }
  return Status::Ok();
}

std::string veth_name(const std::string& peer) { return ("rh-" + peer).substr(0, 15); }
std::string tap_name(const std::string& peer) { return ("rt-" + peer).substr(0, 15); }

// Locally administered, the same on every host (see the header).
constexpr const char* kTapMac = "02:72:6c:76:00:01";

}  // namespace

std::string workload_netns_name(const WorkloadConfig& w, const std::string& peer) {
  return w.netns + "-" + peer;
}

Result<WorkloadNetwork> WorkloadNetwork::up(const WorkloadConfig& w, const std::string& peer) {
  RELIVE_ASSIGN_OR_RETURN(migrate::ServiceAddress a,
                          migrate::parse_service_address(
                              fmt::format("{}/{}", w.service_address, int{w.service_prefix_len})));
  RELIVE_ASSIGN_OR_RETURN(std::string uplink, migrate::interface_for(a));
  if (w.kind == WorkloadKind::kVm) {
    WorkloadNetwork net("", tap_name(peer), uplink, a.cidr);
    net.down();
    RELIVE_ASSIGN_OR_RETURN(migrate::RoutedTap tap,
                            migrate::RoutedTap::create(net.veth_, kTapMac, /*replace=*/true));
    RELIVE_RETURN_IF_ERROR(tap.route(a));
    tap.keep();  // down() takes it away, with the route
    return net;
  }
  WorkloadNetwork net(workload_netns_name(w, peer), veth_name(peer), uplink, a.cidr);
  net.down();
  // Inside: the service address alone (/32) and a default route out of the veth; outside: a
  // host route to it and proxy ARP on both sides, so neither end needs another address.
  std::string s = fmt::format(
      "N={ns}; V={veth}; U={up}; A={ip}\n"
      "ip netns add $N\n"
      "ip link add $V type veth peer name eth0 netns $N\n"
      "ip -n $N link set lo up\n"
      "ip -n $N link set eth0 up\n"
      "ip -n $N addr add $A/32 dev eth0\n"
      "ip -n $N route add default dev eth0\n"
      "ip link set $V up\n"
      "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.$V.proxy_arp=1 net.ipv4.conf.$U.proxy_arp=1\n"
      "ip route replace $A/32 dev $V\n",
      fmt::arg("ns", net.netns_), fmt::arg("veth", net.veth_), fmt::arg("up", uplink),
      fmt::arg("ip", a.text));
  RELIVE_RETURN_IF_ERROR(sh(s));
  RELIVE_RETURN_IF_ERROR(net.announce());
  return net;
}

WorkloadNetwork::WorkloadNetwork(WorkloadNetwork&& o) noexcept
    : netns_(std::move(o.netns_)),
      veth_(std::move(o.veth_)),
      uplink_(std::move(o.uplink_)),
      address_(std::move(o.address_)) {
  o.netns_.clear();
  o.veth_.clear();
}

WorkloadNetwork::~WorkloadNetwork() { down(); }

Status WorkloadNetwork::announce() const {
  RELIVE_ASSIGN_OR_RETURN(migrate::ServiceAddress a, migrate::parse_service_address(address_));
  return migrate::announce(a, uplink_);
}

void WorkloadNetwork::down() {
  if (veth_.empty()) return;
  std::string ip = address_.substr(0, address_.find('/'));
  (void)sh(fmt::format(
      "ip route del {}/32 dev {} 2>/dev/null || true; ip link del {} 2>/dev/null || true; "
      "[ -z '{}' ] || ip netns del {} 2>/dev/null || true",
      ip, veth_, veth_, netns_, netns_));
}

}  // namespace relive::ha
