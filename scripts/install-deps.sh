#!/usr/bin/env bash
# Installs what the tests and the benchmark need on a Debian machine: the userspace iSCSI
# initiators (libiscsi-bin, QEMU's iSCSI driver) and tgt as the benchmark peer.
# prometheus provides promtool (the metrics test lints the exposition output with it);
# liburing-dev lets the native addon submit I/O through io_uring (without it: the thread-pool path);
# python3-fusepy: the FUSE fault file system of the backstore failure tests (test/helpers/faultfs.py);
# tmux: the gwcli test types the user's guide session into a real terminal.
# Ceph (mon, osd, mgr, CLIs, librbd/librados headers), fio (rbd engine) and uuid-runtime: the throw-away
# test clusters of scripts/ceph-cluster.sh and the librbd addon, which builds at `npm ci` (so run this first).
# chromium: the web dashboard's browser tests (driven by playwright-core, never a downloaded browser).
# qemu-system-x86, iproute2, iptables: the kernel-initiator VM (scripts/vm/build.sh, test/helpers/vm.ts)
# on a bridge in a network namespace; the VM's own packages are fetched by build.sh with apt-get download.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
pkgs=(libiscsi-bin qemu-utils qemu-block-extra tgt prometheus liburing-dev python3-fusepy tmux
  ceph-mon ceph-osd ceph-mgr ceph-common librbd-dev librados-dev fio uuid-runtime
  chromium qemu-system-x86 iproute2 iptables)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || { $sudo apt-get update -q && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi
