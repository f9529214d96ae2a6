#include "ha/workload_network.h"

#include <fmt/format.h>

#include "common/safe_name.h"
#include "net/routed_tap.h"
#include "net/service_address.h"

namespace relive::ha {
namespace {

constexpr const char* kIp = "/usr/sbin/ip";

std::string veth_name(const std::string& peer) { return ("rh-" + peer).substr(0, 15); }
std::string tap_name(const std::string& peer) { return ("rt-" + peer).substr(0, 15); }

// Locally administered, the same on every host (see the header).
constexpr const char* kTapMac = "02:72:6c:76:00:01";

}  // namespace

std::string workload_netns_name(const WorkloadConfig& w, const std::string& peer) {
  return w.netns + "-" + peer;
}

Result<WorkloadNetwork> WorkloadNetwork::up(const WorkloadConfig& w, const std::string& peer) {
  RELIVE_ASSIGN_OR_RETURN(net::ServiceAddress a,
                          net::parse_service_address(
                              fmt::format("{}/{}", w.service_address, int{w.service_prefix_len})));
  RELIVE_ASSIGN_OR_RETURN(std::string uplink, net::interface_for(a));
  if (w.kind == WorkloadKind::kVm) {
    WorkloadNetwork net("", tap_name(peer), uplink, a.cidr);
    net.down();
    RELIVE_ASSIGN_OR_RETURN(net::RoutedTap tap,
                            net::RoutedTap::create(net.veth_, kTapMac, /*replace=*/true));
    RELIVE_RETURN_IF_ERROR(tap.route(a));
    tap.keep();  // down() takes it away, with the route
    return net;
  }
  RELIVE_ASSIGN_OR_RETURN(WorkloadNetwork net, prepare(w, peer));
  RELIVE_RETURN_IF_ERROR(net.claim());
  return net;
}

Result<WorkloadNetwork> WorkloadNetwork::prepare(const WorkloadConfig& w, const std::string& peer) {
  if (w.kind == WorkloadKind::kVm) return Status::InvalidArgument("a VM's network is not prepared");
  RELIVE_ASSIGN_OR_RETURN(net::ServiceAddress a,
                          net::parse_service_address(
                              fmt::format("{}/{}", w.service_address, int{w.service_prefix_len})));
  RELIVE_ASSIGN_OR_RETURN(std::string uplink, net::interface_for(a));
  std::string netns = workload_netns_name(w, peer);
  // Checked again here (the config parser checks w.netns): this is what reaches `ip` as root.
  RELIVE_RETURN_IF_ERROR(check_name("network namespace", netns));
  WorkloadNetwork net(netns, veth_name(peer), uplink, a.cidr);
  net.down();
  // Inside: the service address alone (/32) and a default route out of the veth; outside (in
  // claim()): a host route to it and proxy ARP on both sides, so neither end needs another
  // address.
  const std::string& n = net.netns_;
  const std::string& v = net.veth_;
  Status s = net::run_network_commands({
      {kIp, "netns", "add", n},
      {kIp, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", n},
      {kIp, "-n", n, "link", "set", "lo", "up"},
      {kIp, "-n", n, "link", "set", "eth0", "up"},
      {kIp, "-n", n, "addr", "add", a.text + "/32", "dev", "eth0"},
      {kIp, "-n", n, "route", "add", "default", "dev", "eth0"},
      {kIp, "link", "set", v, "up"},
  });
  if (!s.ok()) return Status::IoError("network setup failed: " + s.message());
  return net;
}

Status WorkloadNetwork::claim() {
  RELIVE_ASSIGN_OR_RETURN(net::ServiceAddress a, net::parse_service_address(address_));
  std::string host_route = a.text + "/32";
  Status s = net::enable_proxy_arp({veth_, uplink_});
  if (s.ok()) s = net::run_network_commands({{kIp, "route", "replace", host_route, "dev", veth_}});
  if (!s.ok()) return Status::IoError("network setup failed: " + s.message());
  return announce();
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
  RELIVE_ASSIGN_OR_RETURN(net::ServiceAddress a, net::parse_service_address(address_));
  return net::announce(a, uplink_);
}

void WorkloadNetwork::down() {
  if (veth_.empty()) return;
  std::string ip = address_.substr(0, address_.find('/'));
  std::vector<std::vector<std::string>> steps = {{kIp, "route", "del", ip + "/32", "dev", veth_},
                                                 {kIp, "link", "del", veth_}};
  if (!netns_.empty()) steps.push_back({kIp, "netns", "del", netns_});
  net::run_network_commands_best_effort(steps);
}

}  // namespace relive::ha
