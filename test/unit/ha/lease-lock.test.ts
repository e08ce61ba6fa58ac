/**
 * The embedded image lock between processes: a live holder is never broken, a stopped one is
 * fenced (SIGKILL, verified by pid + start time) before its lease is broken, a dead one's lease
 * is taken without fencing, a recycled pid is never killed, and a returning gateway clears what
 * its previous process held.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LeaseLocks } from '../../../src/ha/lease-lock';
import { FenceError, liveness, procStat, selfIdentity } from '../../../src/ha/process-identity';
import { fileKey } from '../../../src/ha/inbox';
import { silentLogger } from '../../../src/util/log';
import { tempDir } from '../../helpers/daemon';

const HOLDER = path.join(__dirname, '..', '..', 'helpers', 'lease-holder.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function holder(dir: string, name: string, key: string, leaseMs: number): Promise<{ proc: ChildProcess; exited: Promise<NodeJS.Signals | null> }> {
  const proc = spawn(process.execPath, [HOLDER, dir, name, key, String(leaseMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | null>((r) => proc.on('exit', (_c, s) => r(s)));
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!out.includes('held')) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error('the holder process did not take the lease');
    await sleep(10);
  }
  return { proc, exited };
}

test('a live holder is asked, never broken; a stopped one is fenced (SIGKILL) before its lease is broken', async () => {
  const dir = tempDir('igw-lease-');
  const h = await holder(dir, 'gw1', 'image:rbd/a', 600);
  const me = new LeaseLocks({ dataDir: dir, gateway: 'gw2', leaseMs: 600, log: silentLogger() });
  await me.start();
  try {
    await sleep(800);
    const live = await me.tryAcquire('image:rbd/a');
    assert.equal(live.kind, 'held');
    assert.equal(live.kind === 'held' && live.stale, false, 'renewed: not stale');
    assert.equal(live.kind === 'held' && live.holder.gateway, 'gw1');
    if (live.kind === 'held') await assert.rejects(me.breakWithFencing('image:rbd/a', live.holder), FenceError, 'a live lease is not broken');

    h.proc.kill('SIGSTOP');
    await sleep(900);
    const stale = await me.tryAcquire('image:rbd/a');
    assert.ok(stale.kind === 'held' && stale.stale, 'a stopped holder\'s lease lapses');
    if (stale.kind !== 'held') return;
    const rec = await me.breakWithFencing('image:rbd/a', stale.holder);
    assert.match(rec.action, new RegExp(`^SIGKILL pid ${h.proc.pid}$`));
    assert.equal(await h.exited, 'SIGKILL', 'the holder was killed before its lease was broken');
    assert.equal((await me.tryAcquire('image:rbd/a')).kind, 'acquired');
    assert.equal((await me.status('image:rbd/a')).holder?.gateway, 'gw2');
  } finally {
    h.proc.kill('SIGKILL');
    await me.close();
  }
});

test('a dead holder\'s lease is taken without fencing; a recycled pid is never killed', async () => {
  const dir = tempDir('igw-lease-');
  const h = await holder(dir, 'gw1', 'image:rbd/b', 5000);
  h.proc.kill('SIGKILL');
  await h.exited;
  const me = new LeaseLocks({ dataDir: dir, gateway: 'gw2', leaseMs: 5000, log: silentLogger() });
  await me.start();
  try {
    assert.equal((await me.tryAcquire('image:rbd/b')).kind, 'acquired', 'the holder process is gone: its lease is free at once');
    await me.release('image:rbd/b');

    // A lease naming a live process with another start time (the pid was reused) is gone too:
    // this test process stands in for the unrelated process that got the pid.
    const file = path.join(dir, 'ha', 'leases', `${fileKey('image:rbd/c')}.json`);
    const self = selfIdentity();
    fs.writeFileSync(file, JSON.stringify({
      key: 'image:rbd/c', renewed: Date.now(),
      holder: { gateway: 'gw9', client: 'gw9/old', since: 0, pid: self.pid, startTime: self.startTime - 1, bootId: self.bootId, host: self.host },
    }));
    assert.equal(liveness({ ...self, startTime: self.startTime - 1 }), 'gone');
    assert.equal((await me.tryAcquire('image:rbd/c')).kind, 'acquired', 'no kill: the recorded process no longer exists');
    assert.ok(procStat(process.pid), 'and this process is alive');
  } finally {
    await me.close();
  }
});

test('a returning gateway clears the lease its previous process held; the holder cannot fence itself', async () => {
  const dir = tempDir('igw-lease-');
  const h = await holder(dir, 'gw1', 'image:rbd/d', 5000);
  h.proc.kill('SIGKILL');
  await h.exited;
  const again = new LeaseLocks({ dataDir: dir, gateway: 'gw1', leaseMs: 5000, log: silentLogger() });
  await again.start();
  try {
    assert.equal((await again.status('image:rbd/d')).holder, undefined, 'cleared at start');
    assert.equal((await again.tryAcquire('image:rbd/d')).kind, 'acquired');
    const other = new LeaseLocks({ dataDir: dir, gateway: 'gw2', leaseMs: 200, log: silentLogger() });
    // `again` renews (leaseMs 5000, every second): gw2 with a short lease sees it live.
    const r = await other.tryAcquire('image:rbd/d');
    assert.equal(r.kind, 'held');
    await sleep(300);
    const r2 = await other.tryAcquire('image:rbd/d');
    // Judged by gw2's 200 ms lease the holder lapsed, but it is this very process: never fenced.
    if (r2.kind === 'held' && r2.stale) await assert.rejects(other.breakWithFencing('image:rbd/d', r2.holder), /refusing to fence this process/);
  } finally {
    await again.close();
  }
});
