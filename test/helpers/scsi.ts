/**
 * Helpers for the SCSI integration tests: data dirs with several disks and targets, logged-in
 * test-initiator sessions, CDB builders and sense decoding. Independent of the product's SCSI
 * code: CDBs and parameter lists are built byte by byte from the T10 layouts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileAtomic } from '../../src/sys/durable';
import { configPath, storeRoot } from '../../src/config/paths';
// Tests write the version-1 format: every daemon start also exercises its migration.
import { V1DiskDocument as DiskConfig, V1Document as GatewayConfig, emptyV1Document as emptyConfig } from '../../src/config/migrate';
import { ImageStore } from '../../src/store';
import { cdb10, cdb16 } from './cdb';
import { ScsiOutcome, TestInitiator } from './initiator';
import { run, tempDir } from './daemon';

export const GiB = 1024 * 1024 * 1024;
export const MiB = 1024 * 1024;

export interface DiskSpec {
  /** "pool/image" for a store image (created unless `snapshot`), or a file path (relative to the data dir). */
  readonly id: string;
  readonly backstore?: 'store' | 'file';
  readonly size?: number;
  readonly controls?: Record<string, number>;
  /** Export this snapshot of the image (read-only); it is created after `prepare` ran. */
  readonly snapshot?: string;
}

export interface TargetSpec {
  readonly iqn: string;
  /** disk id -> LUN */
  readonly luns: Record<string, number>;
  readonly controls?: Record<string, number | boolean | string>;
}

/**
 * A data dir with these disks (store images created, thin) and targets. `prepare` may write
 * to the store images before snapshots are taken.
 */
export async function dataDirWith(
  disks: DiskSpec[], targets: TargetSpec[], prepare?: (store: ImageStore) => Promise<void>,
): Promise<{ dir: string; config: GatewayConfig }> {
  const dir = tempDir();
  const config = emptyConfig();
  const store = await ImageStore.open(storeRoot(dir));
  try {
    for (const d of disks) {
      if ((d.backstore ?? 'store') !== 'store' || d.snapshot) continue;
      await store.createImage(d.id, { size: d.size ?? GiB, createPool: true });
    }
    if (prepare) await prepare(store);
    for (const d of disks) {
      if (d.snapshot) await store.createSnapshot(`${d.id}@${d.snapshot}`);
    }
  } finally {
    await store.close();
  }
  for (const d of disks) {
    const controls = d.controls ?? {};
    let disk: DiskConfig;
    if ((d.backstore ?? 'store') === 'file') {
      disk = { backstore: 'file', path: d.id, size: d.size ?? GiB, wwn: randomUUID(), controls };
    } else {
      const [pool, image] = d.id.split('/');
      disk = { backstore: 'store', pool, image, ...(d.snapshot ? { snapshot: d.snapshot } : {}), size: d.size ?? GiB, wwn: randomUUID(), controls };
    }
    config.disks[diskKey(d)] = disk;
  }
  for (const t of targets) {
    config.targets[t.iqn] = {
      portal_group_tag: 1, acl_enabled: false, controls: t.controls ?? {}, clients: {},
      disks: Object.fromEntries(Object.entries(t.luns).map(([id, lun]) => [id, { lun_id: lun }])),
    };
  }
  await writeFileAtomic(configPath(dir), JSON.stringify(config));
  return { dir, config };
}

/** The key of a disk in gateway.json: "pool/image", "pool/image@snap" or the file path. */
export function diskKey(d: DiskSpec): string {
  return d.snapshot ? `${d.id}@${d.snapshot}` : d.id;
}

export interface SessionOptions {
  readonly initiatorName?: string;
  /** ISID as 12 hex digits. */
  readonly isid?: string;
  /** LUNs whose power-on unit attentions are consumed after login. */
  readonly luns?: number[];
}

/** A logged-in session with the power-on unit attentions of its LUNs consumed. */
export async function session(port: number, target: string, o: SessionOptions = {}): Promise<TestInitiator> {
  const i = await TestInitiator.connect(port);
  await i.login({ targetName: target, initiatorName: o.initiatorName, isid: Buffer.from(o.isid ?? '800000000001', 'hex') });
  for (const lun of o.luns ?? [0]) await i.clearUnitAttentions(lun);
  return i;
}

// ---- CDBs ------------------------------------------------------------------------------------

export { cdb10, cdb16 };

export const read10 = (lba: number, blocks: number): Buffer => cdb10(0x28, lba, blocks);
export const write10 = (lba: number, blocks: number): Buffer => cdb10(0x2a, lba, blocks);

/** COMPARE AND WRITE (16 bytes): NUMBER OF LOGICAL BLOCKS in byte 13. */
export function compareAndWrite(lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 0x89;
  c.writeBigUInt64BE(BigInt(lba), 2);
  c[13] = blocks;
  return c;
}

export function inquiryVpd(page: number, alloc = 255): Buffer {
  return Buffer.from([0x12, 0x01, page, alloc >> 8, alloc & 0xff, 0]);
}

export function getLbaStatus(lba: number, alloc = 4096): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 0x9e;
  c[1] = 0x12;
  c.writeBigUInt64BE(BigInt(lba), 2);
  c.writeUInt32BE(alloc, 10);
  return c;
}

/** LBA status descriptors: [lba, blocks, provisioning status (0 mapped, 1 deallocated, 2 anchored)]. */
export function lbaStatusDescriptors(d: Buffer): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  const end = Math.min(d.length, 4 + d.readUInt32BE(0));
  for (let at = 8; at + 16 <= end; at += 16) out.push([Number(d.readBigUInt64BE(at)), d.readUInt32BE(at + 8), d[at + 12] & 0x0f]);
  return out;
}

/** UNMAP with one descriptor per [lba, blocks]. */
export function unmap(ranges: Array<[number, number]>): { cdb: Buffer; data: Buffer } {
  const data = Buffer.alloc(8 + 16 * ranges.length);
  data.writeUInt16BE(data.length - 2, 0);
  data.writeUInt16BE(16 * ranges.length, 2);
  ranges.forEach(([lba, n], i) => {
    data.writeBigUInt64BE(BigInt(lba), 8 + 16 * i);
    data.writeUInt32BE(n, 16 + 16 * i);
  });
  const cdb = Buffer.alloc(10);
  cdb[0] = 0x42;
  cdb.writeUInt16BE(data.length, 7);
  return { cdb, data };
}

/** PERSISTENT RESERVE OUT with a basic 24-byte parameter list. */
export function prOut(sa: number, type: number, rk: bigint, sark: bigint, flags = 0): { cdb: Buffer; data: Buffer } {
  const data = Buffer.alloc(24);
  data.writeBigUInt64BE(rk, 0);
  data.writeBigUInt64BE(sark, 8);
  data[20] = flags;
  return { cdb: Buffer.from([0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0]), data };
}

export function prIn(sa: number, alloc = 1024): Buffer {
  return Buffer.from([0x5e, sa, 0, 0, 0, 0, 0, alloc >> 8, alloc & 0xff, 0]);
}

/** EXTENDED COPY (LID1) parameter list: identification target descriptors (NAA) and block-to-block segments. */
export function extendedCopy(
  listId: number, naas: Buffer[], segments: Array<{ src: number; dst: number; blocks: number; srcLba: number; dstLba: number }>, blockSize = 512,
): { cdb: Buffer; data: Buffer } {
  const data = Buffer.alloc(16 + 32 * naas.length + 28 * segments.length);
  data[0] = listId;
  data[1] = 0x18; // LIST ID USAGE 11b: no list identifier held
  data.writeUInt16BE(32 * naas.length, 2);
  data.writeUInt32BE(28 * segments.length, 8);
  naas.forEach((naa, i) => {
    const t = data.subarray(16 + 32 * i, 16 + 32 * (i + 1));
    t[0] = 0xe4; // identification descriptor target descriptor
    t[4] = 0x01; // code set binary
    t[5] = 0x03; // association LU, designator type NAA
    t[7] = naa.length;
    naa.copy(t, 8);
    t.writeUIntBE(blockSize, 29, 3);
  });
  segments.forEach((s, i) => {
    const d = data.subarray(16 + 32 * naas.length + 28 * i);
    d[0] = 0x02; // block -> block
    d.writeUInt16BE(24, 2);
    d.writeUInt16BE(s.src, 4);
    d.writeUInt16BE(s.dst, 6);
    d.writeUInt16BE(s.blocks, 10);
    d.writeBigUInt64BE(BigInt(s.srcLba), 12);
    d.writeBigUInt64BE(BigInt(s.dstLba), 20);
  });
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x83;
  cdb.writeUInt32BE(data.length, 10);
  return { cdb, data };
}

/** The NAA designator of a LUN (VPD 83h, first designator). */
export async function naaOf(i: TestInitiator, lun: number): Promise<Buffer> {
  const r = await i.scsi(inquiryVpd(0x83), { read: 255, lun });
  assertGood(r);
  const d = r.data;
  for (let at = 4; at + 4 <= d.length; at += 4 + d[at + 3]) {
    if ((d[at + 1] & 0x0f) === 0x03 && ((d[at + 1] >> 4) & 0x03) === 0) return Buffer.from(d.subarray(at + 4, at + 4 + d[at + 3]));
  }
  throw new Error('no NAA designator');
}

// ---- Status and sense --------------------------------------------------------------------------

export const GOOD = 0x00;
export const CHECK_CONDITION = 0x02;
export const RESERVATION_CONFLICT = 0x18;

export interface Sense {
  readonly key: number;
  /** ASC << 8 | ASCQ */
  readonly asc: number;
  /** INFORMATION field, when VALID. */
  readonly information?: number;
}

/** Decode fixed (70h/71h) or descriptor (72h/73h) format sense data. */
export function decodeSense(s: Buffer): Sense {
  const code = s[0] & 0x7f;
  if (code === 0x72 || code === 0x73) {
    let information: number | undefined;
    for (let at = 8; at + 2 <= s.length; at += 2 + s[at + 1]) {
      if (s[at] === 0x00 && s[at + 1] >= 0x0a) information = Number(s.readBigUInt64BE(at + 4));
    }
    return { key: s[1] & 0x0f, asc: (s[2] << 8) | s[3], information };
  }
  return { key: s[2] & 0x0f, asc: (s[12] << 8) | s[13], information: s[0] & 0x80 ? s.readUInt32BE(3) : undefined };
}

export function assertGood(r: ScsiOutcome, what = 'command'): void {
  if (r.status !== GOOD) assert.fail(`${what}: status 0x${r.status.toString(16)}${r.sense ? ` sense ${r.sense.toString('hex')}` : ''}`);
}

/** CHECK CONDITION with this sense key and ASC/ASCQ; returns the decoded sense. */
export function assertSense(r: ScsiOutcome, key: number, asc: number, what = 'command'): Sense {
  assert.equal(r.status, CHECK_CONDITION, `${what}: expected CHECK CONDITION, got status 0x${r.status.toString(16)}`);
  assert.ok(r.sense, `${what}: sense data`);
  const s = decodeSense(r.sense);
  assert.deepEqual([s.key, s.asc.toString(16)], [key, asc.toString(16)], `${what}: sense key / ASC`);
  return s;
}

// ---- Other initiators ----------------------------------------------------------------------------

/** Run qemu-io commands against an iSCSI URL; fails the test when qemu-io fails. */
export async function qemuIo(url: string, commands: string[], o: { readOnly?: boolean } = {}): Promise<string> {
  const args = ['-f', 'raw', ...(o.readOnly ? ['-r'] : [])];
  for (const c of commands) args.push('-c', c);
  const r = await run('qemu-io', [...args, url], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `qemu-io failed: ${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}
