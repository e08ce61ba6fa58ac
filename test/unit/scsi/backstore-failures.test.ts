/**
 * A backstore that fails or stops answering, seen through the SCSI target device: exact sense
 * per failure, bounded time (cmd_time_out), TMFs and nexus loss that never wait for it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus, TaskManagementFunction as Fn, TaskManagementResponse as Rsp } from '../../../src/scsi/sam';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { assertGood, assertSense, cdb10, cdb16, command, fixture, nexus } from './helpers';

const READ10 = 0x28;
const WRITE10 = 0x2a;
const SYNC10 = 0x35;

function errno(code: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: simulated`);
  e.code = code;
  return e;
}

/** A memory backstore whose operations never complete until released. */
function hangingDevice(): { device: MemoryBackstore; hang: () => void; release: () => void } {
  const device = new MemoryBackstore({ size: 2048 * 512 });
  let open: () => void = () => undefined;
  const gate = new Promise<void>((r) => (open = r));
  const read = device.read.bind(device);
  const write = device.write.bind(device);
  const flush = device.flush.bind(device);
  const hang = () => {
    device.read = async (o, l, into) => { await gate; return read(o, l, into); };
    device.write = async (o, d, opt) => { await gate; return write(o, d, opt); };
    device.flush = async () => { await gate; return flush(); };
  };
  return { device, hang, release: () => open() };
}

describe('backstore errors become exact sense data', () => {
  it('ENOSPC: DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT; EIO: MEDIUM ERROR read / write; EROFS: WRITE PROTECTED', async () => {
    const f = await fixture();
    const dev = f.device;
    dev.write = () => Promise.reject(errno('ENOSPC'));
    assertSense(await f.run(cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512) }), 0x7, 0x2707);
    dev.write = () => Promise.reject(errno('EIO'));
    assertSense(await f.run(cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512) }), 0x3, 0x0c00);
    dev.read = () => Promise.reject(errno('EIO'));
    assertSense(await f.run(cdb10(READ10, 0, 1)), 0x3, 0x1100);
    dev.write = () => Promise.reject(errno('EROFS'));
    assertSense(await f.run(cdb10(WRITE10, 0, 1), { dataOut: Buffer.alloc(512) }), 0x7, 0x2700);
    // COMPARE AND WRITE reads first: its EIO there is a read error, whatever the Data-Out.
    const caw = cdb16(0x89, 0, 0);
    caw[13] = 1;
    assertSense(await f.run(caw, { dataOut: Buffer.alloc(1024) }), 0x3, 0x1100);
  });

  it('a failed flush is MEDIUM ERROR / WRITE ERROR, and every other I_T nexus hears of it at its next SYNCHRONIZE CACHE', async () => {
    const f = await fixture({ settings: { emulate_write_cache: 1 } });
    const n2 = nexus(2);
    f.target.nexusCreated(n2);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 });
    assertGood(await f.run(cdb10(WRITE10, 0, 1), { nexus: n2, dataOut: Buffer.alloc(512, 9) }));
    const flush = f.device.flush.bind(f.device);
    f.device.flush = () => Promise.reject(errno('EIO'));
    assertSense(await f.run(cdb10(SYNC10, 0, 0)), 0x3, 0x0c00);
    f.device.flush = flush; // the next fdatasync "succeeds": Linux reported the error once
    assertSense(await f.run(cdb10(SYNC10, 0, 0), { nexus: n2 }), 0x3, 0x0c00);
    assertGood(await f.run(cdb10(SYNC10, 0, 0), { nexus: n2 }));
    assertGood(await f.run(cdb10(SYNC10, 0, 0)));
  });

  it('a failed SYNCHRONIZE CACHE with IMMED=1 is reported by the next SYNCHRONIZE CACHE, also after a reconnect', async () => {
    const f = await fixture({ settings: { emulate_write_cache: 1 } });
    const flush = f.device.flush.bind(f.device);
    f.device.flush = () => Promise.reject(errno('EIO'));
    const immed = cdb10(SYNC10, 0, 0);
    immed[1] = 0x02;
    assertGood(await f.run(immed));
    await new Promise((r) => setImmediate(r));
    f.device.flush = flush;
    await f.target.nexusLost(f.nexus);
    f.target.nexusCreated(f.nexus);
    await f.run([0, 0, 0, 0, 0, 0]);
    assertSense(await f.run(cdb10(SYNC10, 0, 0)), 0x3, 0x0c00);
    assertGood(await f.run(cdb10(SYNC10, 0, 0)));
  });
});

describe('a backstore that stops answering', () => {
  it('a READ fails NOT READY / LOGICAL UNIT COMMUNICATION FAILURE after cmd_time_out; its buffers are not recycled', async () => {
    const h = hangingDevice();
    const f = await fixture({ device: h.device, settings: { cmd_time_out: 1 } });
    h.hang();
    const t0 = Date.now();
    const r = await f.run(cdb10(READ10, 0, 1));
    const took = Date.now() - t0;
    assertSense(r, 0x2, 0x0800);
    assert.equal(r.retainBuffers, true);
    assert.ok(took >= 950 && took < 3000, `failed after ${took} ms`);
    h.release();
    await f.target.close();
  });

  it('ABORT TASK, LOGICAL UNIT RESET and nexus loss complete at once while the backstore hangs; nothing stays locked', async () => {
    const h = hangingDevice();
    const f = await fixture({ device: h.device, settings: { cmd_time_out: 600 } });
    h.hang();
    const started = Date.now();
    // ABORT TASK of a WRITE inside the backstore.
    const w = f.target.execute(command(cdb10(WRITE10, 0, 8), { nexus: f.nexus, tag: 1, dataOut: Buffer.alloc(4096) }));
    await new Promise((r) => setImmediate(r));
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.AbortTask, lun: 0, referencedTag: 1 }), Rsp.FunctionComplete);
    assert.equal((await w).status, ScsiStatus.TaskAborted);
    // LOGICAL UNIT RESET with a READ and a SYNCHRONIZE CACHE inside the backstore.
    const r = f.target.execute(command(cdb10(READ10, 100, 1), { nexus: f.nexus, tag: 2 }));
    const s = f.target.execute(command(cdb10(SYNC10, 0, 0), { nexus: f.nexus, tag: 3 }));
    await new Promise((res) => setImmediate(res));
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.LogicalUnitReset, lun: 0 }), Rsp.FunctionComplete);
    assert.ok((await r).aborted);
    assert.ok((await s).aborted);
    // Nexus loss (logout, connection drop, session reinstatement) with a READ inside.
    const n2 = nexus(2);
    f.target.nexusCreated(n2);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }); // its power-on unit attention
    const r2 = f.target.execute(command(cdb10(READ10, 0, 1), { nexus: n2, tag: 4 }));
    await new Promise((res) => setImmediate(res));
    await f.target.nexusLost(n2);
    assert.ok((await r2).aborted);
    assert.ok(Date.now() - started < 2000, 'none of them waited for the backstore');
    const lu = f.target.logicalUnit(0)!;
    assert.equal(lu.locks.active, 0, 'no range lock is pinned');
    assert.equal(lu.taskSet.size, 0, 'no task is pinned');
    assert.equal(lu.device.orphanCount, 4);
    h.release();
    assert.equal(await lu.device.drain(1000), true);
    await f.target.close();
  });
});

describe('physical block', () => {
  it('LBPPBE and OPTIMAL TRANSFER LENGTH GRANULARITY come from the backstore physical block', async () => {
    const device = new MemoryBackstore({ size: 2048 * 512, physicalBlockBytes: 4096 });
    const f = await fixture({ device });
    const rc = await f.run(cdb16(0x9e, 0, 32, 0x10));
    assert.equal(rc.data![13] & 0x0f, 3, '8 logical blocks per physical block');
    const inq = await f.run([0x12, 0x01, 0xb0, 0, 255, 0]);
    assert.equal(inq.data!.readUInt16BE(6), 8);
    const f4k = await fixture({ device: new MemoryBackstore({ size: 256 * 4096, physicalBlockBytes: 4096 }), blockSize: 4096 });
    assert.equal((await f4k.run(cdb16(0x9e, 0, 32, 0x10))).data![13] & 0x0f, 0);
  });
});
