#!/usr/bin/env bash
# Installs the build into a temporary root (DESTDIR, prefix /usr, as the Debian package does) and
# checks what `cmake --install` put there: binaries, the CRIU shim where the binaries look for it
# (criu_compat.h: ../lib/relive beside bin/ and sbin/), examples, man pages, and the systemd
# units, which `systemd-analyze verify` must pass without a single warning. verify runs with
# --root on that tree, so it checks the installed ExecStart binary and (through MANPATH) the
# installed man page of Documentation=man:...; the root also gets the host's own unit files
# (sysinit.target & co.), without overwriting ours, because units depend on them.
# A second install with another prefix checks that the units name that prefix's relived.
# Usage: verify_units.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: verify_units.sh BUILD_DIR}
tmp=$(mktemp -d /tmp/relive-verify-units.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

root=$tmp/root
DESTDIR=$root cmake --install "$build" --prefix /usr >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "cmake --install"; }
for f in usr/bin/relive usr/sbin/relived; do
  [ -x "$root/$f" ] || fail "$f not installed"
done
shim=usr/lib/relive/librelive_criu_sockopt_shim.so
[ -f "$root/$shim" ] || fail "$shim not installed (relive and relived look in ../lib/relive)"
[ "$(stat -c %a "$root/$shim")" = 644 ] || fail "$shim mode $(stat -c %a "$root/$shim") (want 644)"
for f in usr/share/doc/relive/examples/relived.toml usr/share/doc/relive/examples/ha-pair.toml \
         usr/share/doc/relive/operations.md usr/share/man/man1/relive.1.gz \
         usr/share/man/man8/relived.8.gz; do
  [ -f "$root/$f" ] || fail "$f not installed (man pages: was help2man there at configure time?)"
done
units=$root/usr/lib/systemd/system
for u in relived.service relived-ha@.service; do
  [ -f "$units/$u" ] || fail "$u not installed"
  grep -q '^ExecStart=/usr/sbin/relived ' "$units/$u" || fail "$u: ExecStart is not /usr/sbin/relived"
done
grep -q '^ExecStart=/usr/sbin/relived --config /etc/relive/relived.toml$' "$units/relived.service" ||
  fail "relived.service does not run relived --config /etc/relive/relived.toml"

cp -rn /usr/lib/systemd/system/. "$units/"
# An instance name stands for the HA pair's config name.
if ! out=$(MANPATH=$root/usr/share/man systemd-analyze verify --root="$root" relived.service \
             relived-ha@pair.service 2>&1); then
  echo "$out" >&2; fail "systemd-analyze verify"
fi
[ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify printed warnings"; }

# The unit names the prefix it is installed under.
DESTDIR=$tmp/local cmake --install "$build" --prefix /opt/relive-test >"$tmp/install2.log" 2>&1 ||
  { cat "$tmp/install2.log" >&2; fail "cmake --install --prefix /opt/relive-test"; }
grep -q '^ExecStart=/opt/relive-test/sbin/relived ' \
  "$tmp/local/opt/relive-test/lib/systemd/system/relived.service" ||
  fail "a /opt/relive-test install's unit does not run /opt/relive-test/sbin/relived"
echo "units verified"
