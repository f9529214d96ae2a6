#include "net/routed_tap.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common/safe_name.h"
#include "common/scoped_fd.h"
#include "common/subprocess.h"

namespace relive::net {
namespace {

constexpr const char* kIp = "/usr/sbin/ip";

bool valid_mac(const std::string& m) {
  if (m.size() != 17) return false;
  for (size_t i = 0; i < m.size(); ++i) {
    if (i % 3 == 2 ? m[i] != ':' : !std::isxdigit(static_cast<unsigned char>(m[i]))) return false;
  }
  return true;
}

Status check_interface(const std::string& name) {
  return check_name("interface name", name, kMaxInterfaceName);
}

Status write_sysctl(const std::string& path, const char* value = "1") {
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + path, errno);
  ssize_t n = static_cast<ssize_t>(std::strlen(value));
  if (::write(fd.get(), value, n) != n) return PosixError("write " + path, errno);
  return Status::Ok();
}

}  // namespace

Status run_network_commands(const std::vector<std::vector<std::string>>& commands) {
  for (const auto& argv : commands) {
    RELIVE_RETURN_IF_ERROR(run_checked(argv, {.timeout = std::chrono::seconds(20)}));
  }
  return Status::Ok();
}

void run_network_commands_best_effort(const std::vector<std::vector<std::string>>& commands) {
  for (const auto& argv : commands) (void)relive::run(argv, {.timeout = std::chrono::seconds(20)});
}

Status enable_proxy_arp(const std::vector<std::string>& interfaces) {
  RELIVE_RETURN_IF_ERROR(write_sysctl("/proc/sys/net/ipv4/ip_forward"));
  for (const std::string& i : interfaces) {
    RELIVE_RETURN_IF_ERROR(check_interface(i));
    RELIVE_RETURN_IF_ERROR(write_sysctl("/proc/sys/net/ipv4/conf/" + i + "/proxy_arp"));
    // The kernel delays proxy-ARP answers by a random 0..proxy_delay (0.8 s by default): after
    // a failover that delay would be client-visible outage.
    RELIVE_RETURN_IF_ERROR(write_sysctl("/proc/sys/net/ipv4/neigh/" + i + "/proxy_delay", "0"));
  }
  return Status::Ok();
}

Result<RoutedTap> RoutedTap::create(const std::string& name, const std::string& mac, bool replace) {
  if (Status s = check_interface(name); !s.ok())
    return Status::InvalidArgument("not a usable tap name: " + s.message());
  if (!mac.empty() && !valid_mac(mac)) return Status::InvalidArgument("not a MAC address: " + mac);
  if (!replace && ::if_nametoindex(name.c_str()) != 0) {
    return Status::InvalidArgument("interface " + name +
                                   " already exists on this host (another VM's tap?)");
  }
  RoutedTap t(name);
  t.remove();
  t.name_ = name;
  std::vector<std::vector<std::string>> steps = {
      {kIp, "tuntap", "add", "dev", name, "mode", "tap"}};
  if (!mac.empty()) steps.push_back({kIp, "link", "set", name, "address", mac});
  steps.push_back({kIp, "link", "set", name, "up"});
  if (Status s = run_network_commands(steps); !s.ok())
    return Status::IoError("tap setup failed: " + s.message());
  return t;
}

Status RoutedTap::route(const ServiceAddress& a) {
  RELIVE_ASSIGN_OR_RETURN(std::string uplink, interface_for(a));
  RELIVE_RETURN_IF_ERROR(enable_proxy_arp({name_, uplink}));
  if (Status s = run_network_commands({{kIp, "route", "replace", a.text + "/32", "dev", name_}});
      !s.ok())
    return Status::IoError("tap setup failed: " + s.message());
  route_ = a.text + "/32";
  return announce(a, uplink);
}

void RoutedTap::remove() {
  if (name_.empty()) return;
  std::vector<std::vector<std::string>> steps;
  if (!route_.empty()) steps.push_back({kIp, "route", "del", route_, "dev", name_});
  steps.push_back({kIp, "link", "del", name_});
  run_network_commands_best_effort(steps);
  route_.clear();
}

Status unroute(const ServiceAddress& a, const std::string& tap) {
  RELIVE_RETURN_IF_ERROR(check_interface(tap));
  Status s = run_network_commands({{kIp, "route", "del", a.text + "/32", "dev", tap}});
  if (!s.ok()) return Status::NotFound(s.message());
  return Status::Ok();
}

// SIOCGIFHWADDR, not /sys/class/net: sysfs shows the network namespace it was mounted in, which
// need not be this process's.
Result<std::string> interface_mac(const std::string& name) {
  if (Status s = check_interface(name); !s.ok()) return s;
  ScopedFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return PosixError("socket", errno);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (::ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) return PosixError("MAC of " + name, errno);
  const auto* m = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4],
                     m[5]);
}

}  // namespace relive::net
