#include "migrate/routed_tap.h"

#include <fmt/format.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstdio>

#include "common/scoped_fd.h"
#include "drivers/criu/command.h"

namespace relive::migrate {
namespace {

Status sh(const std::string& script) {
  RELIVE_ASSIGN_OR_RETURN(criu::CommandResult r, criu::run_command({"/bin/sh", "-ec", script},
                                                                   {{}, std::chrono::seconds(20)}));
  if (!r.ok())
    return Status::IoError(fmt::format("tap setup failed ({}): {}", r.describe(), r.output));
  return Status::Ok();
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 15) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  return true;
}

bool valid_mac(const std::string& m) {
  if (m.size() != 17) return false;
  for (size_t i = 0; i < m.size(); ++i) {
    if (i % 3 == 2 ? m[i] != ':' : !std::isxdigit(static_cast<unsigned char>(m[i]))) return false;
  }
  return true;
}

}  // namespace

Result<RoutedTap> RoutedTap::create(const std::string& name, const std::string& mac, bool replace) {
  if (!valid_name(name)) return Status::InvalidArgument("not a usable tap name: '" + name + "'");
  if (!mac.empty() && !valid_mac(mac)) return Status::InvalidArgument("not a MAC address: " + mac);
  if (!replace && ::if_nametoindex(name.c_str()) != 0) {
    return Status::InvalidArgument("interface " + name +
                                   " already exists on this host (another VM's tap?)");
  }
  RoutedTap t(name);
  t.remove();
  t.name_ = name;
  RELIVE_RETURN_IF_ERROR(
      sh(fmt::format("ip tuntap add dev {0} mode tap\n{1}ip link set {0} up", name,
                     mac.empty() ? "" : fmt::format("ip link set {} address {}\n", name, mac))));
  return t;
}

Status RoutedTap::route(const ServiceAddress& a) {
  RELIVE_ASSIGN_OR_RETURN(std::string uplink, interface_for(a));
  RELIVE_RETURN_IF_ERROR(
      sh(fmt::format("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.{0}.proxy_arp=1 "
                     "net.ipv4.conf.{1}.proxy_arp=1\n"
                     "ip route replace {2}/32 dev {0}",
                     name_, uplink, a.text)));
  route_ = a.text + "/32";
  return announce(a, uplink);
}

void RoutedTap::remove() {
  if (name_.empty()) return;
  (void)sh(fmt::format(
      "{}ip link del {} 2>/dev/null || true",
      route_.empty() ? ""
                     : fmt::format("ip route del {} dev {} 2>/dev/null || true\n", route_, name_),
      name_));
  route_.clear();
}

Status unroute(const ServiceAddress& a, const std::string& tap) {
  Status s = sh(fmt::format("ip route del {}/32 dev {}", a.text, tap));
  if (!s.ok()) return Status::NotFound(s.message());
  return Status::Ok();
}

// SIOCGIFHWADDR, not /sys/class/net: sysfs shows the network namespace it was mounted in, which
// need not be this process's.
Result<std::string> interface_mac(const std::string& name) {
  if (!valid_name(name)) return Status::InvalidArgument("not an interface name: '" + name + "'");
  ScopedFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return PosixError("socket", errno);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (::ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) return PosixError("MAC of " + name, errno);
  const auto* m = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4],
                     m[5]);
}

}  // namespace relive::migrate
