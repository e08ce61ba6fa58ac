import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CommandWindow } from '../../../src/iscsi/command-window';

describe('CmdSN window', () => {
  it('delivers in CmdSN order and closes when full', () => {
    const w = new CommandWindow(10, () => 3);
    const ran: number[] = [];
    assert.equal(w.maxCmdSN, 12);
    assert.ok(w.order(11, false, () => ran.push(11), true)); // held: 10 missing
    assert.equal(ran.length, 0);
    assert.ok(w.order(10, false, () => ran.push(10), true));
    assert.deepEqual(ran, [10, 11]);
    assert.equal(w.expCmdSN, 12);
    assert.equal(w.maxCmdSN, 12); // two outstanding of three
    assert.ok(w.order(12, false, () => ran.push(12), true));
    assert.equal(w.maxCmdSN, 12); // window closed: MaxCmdSN = ExpCmdSN - 1
    assert.equal(w.order(13, false, () => ran.push(13), true), false); // outside: ignored
    w.completed();
    assert.equal(w.maxCmdSN, 13);
    assert.ok(w.order(13, false, () => ran.push(13), true));
    assert.deepEqual(ran, [10, 11, 12, 13]);
  });

  it('runs immediate PDUs at once without consuming CmdSN', () => {
    const w = new CommandWindow(5, () => 8);
    let ran = false;
    assert.ok(w.order(5, true, () => (ran = true), false));
    assert.ok(ran);
    assert.equal(w.expCmdSN, 5);
  });

  it('ignores too-low and duplicate CmdSNs, and wraps at 2^32', () => {
    const w = new CommandWindow(0xffffffff, () => 4);
    assert.equal(w.order(0xfffffffe, false, () => assert.fail(), true), false);
    const ran: number[] = [];
    assert.ok(w.order(0, false, () => ran.push(0), true));
    assert.equal(w.order(0, false, () => ran.push(99), true), false);
    assert.ok(w.order(0xffffffff, false, () => ran.push(0xffffffff), true));
    assert.deepEqual(ran, [0xffffffff, 0]);
    assert.equal(w.expCmdSN, 1);
  });

  it('never moves MaxCmdSN backwards when the depth shrinks', () => {
    let depth = 10;
    const w = new CommandWindow(0, () => depth);
    assert.equal(w.maxCmdSN, 9);
    depth = 2;
    assert.equal(w.maxCmdSN, 9);
  });

  it('drops a command aborted before it arrived', () => {
    const w = new CommandWindow(0, () => 8);
    assert.ok(w.notYetArrived(0));
    w.abortBeforeArrival(0);
    let ran = false;
    w.order(0, false, () => (ran = true), true);
    assert.equal(ran, false);
    assert.equal(w.expCmdSN, 1);
  });

  it('keeps MaxCmdSN where it was while held (send queue over its bound), and admits nothing beyond it', () => {
    let held = false;
    const w = new CommandWindow(1, () => 4, () => held);
    assert.equal(w.maxCmdSN, 4);
    for (const sn of [1, 2, 3, 4]) assert.ok(w.order(sn, false, () => undefined, true));
    held = true;
    w.completed();
    w.completed();
    assert.equal(w.maxCmdSN, 4, 'completions do not open a held window');
    assert.equal(w.wouldOpen(), false);
    assert.equal(w.order(5, false, () => undefined, true), false, 'a CmdSN past the announced MaxCmdSN is not taken');
    held = false;
    assert.equal(w.wouldOpen(), true, 'the window reopens once no longer held');
    assert.equal(w.maxCmdSN, 6);
    assert.equal(w.wouldOpen(), false);
  });
});
