/**
 * The persistent reservation conflict matrix (SPC-4 §5.13.1 table 63, SBC-3 table 13): every
 * command of the LU's command table, under each of the six reservation types, from the
 * holder, from another registrant and from an unregistered I_T nexus.
 *
 * The expected class of each command is written down here from the standards' tables, not
 * taken from the command table, and the table must hold exactly these commands. Every
 * command is then executed with an all-zero CDB (a no-op or a harmless error for all of
 * them) from each nexus: the reservation check comes before the command's own field checks,
 * so RESERVATION CONFLICT appears exactly where the matrix says.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/sam';
import { fixture, Fixture, nexus } from './helpers';

type Class =
  /** Allowed under every reservation (INQUIRY, TEST UNIT READY, PERSISTENT RESERVE IN, ...). */
  | 'allowed'
  /** Allowed under the Write Exclusive types, conflicts under Exclusive Access (reads). */
  | 'read'
  /** Conflicts for every non-holder (writes, MODE SELECT, EXTENDED COPY, ...). */
  | 'write'
  /** PERSISTENT RESERVE OUT: governed by the registration rules, not by the table. */
  | 'prout'
  /** SPC-2 RESERVE / RELEASE: conflict with any registration (CRH=0). */
  | 'spc2';

/** Expected class by "opcode" or "opcode/service action" (hex). */
const SPEC: Record<string, Class> = {
  '00': 'allowed', // TEST UNIT READY
  '03': 'allowed', // REQUEST SENSE
  '08': 'read', '28': 'read', 'a8': 'read', '88': 'read', // READ
  '0a': 'write', '2a': 'write', 'aa': 'write', '8a': 'write', // WRITE
  '12': 'allowed', // INQUIRY
  '15': 'write', '55': 'write', // MODE SELECT
  '1a': 'read', '5a': 'read', // MODE SENSE
  '16': 'spc2', '17': 'spc2', '56': 'spc2', '57': 'spc2', // RESERVE / RELEASE
  '1b': 'write', // START STOP UNIT (START=0 here; START=1 is checked separately)
  '1e': 'allowed', // PREVENT ALLOW MEDIUM REMOVAL with PREVENT=00b (PREVENT=01b checked separately)
  '25': 'allowed', '9e/10': 'allowed', // READ CAPACITY
  '2e': 'write', 'ae': 'write', '8e': 'write', // WRITE AND VERIFY
  '2f': 'read', 'af': 'read', '8f': 'read', // VERIFY
  '34': 'read', '90': 'read', // PRE-FETCH
  '35': 'write', '91': 'write', // SYNCHRONIZE CACHE
  '37': 'read', 'b7': 'read', // READ DEFECT DATA
  '41': 'write', '93': 'write', // WRITE SAME
  '42': 'write', // UNMAP
  '48/1': 'write', '48/2': 'write', '48/1f': 'write', // SANITIZE
  '5e/0': 'allowed', '5e/1': 'allowed', '5e/2': 'allowed', '5e/3': 'allowed', // PERSISTENT RESERVE IN
  '5f/0': 'prout', '5f/1': 'prout', '5f/2': 'prout', '5f/3': 'prout', '5f/4': 'prout', '5f/5': 'prout', '5f/6': 'prout', '5f/7': 'prout',
  '83/0': 'write', // EXTENDED COPY
  '84/0': 'read', '84/1': 'read', '84/3': 'read', '84/4': 'read', // RECEIVE COPY RESULTS
  '89': 'write', // COMPARE AND WRITE
  '8b': 'write', // ORWRITE
  '9c': 'write', // WRITE ATOMIC
  '9e/12': 'read', // GET LBA STATUS
  'a0': 'allowed', // REPORT LUNS
  'a3/c': 'allowed', 'a3/d': 'allowed', // MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES / TMFs
};

const WE = 1, EA = 3, WE_RO = 5, EA_RO = 6, WE_AR = 7, EA_AR = 8;
const TYPES: [string, number][] = [['WE', WE], ['EA', EA], ['WE_RO', WE_RO], ['EA_RO', EA_RO], ['WE_AR', WE_AR], ['EA_AR', EA_AR]];
type Who = 'holder' | 'registrant' | 'other';

/** SPC-4 table 63 read as a function: does a command of this class from `who` conflict? */
function expectConflict(type: number, who: Who, cls: Class): boolean {
  if (cls === 'spc2') return true; // registrations exist in every case here
  if (cls === 'allowed' || who === 'holder') return false;
  const registrantsHold = type === WE_RO || type === EA_RO || type === WE_AR || type === EA_AR;
  if (who === 'registrant' && registrantsHold) return false;
  const writeExclusive = type === WE || type === WE_RO || type === WE_AR;
  return !(cls === 'read' && writeExclusive);
}

const ALL_FEATURES = { emulate_tpu: 1, emulate_tpws: 1, emulate_3pc: 1, emulate_caw: 1, emulate_pr: 1, emulate_sanitize: 1 };

function key(opcode: number, sa?: number): string {
  const op = opcode.toString(16).padStart(2, '0');
  return sa === undefined ? op : `${op}/${sa.toString(16)}`;
}

function prOut(sa: number, type: number, rk: bigint, sark: bigint): { cdb: Buffer; data: Buffer } {
  const data = Buffer.alloc(24);
  data.writeBigUInt64BE(rk, 0);
  data.writeBigUInt64BE(sark, 8);
  return { cdb: Buffer.from([0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0]), data };
}

/** A LU with every command, holder H (key A), registrant R (key B), unregistered O; H reserves `type`. */
async function reserved(type: number): Promise<{ f: Fixture; who: Record<Who, ReturnType<typeof nexus>> }> {
  const f = await fixture({ blocks: 4096, settings: ALL_FEATURES });
  const who = { holder: f.nexus, registrant: nexus(2), other: nexus(3) };
  for (const n of [who.registrant, who.other]) {
    f.target.nexusCreated(n);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: n });
  }
  for (const [n, k] of [[who.holder, 0xan], [who.registrant, 0xbn]] as const) {
    const r = prOut(0, 0, 0n, k);
    assert.equal((await f.run(r.cdb, { nexus: n, dataOut: r.data })).status, ScsiStatus.Good);
  }
  const rsv = prOut(1, type, 0xan, 0n);
  assert.equal((await f.run(rsv.cdb, { nexus: who.holder, dataOut: rsv.data })).status, ScsiStatus.Good);
  return { f, who };
}

describe('persistent reservation conflict matrix', () => {
  it('the command table holds exactly the commands of the matrix, classified as SPC-4/SBC-3 say', async () => {
    const f = await fixture({ settings: ALL_FEATURES });
    const lu = f.target.logicalUnit(0)!;
    const keys = lu.commands.all.map((d) => key(d.opcode, d.serviceAction));
    assert.deepEqual([...keys].sort(), Object.keys(SPEC).sort(), 'commands in the table vs. the matrix');
  });

  for (const [name, type] of TYPES) {
    it(`${name}: every command from the holder, a registrant and an unregistered nexus`, async () => {
      const { f, who } = await reserved(type);
      const lu = f.target.logicalUnit(0)!;
      const wrong: string[] = [];
      const check = async (label: string, cdb: Buffer, cls: Class) => {
        for (const w of ['holder', 'registrant', 'other'] as Who[]) {
          const r = await f.run(cdb, { nexus: who[w], dataOutLength: 0 });
          const conflict = r.status === ScsiStatus.ReservationConflict;
          if (conflict !== expectConflict(type, w, cls)) wrong.push(`${label} from ${w}: ${conflict ? 'conflict' : `status ${r.status}`}`);
        }
      };
      for (const d of lu.commands.all) {
        const cls = SPEC[key(d.opcode, d.serviceAction)];
        if (cls === 'prout') continue;
        const cdb = Buffer.alloc(d.cdbLength);
        cdb[0] = d.opcode;
        if (d.serviceAction !== undefined) cdb[1] = d.serviceAction;
        await check(d.name, cdb, cls);
      }
      // The CDB-dependent rows of SBC-3's table.
      await check('START STOP UNIT (START=1)', Buffer.from([0x1b, 0, 0, 0, 0x01, 0]), 'allowed');
      await check('START STOP UNIT (POWER CONDITION 1h)', Buffer.from([0x1b, 0, 0, 0, 0x11, 0]), 'write');
      await check('PREVENT ALLOW MEDIUM REMOVAL (PREVENT=01b)', Buffer.from([0x1e, 0, 0, 0, 0x01, 0]), 'write');
      assert.deepEqual(wrong, []);
      // The reservation is still what the holder made it.
      const rr = (await f.run([0x5e, 0x01, 0, 0, 0, 0, 0, 0, 32, 0], { nexus: who.other })).data!;
      assert.equal(rr[21] & 0x0f, type);
    });
  }

  it('the I_T nexus includes the ISID: the same initiator through another ISID is not the holder', async () => {
    const { f, who } = await reserved(EA);
    const sameNameOtherIsid = { ...who.holder, isid: '400000000009', initiatorPortName: who.holder.initiatorName + ',i,0x400000000009' };
    const n = { ...sameNameOtherIsid, key: `${sameNameOtherIsid.initiatorPortName}|${who.holder.targetPortName}` };
    f.target.nexusCreated(n);
    await f.run([0, 0, 0, 0, 0, 0], { nexus: n });
    assert.equal((await f.run([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { nexus: n })).status, ScsiStatus.ReservationConflict);
    assert.equal((await f.run([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { nexus: who.holder })).status, ScsiStatus.Good);
    // Without enforce_pr_isids the initiator name alone identifies the registrant.
    const loose = await fixture({ settings: { enforce_pr_isids: 0 } });
    const reg = prOut(0, 0, 0n, 0xan);
    assert.equal((await loose.run(reg.cdb, { dataOut: reg.data })).status, ScsiStatus.Good);
    const rsv = prOut(1, EA, 0xan, 0n);
    assert.equal((await loose.run(rsv.cdb, { dataOut: rsv.data })).status, ScsiStatus.Good);
    const m = { ...n, targetPortName: loose.nexus.targetPortName, key: `${n.initiatorPortName}|${loose.nexus.targetPortName}` };
    loose.target.nexusCreated(m);
    await loose.run([0, 0, 0, 0, 0, 0], { nexus: m });
    assert.equal((await loose.run([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { nexus: m })).status, ScsiStatus.Good);
  });
});
