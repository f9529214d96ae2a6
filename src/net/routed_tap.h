// RoutedTap: the host end of a VM's NIC when the VM owns a service address. The guest holds the
// address itself; the host routes it into the tap and answers ARP for it on its uplink (proxy
// ARP), so clients on the LAN reach the guest with no bridge. Moving the VM to another host is:
// a tap of the same name and MAC there (the guest's ARP cache points at that MAC), the route
// there, a gratuitous ARP, and the old host's route taken away.
//
// relived creates the destination's tap for a VM migration (relive migrate --vm
// --service-address) and the HA pair's tap for a protected VM.
#pragma once

#include <string>
#include <vector>

#include "net/service_address.h"
#include "relive/result.h"

namespace relive::net {

class RoutedTap {
 public:
  // Creates tap `name` with `mac` ("" for a random one), up, not yet routed. An interface of
  // that name already here is replaced when `replace` (relived's own names: what an earlier run
  // left), and otherwise refused (InvalidArgument: it may be another VM's).
  static Result<RoutedTap> create(const std::string& name, const std::string& mac, bool replace);
  RoutedTap(RoutedTap&& o) noexcept : name_(std::move(o.name_)), route_(std::move(o.route_)) {
    o.name_.clear();
  }
  RoutedTap& operator=(RoutedTap&&) = delete;
  // Deletes the tap and its route, unless keep() was called.
  ~RoutedTap() { remove(); }

  // Routes `a` into the tap (proxy ARP on the tap and the uplink, forwarding on) and announces
  // it from the uplink with a gratuitous ARP.
  Status route(const ServiceAddress& a);
  // Leaves the tap and its route in place beyond this object (the migrated VM uses them).
  void keep() { name_.clear(); }
  void remove();

  const std::string& name() const { return name_; }

 private:
  explicit RoutedTap(std::string name) : name_(std::move(name)) {}
  std::string name_;
  std::string route_;  // "A.B.C.D/32" once routed
};

// Takes this host's route of `a` into `tap` away (the VM has moved): the host stops answering ARP
// for it. NotFound when there was no such route.
Status unroute(const ServiceAddress& a, const std::string& tap);

// Runs each argv in turn (no shell: every element is one argument), stopping at the first that
// fails (IoError with its command line and output).
Status run_network_commands(const std::vector<std::vector<std::string>>& commands);
// Runs each argv in turn and ignores failures: teardown of what may already be gone.
void run_network_commands_best_effort(const std::vector<std::vector<std::string>>& commands);
// Turns IPv4 forwarding on, and proxy ARP on each interface (names checked with check_name),
// answering at once (proxy_delay 0).
Status enable_proxy_arp(const std::vector<std::string>& interfaces);

// The MAC address of interface `name` ("aa:bb:cc:dd:ee:ff").
Result<std::string> interface_mac(const std::string& name);

}  // namespace relive::net
