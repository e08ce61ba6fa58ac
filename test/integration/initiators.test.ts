/**
 * Real initiators against the real daemon: discovery and inquiry with libiscsi's tools, and
 * patterned writes / read-back with QEMU's iSCSI driver, also across a restart.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CLI, DEMO_IQN, Daemon, freePort, run, tempDir } from '../helpers/daemon';

// Scattered offsets and sizes from 4 KiB to 1 MiB, each with its own byte pattern.
const WRITES: Array<[offset: number, length: number, pattern: number]> = [
  [0, 4096, 0x11],
  [8192, 65536, 0x22],
  [1 << 20, 1 << 20, 0x33],
  [123 * 4096, 12288, 0x44],
  [(512 << 20) + 4096, 131072, 0x55],
  [(1 << 30) - (1 << 20), 1 << 20, 0x66],
  [300 * 1024 * 1024, 4096, 0x77],
];

async function qemuIo(url: string, commands: string[]): Promise<string> {
  const args = ['-f', 'raw'];
  for (const c of commands) args.push('-c', c);
  const r = await run('qemu-io', [...args, url], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `qemu-io failed: ${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

describe('initiators', () => {
  let daemon: Daemon;
  const dataDir = tempDir();
  before(async () => {
    daemon = await Daemon.start({ dataDir });
  });
  after(async () => {
    await daemon.stop();
  });

  it('prints how to reach the demo on first start', () => {
    assert.match(daemon.stdout, new RegExp(`demo target ${DEMO_IQN.replace(/\./g, '\\.')}`));
    assert.match(daemon.stdout, new RegExp(`iscsi-ls iscsi://127\\.0\\.0\\.1:${daemon.port}/`));
  });

  it('iscsi-ls discovers the demo target and its LUN', async () => {
    const r = await run('iscsi-ls', ['-s', `iscsi://127.0.0.1:${daemon.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Target:${DEMO_IQN.replace(/\./g, '\\.')} Portal:127\\.0\\.0\\.1:${daemon.port},1`));
    // iscsi-ls prints last LBA x block size, rounded down: 1 GiB shows as 1023M.
    assert.match(r.stdout, /Lun:0\s+Type:DIRECT_ACCESS \(Size:1023M\)/);
  });

  it('iscsi-inq reads standard and VPD inquiry data', async () => {
    const std = await run('iscsi-inq', [daemon.url]);
    assert.equal(std.code, 0, std.stderr);
    assert.match(std.stdout, /Peripheral Device Type:\s*DIRECT_ACCESS/i);
    const serial = await run('iscsi-inq', ['-e', '1', '-c', '128', daemon.url]);
    assert.equal(serial.code, 0, serial.stderr);
    assert.match(serial.stdout, /Unit Serial Number:\[[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\]/);
    const ids = await run('iscsi-inq', ['-e', '1', '-c', '131', daemon.url]);
    assert.equal(ids.code, 0, ids.stderr);
    assert.match(ids.stdout, /Designator Type:\(3\) NAA/);
    assert.match(ids.stdout, /Designator Type:\(4\) RELATIVE_TARGET_PORT/);
    assert.match(ids.stdout, /Designator Type:\(5\) TARGET_PORT_GROUP/);
  });

  it('qemu-io writes patterns at scattered offsets and reads them back', async () => {
    await qemuIo(daemon.url, WRITES.map(([o, l, p]) => `write -P 0x${p.toString(16)} ${o} ${l}`));
    const out = await qemuIo(daemon.url, WRITES.map(([o, l, p]) => `read -P 0x${p.toString(16)} ${o} ${l}`));
    assert.doesNotMatch(out, /Pattern verification failed|error/i);
    // Untouched space between two writes still reads as zeros.
    const gap = await qemuIo(daemon.url, ['read -P 0 4096 4096']);
    assert.doesNotMatch(gap, /Pattern verification failed/);
  });

  it('keeps the data across a restart', async () => {
    assert.equal(await daemon.stop(), 0, 'clean exit on SIGTERM');
    daemon = await Daemon.start({ dataDir });
    assert.doesNotMatch(daemon.stdout, /demo target .* is ready/, 'the demo is only created once');
    const out = await qemuIo(daemon.url, WRITES.map(([o, l, p]) => `read -P 0x${p.toString(16)} ${o} ${l}`));
    assert.doesNotMatch(out, /Pattern verification failed|error/i);
  });
});

describe('portals', () => {
  it('listens on several portals, IPv4 and IPv6, and advertises each in SendTargets', async () => {
    const v6port = await freePort();
    const daemon = await Daemon.start({ extraArgs: ['--portal', `[::1]:${v6port}`] });
    try {
      const r4 = await run('iscsi-ls', [`iscsi://127.0.0.1:${daemon.port}/`]);
      assert.equal(r4.code, 0, r4.stderr);
      assert.match(r4.stdout, new RegExp(`Portal:127\\.0\\.0\\.1:${daemon.port},1`));
      // Each portal IP is its own target port (TPGT), as ceph-iscsi numbers one TPG per IP.
      assert.match(r4.stdout, new RegExp(`Portal:\\[::1\\]:${v6port},2`));
      const r6 = await run('iscsi-inq', [`iscsi://[::1]:${v6port}/${DEMO_IQN}/0`]);
      assert.equal(r6.code, 0, r6.stderr);
      assert.match(r6.stdout, /DIRECT_ACCESS/);
    } finally {
      await daemon.stop();
    }
  });

  it('refuses a malformed portal address with a clear message', async () => {
    const r = await run(process.execPath, [CLI, 'serve', '--data', tempDir(), '--portal', 'localhost:3260']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /"localhost" is not an IPv4 or IPv6 address/);
    const p = await run(process.execPath, [CLI, 'serve', '--data', tempDir(), '--portal', '127.0.0.1:99999']);
    assert.notEqual(p.code, 0);
    assert.match(p.stderr, /port must be 1-65535/);
  });
});

