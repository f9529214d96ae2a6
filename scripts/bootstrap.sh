#!/usr/bin/env bash
# Installs everything relive needs to build, test and run, from Debian's registry only.
# Idempotent: a second run on a ready machine checks and returns in a few seconds.
#
# CRIU: Debian 12's 3.17 fails on kernels with a split vvar area, so CRIU 4.1.1 is built from
# Debian trixie's source package, fetched through a private apt configuration (the system's
# sources are never touched) and installed under /opt/relive/criu.
#
# QEMU: bookworm's 7.2 corrupts busy guests in pre-copy, so QEMU 10.0 comes from
# bookworm-backports, again through a private apt configuration whose preferences pin only the
# QEMU packages to backports. The test guest's kernel is a Debian kernel package unpacked (not
# installed) under /opt/relive/guest-kernel; scripts/build-guest.sh builds the guest from it.
set -euo pipefail

CRIU_VERSION=4.1.1
CRIU_PREFIX=/opt/relive/criu
STATE_DIR=/var/cache/relive-bootstrap
QEMU_SERIES=10.0
QEMU_PACKAGES=(qemu-system-x86 qemu-utils)
# The packages that must come from backports for QEMU 10.0 (the rest resolve in bookworm).
QEMU_PINNED="qemu-system-x86 qemu-system-common qemu-system-data qemu-utils seabios"
GUEST_KERNEL_DIR=/opt/relive/guest-kernel

log() { printf 'bootstrap: %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (it installs Debian packages)"; exit 1
  fi
}

PACKAGES=(
  # toolchain and build
  build-essential cmake pkg-config ninja-build clang libclang-rt-14-dev clang-format git
  # libraries relive links
  capnproto libcapnp-dev liblz4-dev libboost-dev libssl-dev libgtest-dev libgmock-dev
  libbenchmark-dev libcli11-dev libtomlplusplus-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libseccomp-dev libnetfilter-queue-dev libnfnetlink-dev libxxhash-dev libnbd-dev
  # CRIU 4.1 build dependencies
  libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev
  libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler uuid-dev libaio-dev
  python3-protobuf iproute2 iptables
  # real programs and clients the tests drive
  python3 sqlite3 gawk coreutils findutils procps psmisc netcat-openbsd socat curl
  redis-server redis-tools runc etcd-server etcd-client iperf3 hyperfine busybox-static cpio
  xz-utils zstd file nodejs
  # the metrics test scrapes relived with a real Prometheus (its own, in a test namespace)
  prometheus
  # packaging: a clean Debian 12 root for the package test, --help text as man pages
  mmdebstrap help2man
)

missing_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  printf '%s\n' "${missing[@]}"
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages | sed '/^$/d')
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Services a package would start (redis, etcd) are started by the tests themselves.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

criu_ok() {
  [ -x "$CRIU_PREFIX/sbin/criu" ] && "$CRIU_PREFIX/sbin/criu" --version 2>/dev/null | grep -q "Version: $CRIU_VERSION"
}

fetch_criu_source() {
  local dir="$1" aptdir="$STATE_DIR/apt"
  mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial" "$aptdir/etc"
  echo "deb-src http://deb.debian.org/debian trixie main" >"$aptdir/etc/sources.list"
  cat >"$aptdir/apt.conf" <<CONF
Dir::Etc::sourcelist "$aptdir/etc/sources.list";
Dir::Etc::sourceparts "-";
Dir::State::lists "$aptdir/lists";
Dir::Cache "$aptdir/cache";
APT::Sandbox::User "root";
CONF
  APT_CONFIG="$aptdir/apt.conf" apt-get update -qq
  # The .dsc and debian tarball of 4.1.1-1 answer 404 on the registry; apt has already checked
  # the orig tarball against the signed Sources index by then, so it is accepted on its own.
  (cd "$dir" && APT_CONFIG="$aptdir/apt.conf" apt-get source --download-only -qq "criu=${CRIU_VERSION}-1" || true)
  if [ ! -s "$dir/criu_${CRIU_VERSION}.orig.tar.xz" ]; then
    log "could not fetch criu_${CRIU_VERSION}.orig.tar.xz from Debian trixie sources"; exit 1
  fi
}

build_criu() {
  criu_ok && return 0
  log "building CRIU $CRIU_VERSION from Debian trixie sources"
  local src="$STATE_DIR/criu-src"
  rm -rf "$src"; mkdir -p "$src"
  fetch_criu_source "$src"
  tar -C "$src" -xf "$src/criu_${CRIU_VERSION}.orig.tar.xz"
  local tree
  tree=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'criu*' | head -n1)
  make -C "$tree" -j"$(nproc)" criu lib >"$src/build.log" 2>&1 || { tail -n 30 "$src/build.log"; exit 1; }
  mkdir -p "$CRIU_PREFIX/sbin" "$CRIU_PREFIX/lib" "$CRIU_PREFIX/include"
  install -m 0755 "$tree/criu/criu" "$CRIU_PREFIX/sbin/criu"
  cp -a "$tree"/lib/c/libcriu.so* "$CRIU_PREFIX/lib/" 2>/dev/null || true
  cp -a "$tree"/lib/c/criu.h "$tree"/images/rpc.proto "$CRIU_PREFIX/include/" 2>/dev/null || true
  criu_ok || { log "CRIU build finished but $CRIU_PREFIX/sbin/criu does not run"; exit 1; }
}

# A private apt configuration: bookworm (+ updates, security) and bookworm-backports, its own
# lists and cache, and a preferences file that pins only $QEMU_PINNED to backports. Sets
# BACKPORTS_APT_CONFIG; the lists are refreshed once per run, and only when something is missing.
BACKPORTS_APT_CONFIG=
backports_apt() {
  [ -n "$BACKPORTS_APT_CONFIG" ] && return 0
  local aptdir="$STATE_DIR/apt-backports"
  mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/etc/preferences.d"
  cat >"$aptdir/etc/sources.list" <<LIST
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
LIST
  cat >"$aptdir/etc/preferences.d/relive-qemu" <<PREF
Package: $QEMU_PINNED
Pin: release n=bookworm-backports
Pin-Priority: 990
PREF
  cat >"$aptdir/apt.conf" <<CONF
Dir::Etc::sourcelist "$aptdir/etc/sources.list";
Dir::Etc::sourceparts "-";
Dir::Etc::preferencesparts "$aptdir/etc/preferences.d";
Dir::State::lists "$aptdir/lists";
Dir::Cache "$aptdir/cache";
APT::Sandbox::User "root";
CONF
  APT_CONFIG="$aptdir/apt.conf" apt-get update -qq
  BACKPORTS_APT_CONFIG="$aptdir/apt.conf"
}

qemu_ok() {
  command -v qemu-system-x86_64 >/dev/null &&
    qemu-system-x86_64 --version 2>/dev/null | grep -q "version $QEMU_SERIES\." &&
    command -v qemu-img >/dev/null
}

install_qemu() {
  qemu_ok && return 0
  log "installing QEMU $QEMU_SERIES from bookworm-backports"
  backports_apt
  DEBIAN_FRONTEND=noninteractive APT_CONFIG="$BACKPORTS_APT_CONFIG" \
    apt-get install -y -qq --no-install-recommends "${QEMU_PACKAGES[@]}" >/dev/null
  qemu_ok || { log "QEMU $QEMU_SERIES did not install: $(qemu-system-x86_64 --version | head -n1)"; exit 1; }
}

# The kernel linux-image-amd64 points at, unpacked: GUEST_KERNEL_DIR/current/{boot,lib/modules}.
fetch_guest_kernel() {
  [ -e "$GUEST_KERNEL_DIR/current/boot" ] && return 0
  log "fetching a Debian kernel for the test guest"
  local pkg dl
  backports_apt
  pkg=$(APT_CONFIG="$BACKPORTS_APT_CONFIG" apt-cache depends linux-image-amd64 |
    awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || { log "linux-image-amd64 names no kernel package"; exit 1; }
  dl="$STATE_DIR/guest-kernel"
  rm -rf "$dl"; mkdir -p "$dl"
  (cd "$dl" && APT_CONFIG="$BACKPORTS_APT_CONFIG" apt-get download -qq "$pkg")
  mkdir -p "$GUEST_KERNEL_DIR"
  rm -rf "$GUEST_KERNEL_DIR/$pkg.tmp"
  dpkg-deb -x "$dl"/"$pkg"_*.deb "$GUEST_KERNEL_DIR/$pkg.tmp"
  rm -rf "$GUEST_KERNEL_DIR/$pkg"; mv "$GUEST_KERNEL_DIR/$pkg.tmp" "$GUEST_KERNEL_DIR/$pkg"
  ln -sfn "$pkg" "$GUEST_KERNEL_DIR/current"
  rm -rf "$dl"
}

# The metrics test runs /usr/bin/prometheus itself (temp config and storage, a test namespace):
# the package's own service, enabled by its postinst, is not wanted on a build host.
quiet_prometheus_service() {
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
}

tune_kernel() {
  # CRIU lazy pages splice whole page runs through a pipe; the default 1 MiB cap makes them fail.
  local cur; cur=$(cat /proc/sys/fs/pipe-max-size)
  [ "$cur" -ge 4194304 ] || sysctl -q fs.pipe-max-size=4194304
}

main() {
  need_root
  mkdir -p "$STATE_DIR"
  install_packages
  quiet_prometheus_service
  build_criu
  install_qemu
  fetch_guest_kernel
  tune_kernel
  log "ready (criu: $CRIU_PREFIX/sbin/criu, qemu: $(command -v qemu-system-x86_64))"
}
main "$@"
