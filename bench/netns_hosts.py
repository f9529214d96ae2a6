"""Hosts for the benchmarks: network namespaces <prefix>a, b and c joined by a bridge (in a fourth
namespace, <prefix>br), with addresses 198.18.<subnet>.1-3/24. up() makes them, down() removes
them; ns(host) is the command prefix that runs a program in one."""
import subprocess


def sh(*argv, check=True, **kw):
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)


class Hosts:
    def __init__(self, prefix, subnet):
        self.prefix, self.subnet = prefix, subnet

    def ns(self, host):
        return ["nsenter", f"--net=/var/run/netns/{self.prefix}{host}"]

    def up(self):
        p = self.prefix
        sh("ip", "netns", "add", p + "br")
        sh("ip", "-n", p + "br", "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", p + "br", "link", "set", "br0", "up")
        for i, h in enumerate("abc", 1):
            sh("ip", "netns", "add", p + h)
            sh("ip", "link", "add", f"v{h}", "netns", p + h, "type", "veth", "peer", "name",
               f"p{h}", "netns", p + "br")
            sh("ip", "-n", p + "br", "link", "set", f"p{h}", "master", "br0", "up")
            sh("ip", "-n", p + h, "addr", "add", f"198.18.{self.subnet}.{i}/24", "dev", f"v{h}")
            sh("ip", "-n", p + h, "link", "set", f"v{h}", "up")
            sh("ip", "-n", p + h, "link", "set", "lo", "up")

    def down(self):
        for h in ("a", "b", "c", "br"):
            sh("ip", "netns", "del", self.prefix + h, check=False)
