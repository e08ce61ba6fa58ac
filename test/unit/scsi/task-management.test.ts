import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiResult, ScsiStatus, TaskAttribute, TaskManagementFunction as Fn, TaskManagementResponse as Rsp } from '../../../src/scsi/sam';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { assertGood, assertSense, cdb10, command, deferred, fixture, nexus, tick, Fixture } from './helpers';

/** A MemoryBackstore whose reads and writes wait for release(). */
function gatedDevice(blocks = 2048): { device: MemoryBackstore; started: string[]; release: () => void; hold: (on: boolean) => void } {
  const device = new MemoryBackstore({ size: blocks * 512 });
  const started: string[] = [];
  let gate = deferred<void>();
  let holding = true;
  const read = device.read.bind(device);
  const write = device.write.bind(device);
  device.read = async (o, l, into) => { started.push(`r${o / 512}`); if (holding) await gate.promise; return read(o, l, into); };
  device.write = async (o, d, opt) => { started.push(`w${o / 512}`); if (holding) await gate.promise; return write(o, d, opt); };
  return {
    device, started,
    release: () => { gate.resolve(); gate = deferred<void>(); },
    hold: (on) => {
      holding = on;
      if (on) gate = deferred<void>();
      else gate.resolve();
    },
  };
}

async function secondNexus(f: Fixture, n = 2) {
  const nx = nexus(n);
  f.target.nexusCreated(nx);
  await f.run([0, 0, 0, 0, 0, 0], { nexus: nx });
  return nx;
}

describe('ABORT TASK', () => {
  it('aborts a WRITE waiting for Data-Out through the signal; nothing is written', async () => {
    const f = await fixture();
    let signalled = false;
    const cmd = command(cdb10(0x2a, 0, 8), {
      nexus: f.nexus, tag: 77, dataOutLength: 4096,
      receive: (_n, signal) => new Promise((_res, rej) => signal.addEventListener('abort', () => { signalled = true; rej(new Error('aborted')); })),
    });
    const pending = f.target.execute(cmd);
    await tick();
    assert.deepEqual(cmd.received, [4096]);
    const rsp = await f.target.taskManagement({ nexus: f.nexus, fn: Fn.AbortTask, lun: 0, referencedTag: 77 });
    assert.equal(rsp, Rsp.FunctionComplete);
    assert.ok(signalled);
    const r = await pending;
    assert.deepEqual(r.aborted, { reportStatus: false });
    assert.equal(r.status, ScsiStatus.TaskAborted);
    assert.equal(f.device.allocatedBytes(), 0);
  });

  it('does not wait for a WRITE stuck in the backstore: aborted at once, its buffers are not recycled', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    g.hold(true);
    const pending = f.target.execute(command(cdb10(0x2a, 0, 1), { nexus: f.nexus, tag: 5, dataOut: Buffer.alloc(512, 1) }));
    await tick();
    assert.deepEqual(g.started, ['w0']);
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.AbortTask, lun: 0, referencedTag: 5 }), Rsp.FunctionComplete);
    const r = await pending;
    assert.deepEqual(r.aborted, { reportStatus: false });
    assert.equal(r.retainBuffers, true, 'the backstore still holds the Data-Out buffer');
    // A later overlapping WRITE waits for the orphaned one, so it cannot be overtaken by it.
    const later = f.target.execute(command(cdb10(0x2a, 0, 1), { nexus: f.nexus, tag: 6, dataOut: Buffer.alloc(512, 2) }));
    await tick();
    assert.deepEqual(g.started, ['w0'], 'not submitted while the orphan runs');
    g.hold(false);
    assertGood(await later);
    assert.deepEqual(g.started, ['w0', 'w0']);
    const back = await f.run(cdb10(0x28, 0, 1));
    assert.equal(back.data![0], 2);
  });

  it('a task that is not there: TASK DOES NOT EXIST; a missing LU: LUN DOES NOT EXIST', async () => {
    const f = await fixture();
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.AbortTask, lun: 0, referencedTag: 1234 }), Rsp.TaskDoesNotExist);
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.AbortTask, lun: 9, referencedTag: 1 }), Rsp.LunDoesNotExist);
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.ClearAca, lun: 0 }), Rsp.NotSupported);
  });

  it('only the referenced tag of the issuing nexus is aborted', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    const n2 = await secondNexus(f);
    g.hold(true);
    const mine = f.target.execute(command(cdb10(0x28, 0, 1), { nexus: f.nexus, tag: 9 }));
    const theirs = f.target.execute(command(cdb10(0x28, 1, 1), { nexus: n2, tag: 9 }));
    await tick();
    const tmf = f.target.taskManagement({ nexus: f.nexus, fn: Fn.AbortTask, lun: 0, referencedTag: 9 });
    g.hold(false);
    assert.equal(await tmf, Rsp.FunctionComplete);
    assert.ok((await mine).aborted);
    assertGood(await theirs);
  });
});

describe('task set TMFs', () => {
  async function busy(f: Fixture, g: ReturnType<typeof gatedDevice>, n2: ReturnType<typeof nexus>) {
    g.hold(true);
    const a = f.target.execute(command(cdb10(0x28, 0, 1), { nexus: f.nexus, tag: 1 }));
    const b = f.target.execute(command(cdb10(0x28, 1, 1), { nexus: f.nexus, tag: 2 }));
    const c = f.target.execute(command(cdb10(0x28, 2, 1), { nexus: n2, tag: 3 }));
    await tick();
    return [a, b, c];
  }

  it('QUERY TASK / QUERY TASK SET / QUERY ASYNCHRONOUS EVENT', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    const n2 = await secondNexus(f);
    const [a, b, c] = await busy(f, g, n2);
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.QueryTask, lun: 0, referencedTag: 2 }), Rsp.FunctionSucceeded);
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.QueryTask, lun: 0, referencedTag: 3 }), Rsp.FunctionComplete);
    assert.equal(await f.target.taskManagement({ nexus: n2, fn: Fn.QueryTaskSet, lun: 0 }), Rsp.FunctionSucceeded);
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.QueryAsyncEvent, lun: 0 }), Rsp.FunctionComplete);
    g.hold(false);
    await Promise.all([a, b, c]);
    assert.equal(await f.target.taskManagement({ nexus: n2, fn: Fn.QueryTaskSet, lun: 0 }), Rsp.FunctionComplete);
    f.device.resize(4096 * 512);
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.QueryAsyncEvent, lun: 0 }), Rsp.FunctionSucceeded);
  });

  it('ABORT TASK SET aborts the issuer\'s tasks within scope only', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    const n2 = await secondNexus(f);
    const [a, b, c] = await busy(f, g, n2);
    const tmf = f.target.taskManagement({ nexus: f.nexus, fn: Fn.AbortTaskSet, lun: 0, scope: (tag) => tag === 1 });
    g.hold(false);
    assert.equal(await tmf, Rsp.FunctionComplete);
    assert.deepEqual((await a).aborted, { reportStatus: false });
    assertGood(await b);
    assertGood(await c);
  });

  it('CLEAR TASK SET aborts other nexuses\' tasks too: TASK ABORTED with TAS=1', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    const n2 = await secondNexus(f);
    const [a, b, c] = await busy(f, g, n2);
    const tmf = f.target.taskManagement({ nexus: f.nexus, fn: Fn.ClearTaskSet, lun: 0 });
    g.hold(false);
    assert.equal(await tmf, Rsp.FunctionComplete);
    assert.deepEqual((await a).aborted, { reportStatus: false });
    assert.deepEqual((await b).aborted, { reportStatus: false });
    const rc = await c;
    assert.deepEqual(rc.aborted, { reportStatus: true });
    assert.equal(rc.status, ScsiStatus.TaskAborted);
    assertGood(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }));
  });

  it('with TAS=0 the other nexus gets no status but COMMANDS CLEARED BY ANOTHER INITIATOR', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device, settings: { emulate_tas: 0 } });
    const n2 = await secondNexus(f);
    const [, , c] = await busy(f, g, n2);
    const tmf = f.target.taskManagement({ nexus: f.nexus, fn: Fn.ClearTaskSet, lun: 0 });
    g.hold(false);
    await tmf;
    assert.deepEqual((await c).aborted, { reportStatus: false });
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }), 0x6, 0x2f00);
  });

  it('LOGICAL UNIT RESET aborts everything and raises the reset UA on every nexus', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    const n2 = await secondNexus(f);
    const [a, b, c] = await busy(f, g, n2);
    const tmf = f.target.taskManagement({ nexus: f.nexus, fn: Fn.LogicalUnitReset, lun: 0 });
    g.hold(false);
    assert.equal(await tmf, Rsp.FunctionComplete);
    assert.ok((await a).aborted && (await b).aborted);
    assert.deepEqual((await c).aborted, { reportStatus: true });
    assertSense(await f.run([0, 0, 0, 0, 0, 0]), 0x6, 0x2903);
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }), 0x6, 0x2903);
    assertGood(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }));
  });

  it('I_T NEXUS RESET and nexus loss abort only that nexus\'s tasks', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    const n2 = await secondNexus(f);
    const [a, b, c] = await busy(f, g, n2);
    const tmf = f.target.taskManagement({ nexus: n2, fn: Fn.ITNexusReset, lun: 0 });
    g.hold(false);
    assert.equal(await tmf, Rsp.FunctionComplete);
    assertGood(await a);
    assertGood(await b);
    assert.deepEqual((await c).aborted, { reportStatus: false });
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { nexus: n2 }), 0x6, 0x2907);
    g.hold(true);
    const d = f.target.execute(command(cdb10(0x28, 0, 1), { nexus: n2, tag: 4 }));
    await tick();
    const lost = f.target.nexusLost(n2);
    g.hold(false);
    await lost;
    assert.deepEqual((await d).aborted, { reportStatus: false });
  });

  it('a task still waiting its turn (dormant) is aborted at once', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    g.hold(true);
    const first = f.target.execute(command(cdb10(0x28, 0, 1), { nexus: f.nexus, tag: 1, attribute: TaskAttribute.Ordered }));
    const second = f.target.execute(command(cdb10(0x28, 1, 1), { nexus: f.nexus, tag: 2 }));
    await tick();
    assert.deepEqual(g.started, ['r0']);
    assert.equal(await f.target.taskManagement({ nexus: f.nexus, fn: Fn.AbortTask, lun: 0, referencedTag: 2 }), Rsp.FunctionComplete);
    assert.ok((await second).aborted);
    g.hold(false);
    assertGood(await first);
    assert.deepEqual(g.started, ['r0']);
  });
});

describe('task attributes', () => {
  async function order(attrs: TaskAttribute[]): Promise<string[]> {
    const g = gatedDevice();
    const f = await fixture({ device: g.device, settings: { emulate_rest_reord: 0 } });
    g.hold(true);
    const runs = attrs.map((attribute, i) => f.target.execute(command(cdb10(0x28, i, 1), { nexus: f.nexus, attribute })));
    const seen: string[] = [];
    for (let i = 0; i < attrs.length + 2; i++) {
      await tick();
      seen.push(g.started.splice(0).join(','));
      g.release();
    }
    g.hold(false);
    for (const r of await Promise.all(runs)) assertGood(r);
    return seen.filter((s) => s);
  }

  it('SIMPLE tasks run concurrently', async () => {
    assert.deepEqual(await order([TaskAttribute.Simple, TaskAttribute.Simple, TaskAttribute.Untagged]), ['r0,r1,r2']);
  });

  it('ORDERED waits for older tasks, and newer tasks wait for it', async () => {
    const S = TaskAttribute.Simple, O = TaskAttribute.Ordered;
    assert.deepEqual(await order([S, S, O, S, S]), ['r0,r1', 'r2', 'r3,r4']);
    assert.deepEqual(await order([O, O, S]), ['r0', 'r1', 'r2']);
  });

  it('HEAD OF QUEUE starts at once; SIMPLE tasks behind it wait for it', async () => {
    const S = TaskAttribute.Simple, O = TaskAttribute.Ordered, H = TaskAttribute.HeadOfQueue;
    assert.deepEqual(await order([O, S, H]), ['r0,r2', 'r1']);
    assert.deepEqual(await order([H, S]), ['r0', 'r1']);
  });

  it('ACA is refused (no ACA support); queue_depth bounds the task set with TASK SET FULL', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device, settings: { queue_depth: 2 } });
    assertSense(await f.run([0, 0, 0, 0, 0, 0], { attribute: TaskAttribute.ACA }), 0x5, 0x4900);
    g.hold(true);
    const a = f.target.execute(command(cdb10(0x28, 0, 1), { nexus: f.nexus }));
    const b = f.target.execute(command(cdb10(0x28, 0, 1), { nexus: f.nexus }));
    await tick();
    const full: ScsiResult = await f.run([0, 0, 0, 0, 0, 0]);
    assert.equal(full.status, ScsiStatus.TaskSetFull);
    g.hold(false);
    await Promise.all([a, b]);
    assertGood(await f.run([0, 0, 0, 0, 0, 0]));
  });
});

describe('restricted reordering (QUEUE ALGORITHM MODIFIER 0)', () => {
  it('an overlapping READ waits for an older WRITE, a disjoint one does not', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    g.hold(true);
    const w = f.target.execute(command(cdb10(0x2a, 10, 4), { nexus: f.nexus, dataOut: Buffer.alloc(2048, 7) }));
    const rOverlap = f.target.execute(command(cdb10(0x28, 12, 4), { nexus: f.nexus }));
    const rDisjoint = f.target.execute(command(cdb10(0x28, 20, 4), { nexus: f.nexus }));
    await tick();
    assert.deepEqual(g.started.sort(), ['r20', 'w10']);
    g.hold(false);
    assertGood(await w);
    const r = await rOverlap;
    assert.deepEqual(r.data!.subarray(0, 1024), Buffer.alloc(1024, 7));
    assertGood(await rDisjoint);
  });

  it('a WRITE that arrives while its data is in flight still orders the later READ', async () => {
    const f = await fixture();
    const data = deferred<Buffer>();
    const w = f.target.execute(command(cdb10(0x2a, 0, 1), { nexus: f.nexus, dataOutLength: 512, receive: () => data.promise }));
    const r = f.target.execute(command(cdb10(0x28, 0, 1), { nexus: f.nexus }));
    await tick();
    data.resolve(Buffer.alloc(512, 9));
    assertGood(await w);
    assert.deepEqual((await r).data, Buffer.alloc(512, 9));
  });

  it('with emulate_rest_reord=0 (unrestricted: allowed, not required) a READ still never sees a write half done', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device, settings: { emulate_rest_reord: 0 } });
    g.hold(true);
    const w = f.target.execute(command(cdb10(0x2a, 10, 4), { nexus: f.nexus, dataOut: Buffer.alloc(2048, 7) }));
    const r = f.target.execute(command(cdb10(0x28, 12, 4), { nexus: f.nexus }));
    const rDisjoint = f.target.execute(command(cdb10(0x28, 20, 4), { nexus: f.nexus }));
    await tick();
    assert.deepEqual(g.started.sort(), ['r20', 'w10']);
    g.hold(false);
    assertGood(await w);
    assert.deepEqual((await r).data!.subarray(0, 1024), Buffer.alloc(1024, 7));
    assertGood(await rDisjoint);
  });
});

describe('close', () => {
  it('removeLogicalUnit ends running tasks aborted at once, then waits for the backstore to finish them', async () => {
    const g = gatedDevice();
    const f = await fixture({ device: g.device });
    g.hold(true);
    const a = f.target.execute(command(cdb10(0x28, 0, 1), { nexus: f.nexus }));
    await tick();
    let removed = false;
    const rm = f.target.removeLogicalUnit(0).then(() => { removed = true; });
    assert.ok((await a).aborted);
    await tick();
    assert.equal(removed, false, 'the orphaned READ is still in the backstore');
    g.hold(false);
    await rm;
    assertSense(await f.run([0, 0, 0, 0, 0, 0]), 0x5, 0x2500);
    await f.target.close();
  });
});
