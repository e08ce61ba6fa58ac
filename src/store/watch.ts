/**
 * Watch/notify between processes that have the same image open (RBD's watch/notify, on one
 * host). Each process with open images runs one Agent: a unix-socket server plus, per open
 * image, a watcher file (flock held for the process's lifetime, so a dead process's file is
 * recognisably stale). A process changing an image's metadata (snapshot create, resize, ...)
 * holds the image's meta lock, asks every watcher to quiesce (finish and hold writes), commits
 * the new header, asks them to reload it, then releases them. A watcher whose notifier
 * disappears reloads and resumes on its own.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { flock, LOCK_EX, LOCK_UN } from '../sys/native';
import { isErrno, StoreError } from './errors';
import { fsyncDir } from '../sys/durable';
import { WatcherInfo, WatcherSchema } from './header';

export type NotifyOp = 'quiesce' | 'unquiesce' | 'reload' | 'snap-in-use';

export interface WatchHandler {
  quiesce(): Promise<void>;
  /** Reload the header, then let writes continue. */
  unquiesce(): Promise<void>;
  reload(): Promise<void>;
  snapshotInUse(snapId: number): boolean;
}

interface Request {
  seq: number;
  op: NotifyOp;
  image: string;
  snapId?: number;
}

interface Reply {
  seq: number;
  ok: boolean;
  error?: string;
  result?: boolean;
}

export function notifyTimeoutMs(): number {
  const v = Number(process.env.ISCSI_GATEWAY_NOTIFY_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : 10_000;
}

export interface Registration {
  readonly token: string;
  readonly file: string;
  fd: number;
}

/** The per-process, per-store-root notification endpoint. */
export class Agent {
  private static readonly agents = new Map<string, Promise<Agent>>();
  private static readonly sockets = new Set<string>();
  private readonly handlers = new Map<string, WatchHandler>();

  private constructor(
    readonly root: string,
    readonly socketPath: string,
    private readonly server: net.Server,
  ) {}

  static get(root: string): Promise<Agent> {
    let a = Agent.agents.get(root);
    if (!a) {
      a = Agent.start(root);
      Agent.agents.set(root, a);
      a.catch(() => Agent.agents.delete(root));
    }
    return a;
  }

  private static async start(root: string): Promise<Agent> {
    const name = `${process.pid}-${randomBytes(4).toString('hex')}.sock`;
    const runDir = path.join(root, 'run');
    await fsp.mkdir(runDir, { recursive: true });
    // sockaddr_un holds 107 bytes; fall back to the temp dir for deep data directories.
    let socketPath = path.join(runDir, name);
    if (Buffer.byteLength(socketPath) > 100) socketPath = path.join(os.tmpdir(), `igw-${name}`);
    const agentRef: { agent?: Agent } = {};
    const server = net.createServer((sock) => agentRef.agent?.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.unref(); // never keeps a CLI process alive
    if (Agent.sockets.size === 0) process.once('exit', () => Agent.cleanupSync());
    Agent.sockets.add(socketPath);
    const agent = new Agent(root, socketPath, server);
    agentRef.agent = agent;
    return agent;
  }

  /** Stop listening and remove the sockets (images still open stop receiving notifications). */
  static shutdownAll(): void {
    for (const p of Agent.agents.values()) {
      p.then((a) => {
        a.server.close();
        fs.rmSync(a.socketPath, { force: true });
        Agent.sockets.delete(a.socketPath);
      }).catch(() => undefined);
    }
    Agent.agents.clear();
  }

  /** Synchronous socket removal for process exit. */
  static cleanupSync(): void {
    for (const s of Agent.sockets) fs.rmSync(s, { force: true });
    Agent.sockets.clear();
  }

  /** Announce that this process has `imageDir` open. */
  async register(imageDir: string, handler: WatchHandler, info: { client: string; mode: WatcherInfo['mode'] }): Promise<Registration> {
    this.handlers.set(imageDir, handler);
    const dir = path.join(imageDir, 'watchers');
    await fsp.mkdir(dir, { recursive: true });
    const token = `${process.pid}-${randomBytes(6).toString('hex')}`;
    const file = path.join(dir, `${token}.json`);
    const tmp = path.join(dir, `.tmp-${token}`);
    const w: WatcherInfo = {
      pid: process.pid,
      host: os.hostname(),
      client: info.client,
      socket: this.socketPath,
      mode: info.mode,
      since: new Date().toISOString(),
    };
    const fd = fs.openSync(tmp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
    try {
      fs.writeSync(fd, JSON.stringify(w) + '\n');
      // Lock before the file becomes visible: a visible unlocked watcher file means "dead".
      if (!flock(fd, LOCK_EX)) throw new Error('cannot lock a fresh watcher file');
      fs.renameSync(tmp, file);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    await fsyncDir(dir);
    return { token, file, fd };
  }

  unregister(imageDir: string, reg: Registration, keepHandler = false): void {
    if (!keepHandler) this.handlers.delete(imageDir);
    fs.rmSync(reg.file, { force: true });
    if (reg.fd >= 0) {
      flock(reg.fd, LOCK_UN);
      fs.closeSync(reg.fd);
      reg.fd = -1;
    }
  }

  private serve(sock: net.Socket): void {
    sock.setNoDelay(true);
    sock.unref();
    const quiesced = new Map<string, number>();
    const send = (r: Reply): void => {
      if (!sock.destroyed) sock.write(JSON.stringify(r) + '\n');
    };
    const handle = async (req: Request): Promise<void> => {
      const h = this.handlers.get(req.image);
      if (!h) {
        // Not open here (any more): nothing to quiesce or reload.
        send({ seq: req.seq, ok: true, result: false });
        return;
      }
      try {
        switch (req.op) {
          case 'quiesce':
            await h.quiesce();
            quiesced.set(req.image, (quiesced.get(req.image) ?? 0) + 1);
            send({ seq: req.seq, ok: true });
            break;
          case 'unquiesce': {
            const n = quiesced.get(req.image) ?? 0;
            if (n > 0) {
              if (n === 1) quiesced.delete(req.image);
              else quiesced.set(req.image, n - 1);
              await h.unquiesce();
            }
            send({ seq: req.seq, ok: true });
            break;
          }
          case 'reload':
            await h.reload();
            send({ seq: req.seq, ok: true });
            break;
          case 'snap-in-use':
            send({ seq: req.seq, ok: true, result: h.snapshotInUse(req.snapId ?? -1) });
            break;
          default:
            send({ seq: req.seq, ok: false, error: `unknown op ${String(req.op)}` });
        }
      } catch (e) {
        send({ seq: req.seq, ok: false, error: (e as Error).message });
      }
    };
    // Requests on one connection are handled in order.
    let chain = Promise.resolve();
    onMessages<Request>(sock, (req) => {
      chain = chain.then(() => handle(req));
    });
    const release = (): void => {
      // The notifier went away while we were quiesced: reload and resume on our own.
      chain = chain.then(async () => {
        for (const [image, n] of quiesced) {
          const h = this.handlers.get(image);
          for (let i = 0; i < n && h; i++) await h.unquiesce().catch(() => undefined);
        }
        quiesced.clear();
      });
    };
    sock.on('close', release);
    sock.on('error', () => sock.destroy());
  }
}

interface Peer {
  readonly info: WatcherInfo;
  readonly sock: net.Socket;
  readonly pending: Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>;
}

/** Live watchers of an image other than this process's own registrations. */
export async function listWatchers(imageDir: string, exceptTokens: ReadonlySet<string> = new Set()): Promise<Array<{ token: string; info: WatcherInfo }>> {
  const dir = path.join(imageDir, 'watchers');
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return [];
    throw e;
  }
  const out: Array<{ token: string; info: WatcherInfo }> = [];
  for (const n of names) {
    if (!n.endsWith('.json') || n.startsWith('.')) continue;
    const token = n.slice(0, -5);
    if (exceptTokens.has(token)) continue;
    const file = path.join(dir, n);
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) continue;
      throw e;
    }
    try {
      if (flock(fd, LOCK_EX)) {
        // Nobody holds it: the process died. Clean up after it.
        let info: WatcherInfo | undefined;
        try {
          info = WatcherSchema.parse(JSON.parse(fs.readFileSync(fd, 'utf8')));
        } catch {
          info = undefined;
        }
        fs.rmSync(file, { force: true });
        if (info && info.socket.includes(`${path.sep}run${path.sep}`)) fs.rmSync(info.socket, { force: true });
        continue;
      }
      const info = WatcherSchema.parse(JSON.parse(fs.readFileSync(fd, 'utf8')));
      out.push({ token, info });
    } catch (e) {
      if (e instanceof SyntaxError) continue; // being written
      throw e;
    } finally {
      fs.closeSync(fd);
    }
  }
  return out;
}

/** Connections to every other watcher of one image, for one metadata operation. */
export class Notifier {
  private peers: Peer[] = [];
  private seq = 0;

  private constructor(readonly imageDir: string) {}

  static async connect(imageDir: string, exceptTokens: ReadonlySet<string>): Promise<Notifier> {
    const n = new Notifier(imageDir);
    const watchers = await listWatchers(imageDir, exceptTokens);
    try {
      for (const w of watchers) n.peers.push(await connectPeer(w.info));
    } catch (e) {
      n.close();
      throw e;
    }
    return n;
  }

  get count(): number {
    return this.peers.length;
  }

  /** Send `op` to every watcher and wait for all answers. */
  async request(op: NotifyOp, extra: { snapId?: number } = {}, timeoutMs = notifyTimeoutMs()): Promise<Reply[]> {
    return Promise.all(this.peers.map((p) => this.ask(p, op, extra, timeoutMs)));
  }

  private ask(p: Peer, op: NotifyOp, extra: { snapId?: number }, timeoutMs: number): Promise<Reply> {
    const seq = ++this.seq;
    const req: Request = { seq, op, image: this.imageDir, ...extra };
    return new Promise<Reply>((resolve, reject) => {
      const who = `pid ${p.info.pid}${p.info.client ? ` (${p.info.client})` : ''}`;
      const timer = setTimeout(() => {
        p.pending.delete(seq);
        reject(new StoreError(`watcher ${who} did not answer '${op}' within ${timeoutMs} ms`, 'busy'));
      }, timeoutMs);
      p.pending.set(seq, {
        resolve: (r) => {
          clearTimeout(timer);
          if (r.ok) resolve(r);
          else reject(new StoreError(`watcher ${who} failed '${op}': ${r.error ?? 'unknown error'}`, 'busy'));
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(new StoreError(`watcher ${who} went away during '${op}': ${e.message}`, 'busy'));
        },
      });
      p.sock.write(JSON.stringify(req) + '\n');
    });
  }

  close(): void {
    for (const p of this.peers) p.sock.end();
    this.peers = [];
  }
}

function connectPeer(info: WatcherInfo): Promise<Peer> {
  return new Promise<Peer>((resolve, reject) => {
    const sock = net.createConnection(info.socket);
    const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
    const peer: Peer = { info, sock, pending };
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new StoreError(`cannot reach watcher pid ${info.pid} at ${info.socket}: timed out`, 'busy'));
    }, notifyTimeoutMs());
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.setNoDelay(true);
      resolve(peer);
    });
    onMessages<Reply>(sock, (r) => {
      pending.get(r.seq)?.resolve(r);
      pending.delete(r.seq);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      for (const w of pending.values()) w.reject(e);
      pending.clear();
      reject(new StoreError(`cannot reach watcher pid ${info.pid} at ${info.socket}: ${e.message}`, 'busy'));
    });
    sock.on('close', () => {
      for (const w of pending.values()) w.reject(new Error('connection closed'));
      pending.clear();
    });
  });
}

/**
 * Newline-delimited JSON messages from a socket, in order. A line that is not JSON, or a
 * message the handler cannot take, ends the connection.
 */
function onMessages<T>(sock: net.Socket, fn: (msg: T) => void): void {
  let buf = '';
  sock.on('data', (chunk) => {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        fn(JSON.parse(line) as T);
      } catch {
        sock.destroy();
        return;
      }
    }
  });
}
