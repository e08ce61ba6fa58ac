/**
 * Messages between the gateway processes of one data dir: a directory per gateway
 * (ha/inbox/<gateway>/), one small JSON file per message, read and removed by the addressee's
 * heartbeat. Used for lock hand-over requests, "take this disk" (drain) and drain/resume
 * orders from the REST API of any gateway. A message to a gateway that is down waits until it
 * starts and is dropped then as stale (older than MAX_MESSAGE_AGE_MS).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export type HaMessage =
  /** Please hand the lock of `key` over (requester waits for the lease to become free). */
  | { readonly kind: 'handover'; readonly key: string; readonly from: string; readonly at: number; readonly reason?: 'implicit' | 'explicit' | 'config' }
  /** Please take disk `disk` (the sender is draining and hands it to you). */
  | { readonly kind: 'take'; readonly disk: string; readonly from: string; readonly at: number }
  /** Drain this gateway (hand every disk to another gateway) / take disks again. */
  | { readonly kind: 'drain' | 'resume'; readonly from: string; readonly at: number };

/** Messages older than this are dropped unread (the sender has given up waiting). */
export const MAX_MESSAGE_AGE_MS = 60_000;

export function haDir(dataDir: string): string {
  return path.join(dataDir, 'ha');
}

/** A name safe as one path component (gateway names and disk keys). */
export function fileKey(name: string): string {
  return encodeURIComponent(name).replace(/\./g, '%2E');
}

export function inboxDir(dataDir: string, gateway: string): string {
  return path.join(haDir(dataDir), 'inbox', fileKey(gateway));
}

export async function sendMessage(dataDir: string, to: string, msg: HaMessage): Promise<void> {
  const dir = inboxDir(dataDir, to);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const name = `${Date.now().toString().padStart(15, '0')}-${randomBytes(4).toString('hex')}.json`;
  const tmp = path.join(dir, `.tmp-${name}`);
  await fsp.writeFile(tmp, JSON.stringify(msg), { mode: 0o600 });
  await fsp.rename(tmp, path.join(dir, name));
}

/** A well-formed message (anything read from another gateway is checked before use). */
export function validMessage(m: unknown): m is HaMessage {
  if (typeof m !== 'object' || m === null) return false;
  const o = m as Record<string, unknown>;
  if (typeof o.from !== 'string' || typeof o.at !== 'number') return false;
  switch (o.kind) {
    case 'handover': return typeof o.key === 'string';
    case 'take': return typeof o.disk === 'string';
    case 'drain': case 'resume': return true;
    default: return false;
  }
}

/** Read and remove the messages waiting for `gateway`, oldest first (stale and malformed ones dropped). */
export async function takeMessages(dataDir: string, gateway: string, now = Date.now()): Promise<HaMessage[]> {
  const dir = inboxDir(dataDir, gateway);
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.tmp-')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: HaMessage[] = [];
  for (const n of names) {
    const file = path.join(dir, n);
    let m: unknown;
    try {
      m = JSON.parse(await fsp.readFile(file, 'utf8'));
    } catch {
      m = undefined;
    }
    await fsp.rm(file, { force: true });
    if (validMessage(m) && now - m.at < MAX_MESSAGE_AGE_MS) out.push(m);
  }
  return out;
}

/** Drop everything waiting (a gateway that starts again answers only what comes after). */
export async function clearInbox(dataDir: string, gateway: string): Promise<void> {
  await fsp.rm(inboxDir(dataDir, gateway), { recursive: true, force: true });
}

/**
 * Call `listener` as soon as a message may have arrived for `gateway` (inotify on its inbox
 * directory), so a hand-over request is answered in a millisecond instead of at the next poll;
 * the poll stays as the fallback. Returns the unsubscriber.
 */
export function watchInbox(dataDir: string, gateway: string, listener: () => void): () => void {
  const dir = inboxDir(dataDir, gateway);
  let watcher: fs.FSWatcher | undefined;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
      if (!name || (name.endsWith('.json') && !name.startsWith('.tmp-'))) listener();
    });
    // A watcher error (the directory removed under it) leaves the poll to do the work.
    watcher.on('error', () => watcher?.close());
  } catch {
    watcher = undefined;
  }
  return () => watcher?.close();
}
