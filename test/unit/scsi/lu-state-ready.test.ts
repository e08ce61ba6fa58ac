/**
 * A logical-unit state store that can only revalidate asynchronously (the RADOS store):
 * while its cache is untrusted, `ready()` makes every command wait, and the command is then
 * checked against the revalidated state; a revalidation that fails ends the command in the
 * store's CHECK CONDITION, never in a command admitted on a stale state.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../../src/scsi/sam';
import { LocalLuStateStore } from '../../../src/scsi/lu-state';
import { Asc, SenseError, SenseKey } from '../../../src/scsi/sense';
import { assertGood, assertSense, cdb10, fixture } from './helpers';

const WRITE = cdb10(0x2a, 1, 1);
const BLOCK = Buffer.alloc(512, 7);

/** A store whose cache the test marks stale; ready() resolves or rejects when told. */
class StaleableStore extends LocalLuStateStore {
  pending: Promise<void> | undefined;
  ready(): Promise<void> | undefined {
    return this.pending;
  }
}

describe('a logical unit waits for an asynchronous revalidation of the shared state', () => {
  it('a command issued while the cache is stale is checked against the revalidated state', async () => {
    const store = new StaleableStore();
    const f = await fixture({ luState: store });
    assertGood(await f.run(WRITE, { dataOut: BLOCK }));
    let revalidated!: () => void;
    store.pending = new Promise<void>((r) => (revalidated = r));
    let done = false;
    const write = f.run(WRITE, { dataOut: BLOCK }).then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(done, false, 'the command waits for the revalidation');
    // Meanwhile another gateway's reservation arrives: another initiator holds Write Exclusive.
    const other = { key: 9n, initiator: 'iqn.other', initiatorPortName: 'iqn.other,i,0x000000000001', targetPortName: 'iqn.t,t,0x0001', relativeTargetPortId: 1, allTargetPorts: true };
    await store.update((s) => ({
      state: { ...s, pr: { ...s.pr, generation: 1, registrations: [other], reservation: { type: 1, holder: other, holderPort: other.targetPortName } } },
      result: undefined,
    }));
    store.pending = undefined;
    revalidated();
    assert.equal((await write).status, ScsiStatus.ReservationConflict, 'checked against the new state');
  });

  it('a revalidation that fails ends the command with its sense (LOGICAL UNIT COMMUNICATION FAILURE)', async () => {
    const store = new StaleableStore();
    const f = await fixture({ luState: store });
    store.pending = Promise.reject(new SenseError(SenseKey.HardwareError, Asc.LogicalUnitCommunicationFailure));
    store.pending.catch(() => undefined);
    assertSense(await f.run(WRITE, { dataOut: BLOCK }), 0x4, 0x0800);
    store.pending = undefined;
    assertGood(await f.run(WRITE, { dataOut: BLOCK })); // served again once the state is trusted
  });
});
