#!/usr/bin/env bash
# Builds the small Linux VM the kernel-initiator tests boot: Debian's kernel plus an initramfs with
# open-iscsi, multipath-tools, udev, e2fsprogs, sg3-utils and busybox, all from Debian packages
# fetched with `apt-get download` (nothing else is downloaded), and the project's init, command
# agent and initiator configuration (this folder). The result is cached under
# build/vm/<key>/ where the key hashes the package versions and this folder's files, so a second
# run only checks the versions (seconds). Prints the output directory (vmlinuz, initrd.img) as
# its last line.
#
# Usage: scripts/vm/build.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out_root="${IGW_VM_BUILD_DIR:-$repo/build/vm}"
force=0
[ "${1:-}" = "--force" ] && force=1

# The kernel package behind the linux-image-amd64 metapackage (e.g. linux-image-6.1.0-57-amd64).
kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
if [ -z "$kpkg" ]; then
  # A fresh machine may have no package lists yet.
  apt-get update -q >&2
  kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
fi
[ -n "$kpkg" ] || { echo "build.sh: apt does not know linux-image-amd64" >&2; exit 1; }
kver="${kpkg#linux-image-}"

# Userspace: what the guest runs plus every shared library those programs need (checked below).
pkgs=(
  "$kpkg" busybox-static kmod udev
  open-iscsi libisns0 libopeniscsiusr
  multipath-tools kpartx libaio1 libdevmapper1.02.1 dmsetup libedit2 libjson-c5 liburcu8
  e2fsprogs libext2fs2 libss2 libcom-err2 sg3-utils libsgutils2-1.46-2
  libc6 libgcc-s1 libkmod2 libmount1 libblkid1 libuuid1 libssl3 libsystemd0 libudev1
  liblzma5 libzstd1 liblz4-1 libgcrypt20 libgpg-error0 libcap2 libselinux1 libpcre2-8-0
  libbsd0 libmd0 libtinfo6 libacl1 libcrypt1 zlib1g
)

# The cache key: the exact .deb files apt would fetch, and this folder's content.
uris="$(apt-get download --print-uris "${pkgs[@]}" 2>/dev/null | awk '{ print $2 }' | sort)"
[ "$(printf '%s\n' "$uris" | grep -c .)" -eq "${#pkgs[@]}" ] \
  || { echo "build.sh: apt cannot resolve every package: ${pkgs[*]}" >&2; exit 1; }
key="$( { printf '%s\n' "$uris"; cat "$here"/build.sh "$here"/init "$here"/agent.sh "$here"/iscsid.conf "$here"/multipath.conf; } | sha256sum | cut -c1-16)"
out="$out_root/$key"
if [ "$force" -eq 0 ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
  echo "$out"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/igw-vm-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pkgroot" "$work/initrd" "$out_root/debs"
# Downloaded .deb files are kept (by their versioned names) for the next build.
fetch=()
for p in "${pkgs[@]}"; do
  f="$(printf '%s\n' "$uris" | grep -m1 "^${p}_" || true)"
  [ -n "$f" ] && [ -s "$out_root/debs/$f" ] || fetch+=("$p")
done
if [ ${#fetch[@]} -gt 0 ]; then
  echo "fetching ${#fetch[@]} Debian packages" >&2
  # apt's _apt user may not read the directory; apt then downloads as root (and says so).
  ( cd "$out_root/debs" && apt-get download -q "${fetch[@]}" 2>&1 | grep -v -e unsandboxed -e '^Get:' >&2 || true )
fi
while IFS= read -r f; do
  [ -s "$out_root/debs/$f" ] || { echo "build.sh: download of $f failed" >&2; exit 1; }
  dpkg-deb -x "$out_root/debs/$f" "$work/pkgroot"
done <<< "$uris"
P="$work/pkgroot"
R="$work/initrd"
bb="$P/bin/busybox"

# Kernel modules: what iSCSI, dm-multipath with ALUA, ext4 and virtio need, plus their
# dependencies (depmod from the package's own kmod; the host may have none).
depmod_in() { "$P/lib64/ld-linux-x86-64.so.2" --library-path "$P/lib/x86_64-linux-gnu:$P/usr/lib/x86_64-linux-gnu" --argv0 depmod "$P/bin/kmod" "$@"; }
depmod_in -b "$P" "$kver"
mods=(virtio_pci virtio_net virtio_console virtio_blk iscsi_tcp scsi_transport_iscsi libiscsi sd_mod sg
      dm_mod dm_multipath dm_round_robin dm_service_time dm_queue_length scsi_dh_alua
      ext4 crc32c_generic unix ipv6 af_packet)
moddir="lib/modules/$kver"
declare -A want=()
for m in "${mods[@]}"; do
  path="$(awk -v m="$m" -F: '{ n=$1; sub(/.*\//, "", n); sub(/\.ko.*$/, "", n); gsub(/-/, "_", n); if (n == m) { print $0; exit } }' "$P/$moddir/modules.dep")"
  if [ -z "$path" ]; then
    grep -q "/${m//_/[-_]}.ko" "$P/$moddir/modules.builtin" && continue
    echo "build.sh: kernel module $m not found in $kpkg" >&2; exit 1
  fi
  for f in ${path/:/ }; do want["$f"]=1; done
done
for f in "${!want[@]}"; do install -D -m 0644 "$P/$moddir/$f" "$R/$moddir/$f"; done
cp "$P/$moddir"/modules.builtin* "$P/$moddir/modules.order" "$R/$moddir/"
depmod_in -b "$R" "$kver"
cp "$P/boot/vmlinuz-$kver" "$work/vmlinuz"

# Programs, with their library closure (from the packages, never the host's).
progs=(
  sbin/iscsid sbin/iscsiadm sbin/multipath sbin/multipathd sbin/dmsetup sbin/kpartx
  sbin/mke2fs sbin/e2fsck sbin/dumpe2fs bin/kmod bin/udevadm
  usr/bin/sg_inq usr/bin/sg_rtpg usr/bin/sg_turs usr/bin/sg_persist usr/bin/sg_vpd usr/bin/sg_readcap
)
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib/x86_64-linux-gnu,lib64,etc,proc,sys,dev,run,tmp,var,root,mnt}
for p in "${progs[@]}"; do install -D -m 0755 "$P/$p" "$R/$p"; done
mkdir -p "$R/lib/systemd" && ln -sf /bin/udevadm "$R/lib/systemd/systemd-udevd"
for l in modprobe insmod rmmod lsmod depmod modinfo; do ln -sf /bin/kmod "$R/sbin/$l"; done
ln -sf mke2fs "$R/sbin/mkfs.ext4"
ln -sf e2fsck "$R/sbin/fsck.ext4"
install -m 0755 "$bb" "$R/bin/busybox"
# Shared libraries: follow DT_NEEDED through the package tree (libmultipath's plug-ins included).
find_lib() {
  local d
  for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib usr/lib; do
    [ -e "$P/$d/$1" ] && { echo "$d/$1"; return 0; }
  done
  return 1
}
cp -a "$P/lib/multipath" "$R/lib/"
install -D -m 0755 "$P/lib64/ld-linux-x86-64.so.2" "$R/lib64/ld-linux-x86-64.so.2"
# glibc dlopens libgcc_s for pthread_cancel (multipathd's threads): no DT_NEEDED names it.
install -m 0755 "$(readlink -f "$P/lib/x86_64-linux-gnu/libgcc_s.so.1")" "$R/lib/x86_64-linux-gnu/libgcc_s.so.1"
queue=("${progs[@]}")
while IFS= read -r f; do queue+=("${f#"$R/"}"); done < <(find "$R/lib/multipath" -name '*.so')
declare -A seen=()
missing=()
while [ ${#queue[@]} -gt 0 ]; do
  f="${queue[0]}"; queue=("${queue[@]:1}")
  for so in $(readelf -d "$P/$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -n "${seen[$so]:-}" ] && continue
    seen[$so]=1
    if lib="$(find_lib "$so")"; then
      real="$(readlink -f "$P/$lib")"
      install -D -m 0755 "$real" "$R/lib/x86_64-linux-gnu/$(basename "$real")"
      [ "$(basename "$real")" = "$so" ] || ln -sf "$(basename "$real")" "$R/lib/x86_64-linux-gnu/$so"
      queue+=("${real#"$P/"}")
    else
      missing+=("$so (needed by $f)")
    fi
  done
done
if [ ${#missing[@]} -gt 0 ]; then
  printf 'build.sh: shared libraries not in the package list:\n' >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi
mkdir -p "$R/lib/udev/rules.d" "$R/etc/udev"
cp -a "$P/lib/udev/rules.d/"{50-udev-default,55-dm,56-dm-mpath,60-block,60-persistent-storage,60-persistent-storage-dm,60-multipath,95-dm-notify}.rules "$R/lib/udev/rules.d/" 2>/dev/null || true
for t in ata_id scsi_id; do [ -e "$P/lib/udev/$t" ] && install -m 0755 "$P/lib/udev/$t" "$R/lib/udev/$t"; done
[ -d "$P/lib/udev/hwdb.d" ] || true

# The project's files: init, the command agent, the initiator configuration.
install -m 0755 "$here/init" "$R/init"
install -m 0755 "$here/agent.sh" "$R/sbin/igw-agent"
install -D -m 0600 "$here/iscsid.conf" "$R/etc/iscsi/iscsid.conf"
install -D -m 0644 "$here/multipath.conf" "$R/etc/multipath.conf"
mkdir -p "$R/etc/iscsi/nodes" "$R/etc/iscsi/send_targets" "$R/etc/multipath" "$R/var/lib/iscsi" "$R/run/lock"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\ndisk:x:6:\ntty:x:5:\nkmem:x:15:\n' > "$R/etc/group"
: > "$R/etc/fstab"
printf '%s\n' "$kver" > "$R/etc/igw-kernel"

( cd "$R" && find . | sort | "$bb" cpio -o -H newc 2>/dev/null ) | gzip -1 > "$work/initrd.img"
mkdir -p "$out"
mv "$work/vmlinuz" "$work/initrd.img" "$out/"
printf '%s\n' "${pkgs[@]}" > "$out/packages"
printf '%s\n' "$uris" > "$out/uris"
# Older builds (other keys) are dropped; the .deb cache keeps only what this build used.
for d in "$out_root"/*/; do
  d="${d%/}"
  case "${d##*/}" in debs|"$key") ;; *) rm -rf "$d" ;; esac
done
while IFS= read -r f; do
  printf '%s\n' "$uris" | grep -qxF "${f##*/}" || rm -f "$f"
done < <(find "$out_root/debs" -name '*.deb')
echo "built $out ($(du -h "$out/initrd.img" | cut -f1) initramfs, kernel $kver)" >&2
echo "$out"
