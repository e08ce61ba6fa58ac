/**
 * The exclusive lock between gateways on one data dir, and what the rbd tool may not do to an
 * image while a gateway exports it.
 *
 * A second daemon whose configuration needs an image another process holds for writing
 * refuses to start, naming the holder: a gateway that came up without one of its configured
 * LUNs would advertise the same targets with a LUN missing (and LUN 0 absent changes what
 * initiators and multipath see), so failing loudly is safer than serving part of the config.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Daemon, tempDir } from '../helpers/daemon';
import { LunSpec, lunUrl, qemuIoOk, rbd, rbdOk, writeGatewayConfig } from '../helpers/store';

describe('store locks across gateways', () => {
  const dataDir = tempDir('igw-store-locks-');
  const targets: Record<string, LunSpec[]> = { vol: [{ disk: 'rbd/vol' }, { disk: 'rbd/solo' }], snap: [{ disk: 'rbd/vol@before' }] };
  let first: Daemon | undefined;

  before(async () => {
    await rbdOk(dataDir, 'create', '--size', '32M', 'rbd/vol');
    await rbdOk(dataDir, 'create', '--size', '8M', 'rbd/solo');
    await writeGatewayConfig(dataDir, { vol: targets.vol });
    first = await Daemon.start({ dataDir });
    await qemuIoOk(lunUrl(first.port, 'vol'), ['write -P 0x41 0 1M']);
    await rbdOk(dataDir, 'snap', 'create', 'rbd/vol@before');
    await qemuIoOk(lunUrl(first.port, 'vol'), ['write -P 0x42 0 512k']);
    await first.stop();
    await writeGatewayConfig(dataDir, targets);
    first = await Daemon.start({ dataDir });
  });
  after(async () => {
    if (first?.alive) await first.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('a second daemon on the same data dir refuses to start and names the holder', async () => {
    const err = await Daemon.start({ dataDir }).then(
      (d) => d,
      (e: unknown) => e as Error,
    );
    if (err instanceof Daemon) {
      await err.stop();
      assert.fail('the second daemon started although the image is exclusively locked');
    }
    const pid = first!.proc.pid!;
    // Same gateway name (the host's FQDN by default): refused before it touches the config.
    assert.match(err.message, new RegExp(`gateway \\S+ is already running on ${os.hostname()} \\(pid ${pid}\\)`));
    // The first gateway is unaffected: still the lock holder, still serving.
    assert.match(await rbdOk(dataDir, 'status', 'rbd/vol'), new RegExp(`/${pid} .*mode=write-exclusive`));
    await qemuIoOk(lunUrl(first!.port, 'vol'), ['read -P 0x42 0 512k', 'read -P 0x41 512k 512k', 'write -P 0x43 2M 4k']);
    await qemuIoOk(lunUrl(first!.port, 'snap'), ['read -P 0x41 0 1M'], { readOnly: true });
  });

  it('refuses rollback, removal and snapshot removal while exported', async () => {
    const rb = await rbd(dataDir, 'snap', 'rollback', 'rbd/vol@before');
    assert.equal(rb.code, 16, rb.stderr);
    assert.match(rb.stderr, new RegExp(`cannot roll back 'rbd/vol' while it is in use: .*pid ${first!.proc.pid}`));
    const rm = await rbd(dataDir, 'rm', 'rbd/solo');
    assert.equal(rm.code, 16, `rm of an exported image: ${rm.stderr}`);
    assert.match(rm.stderr, new RegExp(`still has watchers: .*${first!.proc.pid}`));
    const srm = await rbd(dataDir, 'snap', 'rm', 'rbd/vol@before');
    assert.equal(srm.code, 16, `snap rm of an exported snapshot: ${srm.stderr}`);
    await qemuIoOk(lunUrl(first!.port, 'vol'), ['read -P 0x42 0 512k', 'read -P 0x43 2M 4k']);
  });

  it('once the first gateway stops, rollback works and the next gateway serves the rolled-back image', async () => {
    assert.equal(await first!.stop(), 0);
    await rbdOk(dataDir, 'snap', 'rollback', 'rbd/vol@before');
    first = await Daemon.start({ dataDir });
    await qemuIoOk(lunUrl(first.port, 'vol'), ['read -P 0x41 0 1M', 'read -P 0 2M 4k']);
    assert.match(await rbdOk(dataDir, 'check'), /: clean$/m);
  });
});
