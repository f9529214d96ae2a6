#!/usr/bin/env bash
# Builds the test guest for relive's VM migration from Debian packages only (scripts/bootstrap.sh
# installs them): the kernel linux-image-amd64 points at, unpacked under /opt/relive/guest-kernel,
# and a busybox-static initramfs whose /init runs the workload.
#
#   scripts/build-guest.sh OUT_DIR
#
# OUT_DIR receives:
#   bzImage             the Debian kernel as packaged
#   vmlinux             the same kernel decompressed: QEMU boots it through its PVH entry point,
#                       which skips the self-decompression (seconds under TCG)
#   initramfs.cpio.gz   busybox, the NIC driver (e1000), the virtio-blk driver, /init
#
# The guest's /init (kernel command line parameters in brackets):
#   - prints "relive-counter N" on ttyS0 every ~100 ms, N counting up from 0 in guest memory;
#   - gives eth0 (an e1000) the address [relive.ip=198.18.0.10/24] and runs an echo server on
#     TCP port [relive.port=7] that a client can hold a connection to;
#   - runs a line store on TCP port [relive.store=9]: a connection sends one line; "DUMP" gets
#     every line stored so far, anything else is appended (in guest RAM) and answered "ok LINE";
#   - with [relive.dirty=MB], rewrites MB MiB of memory in a loop (a guest pre-copy cannot
#     catch up with on a slow link);
#   - with [relive.spin=1], runs a compute loop that prints "relive-spin N" on ttyS0 every
#     2000 iterations (its rate is the guest's share of the CPU);
#   - with [relive.disk=BLOCKS], writes the first BLOCKS 4 KiB blocks of its first virtio disk
#     (/dev/vda) in turn, over and over: block N gets "relive-disk N" (8 digits) padded with
#     zeros, written and fsynced, and only then "relive-disk-wrote N" goes to ttyS0 (what the
#     guest acknowledged);
#   - with [relive.diskstore=1], the line store on port 9 keeps its lines on /dev/vda (see
#     /bin/store below; the disk must be at least 8 MiB plus 512 bytes a line).
# Boot: qemu-system-x86_64 -accel tcg -m 256 -nographic -kernel OUT_DIR/vmlinux
#       -initrd OUT_DIR/initramfs.cpio.gz -append 'console=ttyS0 quiet'
#
# A second run with the same kernel and script is a no-op.
set -euo pipefail

out=${1:?usage: build-guest.sh OUT_DIR}
kernel_root=${RELIVE_GUEST_KERNEL:-/opt/relive/guest-kernel/current}
busybox=/bin/busybox

die() { printf 'build-guest: %s\n' "$*" >&2; exit 1; }

[ -d "$kernel_root/boot" ] || die "no unpacked kernel in $kernel_root (run scripts/bootstrap.sh)"
[ -x "$busybox" ] && "$busybox" nc --help >/dev/null 2>&1 || die "$busybox (busybox-static) missing"
vmlinuz=$(find "$kernel_root/boot" -name 'vmlinuz-*' | head -n1)
[ -n "$vmlinuz" ] || die "no vmlinuz in $kernel_root/boot"
release=${vmlinuz##*/vmlinuz-}
e1000="$kernel_root/lib/modules/$release/kernel/drivers/net/ethernet/intel/e1000/e1000.ko"
[ -f "$e1000" ] || die "no e1000.ko for $release"
virtio_modules="virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev
  virtio/virtio_pci_legacy_dev virtio/virtio_pci block/virtio_blk"
for m in $virtio_modules; do
  [ -f "$kernel_root/lib/modules/$release/kernel/drivers/$m.ko" ] || die "no $m.ko for $release"
done

# Cache key: the kernel release and this script's contents.
stamp="$release $(sha256sum "$0" | cut -d' ' -f1)"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -s "$out/vmlinux" ] &&
  [ -s "$out/initramfs.cpio.gz" ]; then
  exit 0
fi

mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# vmlinux: the xz stream inside the bzImage (Debian builds with CONFIG_KERNEL_XZ).
offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1)
[ -n "$offset" ] || die "no xz payload in $vmlinuz"
tail -c +$((offset + 1)) "$vmlinuz" | xz -dc --single-stream >"$tmp/vmlinux" 2>/dev/null || true
head -c 4 "$tmp/vmlinux" | grep -q 'ELF' || die "could not decompress $vmlinuz"

root="$tmp/root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,lib}
cp "$busybox" "$root/bin/busybox"
cp "$e1000" "$root/lib/e1000.ko"
for m in $virtio_modules; do
  cp "$kernel_root/lib/modules/$release/kernel/drivers/$m.ko" "$root/lib/"
done
cat >"$root/bin/store" <<'STORE'
#!/bin/busybox sh
# The line store. In RAM (/run/store), or with relive.diskstore=1 on the disk /dev/vda: line N
# in 512-byte sector 16384 + N (from 8 MiB on), written and fsynced before the "ok"; the count
# of lines is in RAM (/run/store-n), so a disk that lost a write shows a hole, never a line.
read -r line
if [ -e /run/diskstore ]; then
  case "$line" in
    DUMP)
      n=$(cat /run/store-n 2>/dev/null || echo 0)
      # The page cache of /dev/vda is RAM: drop it so that the lines come from the disk.
      sync; echo 1 >/proc/sys/vm/drop_caches
      [ "$n" -gt 0 ] && dd if=/dev/vda bs=512 skip=16384 count="$n" 2>/dev/null | tr -d '\000'
      ;;
    *)
      until mkdir /run/store.lock 2>/dev/null; do usleep 1000; done
      n=$(cat /run/store-n 2>/dev/null || echo 0)
      if printf '%s\n' "$line" |
        dd of=/dev/vda bs=512 seek=$((16384 + n)) conv=sync,notrunc,fsync 2>/dev/null; then
        echo $((n + 1)) >/run/store-n
        rmdir /run/store.lock
        echo "ok $line"
      else
        rmdir /run/store.lock
      fi
      ;;
  esac
  exit 0
fi
case "$line" in
  DUMP) cat /run/store 2>/dev/null ;;
  *) echo "$line" >>/run/store && echo "ok $line" ;;
esac
STORE
chmod 0755 "$root/bin/store"
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
arg() {
  for w in $(cat /proc/cmdline); do
    case "$w" in "$1="*) echo "${w#*=}"; return ;; esac
  done
  echo "$2"
}
ip=$(arg relive.ip 198.18.0.10/24)
port=$(arg relive.port 7)
store=$(arg relive.store 9)
dirty=$(arg relive.dirty 0)
spin=$(arg relive.spin 0)
disk=$(arg relive.disk 0)
diskstore=$(arg relive.diskstore 0)
# The disk before the services: the store must know where its lines go from the first one.
if [ "$disk" -gt 0 ] || [ "$diskstore" = 1 ]; then
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
    insmod "/lib/$m.ko" 2>/dev/null
  done
  n=0
  while [ ! -b /dev/vda ] && [ "$n" -lt 100 ]; do usleep 100000; n=$((n + 1)); done
  [ "$diskstore" = 1 ] && [ -b /dev/vda ] && : >/run/diskstore
fi
if insmod /lib/e1000.ko 2>/dev/null && ip link set eth0 up 2>/dev/null; then
  ip addr add "$ip" dev eth0
  ip link set lo up
  nc -ll -p "$port" -e /bin/cat &
  nc -ll -p "$store" -e /bin/store &
  echo "relive-guest: echo server on $ip port $port" >/dev/ttyS0
fi
if [ "$dirty" -gt 0 ]; then
  (while :; do dd if=/dev/zero of=/run/dirty bs=1M count="$dirty" conv=notrunc 2>/dev/null; done) &
fi
if [ "$disk" -gt 0 ]; then
  (n=0
   while :; do
     printf 'relive-disk %08d' "$n" |
       dd of=/dev/vda bs=4096 seek="$n" conv=sync,notrunc,fsync 2>/dev/null &&
       echo "relive-disk-wrote $n" >/dev/ttyS0
     n=$(((n + 1) % disk))
     usleep 20000
   done) &
fi
if [ "$spin" = 1 ]; then
  (n=0; while :; do n=$((n + 1)); [ $((n % 2000)) -eq 0 ] && echo "relive-spin $n" >/dev/ttyS0; done) &
fi
i=0
while :; do
  echo "relive-counter $i" >/dev/ttyS0
  i=$((i + 1))
  usleep 100000
done
INIT
chmod 0755 "$root/init"
(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$tmp/initramfs.cpio.gz"

cp "$vmlinuz" "$tmp/bzImage"
mv "$tmp/vmlinux" "$tmp/bzImage" "$tmp/initramfs.cpio.gz" "$out/"
echo "$stamp" >"$out/stamp"
