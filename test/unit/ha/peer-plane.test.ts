/**
 * The data dir's peer plane keeps the layout and behaviour the gateways of one host relied on
 * before the plane existed (status/<gw>.json, live/<gw>.json, ha/inbox/<gw>/*.json; readers of
 * the old functions and of the plane see the same), and every implementation's bounds hold:
 * document size, message size, queue length, stale and malformed messages dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DOWN_AFTER_MS, StatusDocument, peerLiveness, readPeerStatuses, readStatuses, statusFile, writeStatus } from '../../../src/daemon/status';
import { HaMessage, MAX_MESSAGE_AGE_MS, clearInbox, inboxDir, sendMessage, takeMessages } from '../../../src/ha/inbox';
import {
  FilePeerPlane,
  MAX_DOCUMENT_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_QUEUED_MESSAGES,
  PeerPlaneError,
  encodeDocument,
  encodeMessage,
} from '../../../src/ha/peer-plane';
import { liveFile, readLive } from '../../../src/web/live';
import { tempDir } from '../../helpers/daemon';

function statusDoc(name: string, over: Partial<StatusDocument> = {}): StatusDocument {
  return {
    name, pid: 4242, host: 'h1', heartbeat: Date.now(), stopped: false, appliedEpoch: 7, portals: ['127.0.0.1:3260'],
    sessions: [{ gateway: name, target: 'iqn.2003-01.org.example:t', initiator: 'iqn.1994-05.com.redhat:a', isid: '023d00000001', tsih: 1, disks: ['rbd/a'] }],
    activeDisks: ['rbd/a'], servedDisks: ['rbd/a'], draining: false, ...over,
  };
}

test('status documents: the plane writes status/<gw>.json as before, and both readers see the same', async () => {
  const dir = tempDir('igw-plane-');
  const plane = new FilePeerPlane(dir);
  await plane.publish('status', 'gw1', statusDoc('gw1'));
  await writeStatus(dir, statusDoc('gw2', { heartbeat: Date.now() - DOWN_AFTER_MS - 1 }));
  await writeStatus(dir, statusDoc('gw/3', { stopped: true }));
  // The file names are the ones of the old status.ts (an odd name cannot leave the directory).
  assert.ok(fs.existsSync(path.join(dir, 'status', 'gw1.json')));
  assert.ok(fs.existsSync(statusFile(dir, 'gw2')));
  assert.equal(statusFile(dir, 'gw/3'), path.join(dir, 'status', 'gw%2F3.json'));
  assert.ok(fs.existsSync(statusFile(dir, 'gw/3')));
  // Half-written temporaries and junk are skipped.
  fs.writeFileSync(path.join(dir, 'status', '.tmp-x.json'), '{"name":"tmp","heartbeat":1}');
  fs.writeFileSync(path.join(dir, 'status', 'junk.json'), '{not json');

  const byName = <T extends { name: string }>(l: T[]): T[] => [...l].sort((a, b) => a.name.localeCompare(b.name));
  const viaDir = byName(await readStatuses(dir));
  const viaPlane = byName(await readPeerStatuses(plane));
  assert.deepEqual(viaDir, viaPlane);
  assert.deepEqual(viaDir.map((g) => [g.name, g.up]), [['gw/3', false], ['gw1', true], ['gw2', false]]);
  assert.equal(viaDir[1].sessions[0].initiator, 'iqn.1994-05.com.redhat:a');
  assert.equal(viaDir[1].appliedEpoch, 7);

  const live = peerLiveness(plane, 0);
  assert.equal(await live('gw1'), 'up');
  assert.equal(await live('gw2'), 'down');
  assert.equal(await live('gw/3'), 'down');
  assert.equal(await live('nobody'), 'unknown');
});

test('live documents: live/<gw>.json as before, withdrawn at stop', async () => {
  const dir = tempDir('igw-plane-');
  const plane = new FilePeerPlane(dir);
  const doc = { name: 'gw1', pid: 1, at: Date.now(), bounds: [0.001], luns: [], sessions: [], login_failures: {} };
  await plane.publish('live', 'gw1', doc);
  assert.deepEqual(JSON.parse(fs.readFileSync(liveFile(dir, 'gw1'), 'utf8')), doc);
  assert.deepEqual(await readLive(dir), [doc]);
  assert.deepEqual(await readLive(plane), [doc]);
  await plane.withdraw('live', 'gw1');
  assert.deepEqual(await readLive(dir), []);
});

test('messages: one file each in ha/inbox/<gw>/, oldest first, taken once; old and new functions interoperate', async () => {
  const dir = tempDir('igw-plane-');
  const plane = new FilePeerPlane(dir);
  const t = Date.now();
  await plane.send('gw2', { kind: 'drain', from: 'gw1', at: t });
  await sendMessage(dir, 'gw2', { kind: 'take', disk: 'rbd/a', from: 'gw1', at: t + 1 });
  await plane.send('gw2', { kind: 'handover', key: 'image:rbd/a', from: 'gw3', at: t + 2, reason: 'implicit' });
  assert.equal(fs.readdirSync(inboxDir(dir, 'gw2')).filter((n) => n.endsWith('.json')).length, 3);
  const got = await plane.take('gw2');
  assert.deepEqual(got.map((m) => m.kind), ['drain', 'take', 'handover']);
  assert.deepEqual(await takeMessages(dir, 'gw2'), []);

  // Stale and malformed messages are dropped unread.
  await sendMessage(dir, 'gw2', { kind: 'resume', from: 'gw1', at: Date.now() - MAX_MESSAGE_AGE_MS - 1 });
  fs.writeFileSync(path.join(inboxDir(dir, 'gw2'), '000000000000001-bad.json'), '{"kind":"take","from":"gw1","at":1}');
  fs.writeFileSync(path.join(inboxDir(dir, 'gw2'), '000000000000002-bad.json'), 'not json');
  await plane.send('gw2', { kind: 'resume', from: 'gw1', at: Date.now() });
  assert.deepEqual((await plane.take('gw2')).map((m) => m.kind), ['resume']);

  await plane.send('gw2', { kind: 'drain', from: 'gw1', at: Date.now() });
  await plane.clear('gw2');
  assert.deepEqual(await plane.take('gw2'), []);
  await clearInbox(dir, 'gw2');
});

test('bounds: message size, queue length, document size', async () => {
  const dir = tempDir('igw-plane-');
  const plane = new FilePeerPlane(dir);
  const big: HaMessage = { kind: 'take', disk: 'x'.repeat(MAX_MESSAGE_BYTES), from: 'gw1', at: Date.now() };
  assert.throws(() => encodeMessage('gw2', big), (e: unknown) => e instanceof PeerPlaneError && e.reason === 'too-large' && /at most 4096/.test(e.message));
  await assert.rejects(plane.send('gw2', big), (e: unknown) => e instanceof PeerPlaneError && e.reason === 'too-large');

  for (let i = 0; i < MAX_QUEUED_MESSAGES; i++) await plane.send('gw2', { kind: 'resume', from: 'gw1', at: Date.now() });
  await assert.rejects(plane.send('gw2', { kind: 'drain', from: 'gw1', at: Date.now() }),
    (e: unknown) => e instanceof PeerPlaneError && e.reason === 'full' && /inbox of gateway gw2 is full \(256/.test(e.message));
  assert.equal((await plane.take('gw2')).length, MAX_QUEUED_MESSAGES);
  await plane.send('gw2', { kind: 'drain', from: 'gw1', at: Date.now() });

  const huge = statusDoc('gw1', { error: 'e'.repeat(MAX_DOCUMENT_BYTES.status) });
  assert.throws(() => encodeDocument('status', 'gw1', huge), PeerPlaneError);
  await assert.rejects(plane.publish('status', 'gw1', huge), /status document of gateway gw1 is \d+ bytes \(at most 1048576\)/);
  assert.equal(fs.existsSync(statusFile(dir, 'gw1')), false);
  // An oversized file someone else wrote is skipped by readers, not parsed.
  fs.mkdirSync(path.join(dir, 'status'), { recursive: true });
  fs.writeFileSync(statusFile(dir, 'gw9'), JSON.stringify(huge));
  await plane.publish('status', 'gw1', statusDoc('gw1'));
  assert.deepEqual((await readPeerStatuses(plane)).map((g) => g.name), ['gw1']);
});
