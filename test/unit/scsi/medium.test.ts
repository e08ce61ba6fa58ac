import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertGood, assertInvalidField, assertSense, cdb10, cdb16, fixture, nexus } from './helpers';
import { MemoryBackstore } from '../../../src/block/memory-backstore';

const TUR = [0, 0, 0, 0, 0, 0];
function ssu(immed: number, pc: number, noFlush: number, loej: number, start: number): number[] {
  return [0x1b, immed, 0, 0, (pc << 4) | (noFlush << 2) | (loej << 1) | start, 0];
}
function preventAllow(prevent: number): number[] {
  return [0x1e, 0, 0, 0, prevent, 0];
}
const NOT_READY = 0x2, NO_MEDIUM = 0x3a00, ILLEGAL = 0x5, PREVENTED = 0x5302;

describe('non-removable disk', () => {
  it('TEST UNIT READY is GOOD; LOEJ is not a valid bit', async () => {
    const f = await fixture();
    assertGood(await f.run(TUR));
    assertInvalidField(await f.run(ssu(0, 0, 0, 1, 0)), 4, 1);
    assertGood(await f.run(TUR));
  });

  it('START STOP UNIT without LOEJ flushes on stop unless NO_FLUSH, and keeps the medium ready', async () => {
    const device = new MemoryBackstore({ size: 1 << 20 });
    let flushes = 0;
    device.flush = async () => { flushes++; };
    const f = await fixture({ device });
    for (const [immed, noFlush, start] of [[0, 0, 0], [0, 0, 1], [1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 1, 1], [1, 1, 0], [1, 1, 1]]) {
      assertGood(await f.run(ssu(immed, 0, noFlush, 0, start)));
      assertGood(await f.run(TUR));
    }
    assert.equal(flushes, 2);
  });

  it('PREVENT ALLOW MEDIUM REMOVAL accepts 00b/01b only', async () => {
    const f = await fixture();
    assertGood(await f.run(preventAllow(1)));
    assertGood(await f.run(preventAllow(0)));
    assertInvalidField(await f.run(preventAllow(2)), 4, 1);
    assertInvalidField(await f.run(preventAllow(4)), 4, 2);
  });
});

describe('removable medium (RMB=1)', () => {
  it('eject and load (libiscsi StartStopUnit.Simple); medium commands are NOT READY meanwhile', async () => {
    const f = await fixture({ removable: true });
    assertGood(await f.run(ssu(1, 0, 0, 1, 0)));
    assertSense(await f.run(TUR), NOT_READY, NO_MEDIUM);
    for (const c of [cdb10(0x28, 0, 1), cdb10(0x2a, 0, 1), cdb10(0x2f, 0, 1, 0x02), cdb16(0x88, 0, 1), cdb10(0x35, 0, 1),
      cdb10(0x34, 0, 1), Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0])]) {
      assertSense(await f.run(c, { dataOut: Buffer.alloc(512) }), NOT_READY, NO_MEDIUM);
    }
    const rs = await f.run([0x03, 0, 0, 0, 18, 0]);
    assertGood(rs);
    assert.equal(rs.data![2], NOT_READY);
    assert.equal(rs.data![12], 0x3a);
    assertGood(await f.run([0x12, 0, 0, 0, 96, 0]));
    assertGood(await f.run(ssu(1, 0, 0, 1, 1)));
    assertGood(await f.run(TUR));
    assertGood(await f.run(ssu(0, 0, 0, 1, 0)));
    assertSense(await f.run(TUR), NOT_READY, NO_MEDIUM);
    assertGood(await f.run(ssu(0, 0, 0, 1, 1)));
    assertGood(await f.run(cdb10(0x28, 0, 1)));
  });

  it('a power condition ignores START and LOEJ (StartStopUnit.PwrCnd)', async () => {
    const f = await fixture({ removable: true });
    for (let pc = 1; pc < 16; pc++) {
      assertGood(await f.run(ssu(1, pc, 0, 1, 0)));
      assertGood(await f.run(TUR));
    }
  });

  it('PREVENT stops eject and load on every nexus until ALLOW (PreventAllow.Eject, 2ITNexuses)', async () => {
    const f = await fixture({ removable: true });
    const n2 = nexus(2);
    f.target.nexusCreated(n2);
    await f.run(TUR, { nexus: n2 });
    assertGood(await f.run(preventAllow(1)));
    assertSense(await f.run(ssu(0, 0, 0, 1, 0)), ILLEGAL, PREVENTED);
    assertSense(await f.run(ssu(0, 0, 0, 1, 0), { nexus: n2 }), ILLEGAL, PREVENTED);
    assertGood(await f.run(TUR));
    assertGood(await f.run(preventAllow(0)));
    assertGood(await f.run(ssu(0, 0, 0, 1, 0)));
    assertSense(await f.run(TUR), NOT_READY, NO_MEDIUM);
    assertGood(await f.run(preventAllow(1)));
    assertSense(await f.run(ssu(0, 0, 0, 1, 1)), ILLEGAL, PREVENTED);
    assertGood(await f.run(preventAllow(0)));
    assertGood(await f.run(ssu(0, 0, 0, 1, 1)));
    assertGood(await f.run(TUR));
    assertSense(await f.run(TUR, { nexus: n2 }), 0x6, 0x2800, );
  });

  for (const [name, act] of [
    ['LU reset', async (f: Awaited<ReturnType<typeof fixture>>) => { await f.target.taskManagement({ nexus: f.nexus, fn: 5, lun: 0 }); }],
    ['target warm reset', async (f: Awaited<ReturnType<typeof fixture>>) => { await f.target.taskManagement({ nexus: f.nexus, fn: 6, lun: 0 }); }],
    ['target cold reset', async (f: Awaited<ReturnType<typeof fixture>>) => { await f.target.taskManagement({ nexus: f.nexus, fn: 7, lun: 0 }); }],
    ['I_T nexus reset', async (f: Awaited<ReturnType<typeof fixture>>) => { await f.target.taskManagement({ nexus: f.nexus, fn: 11, lun: 0 }); }],
    ['nexus loss', async (f: Awaited<ReturnType<typeof fixture>>) => { await f.target.nexusLost(f.nexus); f.target.nexusCreated(f.nexus); }],
  ] as const) {
    it(`${name} clears PREVENT`, async () => {
      const f = await fixture({ removable: true });
      assertGood(await f.run(preventAllow(1)));
      assertSense(await f.run(ssu(0, 0, 0, 1, 0)), ILLEGAL, PREVENTED);
      await act(f);
      assertSense(await f.run(TUR), 0x6, name === 'target cold reset' ? 0x2901 : name === 'LU reset' ? 0x2903
        : name === 'target warm reset' ? 0x2900 : 0x2907);
      assertGood(await f.run(ssu(0, 0, 0, 1, 0)));
      assertSense(await f.run(TUR), NOT_READY, NO_MEDIUM);
      assertGood(await f.run(ssu(0, 0, 0, 1, 1)));
    });
  }
});
