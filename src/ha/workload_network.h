// The protected workload's network: its own network namespace, reached through a veth pair from
// the host, holding the service address. The host routes the service address into the
// namespace and answers ARP for it on its uplink (proxy ARP), so clients on the host's LAN reach
// the workload at the service address, and moving the service to the other host is: set up the
// route there, announce it with a gratuitous ARP. The namespace itself is what CRIU dumps and
// restores the workload in (the workload's TCP connections are bound to the service address).
//
// A VM needs no namespace: its NIC's backend is a tap device on the host, "rt-<peer>", and the
// host routes the service address (which the guest itself holds) into the tap the same way. The
// tap's MAC address is the same on every host, so the guest's ARP cache stays right after a
// failover.
//
// Names: the namespace is `<workload.netns>-<peer>` so that both peers of a pair can share one
// machine (as the tests do); the host end of the veth is "rh-<peer>" (truncated to 15 bytes).
#pragma once

#include <string>

#include "ha/ha_config.h"
#include "relive/result.h"

namespace relive::ha {

class WorkloadNetwork {
 public:
  // Creates the namespace and the veth pair and routes the service address into it, then
  // announces it. Anything left from an earlier run of this peer is removed first.
  // For a VM (w.kind), creates the tap instead.
  static Result<WorkloadNetwork> up(const WorkloadConfig& w, const std::string& peer);
  // A process workload's namespace and veth pair, with nothing routed to them: no host route,
  // no proxy ARP, no announcement, so nothing outside reaches the service address through this
  // host yet. A backup prepares it while its primary is suspected (before it holds the lease);
  // claim() is then all that a takeover adds. Anything left from an earlier run is removed first.
  static Result<WorkloadNetwork> prepare(const WorkloadConfig& w, const std::string& peer);
  // Routes the service address into the prepared namespace and announces it (only once this
  // host holds the lease).
  Status claim();
  WorkloadNetwork(WorkloadNetwork&& o) noexcept;
  WorkloadNetwork& operator=(WorkloadNetwork&&) = delete;
  ~WorkloadNetwork();

  // "" for a VM.
  const std::string& netns() const { return netns_; }
  // The host's link to the workload: the veth's host end, or the VM's tap.
  const std::string& link() const { return veth_; }
  std::string netns_path() const { return "/run/netns/" + netns_; }
  // Gratuitous ARP for the service address from the host's uplink.
  Status announce() const;
  // Takes the route away (the host stops answering for the service address) and deletes the
  // namespace or the tap, which kills nothing: callers stop the workload first.
  void down();

 private:
  WorkloadNetwork(std::string netns, std::string veth, std::string uplink, std::string address)
      : netns_(std::move(netns)),
        veth_(std::move(veth)),
        uplink_(std::move(uplink)),
        address_(std::move(address)) {}
  std::string netns_;
  std::string veth_;  // or the tap
  std::string uplink_;
  std::string address_;  // service address with prefix, e.g. "198.18.0.10/24"
};

// The namespace name for `peer`.
std::string workload_netns_name(const WorkloadConfig& w, const std::string& peer);

}  // namespace relive::ha
