#!/usr/bin/env bash
# Installs everything relive needs to build, test and run, from Debian's registry only.
# Idempotent: a second run on a ready machine checks and returns in a few seconds.
#
# CRIU: Debian 12's 3.17 fails on kernels with a split vvar area, so CRIU 4.1.1 is built from
# Debian trixie's source package, fetched through a private apt configuration (the system's
# sources are never touched) and installed under /opt/relive/criu.
set -euo pipefail

CRIU_VERSION=4.1.1
CRIU_PREFIX=/opt/relive/criu
STATE_DIR=/var/cache/relive-bootstrap

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
  libseccomp-dev libnetfilter-queue-dev libnfnetlink-dev libxxhash-dev
  # CRIU 4.1 build dependencies
  libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev
  libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler uuid-dev libaio-dev
  python3-protobuf iproute2 iptables
  # real programs and clients the tests drive
  python3 sqlite3 gawk coreutils findutils procps psmisc netcat-openbsd socat curl
  redis-server redis-tools runc etcd-server etcd-client iperf3 hyperfine busybox-static cpio
  xz-utils zstd file
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

tune_kernel() {
  # CRIU lazy pages splice whole page runs through a pipe; the default 1 MiB cap makes them fail.
  local cur; cur=$(cat /proc/sys/fs/pipe-max-size)
  [ "$cur" -ge 4194304 ] || sysctl -q fs.pipe-max-size=4194304
}

main() {
  need_root
  mkdir -p "$STATE_DIR"
  install_packages
  build_criu
  tune_kernel
  log "ready (criu: $CRIU_PREFIX/sbin/criu)"
}
main "$@"
