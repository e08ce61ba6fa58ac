/**
 * High-availability tests: gateway processes on 127.0.0.x sharing one data dir, with HA
 * settings from an iscsi-gateway.cfg (short lease, failback off unless asked), one target
 * served by all of them and image disks with a chosen preferred owner.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileConfigStore } from '../../src/config/file-store';
import { configPath } from '../../src/config/paths';
import { emptyAuth } from '../../src/config/schema';
import { readStatuses } from '../../src/daemon/status';
import type { HaDiskStatus } from '../../src/ha/manager';
import { CLI, freePort } from './daemon';
import { waitApplied } from './gateways';
import assert from 'node:assert/strict';
import { ScsiOutcome, TestInitiator } from './initiator';
import { rbdOk } from './store';

export const HA_IQN = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:ha';

export interface HaSettings {
  readonly leaseSecs?: number;
  readonly failbackSecs?: number;
  readonly minHoldMs?: number;
  readonly maxHoldMs?: number;
  readonly drainOnStop?: boolean;
  /** More `[config]` lines (e.g. cluster_name for a Ceph cluster). */
  readonly config?: readonly string[];
  /** More environment for the daemon (e.g. CEPH_CONF). */
  readonly env?: NodeJS.ProcessEnv;
}

export class HaGateway {
  out = '';
  err = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  proc: ChildProcess;

  private constructor(readonly name: string, readonly ip: string, readonly api: string, proc: ChildProcess) {
    this.proc = proc;
    proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  static async start(dataDir: string, name: string, ip: string, port: number, settings: HaSettings = {}): Promise<HaGateway> {
    const cfg = path.join(dataDir, `${name}.cfg`);
    fs.writeFileSync(cfg, [
      '[config]',
      'api_secure = false',
      `ha_lease_secs = ${settings.leaseSecs ?? 2}`,
      `ha_failback_secs = ${settings.failbackSecs ?? 0}`,
      `ha_min_hold_ms = ${settings.minHoldMs ?? 250}`,
      `ha_max_hold_ms = ${settings.maxHoldMs ?? 2000}`,
      `ha_drain_on_stop = ${settings.drainOnStop ?? true}`,
      ...(settings.config ?? []),
      '',
    ].join('\n'));
    const api = `${ip}:${await freePort()}`;
    const args = [CLI, 'serve', '--data', dataDir, '--name', name, '--portal', `${ip}:${port}`, '--config', cfg, '--api', api, '--metrics', `${ip}:${await freePort()}`];
    const proc = spawn(process.execPath, args, {
      env: { ...process.env, ISCSI_GATEWAY_LOG: process.env.ISCSI_GATEWAY_LOG ?? 'info', ...(settings.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const g = new HaGateway(name, ip, api, proc);
    const deadline = Date.now() + 30_000;
    while (!g.out.includes('REST API on')) {
      if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`${name} did not start:\n${g.out}\n${g.err}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return g;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    this.proc.kill('SIGCONT');
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(t);
  }

  /** REST call against this gateway's API (admin/admin, plain HTTP on loopback). */
  async apiCall(method: string, route: string, form: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
    const body = new URLSearchParams(form).toString();
    const res = await fetch(`http://${this.api}${route}`, {
      method,
      headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}`, ...(method === 'GET' ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
      ...(method === 'GET' ? {} : { body }),
    });
    const text = await res.text();
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed };
  }
}

/**
 * One target on every named gateway (gateway i on 127.0.0.(i+1)), image disks `rbd/<image>` of
 * `sizeMiB` mapped as LUN 0.., preferred owner `owner`. Waits until every gateway applied it.
 */
export async function setupHaTarget(dataDir: string, gateways: readonly HaGateway[], images: readonly string[], owner: string, sizeMiB = 32): Promise<void> {
  for (const img of images) await rbdOk(dataDir, 'create', '--size', `${sizeMiB}M`, `rbd/${img}`);
  const store = new FileConfigStore(configPath(dataDir));
  try {
    const ips = gateways.map((g) => g.ip);
    const r = await store.update((d) => {
      const portals: Record<string, { portal_ip_addresses: string[]; inactive_portal_ips: string[]; gateway_ip_list: string[]; tpgs: number }> = {};
      for (const g of gateways) {
        portals[g.name] = { portal_ip_addresses: [g.ip], inactive_portal_ips: ips.filter((ip) => ip !== g.ip), gateway_ip_list: ips, tpgs: ips.length };
      }
      // Only the HA target (the first start created the demo target, served by one gateway).
      for (const iqn of Object.keys(d.targets)) delete d.targets[iqn];
      for (const id of Object.keys(d.disks)) delete d.disks[id];
      for (const g of Object.values(d.gateways)) g.active_luns = 0;
      d.targets[HA_IQN] = { acl_enabled: false, auth: emptyAuth(), controls: {}, ip_list: ips, portals, disks: {}, clients: {}, groups: {} };
      images.forEach((img, lun) => {
        const id = `rbd/${img}`;
        d.disks[id] = {
          pool: 'rbd', image: img, wwn: `6a1f0a52-0000-4000-8000-${(lun + 1).toString().padStart(12, '0')}`, backstore: 'rbd',
          backstore_object_name: `rbd.${img}`, controls: {}, allocating_host: owner, owner,
        };
        d.gateways[owner].active_luns += 1;
        d.targets[HA_IQN].disks[id] = { lun_id: lun };
      });
    });
    await waitApplied(dataDir, gateways.map((g) => g.name), r.epoch);
  } finally {
    await store.close();
  }
}

/** Per-disk HA counters a gateway published (status file). */
export async function haStatus(dataDir: string, gateway: string, disk: string): Promise<HaDiskStatus | undefined> {
  const st = (await readStatuses(dataDir)).find((s) => s.name === gateway);
  return st?.ha?.[disk];
}

/** Wait until `gateway` published `pred` for the disk. */
export async function waitHa(dataDir: string, gateway: string, disk: string, pred: (s: HaDiskStatus) => boolean, timeoutMs = 15_000): Promise<HaDiskStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await haStatus(dataDir, gateway, disk);
    if (s && pred(s)) return s;
    if (Date.now() > deadline) throw new Error(`${gateway} ${disk}: condition not reached; last ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function write10(lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x2a;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
}

export function read10(lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x28;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
}

/** A logged-in test initiator to the HA target through `ip`, unit attentions cleared. */
export async function haSession(ip: string, port: number, initiatorName?: string): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port, ip);
  await i.login({ targetName: HA_IQN, ...(initiatorName ? { initiatorName } : {}) });
  await i.clearUnitAttentions(0);
  return i;
}

/** A block of `n` 512-byte sectors, each stamped with (tag, lba) so any misplaced or stale block shows. */
export function stamped(tag: string, lba: number, n = 8): Buffer {
  const b = Buffer.alloc(n * 512);
  for (let s = 0; s < n; s++) b.write(`${tag}:${lba + s};`.padEnd(512, '.'), s * 512);
  return b;
}

/** A SCSI command, repeated while it ends in UNIT ATTENTION (a new nexus, an ALUA state change). */
export async function scsiUa(i: TestInitiator, cdb: Buffer, opts: { read?: number; write?: Buffer } = {}): Promise<ScsiOutcome> {
  for (let n = 0; ; n++) {
    const r = await i.scsi(cdb, opts);
    if (n < 6 && r.status === 2 && r.sense && (r.sense[2] & 0x0f) === 6) continue;
    return r;
  }
}

export function senseText(r: ScsiOutcome): string {
  return r.sense ? `key ${r.sense[2] & 0x0f} asc ${r.sense[12].toString(16)}/${r.sense[13].toString(16)}` : 'none';
}

export async function writeOk(i: TestInitiator, lba: number, data: Buffer): Promise<void> {
  const r = await scsiUa(i, write10(lba, data.length / 512), { write: data });
  assert.equal(r.status, 0, `WRITE at ${lba}: status ${r.status}, sense ${senseText(r)}`);
}

export async function readBlocks(i: TestInitiator, lba: number, blocks: number): Promise<Buffer> {
  const r = await scsiUa(i, read10(lba, blocks), { read: blocks * 512 });
  assert.equal(r.status, 0, `READ at ${lba}: status ${r.status}, sense ${senseText(r)}`);
  return r.data;
}
