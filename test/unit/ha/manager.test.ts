/**
 * HaManager's hand-over policy, two managers (two gateways) in one process on one data dir:
 * an owner that is not using a disk hands it over at once whatever its hold time (an initiator
 * alternating paths pays one hand-over per switch, and the gateway that just handed a disk
 * away takes it back as soon as it is asked to); a busy owner keeps it for its turn and then
 * hands it over, so two busy gateways both progress. Throughout, at most one gateway has the
 * image open for writing, and every acknowledged write is there at the end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { BlockDevice } from '../../../src/block/block-device';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { LeaseLocks } from '../../../src/ha/lease-lock';
import { HaManager } from '../../../src/ha/manager';
import { OwnedDevice } from '../../../src/ha/owned-device';
import { StandbyDevice } from '../../../src/ha/standby-device';
import { silentLogger } from '../../../src/util/log';
import { tempDir } from '../../helpers/daemon';

const MiB = 1 << 20;
const KEY = 'image:rbd/m1';

/** The image both gateways open: one writer at a time, as the store's exclusive writer lock enforces. */
class Image {
  readonly data = new MemoryBackstore({ size: MiB, name: 'image' });
  writer: string | undefined;
  opens = 0;

  open(gateway: string): BlockDevice {
    if (this.writer !== undefined) throw new Error(`${gateway}: the image is open for writing by ${this.writer}`);
    this.writer = gateway;
    this.opens++;
    const data = this.data;
    const close = async () => {
      if (this.writer === gateway) this.writer = undefined;
    };
    return {
      name: `image@${gateway}`, readOnly: false, capabilities: data.capabilities,
      size: () => data.size(),
      read: (o, l, into) => data.read(o, l, into),
      write: (o, d, opt) => {
        // A write by a gateway that no longer owns the image would be a lost-update bug.
        if (this.writer !== gateway) return Promise.reject(new Error(`${gateway} wrote without owning the image`));
        return data.write(o, d, opt);
      },
      flush: () => data.flush(),
      discard: (o, l) => data.discard(o, l),
      writeSame: (o, l, p, opt) => data.writeSame(o, l, p, opt),
      mapStatus: (o, l) => data.mapStatus(o, l),
      onResize: () => () => undefined,
      close,
    };
  }
}

async function gateways(holdMs: number): Promise<{ a: OwnedDevice; b: OwnedDevice; ma: HaManager; mb: HaManager; image: Image; close: () => Promise<void> }> {
  const dir = tempDir('igw-ha-mgr-');
  const image = new Image();
  const log = silentLogger();
  const mk = (gw: string) => new HaManager({
    gateway: gw, dataDir: dir, log, locks: new LeaseLocks({ dataDir: dir, gateway: gw, leaseMs: 5000, log }),
    minHoldMs: holdMs, maxHoldMs: holdMs, failbackMs: 0, peers: async () => [],
  });
  const ma = mk('gwa');
  const mb = mk('gwb');
  await ma.start();
  await mb.start();
  const a = await ma.manage('rbd/m1', KEY, new StandbyDevice('a', MiB), async () => image.open('gwa'), true);
  const b = await mb.manage('rbd/m1', KEY, new StandbyDevice('b', MiB), async () => image.open('gwb'), false);
  assert.equal(a.active, true, 'the preferred gateway took the disk');
  return {
    a, b, ma, mb, image,
    close: async () => {
      await ma.close();
      await mb.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const block = (tag: number) => Buffer.alloc(512, tag);

test('an idle owner hands the disk over at once, whatever its hold time; the one that handed it away takes it back when asked', { timeout: 60_000 }, async () => {
  // A hold time no test would wait for: only the idle rule can let these hand-overs through.
  const g = await gateways(600_000);
  try {
    const takeovers: number[] = [];
    for (let k = 0; k < 10; k++) {
      // An initiator alternating paths: one write through each gateway in turn.
      const [dev, mgr] = k % 2 === 0 ? [g.b, g.mb] : [g.a, g.ma];
      await dev.write(k * 512, block(k + 1));
      assert.equal(dev.active, true);
      takeovers.push(mgr.status()['rbd/m1'].last_takeover_ms!);
    }
    // Taking back a disk just handed away used to wait out a 2 s deferral (4 of these 10 did).
    const total = takeovers.reduce((x, y) => x + y, 0);
    assert.ok(total < 5000, `hand-overs are prompt: ${JSON.stringify(takeovers)} ms`);
    for (let k = 0; k < 10; k++) assert.ok((await g.image.data.read(k * 512, 512)).equals(block(k + 1)), `write ${k} is there`);
    assert.equal(g.image.opens, 11);
  } finally {
    await g.close();
  }
});

test('a busy owner keeps the disk for its turn, then hands it over: both gateways progress', { timeout: 60_000 }, async () => {
  const g = await gateways(300);
  try {
    let stop = false;
    const done = { a: 0, b: 0 };
    const worker = async (dev: OwnedDevice, name: 'a' | 'b', base: number) => {
      for (let k = 0; !stop && k < 100_000; k++) {
        await dev.write((base + (k % 64)) * 512, block(name === 'a' ? 1 : 2));
        done[name]++;
        // The next command arrives a moment later, as over a network.
        await new Promise((r) => setImmediate(r));
      }
    };
    const wa = worker(g.a, 'a', 0);
    const wb = worker(g.b, 'b', 64);
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && (done.a < 20 || done.b < 20 || g.ma.status()['rbd/m1'].failovers < 2)) await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await Promise.all([wa, wb]);
    const sa = g.ma.status()['rbd/m1'];
    const sb = g.mb.status()['rbd/m1'];
    assert.ok(done.a >= 20 && done.b >= 20, `both progress: ${JSON.stringify(done)}`);
    assert.ok(sa.failovers >= 2 && sb.failovers >= 1, `in turns: ${JSON.stringify({ sa, sb })}`);
    // Turns, not a hand-over per command: each turn carries many writes.
    assert.ok(done.a + done.b > 4 * (sa.failovers + sb.failovers), `writes per turn: ${JSON.stringify({ done, sa, sb })}`);
    for (let k = 0; k < 64; k++) {
      assert.ok((await g.image.data.read(k * 512, 512)).equals(block(1)));
      assert.ok((await g.image.data.read((64 + k) * 512, 512)).equals(block(2)));
    }
  } finally {
    await g.close();
  }
});
