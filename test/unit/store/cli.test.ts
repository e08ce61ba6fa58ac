/**
 * `iscsi-gateway rbd ...` end to end: rbd's syntax and output, and for every kind of bad
 * input a clear message on stderr, rbd's errno as exit status, and nothing changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { distDir, tmpDir } from './helpers';
import { Child } from './procs';

const MAIN = path.join(distDir, 'src', 'cli', 'main.js');

interface Result {
  code: number | null;
  out: string;
  err: string;
}

function rbdIn(data: string, ...args: string[]): Result {
  const r = spawnSync(process.execPath, [MAIN, 'rbd', '--data', data, ...args], { encoding: 'utf8', env: { ...process.env, ISCSI_GATEWAY_DATA: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ok(r: Result, what: string): Result {
  assert.equal(r.code, 0, `${what} failed (${r.code}): ${r.err}`);
  return r;
}

function fails(r: Result, code: number, re: RegExp): void {
  assert.equal(r.code, code, `expected exit ${code}, got ${r.code}; stderr: ${r.err}`);
  assert.match(r.err, re);
  assert.match(r.err, /^rbd: /, 'errors start with "rbd: "');
}

test("the seed's command works as is on a fresh store, and the listing commands print rbd's formats", () => {
  const data = tmpDir('cli-');
  const rbd = (...a: string[]): Result => rbdIn(data, ...a);
  const c = ok(rbd('--pool', 'iscsi-images', 'create', '--size=102400', 'testvol'), 'create');
  assert.match(c.err, /created pool 'iscsi-images'/);
  assert.equal(ok(rbd('--pool', 'iscsi-images', 'ls'), 'ls').out, 'testvol\n');
  const info = ok(rbd('info', 'iscsi-images/testvol'), 'info').out;
  assert.match(info, /^rbd image 'testvol':\n\tsize 100 GiB in 25600 objects\n\torder 22 \(4 MiB objects\)\n/);
  assert.match(info, /\tfeatures: layering, exclusive-lock, object-map, fast-diff, deep-flatten\n/);
  const j = JSON.parse(ok(rbd('info', 'iscsi-images/testvol', '--format', 'json'), 'info json').out);
  assert.equal(j.size, 100 * 2 ** 30);
  assert.equal(j.object_size, 4 * 2 ** 20);
  // Suffixes and the default pool.
  ok(rbd('create', 'small', '--size', '1G', '--object-size', '1M'), 'create with suffix');
  assert.equal(JSON.parse(rbd('info', 'small', '--format', 'json').out).size, 2 ** 30);
  assert.equal(JSON.parse(rbd('info', 'rbd/small', '--format', 'json').out).order, 20);
  ok(rbd('create', 'rbd/tiny', '-s', '512B'), 'bytes suffix');
  ok(rbd('create', 'rbd/striped', '-s', '64', '--stripe-unit', '64K', '--stripe-count', '4'), 'striped');
  assert.match(rbd('info', 'rbd/striped').out, /stripe unit: 64 KiB\n\tstripe count: 4/);
  // Snapshots, clone, children, ls -l, du.
  ok(rbd('snap', 'create', 'iscsi-images/testvol@before'), 'snap create');
  ok(rbd('snap', 'protect', 'iscsi-images/testvol@before'), 'protect');
  ok(rbd('clone', 'iscsi-images/testvol@before', 'iscsi-images/kid'), 'clone');
  assert.equal(ok(rbd('children', 'iscsi-images/testvol@before'), 'children').out, 'iscsi-images/kid\n');
  const snaps = ok(rbd('snap', 'ls', 'iscsi-images/testvol'), 'snap ls').out.split('\n');
  assert.match(snaps[0], /^SNAPID\s+NAME\s+SIZE\s+PROTECTED\s+TIMESTAMP$/);
  assert.match(snaps[1], /^\s+1\s+before\s+100 GiB\s+yes\s+\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/);
  const ls = ok(rbd('ls', '-l', 'iscsi-images'), 'ls -l').out;
  assert.match(ls, /^NAME\s+SIZE\s+PARENT\s+FMT\s+PROT\s+LOCK\n/);
  assert.match(ls, /\nkid\s+100 GiB\s+iscsi-images\/testvol@before\s+2\s*\n/);
  assert.match(ls, /\ntestvol@before\s+100 GiB\s+2\s+yes\n/);
  const du = ok(rbd('du', '-p', 'iscsi-images'), 'du').out;
  assert.match(du, /^NAME\s+PROVISIONED\s+USED\n/);
  assert.match(du, /\n<TOTAL>\s+200 GiB\s+0 B\n$/);
  const duj = JSON.parse(ok(rbd('du', 'iscsi-images/testvol', '--format', 'json'), 'du json').out);
  assert.deepEqual(duj.images.map((i: { name: string; snapshot?: string }) => `${i.name}@${i.snapshot ?? ''}`), ['testvol@before', 'testvol@']);
  ok(rbd('resize', 'iscsi-images/testvol', '--size', '200G'), 'grow');
  assert.match(rbd('info', 'iscsi-images/testvol').out, /size 200 GiB/);
  ok(rbd('snap', 'rename', 'iscsi-images/testvol@before', 'iscsi-images/testvol@gold'), 'snap rename');
  ok(rbd('feature', 'disable', 'iscsi-images/kid', 'fast-diff'), 'feature disable');
  assert.match(rbd('info', 'iscsi-images/kid').out, /features: layering, exclusive-lock, object-map, deep-flatten\n/);
  ok(rbd('flatten', 'iscsi-images/kid'), 'flatten');
  ok(rbd('snap', 'unprotect', 'iscsi-images/testvol@gold'), 'unprotect');
  ok(rbd('snap', 'rm', 'iscsi-images/testvol@gold'), 'snap rm');
  ok(rbd('mv', 'iscsi-images/kid', 'iscsi-images/grown'), 'rename');
  ok(rbd('rm', 'iscsi-images/grown'), 'rm');
  assert.equal(rbd('ls', 'iscsi-images').out, 'testvol\n');
  assert.deepEqual(JSON.parse(ok(rbd('pool', 'ls', '--format', 'json'), 'pool ls').out), ['iscsi-images', 'rbd']);
  ok(rbd('pool', 'create', 'empty'), 'pool create');
  ok(rbd('pool', 'rm', 'empty'), 'pool rm');
  assert.match(ok(rbd('check'), 'check').out, /checked 2 pool\(s\), 4 image\(s\): clean\n/);
});

test('bad input: a clear message, rbd errno as exit status, and nothing changed', () => {
  const data = tmpDir('cli-');
  const rbd = (...a: string[]): Result => rbdIn(data, ...a);
  ok(rbd('create', 'rbd/img', '--size', '64'), 'create');
  ok(rbd('snap', 'create', 'rbd/img@s'), 'snap');
  ok(rbd('snap', 'protect', 'rbd/img@s'), 'protect');
  ok(rbd('clone', 'rbd/img@s', 'rbd/kid'), 'clone');
  const before = rbd('info', 'rbd/img', '--format', 'json').out;
  fails(rbd('ls', 'nopool'), 2, /pool 'nopool' does not exist/);
  fails(rbd('info', 'rbd/nope'), 2, /image 'rbd\/nope' does not exist/);
  fails(rbd('info', 'rbd/img@nope'), 2, /snapshot 'nope' of image 'rbd\/img' does not exist/);
  fails(rbd('snap', 'rm', 'rbd/img@s'), 16, /snapshot 's' is protected from removal/);
  fails(rbd('snap', 'unprotect', 'rbd/img@s'), 16, /has 1 child image\(s\): rbd\/kid/);
  fails(rbd('rm', 'rbd/img'), 39, /has snapshots - these must be deleted with 'snap purge'/);
  fails(rbd('resize', 'rbd/img', '--size', '32'), 22, /only allowed with allow-shrink \(--allow-shrink\)/);
  fails(rbd('create', 'rbd/img', '--size', '1'), 17, /image 'rbd\/img' already exists/);
  fails(rbd('create', 'rbd/.dot', '--size', '1'), 22, /image name '\.dot' starts with '\.'/);
  fails(rbd('create', 'rbd/a@b', '--size', '1'), 22, /snapshot name specified for a command that doesn't use it/);
  fails(rbd('create', 'rbd/x', '--size', 'lots'), 22, /invalid size 'lots'/);
  fails(rbd('create', 'rbd/x', '--size', '1', '--image-feature', 'turbo'), 22, /unknown image feature 'turbo'/);
  fails(rbd('create', 'rbd/x', '--size', '1', '--order', '40'), 22, /order must be between 12 and 25/);
  fails(rbd('create', 'rbd/x'), 22, /required option '-s, --size <size>' not specified/);
  fails(rbd('snap', 'create', 'rbd/img'), 22, /snapshot name was not specified/);
  fails(rbd('snap', 'create', 'rbd/img@s'), 17, /already exists/);
  fails(rbd('clone', 'rbd/kid@none', 'rbd/k2'), 2, /snapshot 'none' of image 'rbd\/kid' does not exist/);
  fails(rbd('flatten', 'rbd/img'), 22, /has no parent/);
  fails(rbd('feature', 'enable', 'rbd/img', 'layering'), 22, /already enabled/);
  fails(rbd('feature', 'disable', 'rbd/img', 'exclusive-lock'), 22, /cannot disable 'exclusive-lock': feature 'object-map' depends on it/);
  fails(rbd('snap', 'limit', 'set', 'rbd/img', '--limit', '0'), 122, /below the number of existing snapshots \(1\)/);
  fails(rbd('info', 'rbd/img', '--format', 'yaml'), 22, /invalid --format 'yaml'/);
  fails(rbd('frobnicate'), 22, /unknown command 'frobnicate'/);
  fails(rbd('pool', 'rm', 'rbd'), 39, /pool 'rbd' is not empty/);
  fails(rbd('export', 'rbd/img', '/nonexistent-dir/x.raw'), 5, /cannot create \/nonexistent-dir\/x\.raw/);
  assert.equal(rbd('info', 'rbd/img', '--format', 'json').out, before, 'nothing changed');
  assert.deepEqual(rbd('ls').out, 'img\nkid\n');
  // A damaged pool: check exits non-zero and says what is wrong.
  const names = path.join(data, 'store', 'pools', 'rbd', 'names');
  fs.symlinkSync('0123456789ab', path.join(names, 'ghost'));
  const chk = rbd('check', 'rbd');
  assert.equal(chk.code, 1);
  assert.match(chk.out, /rbd\/ghost: name points to image id 0123456789ab, which does not exist \[repairable with --repair\]/);
  assert.equal(ok(rbd('check', 'rbd', '--repair'), 'repair').code, 0);
  ok(rbd('check'), 'clean after repair');
});

test('a busy image: rm and rollback are refused while another process has it open', async () => {
  const data = tmpDir('cli-');
  const rbd = (...a: string[]): Result => rbdIn(data, ...a);
  ok(rbd('create', 'rbd/img', '--size', '16'), 'create');
  ok(rbd('snap', 'create', 'rbd/img@s'), 'snap');
  const child = new Child('holder', [path.join(data, 'store'), 'rbd/img', 'exclusive']);
  try {
    await child.waitFor(/^ready$/);
    const lock = ok(rbd('lock', 'ls', 'rbd/img'), 'lock ls').out;
    assert.match(lock, new RegExp(`^There is 1 exclusive lock on this image\\.\\nLocker\\s+ID\\s+Address\\nclient\\.${child.proc.pid}\\s+auto \\S+\\s+\\S+:0/${child.proc.pid} \\(holder-exclusive\\)\\n$`));
    assert.match(ok(rbd('status', 'rbd/img'), 'status').out, /^Watchers:\n\twatcher=\S+ client=holder-exclusive cookie=\S+ mode=write-exclusive\n$/);
    fails(rbd('snap', 'rollback', 'rbd/img@s'), 16, /cannot roll back 'rbd\/img' while it is in use: .*exclusively locked by pid/);
    ok(rbd('snap', 'rm', 'rbd/img@s'), 'snap rm works while the image is written (it notifies the writer)');
    fails(rbd('rm', 'rbd/img'), 16, /still has watchers: pid \d+ \(holder-exclusive\) write-exclusive/);
    ok(rbd('resize', 'rbd/img', '--size', '32'), 'online grow');
    assert.equal(await child.waitFor(/^resize /), `resize ${32 * 2 ** 20}`);
  } finally {
    await child.kill();
  }
  ok(rbd('rm', 'rbd/img'), 'rm after the holder died');
});

test('export to stdout and import from stdin through pipes', async () => {
  const data = tmpDir('cli-');
  const rbd = (...a: string[]): Result => rbdIn(data, ...a);
  ok(rbd('create', 'rbd/src', '--size', '8'), 'create');
  const file = path.join(tmpDir(), 'in.raw');
  const content = Buffer.alloc(8 * 2 ** 20);
  for (let i = 0; i < content.length; i += 4096) content.writeUInt32LE(i, i);
  fs.writeFileSync(file, content);
  ok(rbd('import', file, 'rbd/fromfile'), 'import file');
  const exported = spawnSync(process.execPath, [MAIN, 'rbd', '--data', data, 'export', 'rbd/fromfile', '-'], { maxBuffer: 64 << 20 });
  assert.equal(exported.status, 0);
  assert.ok(exported.stdout.equals(content));
  await new Promise<void>((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, 'rbd', '--data', data, 'import', '-', 'rbd/fromstdin'], { stdio: ['pipe', 'inherit', 'inherit'] });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`import - exited ${code}`))));
    p.stdin.end(content);
  });
  const out = path.join(tmpDir(), 'out.raw');
  ok(rbd('export', 'rbd/fromstdin', out), 'export file');
  assert.ok(fs.readFileSync(out).equals(content));
  ok(rbd('copy', 'rbd/fromstdin', 'other/copy'), 'copy into a new pool');
  ok(rbd('export', 'other/copy', out), 'export copy');
  assert.ok(fs.readFileSync(out).equals(content));
});
