/**
 * Test helpers: build I_T nexuses and ScsiCommands from CDB byte vectors, run them through a
 * ScsiTarget over a MemoryBackstore, and assert exact status / sense bytes.
 */
import assert from 'node:assert/strict';
import { ITNexus, ScsiCommand, ScsiResult, ScsiStatus, TaskAttribute } from '../../../src/scsi/sam';
import { ScsiTarget, LogicalUnitConfig } from '../../../src/scsi/scsi-target';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { DecodedSense, decodeSense } from '../../../src/scsi/sense';
import { LogicalUnitRegistry } from '../../../src/scsi/lu-registry';
import type { DiskSettings } from '../../../src/scsi/disk-settings';
import type { LuStateStore } from '../../../src/scsi/lu-state';

export const TARGET = 'iqn.2024-01.test:target';
export const WWN = '5f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

export function nexus(n = 1, tpg = 1): ITNexus {
  const isid = `40000000000${n}`.slice(-12);
  const initiatorName = `iqn.2024-01.test:initiator${n}`;
  const initiatorPortName = `${initiatorName},i,0x${isid}`;
  const targetPortName = `${TARGET},t,0x${tpg.toString(16).padStart(4, '0')}`;
  return {
    key: `${initiatorPortName}|${targetPortName}`,
    initiatorName, initiatorPortName, isid, targetName: TARGET, targetPortName,
    relativeTargetPortId: tpg, targetPortGroup: tpg,
  };
}

export interface CommandOptions {
  readonly lun?: number;
  readonly nexus?: ITNexus;
  readonly tag?: number;
  readonly attribute?: TaskAttribute;
  /** Data-Out buffer the initiator would send (dataOutLength defaults to its length). */
  readonly dataOut?: Buffer;
  readonly dataOutLength?: number;
  readonly dataInLength?: number;
  /** Replace receiveDataOut (e.g. to hold the data back). */
  readonly receive?: (length: number, signal: AbortSignal) => Promise<Buffer>;
}

export interface TestCommand extends ScsiCommand {
  /** Lengths receiveDataOut was called with. */
  readonly received: number[];
}

let nextTag = 1;

export function command(cdb: Buffer | number[], o: CommandOptions = {}): TestCommand {
  const received: number[] = [];
  const data = o.dataOut ?? Buffer.alloc(0);
  return {
    nexus: o.nexus ?? nexus(1),
    lun: o.lun ?? 0,
    cdb: Buffer.isBuffer(cdb) ? cdb : Buffer.from(cdb),
    tag: o.tag ?? nextTag++,
    attribute: o.attribute ?? TaskAttribute.Simple,
    dataOutLength: o.dataOutLength ?? data.length,
    dataInLength: o.dataInLength ?? 0x10000000,
    received,
    receiveDataOut(length: number, signal: AbortSignal): Promise<Buffer> {
      received.push(length);
      if (o.receive) return o.receive(length, signal);
      if (length > data.length) return Promise.reject(new Error(`asked for ${length} bytes, only ${data.length} sent`));
      return Promise.resolve(data.subarray(0, length));
    },
  };
}

export interface Fixture {
  readonly target: ScsiTarget;
  readonly device: MemoryBackstore;
  readonly nexus: ITNexus;
  run(cdb: Buffer | number[], o?: CommandOptions): Promise<ScsiResult>;
}

export interface FixtureOptions {
  readonly blocks?: number;
  readonly blockSize?: number;
  readonly settings?: Partial<DiskSettings>;
  readonly readOnly?: boolean;
  readonly removable?: boolean;
  readonly lun?: number;
  /** Keep the power-on unit attention (default: cleared with TEST UNIT READY). */
  readonly keepUnitAttention?: boolean;
  readonly device?: MemoryBackstore;
  readonly extraUnits?: LogicalUnitConfig[];
  readonly luState?: LuStateStore;
}

/** A target with one LU over a MemoryBackstore and one logged-in nexus, UA already cleared. */
export async function fixture(o: FixtureOptions = {}): Promise<Fixture> {
  const blockSize = o.blockSize ?? o.settings?.block_size ?? 512;
  const device = o.device ?? new MemoryBackstore({ size: (o.blocks ?? 2048) * blockSize, readOnly: o.readOnly, name: 'mem0' });
  const settings = { ...o.settings, ...(blockSize !== 512 ? { block_size: blockSize } : {}) };
  const target = new ScsiTarget({
    targetName: TARGET,
    registry: new LogicalUnitRegistry(),
    logicalUnits: [{ lun: o.lun ?? 0, device, wwn: WWN, name: 'rbd/disk_1', settings, removable: o.removable, luState: o.luState }, ...(o.extraUnits ?? [])],
  });
  const n = nexus(1);
  target.nexusCreated(n);
  const run = (cdb: Buffer | number[], co: CommandOptions = {}) => target.execute(command(cdb, { nexus: n, lun: o.lun ?? 0, ...co }));
  if (!o.keepUnitAttention) {
    for (const lun of [o.lun ?? 0, ...(o.extraUnits ?? []).map((u) => u.lun)]) {
      const r = await run([0, 0, 0, 0, 0, 0], { lun });
      assert.equal(r.status, ScsiStatus.CheckCondition);
      // With UA_INTLCK_CTRL != 00b only REQUEST SENSE clears a unit attention.
      await run([0x03, 0, 0, 0, 252, 0], { lun });
    }
  }
  return { target, device, nexus: n, run };
}

export function assertGood(r: ScsiResult): void {
  if (r.status !== ScsiStatus.Good) {
    assert.fail(`expected GOOD, got status ${r.status}${r.sense ? ' sense ' + r.sense.toString('hex') : ''}`);
  }
}

/** Assert CHECK CONDITION with the given sense key and packed ASC/ASCQ; returns the decoded sense. */
export function assertSense(r: ScsiResult, key: number, asc: number): DecodedSense {
  assert.equal(r.status, ScsiStatus.CheckCondition, `expected CHECK CONDITION, got ${r.status}`);
  assert.ok(r.sense, 'sense data present');
  const s = decodeSense(r.sense);
  assert.equal(s.key, key, `sense key ${s.key.toString(16)} (asc ${s.asc.toString(16)})`);
  assert.equal(s.asc, asc, `asc/ascq ${s.asc.toString(16).padStart(4, '0')}`);
  return s;
}

/** INVALID FIELD IN CDB pointing at byte/bit. */
export function assertInvalidField(r: ScsiResult, byte: number, bit?: number): void {
  const s = assertSense(r, 0x5, 0x2400);
  assert.deepEqual(s.field, { cdb: true, byte, bit }, 'field pointer');
}

export { cdb6, cdb10, cdb12, cdb16 } from '../../helpers/cdb';

export function pattern(bytes: number, seed = 1): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

/** Run until `fn` returns without throwing or microtasks settle a few times. */
export async function tick(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A promise with its resolve exposed. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
