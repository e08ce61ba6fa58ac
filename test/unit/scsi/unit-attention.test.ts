import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/sam';
import { UnitAttentions } from '../../../src/scsi/unit-attention';
import { Asc } from '../../../src/scsi/sense';
import { assertGood, assertSense, cdb10, command, fixture, nexus } from './helpers';

const TUR = [0, 0, 0, 0, 0, 0];
const requestSense = (desc: number, alloc = 252) => [0x03, desc, 0, 0, alloc, 0];

describe('unit attention queue', () => {
  it('reports oldest first, never twice, and a reset replaces everything pending', () => {
    const q = new UnitAttentions();
    q.establish(Asc.ModeParametersChanged);
    q.establish(Asc.CapacityDataHasChanged);
    q.establish(Asc.ModeParametersChanged);
    assert.deepEqual(q.list(), [Asc.ModeParametersChanged, Asc.CapacityDataHasChanged]);
    q.establish(Asc.PowerOnResetOrBusDeviceReset);
    assert.deepEqual(q.list(), [Asc.PowerOnResetOrBusDeviceReset]);
    q.establish(Asc.ReportedLunsDataHasChanged);
    assert.equal(q.take(), Asc.PowerOnResetOrBusDeviceReset);
    assert.equal(q.peek(), Asc.ReportedLunsDataHasChanged);
    q.clear(Asc.ReportedLunsDataHasChanged);
    assert.equal(q.pending, false);
  });
});

describe('unit attentions on the wire', () => {
  it('a new nexus gets POWER ON, RESET; a returning one I_T NEXUS LOSS OCCURRED', async () => {
    const f = await fixture();
    const n2 = nexus(2);
    f.target.nexusCreated(n2);
    assertSense(await f.run(TUR, { nexus: n2 }), 0x6, 0x2900);
    assertGood(await f.run(TUR, { nexus: n2 }));
    await f.target.nexusLost(n2);
    f.target.nexusCreated(n2);
    assertSense(await f.run(cdb10(0x28, 0, 1), { nexus: n2 }), 0x6, 0x2907);
  });

  it('is reported on any command but INQUIRY, REPORT LUNS and REQUEST SENSE, even an unknown opcode', async () => {
    const f = await fixture({ keepUnitAttention: true });
    assertGood(await f.run([0x12, 0, 0, 0, 36, 0]));
    assertGood(await f.run([0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0]));
    const r = await f.run([0xc4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assertSense(r, 0x6, 0x2900);
    assertSense(await f.run([0xc4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0x5, 0x2000);
  });

  it('a data-out command with a unit attention takes no data', async () => {
    const f = await fixture({ keepUnitAttention: true });
    const cmd = command(cdb10(0x2a, 0, 1), { nexus: f.nexus, dataOut: Buffer.alloc(512) });
    assertSense(await f.target.execute(cmd), 0x6, 0x2900);
    assert.deepEqual(cmd.received, []);
  });

  it('REQUEST SENSE returns and clears it, in fixed or descriptor format, allocation-length truncated', async () => {
    const f = await fixture({ keepUnitAttention: true });
    const r = await f.run(requestSense(1));
    assertGood(r);
    assert.equal(r.data!.toString('hex'), '72062900' + '00000000');
    const nothing = await f.run(requestSense(0));
    assert.equal(nothing.data!.toString('hex'), '700000000000000a' + '00000000' + '0000' + '000000' + '00');
    assert.equal((await f.run(requestSense(0, 8))).data!.length, 8);
    assert.equal((await f.run(requestSense(0, 0))).data?.length ?? 0, 0);
    assertGood(await f.run(TUR));
  });

  it('UA_INTLCK_CTRL 10b: reported until REQUEST SENSE clears it', async () => {
    const f = await fixture({ keepUnitAttention: true, settings: { emulate_ua_intlck_ctrl: 1 } });
    assertSense(await f.run(TUR), 0x6, 0x2900);
    assertSense(await f.run(TUR), 0x6, 0x2900);
    const rs = await f.run(requestSense(0));
    assert.equal(rs.data![12], 0x29);
    assertGood(await f.run(TUR));
  });

  it('UA_INTLCK_CTRL 11b: TASK SET FULL leaves PREVIOUS TASK SET FULL STATUS behind', async () => {
    const f = await fixture({ settings: { emulate_ua_intlck_ctrl: 2, queue_depth: 1 } });
    let release = (): void => undefined;
    f.device.read = () => new Promise((r) => { release = () => r(Buffer.alloc(512)); });
    const busy = f.target.execute(command(cdb10(0x28, 0, 1), { nexus: f.nexus }));
    await new Promise((r) => setImmediate(r));
    assert.equal((await f.run(TUR)).status, ScsiStatus.TaskSetFull);
    release();
    await busy;
    assertSense(await f.run(TUR), 0x6, 0x2c08);
    assertSense(await f.run(TUR), 0x6, 0x2c08);
    await f.run(requestSense(0));
    assertGood(await f.run(TUR));
  });

  it('descriptor format sense after D_SENSE carries the field pointer as a sense key specific descriptor', async () => {
    const f = await fixture();
    const page = Buffer.from('00000000' + '0a0a' + '06' + '00' + '00' + '40' + '0000ffff0000', 'hex');
    assertGood(await f.run([0x15, 0x10, 0, 0, page.length, 0], { dataOut: page }));
    const r = await f.run(cdb10(0x28, 0, 1, 0x04));
    assert.equal(r.sense!.toString('hex'), '7205240000000008' + '02060000' + 'ca000100');
  });
});
