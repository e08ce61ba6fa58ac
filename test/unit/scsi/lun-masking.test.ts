import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { LogicalUnitRegistry } from '../../../src/scsi/lu-registry';
import { ScsiStatus, TaskManagementFunction, TaskManagementResponse } from '../../../src/scsi/sam';
import { ScsiTarget } from '../../../src/scsi/scsi-target';
import { TARGET, command, nexus } from './helpers';

const REPORT_LUNS = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
const INQUIRY = [0x12, 0, 0, 0, 96, 0];
const READ10 = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const TUR = [0, 0, 0, 0, 0, 0];

function luns(data: Buffer): number[] {
  const n = data.readUInt32BE(0) / 8;
  return Array.from({ length: n }, (_, k) => data.readUInt16BE(8 + 8 * k) & 0x3fff);
}

/** A target with LUNs 0, 1, 2 (disks filled with 0xa0, 0xa1, 0xa2) and two nexuses. */
function setup() {
  const registry = new LogicalUnitRegistry();
  const target = new ScsiTarget({
    targetName: TARGET,
    registry,
    logicalUnits: [0, 1, 2].map((lun) => {
      const device = new MemoryBackstore({ size: 64 * 512, name: `m${lun}` });
      return { lun, device, wwn: `${lun}${lun}${lun}${lun}${lun}${lun}${lun}${lun}-0000-4000-8000-000000000000`, name: `rbd/d${lun}` };
    }),
  });
  const a = nexus(1);
  const b = nexus(2);
  target.nexusCreated(a);
  target.nexusCreated(b);
  return { target, a, b, registry };
}

async function clearUas(target: ScsiTarget, n: ReturnType<typeof nexus>, lun: number): Promise<void> {
  for (let k = 0; k < 4; k++) {
    const r = await target.execute(command(TUR, { nexus: n, lun }));
    if (r.status === ScsiStatus.Good) return;
    await target.execute(command([0x03, 0, 0, 0, 252, 0], { nexus: n, lun }));
  }
}

describe('LUN masking (per I_T nexus LUN inventory)', () => {
  it('without masking every nexus sees every LUN', async () => {
    const { target, a } = setup();
    const r = await target.execute(command(REPORT_LUNS, { nexus: a }));
    assert.deepEqual(luns(r.data!), [0, 1, 2]);
  });

  it('each initiator sees its own LUNs under its own LUN ids', async () => {
    const { target, a, b } = setup();
    target.setLunMasking(new Map([
      [a.initiatorName, new Map([[0, 0]])],
      [b.initiatorName, new Map([[0, 1], [7, 2]])],
    ]));
    assert.deepEqual(luns((await target.execute(command(REPORT_LUNS, { nexus: a }))).data!), [0]);
    assert.deepEqual(luns((await target.execute(command(REPORT_LUNS, { nexus: b }))).data!), [0, 7]);
    // REPORT LUNS addressed to a LUN the nexus does not have is answered too.
    assert.deepEqual(luns((await target.execute(command(REPORT_LUNS, { nexus: a, lun: 9 }))).data!), [0]);
  });

  it('an unmapped LUN: INQUIRY peripheral qualifier 3, other commands LOGICAL UNIT NOT SUPPORTED', async () => {
    const { target, a } = setup();
    target.setLunMasking(new Map([[a.initiatorName, new Map([[0, 0]])]]));
    const inq = await target.execute(command(INQUIRY, { nexus: a, lun: 1 }));
    assert.equal(inq.status, ScsiStatus.Good);
    assert.equal(inq.data![0], 0x7f);
    const read = await target.execute(command(READ10, { nexus: a, lun: 1, dataInLength: 512 }));
    assert.equal(read.status, ScsiStatus.CheckCondition);
    assert.deepEqual([read.sense![2] & 0x0f, read.sense![12], read.sense![13]], [0x05, 0x25, 0x00]);
    // An initiator without any entry sees nothing.
    const stranger = nexus(3);
    target.nexusCreated(stranger);
    assert.deepEqual(luns((await target.execute(command(REPORT_LUNS, { nexus: stranger }))).data!), []);
    assert.equal((await target.execute(command(READ10, { nexus: stranger, lun: 0, dataInLength: 512 }))).status, ScsiStatus.CheckCondition);
  });

  it('commands reach the mapped logical unit', async () => {
    const { target, a, b } = setup();
    target.setLunMasking(new Map([[a.initiatorName, new Map([[0, 0]])], [b.initiatorName, new Map([[0, 2]])]]));
    target.logicalUnit(2)!.device.write(0, Buffer.alloc(512, 0xb2));
    await clearUas(target, b, 0);
    const r = await target.execute(command(READ10, { nexus: b, lun: 0, dataInLength: 512 }));
    assert.equal(r.status, ScsiStatus.Good);
    assert.equal(r.data![0], 0xb2);
    await clearUas(target, a, 0);
    const own = await target.execute(command(READ10, { nexus: a, lun: 0, dataInLength: 512 }));
    assert.equal(own.data![0], 0x00);
  });

  it('task management on an unmapped LUN: LUN DOES NOT EXIST', async () => {
    const { target, a } = setup();
    target.setLunMasking(new Map([[a.initiatorName, new Map([[0, 0]])]]));
    assert.equal(await target.taskManagement({ nexus: a, fn: TaskManagementFunction.LogicalUnitReset, lun: 1 }), TaskManagementResponse.LunDoesNotExist);
    assert.equal(await target.taskManagement({ nexus: a, fn: TaskManagementFunction.LogicalUnitReset, lun: 0 }), TaskManagementResponse.FunctionComplete);
  });

  it('a mapping change establishes REPORTED LUNS DATA HAS CHANGED only for the nexus it affects', async () => {
    const { target, a, b } = setup();
    target.setLunMasking(new Map([[a.initiatorName, new Map([[0, 0]])], [b.initiatorName, new Map([[0, 1]])]]));
    await clearUas(target, a, 0);
    await clearUas(target, b, 0);
    target.setLunMasking(new Map([[a.initiatorName, new Map([[0, 0], [1, 2]])], [b.initiatorName, new Map([[0, 1]])]]));
    const ra = await target.execute(command(TUR, { nexus: a, lun: 0 }));
    assert.equal(ra.status, ScsiStatus.CheckCondition);
    assert.deepEqual([ra.sense![2] & 0x0f, ra.sense![12], ra.sense![13]], [0x06, 0x3f, 0x0e]);
    const rb = await target.execute(command(TUR, { nexus: b, lun: 0 }));
    assert.equal(rb.status, ScsiStatus.Good, 'host B is not disturbed');
    // REPORT LUNS clears the condition on every LU of the nexus.
    await target.execute(command(REPORT_LUNS, { nexus: a }));
    assert.equal((await target.execute(command(TUR, { nexus: a, lun: 0 }))).status, ScsiStatus.Good);
  });

  it('EXTENDED COPY cannot name a logical unit the initiator does not see', () => {
    const { target, a, b } = setup();
    target.setLunMasking(new Map([[a.initiatorName, new Map([[0, 0]])], [b.initiatorName, new Map([[0, 1]])]]));
    const naaOf = (lun: number) => target.logicalUnit(lun)!.naa;
    assert.equal(target.findLogicalUnit(naaOf(0), a.initiatorName), target.logicalUnit(0));
    assert.equal(target.findLogicalUnit(naaOf(1), a.initiatorName), undefined);
    assert.equal(target.findLogicalUnit(naaOf(1), b.initiatorName), target.logicalUnit(1));
    target.setLunMasking(undefined);
    assert.equal(target.findLogicalUnit(naaOf(1), a.initiatorName), target.logicalUnit(1));
  });
});
