/**
 * The kernel-initiator failover rig, shared by test/integration/kernel-multipath.test.ts and the
 * bench's `failover` section (bench/failover.ts): two gateway processes on one embedded data dir,
 * each on its own address in a network namespace (test/helpers/vm.ts), one 128 MiB image disk
 * mapped as LUN 0 of one target, and the QEMU VM with open-iscsi + dm-multipath logged in to both.
 *
 * The load in the guest rewrites 64 files of 64 KiB in place on an ext4 file system on the
 * multipath device, fsyncs each and logs it with its checksum and the guest's uptime once
 * acknowledged; verification checks the file system and that every file holds its last
 * acknowledged content. A pause is the longest gap between two acknowledged writes.
 */
import { FileConfigStore } from '../../src/config/file-store';
import { configPath } from '../../src/config/paths';
import { emptyAuth, GatewayConfig } from '../../src/config/schema';
import { assignOwner } from '../../src/ha/ownership';
import { tempDir } from './daemon';
import { waitApplied } from './gateways';
import { rbdOk } from './store';
import { buildVm, Netns, NetnsGateway, Vm } from './vm';

export const MP_IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:kernel-mp';
export const MP_INITIATOR = 'iqn.2026-01.org.example:kernel-vm';
export const MP_PORT = 3260;
export const MP_GW = { iscsi1: '10.77.0.1', iscsi2: '10.77.0.2' } as const;
export type MpGwName = keyof typeof MP_GW;
export const MP_GW_NAMES = Object.keys(MP_GW) as MpGwName[];
const VM_IP = '10.77.0.10';
export const MP_MNT = '/mnt/igw';
const LOG = '/tmp/load.log';
const DISK = 'rbd/kvm1';

/** The load: rewrite 64 files of 64 KiB in place, fsync each, log it once acknowledged. */
const LOAD_SH = `#!/bin/sh
mnt=$1; log=$2
i=0
while [ ! -e /tmp/load.stop ]; do
  i=$((i + 1)); f=f$((i % 64))
  head -c 65536 /dev/urandom > /tmp/blk
  sum=$(sha1sum < /tmp/blk | cut -c1-40)
  if dd if=/tmp/blk of="$mnt/$f" bs=65536 count=1 conv=notrunc,fsync 2> /tmp/dd.err; then
    read up _ < /proc/uptime; echo "OK $i $f $sum $up" >> "$log"
  else
    read up _ < /proc/uptime; echo "ERR $i $f - $up $(tr '\\n' ' ' < /tmp/dd.err)" >> "$log"
  fi
done
echo DONE >> "$log"
`;

/** Every file must hold its last acknowledged content (files whose last write failed are unknown). */
const VERIFY_SH = `#!/bin/sh
set -e
sync
umount ${MP_MNT}
e2fsck -fn /dev/mapper/mpatha > /tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; echo "FSCK FAILED"; exit 1; }
mount /dev/mapper/mpatha ${MP_MNT}
awk '$1 == "OK" { s[$3] = $4 } $1 == "ERR" { s[$3] = "?" } END { for (k in s) print k, s[k] }' ${LOG} > /tmp/expect
ok=0; bad=0; unknown=0
while read -r f sum; do
  if [ "$sum" = "?" ]; then unknown=$((unknown + 1)); continue; fi
  got=$(sha1sum < ${MP_MNT}/$f | cut -c1-40)
  if [ "$got" = "$sum" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "MISMATCH $f want $sum got $got"; fi
done < /tmp/expect
echo "VERIFIED ok=$ok bad=$bad unknown=$unknown"
`;

/** Errors the application (not a single path) saw: the dm device, ext4, the load's own failures. */
const ERRORS_SH = `dmesg | grep -E 'dm-[0-9]+.*error|error.*dm-[0-9]+|EXT4-fs (error|warning)|Aborting journal' || true
grep '^ERR' ${LOG} || true`;

/** The verification's last line when nothing acknowledged was lost. */
export const VERIFIED_OK = /VERIFIED ok=\d+ bad=0 unknown=0/;

function addTarget(d: GatewayConfig): void {
  const ips = [MP_GW.iscsi1, MP_GW.iscsi2];
  d.targets[MP_IQN] = {
    acl_enabled: false, auth: emptyAuth(), controls: {}, ip_list: ips,
    portals: {
      iscsi1: { portal_ip_addresses: [MP_GW.iscsi1], inactive_portal_ips: [MP_GW.iscsi2], gateway_ip_list: ips, tpgs: 2 },
      iscsi2: { portal_ip_addresses: [MP_GW.iscsi2], inactive_portal_ips: [MP_GW.iscsi1], gateway_ip_list: ips, tpgs: 2 },
    },
    disks: {}, clients: {}, groups: {},
  };
}

export interface LoadLine {
  ok: boolean;
  up: number;
}

export function parseLog(text: string): LoadLine[] {
  const out: LoadLine[] = [];
  for (const l of text.split('\n')) {
    const m = /^(OK|ERR) \d+ f\d+ \S+ ([\d.]+)/.exec(l);
    if (m) out.push({ ok: m[1] === 'OK', up: Number(m[2]) });
  }
  return out;
}

/**
 * The longest gap between two acknowledged writes from `from` on (guest seconds), and when the
 * write that ended it was acknowledged, relative to `event` (the kill or cut).
 */
export function pauseAfter(lines: LoadLine[], from: number, event = from): { gap: number; resumed: number } {
  const oks = lines.filter((l) => l.ok).map((l) => l.up);
  let prev = from;
  let gap = 0;
  let resumed = NaN;
  for (const t of oks) {
    if (t < from) {
      prev = Math.max(prev, t);
      continue;
    }
    if (t - prev > gap) {
      gap = t - prev;
      resumed = t - event;
    }
    prev = t;
  }
  return { gap, resumed };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The map's paths: `multipath -ll`, the devices of the active path group, device → portal address. */
export interface MpPaths {
  ll: string;
  active: string[];
  byDev: Map<string, string>;
}

export class KernelMultipathRig {
  readonly gws = new Map<MpGwName, NetnsGateway>();
  /** The disk's configured (preferred) owner. */
  owner0: MpGwName | undefined;
  ns: Netns | undefined;
  vm: Vm | undefined;
  readonly dataDir = tempDir('igw-kvm-');

  constructor(private readonly report: (line: string) => void) {}

  /** Build the VM, create the namespace, start both gateways, create and map the disk, boot the VM. */
  async setUp(): Promise<void> {
    const b = await buildVm();
    this.report(`VM build (scripts/vm/build.sh): ${(b.ms / 1000).toFixed(1)} s`);
    this.ns = await Netns.create([MP_GW.iscsi1, MP_GW.iscsi2]);
    await this.startGw('iscsi1');
    await this.startGw('iscsi2');
    await rbdOk(this.dataDir, 'create', '--size', '128M', DISK);
    const store = new FileConfigStore(configPath(this.dataDir));
    const r = await store.update((d) => {
      addTarget(d);
      d.disks[DISK] = { pool: 'rbd', image: 'kvm1', wwn: '6a1f0a52-0000-4000-8000-00000000c0de', backstore: 'rbd', backstore_object_name: 'rbd.kvm1', controls: {}, allocating_host: 'iscsi1' };
      d.targets[MP_IQN].disks[DISK] = { lun_id: 0 };
      assignOwner(d, DISK, MP_IQN);
    });
    this.owner0 = r.config.disks[DISK].owner as MpGwName;
    this.report(`owner of ${DISK} at start: ${this.owner0}`);
    await waitApplied(this.dataDir, ['iscsi1', 'iscsi2'], r.epoch);
    this.vm = new Vm({ buildDir: b.dir, ns: this.ns, ip: `${VM_IP}/24`, initiatorName: MP_INITIATOR });
    await this.vm.boot();
    this.report(`VM boot to agent (${this.vm.accel}): ${(this.vm.bootMs / 1000).toFixed(1)} s`);
    await this.vm.ok(`cat > /root/load.sh <<'EOF'\n${LOAD_SH}EOF\nmkdir -p ${MP_MNT}`);
  }

  async tearDown(): Promise<void> {
    if (this.vm && process.env.IGW_VM_KEEP_CONSOLE) this.report(`console: ${this.vm.consolePath}`);
    await this.vm?.kill();
    for (const g of this.gws.values()) g.kill();
    await Promise.all([...this.gws.values()].map((g) => g.exited));
    await this.ns?.destroy();
  }

  private get guest(): Vm {
    if (!this.vm) throw new Error('the VM is not booted');
    return this.vm;
  }

  gw(name: MpGwName): NetnsGateway {
    const g = this.gws.get(name);
    if (!g) throw new Error(`gateway ${name} was never started`);
    return g;
  }

  async startGw(name: MpGwName): Promise<void> {
    if (!this.ns) throw new Error('no namespace');
    this.gws.set(name, await NetnsGateway.start(this.ns, this.dataDir, name, `${MP_GW[name]}:${MP_PORT}`));
  }

  /** Discovery through iscsi1, login to every portal, wait for the map with two paths. */
  async login(timeoutS = 90): Promise<{ discovery: string; paths: MpPaths }> {
    const discovery = await this.guest.ok(`iscsiadm -m discovery -t sendtargets -p ${MP_GW.iscsi1}:${MP_PORT}`);
    await this.guest.ok(`iscsiadm -m node -T ${MP_IQN} --login`, 90);
    const deadline = Date.now() + timeoutS * 1000;
    let p = await this.paths();
    while (p.byDev.size < 2 || !/mpatha/.test(p.ll) || (p.ll.match(/ sd\w+ /g) ?? []).length < 2) {
      if (Date.now() > deadline) throw new Error(`no multipath map with two paths:\n${p.ll}\n${await this.guest.exec('dmesg | tail -n 60').then((r) => r.out)}`);
      await this.guest.exec('udevadm settle --timeout=10', 60);
      p = await this.paths();
    }
    return { discovery, paths: p };
  }

  async mkfsAndMount(): Promise<void> {
    await this.guest.ok(`mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/mpatha && mount /dev/mapper/mpatha ${MP_MNT}`, 300);
  }

  async guestUptime(): Promise<number> {
    return Number((await this.guest.ok('cut -d" " -f1 /proc/uptime')).trim());
  }

  async startLoad(): Promise<void> {
    await this.guest.ok(`rm -f /tmp/load.stop ${LOG}; (setsid sh /root/load.sh ${MP_MNT} ${LOG} > /dev/null 2>&1 &) ; sleep 0.1`);
  }

  /** Wait until the load has acknowledged `n` more writes after guest time `from` (bounded). */
  async waitWrites(from: number, n: number, timeoutS: number): Promise<LoadLine[]> {
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      const lines = parseLog(await this.guest.ok(`cat ${LOG} 2>/dev/null || true`));
      if (lines.filter((l) => l.ok && l.up > from).length >= n) return lines;
      if (Date.now() > deadline) {
        const st = await this.guest.exec('multipath -ll; iscsiadm -m session; dmesg | tail -n 40', 30);
        throw new Error(`fewer than ${n} writes acknowledged within ${timeoutS} s after ${from}:\n${lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}\n${st.out}`);
      }
      await sleep(1000);
    }
  }

  async stopLoad(): Promise<string> {
    await this.guest.ok(`touch /tmp/load.stop; i=0; while ! grep -q DONE ${LOG} && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done; grep -q DONE ${LOG}`, 120);
    return this.guest.ok(`cat ${LOG}`);
  }

  /** Check the file system and every file against its last acknowledged checksum; the script's output. */
  async verify(): Promise<string> {
    return this.guest.ok(VERIFY_SH, 300);
  }

  /** What reached the dm device, ext4 or the load as an error ('' when nothing did). */
  async appErrors(): Promise<string> {
    return (await this.guest.ok(ERRORS_SH)).trim();
  }

  /** Paths of the map: which devices the active path group has, and each device's portal. */
  async paths(): Promise<MpPaths> {
    const ll = await this.guest.ok('multipath -ll 2>/dev/null', 60);
    const sess = await this.guest.ok('iscsiadm -m session -P 3 2>/dev/null || true', 60);
    const byDev = new Map<string, string>();
    let portal = '';
    for (const l of sess.split('\n')) {
      const p = /Current Portal: ([\d.]+):/.exec(l);
      if (p) portal = p[1];
      const d = /Attached scsi disk (sd\w+)/.exec(l);
      if (d) byDev.set(d[1], portal);
    }
    // The devices of the path group multipath currently sends I/O to (status=active).
    const active: string[] = [];
    let inActive = false;
    for (const l of ll.split('\n')) {
      if (/policy=/.test(l)) inActive = /status=active/.test(l);
      const d = /\d+:\d+:\d+:\d+ (sd\w+) .*active ready/.exec(l);
      if (d && inActive) active.push(d[1]);
    }
    return { ll, active, byDev };
  }

  /** The gateway whose path carries the I/O now (undefined: no active path group). */
  async activeGateway(): Promise<MpGwName | undefined> {
    const p = await this.paths();
    const ips = p.active.map((d) => p.byDev.get(d));
    return MP_GW_NAMES.find((n) => ips.includes(MP_GW[n]));
  }

  /** Both paths "active ready" again (bounded). */
  async waitBothPaths(timeoutS: number): Promise<string> {
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      const p = await this.paths();
      if ((p.ll.match(/active ready running/g) ?? []).length >= 2) return p.ll;
      if (Date.now() > deadline) throw new Error(`both paths not ready within ${timeoutS} s:\n${p.ll}`);
      await sleep(2000);
    }
  }

  /** Wait until the I/O goes through `name`'s path (failback), bounded. */
  async waitActive(name: MpGwName, timeoutS: number): Promise<void> {
    const deadline = Date.now() + timeoutS * 1000;
    while ((await this.activeGateway()) !== name) {
      if (Date.now() > deadline) throw new Error(`I/O did not move to ${name} within ${timeoutS} s:\n${(await this.paths()).ll}`);
      await sleep(2000);
    }
  }

  // ---- the measured events (a running load is expected) ----

  /** SIGKILL `name` under load: the pause and when writes resumed after the kill. */
  async killUnderLoad(name: MpGwName, resumeWrites = 30): Promise<{ gap: number; resumed: number }> {
    const killAt = await this.guestUptime();
    this.gw(name).kill();
    await this.gw(name).exited;
    const lines = await this.waitWrites(killAt, resumeWrites, 90);
    return pauseAfter(lines, killAt - 0.5, killAt);
  }

  /**
   * Cut `name` off the VM's network under load while it keeps running; after the writes resumed
   * through the other gateway (and `moreWrites` more went there), reconnect it.
   */
  async cutUnderLoad(name: MpGwName, resumeWrites = 30, moreWrites = 50): Promise<{ gap: number; resumed: number; stillRunning: boolean }> {
    if (!this.ns) throw new Error('no namespace');
    const cutAt = await this.guestUptime();
    await this.ns.cut(MP_GW[name]);
    let lines: LoadLine[];
    try {
      lines = await this.waitWrites(cutAt, resumeWrites, 120);
      if (moreWrites > 0) await this.waitWrites(await this.guestUptime(), moreWrites, 120);
    } finally {
      await this.ns.restore(MP_GW[name]);
    }
    return { ...pauseAfter(lines, cutAt - 0.5, cutAt), stillRunning: this.gw(name).running };
  }

  /**
   * SIGTERM `name` under load (drain-on-stop), keep it down for `downS`, start it again, wait for
   * both paths. `gap`: the longest gap over the whole restart; `stopGap`: until the new process
   * was started (what the planned stop itself costs: on this 2-core host the new gateway's
   * start-up also takes CPU from the VM and the other gateway).
   */
  async restartUnderLoad(name: MpGwName, resumeWrites = 20, downS = 3): Promise<{ gap: number; stopGap: number; stopMs: number }> {
    const at = await this.guestUptime();
    const t0 = Date.now();
    await this.gw(name).stop();
    const stopMs = Date.now() - t0;
    await sleep(downS * 1000);
    const startAt = await this.guestUptime();
    await this.startGw(name);
    await this.waitBothPaths(120);
    const lines = await this.waitWrites(at, resumeWrites, 120);
    const before = lines.filter((l) => l.up <= startAt);
    const lastOk = Math.max(at, ...before.filter((l) => l.ok).map((l) => l.up));
    return { gap: pauseAfter(lines, at).gap, stopGap: Math.max(pauseAfter(before, at).gap, startAt - lastOk), stopMs };
  }
}
