import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AptplFileError, aptplFile, loadAptplState, openAptplReservationStore, saveAptplState } from '../../../src/scsi/aptpl-file';
import { assertGood, fixture, WWN } from './helpers';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'igw-aptpl-'));
}

function register(key: bigint, aptpl: boolean): { cdb: Buffer; data: Buffer } {
  const data = Buffer.alloc(24);
  data.writeBigUInt64BE(key, 8);
  data[20] = aptpl ? 0x01 : 0x00;
  return { cdb: Buffer.from([0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0]), data };
}

describe('APTPL state file', () => {
  it('survives a restart of the logical unit; turning APTPL off removes the file', async () => {
    const dir = path.join(tmp(), 'pr');
    const file = aptplFile(dir, WWN);
    const f1 = await fixture({ luState: await openAptplReservationStore(dir, WWN) });
    const r = register(0x1234n, false);
    assertGood(await f1.run(r.cdb, { dataOut: r.data }));
    assert.equal(fs.existsSync(file), false, 'nothing is written without APTPL');
    const a = register(0x1234n, true);
    a.data.writeBigUInt64BE(0x1234n, 0);
    a.data.writeBigUInt64BE(0x5678n, 8);
    assertGood(await f1.run(a.cdb, { dataOut: a.data }));
    assert.equal(fs.existsSync(file), true);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    // Reserve (Write Exclusive) so the restored state has a holder too.
    const res = Buffer.alloc(24);
    res.writeBigUInt64BE(0x5678n, 0);
    assertGood(await f1.run([0x5f, 0x01, 0x01, 0, 0, 0, 0, 0, 24, 0], { dataOut: res }));

    const f2 = await fixture({ luState: await openAptplReservationStore(dir, WWN) });
    const keys = (await f2.run([0x5e, 0x00, 0, 0, 0, 0, 0, 0, 64, 0])).data!;
    assert.equal(keys.readUInt32BE(4), 8);
    assert.equal(keys.readBigUInt64BE(8), 0x5678n);
    const rsv = (await f2.run([0x5e, 0x01, 0, 0, 0, 0, 0, 0, 64, 0])).data!;
    assert.equal(rsv.readBigUInt64BE(8), 0x5678n);
    assert.equal(rsv[21], 0x01);
    assert.equal((await f2.run([0x5e, 0x02, 0, 0, 0, 0, 0, 0, 8, 0])).data![3] & 0x01, 1, 'PTPL_A');

    const off = register(0n, false);
    off.data.writeBigUInt64BE(0x5678n, 0);
    off.data.writeBigUInt64BE(0x9999n, 8);
    assertGood(await f2.run(off.cdb, { dataOut: off.data }));
    assert.equal(fs.existsSync(file), false);
    assert.equal(await loadAptplState(file, WWN), undefined);
  });

  it('refuses a damaged file or another unit\'s file instead of forgetting reservations', async () => {
    const dir = tmp();
    const file = aptplFile(dir, WWN);
    fs.writeFileSync(file, '{"format": "iscsi-gateway-aptpl-1", "wwn": ');
    await assert.rejects(loadAptplState(file, WWN), AptplFileError);
    const store = await openAptplReservationStore(tmp(), WWN);
    await store.update((s) => ({ state: { pr: { ...s.pr, aptpl: true, generation: 5 } }, result: 0 }));
    await saveAptplState(file, 'other-unit', store.state.pr);
    await assert.rejects(loadAptplState(file, WWN), /belongs to unit serial other-unit/);
    assert.throws(() => aptplFile(dir, '../etc/passwd'), AptplFileError);
  });
});
