#!/usr/bin/env bash
# The Debian package: cpack builds relive_VERSION_amd64.deb from the build directory, it declares
# the shared libraries dpkg-shlibdeps found, and `apt-get install ./relive_*.deb` (Recommends
# included, as `apt install` does) installs it into a clean Debian 12 root made here with
# mmdebstrap from the host's configured Debian mirror; then the installed relived (and relive,
# once it has --version) runs in that root and prints the package's version, which proves its
# libraries resolved from the declared dependencies alone. The recommended runc must come along,
# postinst must have run, and (once relived has --config) relived.service's ExecStart must start
# a listening relived from the example configuration.
# The clean root (variant "apt": essential packages and apt) is cached as a tarball under
# /var/cache/relive-test/, one per day (older ones are removed); without one it is made first.
# Usage: deb_install.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: deb_install.sh BUILD_DIR}
build=$(cd "$build" && pwd)
cache_dir=/var/cache/relive-test
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "deb_install: $*" >&2; }
for tool in cpack dpkg-deb mmdebstrap unshare chroot; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/bootstrap.sh installs it)"
done
tmp=$(mktemp -d /tmp/relive-deb-install.XXXXXX)
relived_pid=
cleanup() {
  if [ -n "$relived_pid" ]; then kill -KILL "$relived_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The version the build was configured with (the top-level project VERSION).
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
[ -n "$version" ] || fail "no CPACK_PACKAGE_VERSION in $build/CPackConfig.cmake"

# 1. The package.
(cd "$build" && cpack -G DEB -B "$tmp/pkg") >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log" >&2; fail "cpack -G DEB"; }
deb=$tmp/pkg/relive_${version}_amd64.deb
[ -f "$deb" ] || { ls -la "$tmp/pkg" >&2; fail "cpack made no relive_${version}_amd64.deb"; }
[ "$(dpkg-deb -f "$deb" Package)" = relive ] || fail "package name is not relive"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "package version is not $version"
depends=$(dpkg-deb -f "$deb" Depends)
for d in libc6 libstdc++6 liblz4-1 libssl3 iproute2 iptables; do
  [[ ",$depends" == *", $d"* || "$depends" == "$d"* ]] || fail "Depends lacks $d: $depends"
done

# 2. A clean Debian 12 root, from today's cached tarball or made now.
mkdir -p "$cache_dir"
tarball=$cache_dir/debian12-apt-$(date -u +%Y%m%d).tar
if [ ! -s "$tarball" ]; then
  say "making a Debian 12 root with mmdebstrap (cached in $tarball)"
  part_dir=$(mktemp -d "$cache_dir/.part.XXXXXX")
  # Lists kept: installing the package needs no apt-get update in the root.
  if ! mmdebstrap --quiet --variant=apt --format=tar --skip=cleanup/apt/lists bookworm \
        "$part_dir/root.tar" "$sources" >"$tmp/mmdebstrap.log" 2>&1; then
    rm -rf "$part_dir"; cat "$tmp/mmdebstrap.log" >&2; fail "mmdebstrap"
  fi
  mv -f "$part_dir/root.tar" "$tarball"  # atomic: a concurrent run sees no tarball or a whole one
  rm -rf "$part_dir"
  # Older days' roots, and parts a killed run left behind.
  find "$cache_dir" -maxdepth 1 -name 'debian12-apt-*.tar' ! -path "$tarball" -delete
  find "$cache_dir" -maxdepth 1 -name '.part.*' -mmin +120 -exec rm -rf {} +
fi
root=$tmp/root
mkdir "$root"
tar -C "$root" -xf "$tarball"
[ -x "$root/usr/bin/apt-get" ] || fail "$tarball holds no Debian root"
[ ! -e "$root/usr/sbin/relived" ] || fail "the clean root already has relived"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"

# 3. Install it as an operator would, in a private mount and PID namespace (its /proc goes
#    away with it).
in_root() { unshare --mount --pid --fork --mount-proc="$root/proc" chroot "$root" "$@"; }
if ! in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "/tmp/${deb##*/}" \
      >"$tmp/apt.log" 2>&1; then
  cat "$tmp/apt.log" >&2; fail "apt-get install ./relive_${version}_amd64.deb in a clean Debian 12"
fi
status=$(in_root dpkg-query -W -f='${Status} ${Version}' relive)
[ "$status" = "install ok installed $version" ] || fail "dpkg says: $status"
# apt installs Recommends by default: runc resolves on plain bookworm (QEMU 10 only with
# backports, which this root does not have).
runc_status=$(in_root dpkg-query -W -f='${Status}' runc 2>/dev/null || true)
[ "$runc_status" = "install ok installed" ] || fail "the recommended runc was not installed"
[ -f "$root/usr/lib/systemd/system/relived.service" ] || fail "relived.service not installed"
[ -d "$root/etc/relive/ha" ] || fail "postinst did not make /etc/relive/ha"

# 4. The installed programs run there.
out=$(in_root relived --version 2>&1) || fail "relived --version in the root: $out"
[ "$out" = "relived $version" ] || fail "relived --version printed '$out', want 'relived $version'"
say "$out"
out=$(in_root relive --version 2>&1) || fail "relive --version in the root: $out"
[ "$out" = "relive $version" ] || fail "relive --version printed '$out', want 'relive $version'"
say "$out"

# 5. relived.service's command line starts relived from the example configuration, with keys made
#    by the installed `relive keys init`, in a network namespace holding the example's listen
#    address (198.18.0.0/15).
{
  example=$root/usr/share/doc/relive/examples/relived.toml
  key() { sed -n "s/^$1 *= *\"\(.*\)\"\$/\1/p" "$example"; }
  listen=$(key listen) name=$(key name) tls_dir=$(key tls_dir)
  [ -n "$listen" ] && [ -n "$name" ] && [ -n "$tls_dir" ] ||
    fail "the example relived.toml sets no listen, name or tls_dir"
  listen_host=${listen%:*}
  in_root relive keys init "$tls_dir" --hosts "$name" >"$tmp/keys.log" 2>&1 ||
    { cat "$tmp/keys.log" >&2; fail "relive keys init in the root"; }
  cp "$example" "$root/etc/relive/relived.toml"
  exec_start=$(sed -n 's/^ExecStart=//p' "$root/usr/lib/systemd/system/relived.service")
  read -r -a argv <<<"$exec_start"  # the unit's line has no quoting
  : >"$tmp/relived.log"
  # unshare ignores SIGTERM while it waits; SIGKILL it and --kill-child kills relived with it.
  unshare --mount --pid --net --fork --kill-child --mount-proc="$root/proc" chroot "$root" \
    /bin/sh -c 'ip link set lo up && ip addr add "$1/32" dev lo && shift && exec "$@"' sh \
    "$listen_host" "${argv[@]}" >"$tmp/relived.log" 2>&1 &
  relived_pid=$!
  deadline=$((SECONDS + 60))
  until grep -q 'listening on' "$tmp/relived.log"; do
    if ! kill -0 "$relived_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      cat "$tmp/relived.log" >&2; kill -KILL "$relived_pid" 2>/dev/null || true
      fail "relived.service's ExecStart with the example config did not start listening"
    fi
    sleep 0.2
  done
  kill -KILL "$relived_pid"
  wait "$relived_pid" 2>/dev/null || true
  relived_pid=
  say "relived.service's command line listens with the example configuration"
}
echo "package relive $version installs and runs on a clean Debian 12"
