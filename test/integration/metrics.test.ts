/**
 * The Prometheus endpoint of the real daemon (`serve --metrics`): QEMU's iSCSI driver writes
 * and reads the demo LUN, the scrape passes `promtool check metrics` and its counters moved by
 * exactly what qemu-io transferred; sessions, login failures, config epoch; no secret leaks.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as zlib from 'node:zlib';
import { CLI, DEMO_IQN, Daemon, freePort, run, tempDir } from '../helpers/daemon';
import { PromSample, parseExposition, promtoolCheck, samples, value } from '../helpers/prometheus';

const QEMU_INITIATOR = 'iqn.2008-11.org.linux-kvm';
const DISK = 'rbd/demo';
const CLIENT = 'iqn.1994-05.com.example:metrics-client';
const CHAP_PASSWORD = 'Metr1csChapPassw0rd';
const MUTUAL_PASSWORD = 'Mutu4lMetricsSecret';

// [offset, length]: 4 KiB .. 3 MiB, all below the 8 MiB transfer limit (one WRITE each).
const WRITES: Array<[number, number]> = [[0, 4096], [1 << 20, 65536], [16 << 20, 1 << 20], [64 << 20, 3 << 20]];
const READS: Array<[number, number]> = [[0, 4096], [1 << 20, 65536]];

interface HttpReply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

function request(url: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders } = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function qemuIo(url: string, commands: string[]): Promise<{ code: number | null; out: string }> {
  const args = ['-f', 'raw'];
  for (const c of commands) args.push('-c', c);
  const r = await run('qemu-io', [...args, url], { timeoutMs: 120_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

describe('metrics endpoint', () => {
  let daemon: Daemon;
  let base: string;
  const dataDir = tempDir();

  const scrape = async (): Promise<{ text: string; all: PromSample[] }> => {
    const r = await request(`${base}/metrics`);
    assert.equal(r.status, 200);
    const text = r.body.toString();
    return { text, all: parseExposition(text) };
  };
  /** A counter absent before its first increment reads as 0. */
  const counter = (all: PromSample[], name: string, labels: Record<string, string>): number =>
    samples(all, name, labels).length === 0 ? 0 : value(all, name, labels);

  before(async () => {
    // First start creates the demo target; then a configured client with CHAP credentials.
    const first = await Daemon.start({ dataDir });
    assert.equal(await first.stop(), 0);
    const file = `${dataDir}/gateway.json`;
    const config = JSON.parse(fs.readFileSync(file, 'utf8')) as { targets: Record<string, { clients: Record<string, unknown> }> };
    config.targets[DEMO_IQN].clients[CLIENT] = {
      auth: { username: 'metricsuser', password: CHAP_PASSWORD, mutual_username: 'metricsmutual', mutual_password: MUTUAL_PASSWORD },
      luns: { [DISK]: { lun_id: 0 } },
    };
    fs.writeFileSync(file, JSON.stringify(config));
    const mport = await freePort();
    daemon = await Daemon.start({ dataDir, extraArgs: ['--metrics', `127.0.0.1:${mport}`], env: { ISCSI_GATEWAY_LOG: 'debug' } });
    base = `http://127.0.0.1:${mport}`;
    assert.match(daemon.stdout, new RegExp(`metrics on ${base.replace(/\./g, '\\.')}/metrics`));
  });
  after(async () => {
    await daemon.stop();
  });

  it('counts exactly the bytes qemu-io wrote, and the output passes promtool check metrics', async () => {
    const before = (await scrape()).all;
    const lunLabels = { target: DEMO_IQN, lun: '0', lun_name: DISK };
    const cephLabels = { client_iqn: QEMU_INITIATOR, lun_name: DISK };
    const w0 = counter(before, 'ceph_iscsi_lun_write_bytes', cephLabels);
    const lw0 = counter(before, 'iscsi_gateway_lun_write_bytes_total', lunLabels);
    const lc0 = counter(before, 'iscsi_gateway_lun_commands_total', { ...lunLabels, op: 'write' });
    const lr0 = counter(before, 'iscsi_gateway_lun_read_bytes_total', lunLabels);

    const io = await qemuIo(`iscsi://127.0.0.1:${daemon.port}/${DEMO_IQN}/0`, [
      ...WRITES.map(([o, l], i) => `write -P 0x${(0x31 + i).toString(16)} ${o} ${l}`),
      `read -P 0x31 ${READS[0][0]} ${READS[0][1]}`,
      `read -P 0x32 ${READS[1][0]} ${READS[1][1]}`,
    ]);
    assert.equal(io.code, 0, io.out);
    const written = WRITES.reduce((a, [, l]) => a + l, 0);
    const read = READS.reduce((a, [, l]) => a + l, 0);

    const { text, all } = await scrape();
    const lint = await promtoolCheck(text);
    assert.equal(lint.code, 0, `promtool check metrics failed:\n${lint.output}`);
    assert.equal(lint.output, '', 'no lint problems');

    assert.equal(value(all, 'ceph_iscsi_lun_write_bytes', cephLabels) - w0, written);
    assert.equal(value(all, 'iscsi_gateway_lun_write_bytes_total', lunLabels) - lw0, written);
    assert.equal(value(all, 'iscsi_gateway_initiator_write_bytes_total', { target: DEMO_IQN, client_iqn: QEMU_INITIATOR }), written + w0);
    assert.equal(value(all, 'iscsi_gateway_lun_commands_total', { ...lunLabels, op: 'write' }) - lc0, WRITES.length);
    assert.equal(value(all, 'iscsi_gateway_lun_latency_seconds_count', { ...lunLabels, op: 'write' }), WRITES.length + lc0);
    assert.ok(value(all, 'iscsi_gateway_lun_latency_seconds_sum', { ...lunLabels, op: 'write' }) > 0);
    // Reads: the data qemu-io read plus the small Data-In of INQUIRY / READ CAPACITY at connect.
    const readDelta = value(all, 'iscsi_gateway_lun_read_bytes_total', lunLabels) - lr0;
    assert.ok(readDelta >= read && readDelta < read + 16384, `read bytes ${readDelta} for ${read} read`);
    assert.equal(value(all, 'ceph_iscsi_lun_read_bytes', cephLabels), value(all, 'iscsi_gateway_lun_read_bytes_total', lunLabels));
    assert.ok(value(all, 'ceph_iscsi_lun_iops', cephLabels) >= WRITES.length + READS.length);
    assert.equal(value(all, 'ceph_iscsi_lun_size_bytes', { lun_name: DISK }), 1 << 30);
    assert.equal(value(all, 'ceph_iscsi_lun_mapped', { lun_name: DISK }), 1);
    assert.equal(value(all, 'ceph_iscsi_gateway_tpg_total', { gw_iqn: DEMO_IQN }), 1);
    assert.equal(value(all, 'ceph_iscsi_client_lun', { client_iqn: CLIENT, lun_name: DISK }), 0);
    assert.equal(value(all, 'ceph_iscsi_client_login', { client_iqn: CLIENT }), 0);
    const epoch = (JSON.parse(fs.readFileSync(`${dataDir}/gateway.json`, 'utf8')) as { epoch: number }).epoch;
    assert.equal(value(all, 'iscsi_gateway_config_epoch'), epoch);
  });

  it('shows a logged-in session per target and initiator while it lasts', async () => {
    const qemu = spawn('qemu-io', ['-f', 'raw', '-c', 'sleep 3000', `iscsi://127.0.0.1:${daemon.port}/${DEMO_IQN}/0`], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => qemu.on('exit', resolve));
    try {
      let seen = false;
      for (let i = 0; i < 100 && !seen; i++) {
        const { all } = await scrape();
        if (samples(all, 'iscsi_gateway_sessions', { target: DEMO_IQN, client_iqn: QEMU_INITIATOR }).length === 1) {
          assert.equal(value(all, 'iscsi_gateway_sessions', { target: DEMO_IQN, client_iqn: QEMU_INITIATOR }), 1);
          assert.equal(value(all, 'ceph_iscsi_client_login', { client_iqn: QEMU_INITIATOR }), 1);
          seen = true;
        } else {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      assert.ok(seen, 'the session never appeared');
    } finally {
      assert.equal(await exited, 0);
    }
    let gone = false;
    for (let i = 0; i < 100 && !gone; i++) {
      gone = samples((await scrape()).all, 'iscsi_gateway_sessions', { client_iqn: QEMU_INITIATOR }).length === 0;
      if (!gone) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(gone, 'the session stayed after logout');
  });

  it('counts a failed login by reason', async () => {
    const labels = { reason: 'not_found' };
    const before = counter((await scrape()).all, 'iscsi_gateway_login_failures_total', labels);
    const io = await qemuIo(`iscsi://127.0.0.1:${daemon.port}/iqn.2003-01.org.example:no-such-target/0`, ['read 0 512']);
    assert.notEqual(io.code, 0);
    assert.equal(value((await scrape()).all, 'iscsi_gateway_login_failures_total', labels), before + 1);
  });

  it('never shows CHAP secrets in metrics or logs', async () => {
    const { text } = await scrape();
    for (const s of [CHAP_PASSWORD, MUTUAL_PASSWORD]) {
      assert.ok(!text.includes(s), 'secret in the metrics');
      assert.ok(!daemon.stdout.includes(s) && !daemon.stderr.includes(s), 'secret in the logs');
    }
    assert.ok(daemon.stderr.includes('"level":20') || daemon.stderr.includes('"level":30'), 'the daemon did log (at debug)');
  });

  it('serves the link page, gzip on request, 404 and 405 with a message', async () => {
    const index = await request(`${base}/`);
    assert.equal(index.status, 200);
    assert.match(index.body.toString(), /href="\/metrics"/);
    const gz = await request(`${base}/metrics`, { headers: { 'Accept-Encoding': 'gzip' } });
    assert.equal(gz.status, 200);
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.match(String(gz.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(zlib.gunzipSync(gz.body).toString(), /^# HELP /m);
    const missing = await request(`${base}/nope`);
    assert.equal(missing.status, 404);
    assert.match((JSON.parse(missing.body.toString()) as { message: string }).message, /\/metrics/);
    const post = await request(`${base}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });

  it('refuses a bad --metrics address and an address in use, with a message', async () => {
    const bad = await run(process.execPath, [CLI, 'serve', '--data', tempDir(), '--portal', `127.0.0.1:${await freePort()}`, '--metrics', '300.1.1.1:9287']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid metrics address "300\.1\.1\.1:9287"/);
    const inUse = await run(process.execPath, [CLI, 'serve', '--data', tempDir(), '--portal', `127.0.0.1:${await freePort()}`, '--metrics', base.replace('http://', '')],
      { env: { ISCSI_GATEWAY_LOG: 'silent' }, timeoutMs: 30_000 });
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /cannot listen for metrics on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
  });
});
