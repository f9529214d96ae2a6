#include "net/service_address.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <netpacket/packet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/ipv4_cidr.h"
#include "common/scoped_fd.h"
#include "common/subprocess.h"

namespace relive::net {
namespace {

uint32_t mask_of(int prefix) { return prefix == 0 ? 0 : htonl(~0u << (32 - prefix)); }

Status run_tool(const std::vector<std::string>& argv) {
  return run_checked(argv, {.timeout = std::chrono::seconds(20)});
}

std::vector<std::string> lock_rule(const char* op, const char* chain, const char* dir,
                                   const std::string& ip) {
  return {
      "/usr/sbin/iptables",    "-w", op,    chain, dir, ip + "/32", "-m", "comment", "--comment",
      "relive-migration-lock", "-j", "DROP"};
}

// One ARP packet for `a` from `dev`: sender and target both `a` (gratuitous).
Status send_arp(int fd, const sockaddr_ll& to, const unsigned char* mac, in_addr ip, int op) {
  unsigned char frame[42] = {};
  std::memset(frame, 0xff, 6);  // broadcast
  std::memcpy(frame + 6, mac, 6);
  frame[12] = 0x08, frame[13] = 0x06;
  auto* arp = reinterpret_cast<ether_arp*>(frame + 14);
  arp->arp_hrd = htons(ARPHRD_ETHER);
  arp->arp_pro = htons(ETHERTYPE_IP);
  arp->arp_hln = 6;
  arp->arp_pln = 4;
  arp->arp_op = htons(op);
  std::memcpy(arp->arp_sha, mac, 6);
  std::memcpy(arp->arp_spa, &ip, 4);
  std::memset(arp->arp_tha, op == ARPOP_REPLY ? 0xff : 0x00, 6);
  std::memcpy(arp->arp_tpa, &ip, 4);
  if (::sendto(fd, frame, sizeof frame, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0)
    return PosixError("send gratuitous ARP", errno);
  return Status::Ok();
}

}  // namespace

Result<ServiceAddress> parse_service_address(const std::string& cidr) {
  Result<Ipv4Cidr> c = parse_ipv4_cidr(cidr, CidrPrefix::kOptional);
  if (!c.ok())
    return Status::InvalidArgument("service address '" + cidr + "': " + c.status().message());
  ServiceAddress a;
  a.ip = c->ip;
  a.prefix = c->prefix;
  a.text = c->address;
  a.cidr = c->text();
  return a;
}

Result<std::string> interface_for(const ServiceAddress& a) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return PosixError("getifaddrs", errno);
  std::string exact, subnet;
  uint32_t m = mask_of(a.prefix);
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    in_addr ip = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr;
    if (ip.s_addr == a.ip.s_addr)
      exact = i->ifa_name;
    else if ((ip.s_addr & m) == (a.ip.s_addr & m) && subnet.empty())
      subnet = i->ifa_name;
  }
  ::freeifaddrs(list);
  if (!exact.empty()) return exact;
  if (!subnet.empty()) return subnet;
  return Status::NotFound("no interface here is on the subnet of " + a.cidr);
}

bool address_present(const ServiceAddress& a) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return false;
  bool found = false;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr != nullptr && i->ifa_addr->sa_family == AF_INET &&
        reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == a.ip.s_addr)
      found = true;
  }
  ::freeifaddrs(list);
  return found;
}

Status add_address(const ServiceAddress& a, const std::string& dev) {
  // nodad: the address is ours now; waiting for duplicate detection would only add downtime.
  return run_tool({"/usr/sbin/ip", "addr", "add", a.cidr, "dev", dev, "nodad"});
}

Status remove_address(const ServiceAddress& a, const std::string& dev) {
  return run_tool({"/usr/sbin/ip", "addr", "del", a.cidr, "dev", dev});
}

Status announce(const ServiceAddress& a, const std::string& dev) {
  ScopedFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP)));
  if (!fd.valid()) return PosixError("packet socket", errno);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev.c_str());
  if (::ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) return PosixError("MAC of " + dev, errno);
  unsigned char mac[6];
  std::memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = static_cast<int>(::if_nametoindex(dev.c_str()));
  to.sll_halen = 6;
  std::memset(to.sll_addr, 0xff, 6);
  if (to.sll_ifindex == 0) return PosixError("interface " + dev, errno);
  RELIVE_RETURN_IF_ERROR(send_arp(fd.get(), to, mac, a.ip, ARPOP_REPLY));
  return send_arp(fd.get(), to, mac, a.ip, ARPOP_REQUEST);
}

Result<TrafficLock> TrafficLock::engage(const ServiceAddress& a) {
  RELIVE_RETURN_IF_ERROR(run_tool(lock_rule("-I", "INPUT", "-d", a.text)));
  Status out = run_tool(lock_rule("-I", "OUTPUT", "-s", a.text));
  if (!out.ok()) {
    (void)run_tool(lock_rule("-D", "INPUT", "-d", a.text));
    return out;
  }
  return TrafficLock(a.text);
}

void TrafficLock::release() {
  if (ip_.empty()) return;
  (void)run_tool(lock_rule("-D", "INPUT", "-d", ip_));
  (void)run_tool(lock_rule("-D", "OUTPUT", "-s", ip_));
  ip_.clear();
}

}  // namespace relive::net
