/**
 * Helpers for the store-through-the-gateway tests: a data dir whose gateway.json maps store
 * images (and optionally a sparse file) to targets, the `rbd` tool, `qemu-io`, and CDBs for
 * the raw test initiator.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/sys/durable';
import { configPath } from '../../src/config/paths';
// Tests write the version-1 format: every daemon start also exercises its migration.
import { V1DiskDocument as DiskConfig, V1Document as GatewayConfig, emptyV1Document as emptyConfig } from '../../src/config/migrate';
import { CLI, RunResult, run } from './daemon';

/** Controls of a thin store image as the daemon's demo uses them. */
export const THIN = { emulate_tpu: 1, emulate_tpws: 1, unmap_zeroes_data: 1, emulate_write_cache: 1 };

export const IQN_PREFIX = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:';

export interface LunSpec {
  /** "pool/image" or "pool/image@snap" for a store image; "file:<path>" for a sparse file. */
  readonly disk: string;
  readonly lun?: number;
  /** file disks: size to create. */
  readonly size?: number;
  readonly controls?: Record<string, number>;
}

/** Stable WWNs per disk id, so a restart keeps the LU identity. */
const wwns = new Map<string, string>();

/** A gateway.json with one target per key of `targets` (name suffix -> LUNs). */
export function gatewayConfig(targets: Record<string, readonly LunSpec[]>): GatewayConfig {
  const cfg = emptyConfig();
  for (const [suffix, luns] of Object.entries(targets)) {
    const iqn = IQN_PREFIX + suffix;
    const disks: Record<string, { lun_id: number }> = {};
    luns.forEach((l, i) => {
      let id: string;
      let disk: Omit<DiskConfig, 'wwn' | 'controls'>;
      if (l.disk.startsWith('file:')) {
        const p = l.disk.slice(5);
        id = `file/${path.basename(p)}`;
        disk = { backstore: 'file', path: p, size: l.size };
      } else {
        const [spec, snapshot] = l.disk.split('@');
        const [pool, image] = spec.split('/');
        id = snapshot ? `${pool}/${image}@${snapshot}` : `${pool}/${image}`;
        disk = { backstore: 'store', pool, image, ...(snapshot ? { snapshot } : {}) };
      }
      if (!wwns.has(id)) wwns.set(id, randomUUID());
      cfg.disks[id] = { ...disk, wwn: wwns.get(id)!, controls: { ...THIN, ...l.controls } };
      disks[id] = { lun_id: l.lun ?? i };
    });
    cfg.targets[iqn] = { alias: suffix, portal_group_tag: 1, acl_enabled: false, controls: {}, disks, clients: {} };
  }
  return cfg;
}

export async function writeGatewayConfig(dataDir: string, targets: Record<string, readonly LunSpec[]>): Promise<void> {
  await writeFileAtomic(configPath(dataDir), JSON.stringify(gatewayConfig(targets)));
}

export function lunUrl(port: number, targetSuffix: string, lun = 0): string {
  return `iscsi://127.0.0.1:${port}/${IQN_PREFIX}${targetSuffix}/${lun}`;
}

/** `iscsi-gateway rbd --data DIR ...`. */
export function rbd(dataDir: string, ...args: string[]): Promise<RunResult> {
  return run(process.execPath, [CLI, 'rbd', '--data', dataDir, '--no-progress', ...args], { timeoutMs: 60_000 });
}

/** rbd that must succeed; returns stdout. */
export async function rbdOk(dataDir: string, ...args: string[]): Promise<string> {
  const r = await rbd(dataDir, ...args);
  assert.equal(r.code, 0, `rbd ${args.join(' ')} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** qemu-io on a raw iSCSI URL (`-r`: open read-only); returns the whole output. */
export function qemuIo(url: string, commands: readonly string[], opts: { readOnly?: boolean } = {}): Promise<RunResult> {
  return run('qemu-io', ['-f', 'raw', ...(opts.readOnly ? ['-r'] : []), ...commands.flatMap((c) => ['-c', c]), url], { timeoutMs: 60_000 });
}

/** qemu-io commands that must all succeed (qemu-io exits 0 even when a read -P mismatches). */
export async function qemuIoOk(url: string, commands: readonly string[], opts: { readOnly?: boolean } = {}): Promise<string> {
  const r = await qemuIo(url, commands, opts);
  const out = r.stdout + r.stderr;
  assert.equal(r.code, 0, `qemu-io ${commands.join('; ')} on ${url}: exit ${r.code}\n${out}`);
  assert.doesNotMatch(out, /Pattern verification failed|failed|error|Error/i, `qemu-io ${commands.join('; ')} on ${url}:\n${out}`);
  const done = out.match(/^(read|wrote) \d+\/\d+ bytes/gm) ?? [];
  assert.equal(done.length, commands.length, `qemu-io ${commands.join('; ')} on ${url}: not every command completed:\n${out}`);
  return out;
}

// ---------------------------------------------------------------------------- CDBs

function be64(b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), at);
  b.writeUInt32BE(v >>> 0, at + 4);
}

export const cdb = {
  testUnitReady: (): Buffer => Buffer.alloc(6),
  read16: (lba: number, blocks: number): Buffer => {
    const b = Buffer.alloc(16);
    b[0] = 0x88;
    be64(b, 2, lba);
    b.writeUInt32BE(blocks, 10);
    return b;
  },
  write16: (lba: number, blocks: number, fua = false): Buffer => {
    const b = Buffer.alloc(16);
    b[0] = 0x8a;
    b[1] = fua ? 0x08 : 0;
    be64(b, 2, lba);
    b.writeUInt32BE(blocks, 10);
    return b;
  },
  write10: (lba: number, blocks: number): Buffer => Buffer.from([0x2a, 0, lba >>> 24, (lba >> 16) & 0xff, (lba >> 8) & 0xff, lba & 0xff, 0, blocks >> 8, blocks & 0xff, 0]),
  synchronizeCache10: (): Buffer => Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  readCapacity16: (): Buffer => {
    const b = Buffer.alloc(16);
    b[0] = 0x9e;
    b[1] = 0x10;
    b.writeUInt32BE(32, 10);
    return b;
  },
  modeSense6: (): Buffer => Buffer.from([0x1a, 0, 0x3f, 0, 0xff, 0]),
};

/** Sense key, ASC, ASCQ of fixed or descriptor format sense data. */
export function senseOf(sense: Buffer | undefined): { key: number; asc: number; ascq: number } | undefined {
  if (!sense || sense.length < 4) return undefined;
  const code = sense[0] & 0x7f;
  if (code === 0x72 || code === 0x73) return { key: sense[1] & 0x0f, asc: sense[2], ascq: sense[3] };
  return { key: sense[2] & 0x0f, asc: sense[12], ascq: sense[13] };
}

/** READ CAPACITY (16): number of logical blocks and block size. */
export function parseCapacity16(data: Buffer): { blocks: number; blockSize: number } {
  const last = data.readUInt32BE(0) * 2 ** 32 + data.readUInt32BE(4);
  return { blocks: last + 1, blockSize: data.readUInt32BE(8) };
}
