import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TaskAttribute } from '../../../src/scsi/sam';
import { Task, TaskSet, TaskState } from '../../../src/scsi/task-set';
import { RangeLocks } from '../../../src/scsi/range-lock';
import { command } from './helpers';

function task(seq: number, attribute: TaskAttribute): Task {
  return new Task(command([0, 0, 0, 0, 0, 0]), seq, attribute);
}

describe('TaskSet', () => {
  it('enables SIMPLE tasks at once and keeps O(1) counters', () => {
    const ts = new TaskSet();
    const ts1 = task(1, TaskAttribute.Simple);
    const ts2 = task(2, TaskAttribute.Simple);
    assert.equal(ts.admit(ts1), true);
    assert.equal(ts.admit(ts2), true);
    ts.remove(ts1);
    assert.equal(ts1.state, TaskState.Ended);
    assert.equal(ts.size, 1);
  });

  it('ORDERED waits for older tasks and holds back newer SIMPLE ones; HEAD OF QUEUE jumps ahead', () => {
    const ts = new TaskSet();
    const [s1, o2, s3, h4] = [task(1, TaskAttribute.Simple), task(2, TaskAttribute.Ordered), task(3, TaskAttribute.Simple), task(4, TaskAttribute.HeadOfQueue)];
    assert.equal(ts.admit(s1), true);
    assert.equal(ts.admit(o2), false);
    assert.equal(ts.admit(s3), false);
    assert.equal(ts.admit(h4), true);
    ts.remove(s1);
    assert.equal(o2.state, TaskState.Enabled, 'the running HEAD OF QUEUE task is newer: no wait');
    assert.equal(s3.state, TaskState.Dormant);
    ts.remove(o2);
    assert.equal(s3.state, TaskState.Enabled);
    ts.remove(h4);
    const h5 = task(5, TaskAttribute.HeadOfQueue);
    const s6 = task(6, TaskAttribute.Simple);
    ts.admit(h5);
    assert.equal(ts.admit(s6), false, 'an older HEAD OF QUEUE task holds back SIMPLE');
    ts.remove(h5);
    assert.equal(s6.state, TaskState.Enabled);
  });

  it('whenEnded resolves once the task is removed; abort wakes a dormant task', async () => {
    const ts = new TaskSet();
    const o = task(1, TaskAttribute.Ordered);
    const s = task(2, TaskAttribute.Simple);
    ts.admit(o);
    ts.admit(s);
    const woke = s.waitEnabled();
    s.abort({ reportStatus: true });
    await woke;
    assert.deepEqual(s.aborted, { reportStatus: true });
    const ended = s.whenEnded();
    ts.remove(s);
    await ended;
    ts.remove(o);
    assert.equal(ts.size, 0);
  });
});

describe('RangeLocks', () => {
  it('grants disjoint and shared ranges at once, orders conflicting ones by arrival', async () => {
    const locks = new RangeLocks();
    const r1 = locks.acquire(0, 10, false);
    const r2 = locks.acquire(5, 10, false);
    const w3 = locks.acquire(8, 4, true);
    const r4 = locks.acquire(100, 1, false);
    const r5 = locks.acquire(11, 1, false);
    assert.equal(r1.granted && r2.granted && r4.granted, true);
    assert.equal(w3.granted, false);
    assert.equal(r5.granted, false, 'a later reader waits behind the waiting writer it overlaps');
    locks.release(r1);
    assert.equal(w3.granted, false);
    locks.release(r2);
    assert.equal(w3.granted, true);
    await w3.ready;
    locks.release(w3);
    assert.equal(r5.granted, true);
    locks.release(r4);
    locks.release(r5);
    assert.equal(locks.active, 0);
  });
});

describe('Data-Out abort signals', () => {
  it('are reused only when never aborted and no longer listened to', () => {
    const t1 = task(1, TaskAttribute.Simple);
    const s1 = t1.signal;
    t1.end();
    const t2 = task(2, TaskAttribute.Simple);
    assert.equal(t2.signal, s1, 'an unused signal is recycled');
    const listener = (): void => undefined;
    t2.signal.addEventListener('abort', listener);
    t2.end();
    const t3 = task(3, TaskAttribute.Simple);
    assert.notEqual(t3.signal, s1, 'a signal somebody still listens to is not');
    assert.equal(t3.signal.aborted, false);
    t3.abort({ reportStatus: false });
    assert.equal(t3.signal.aborted, true);
    const s3 = t3.signal;
    t3.end();
    const t4 = task(4, TaskAttribute.Simple);
    assert.notEqual(t4.signal, s3, 'an aborted signal is not');
    assert.equal(t4.signal.aborted, false);
    s1.removeEventListener('abort', listener);
  });
});
