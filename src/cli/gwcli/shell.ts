/**
 * The configshell-style shell: current node and path history, built-in commands (ls, cd, pwd,
 * help, info, exit, bookmarks, goto), argument binding (positional and key=value), TAB completion,
 * and running one line. The same Shell serves the interactive loop, batch mode and scripts.
 */
import pc from 'picocolors';
import type { ApiClient } from './api-client';
import { ApiUnreachableError } from './api-client';
import { Args, CliError, Command, CommandContext, Output, Param, Summary, UINode, didYouMean } from './node';
import { Model } from './model';
import { Prefs } from './prefs';
import { Root } from './nodes/root';
import { Disk, renderInfo } from './nodes/disk';
import { Target } from './nodes/target';

export const PROMPT_LENGTH = 30;
/** A command runs on the tree loaded within this time (after the previous command) without reloading it. */
const FRESH_MS = 2000;
const BUILTINS = ['bookmarks', 'cd', 'exit', 'goto', 'help', 'info', 'ls', 'pwd'] as const;

type Colors = ReturnType<typeof pc.createColors>;

/** configshell's prompt shortening: long paths keep 13 characters at each end. */
export function shortPath(path: string, max = PROMPT_LENGTH): string {
  if (path.length <= max) return path;
  const half = Math.floor(max / 2) - 2;
  return `${path.slice(0, half)}...${path.slice(-half)}`;
}

/** Words of a line: whitespace-separated, '…' and "…" quote. */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** Positional words fill the parameters in order; key=value names one. */
export function bindArgs(cmd: Pick<Command, 'name' | 'params'>, words: readonly string[]): Args {
  const named: Record<string, string> = {};
  const names = cmd.params.map((p) => p.name);
  const positional: string[] = [];
  for (const w of words) {
    const m = /^([A-Za-z_][\w]*)=(.*)$/s.exec(w);
    if (m && names.includes(m[1])) named[m[1]] = m[2];
    else if (m && !w.includes('/') && !w.startsWith('iqn.')) throw new CliError(`'${m[1]}' is not a parameter of '${cmd.name}'.${didYouMean(m[1], names)} Parameters: ${names.join(', ') || '(none)'}`, 'usage');
    else positional.push(w);
  }
  for (const w of positional) {
    const p = cmd.params.find((x) => named[x.name] === undefined);
    if (!p) throw new CliError(`too many arguments for '${cmd.name}' ('${w}'): usage: ${usage(cmd)}`, 'usage');
    named[p.name] = w;
  }
  return { named };
}

export function usage(cmd: Pick<Command, 'name' | 'params'>): string {
  return [cmd.name, ...cmd.params.map((p) => (p.optional ? `[${p.name}]` : `<${p.name}>`))].join(' ');
}

export interface ShellOptions {
  readonly api: ApiClient;
  readonly clusterName: string;
  readonly json?: boolean;
  readonly color?: boolean;
  readonly prefs?: Prefs;
  readonly write?: (s: string) => void;
  readonly writeErr?: (s: string) => void;
  readonly width?: number;
}

export class Shell {
  readonly model: Model;
  root!: UINode;
  current!: UINode;
  private currentPath = '/';
  private readonly cdHistory: string[] = ['/'];
  private cdIndex = 0;
  readonly prefs: Prefs;
  readonly c: Colors;
  exitRequested = false;
  private loadedAt = 0;
  private readonly write: (s: string) => void;
  private readonly writeErr: (s: string) => void;

  constructor(readonly opts: ShellOptions) {
    this.model = new Model(opts.api, opts.clusterName);
    this.prefs = opts.prefs ?? new Prefs();
    this.c = pc.createColors(opts.color ?? false);
    this.write = opts.write ?? ((s) => process.stdout.write(s));
    this.writeErr = opts.writeErr ?? ((s) => process.stderr.write(s));
  }

  /** Reload the model and rebuild the tree; keeps the current path (or its nearest ancestor). */
  async refresh(): Promise<void> {
    await this.model.load();
    this.loadedAt = Date.now();
    this.root = new Root(this.model);
    let path = this.currentPath;
    let node: UINode | undefined;
    for (;;) {
      node = this.lookup(this.root, path);
      if (node || path === '/') break;
      path = path.slice(0, path.lastIndexOf('/')) || '/';
    }
    this.current = node ?? this.root;
    this.currentPath = this.current.path;
    this.autoBookmarks();
  }

  /** ceph-iscsi's automatic bookmarks for the last target: gateways, hosts, host-groups. */
  private autoBookmarks(): void {
    const targets = this.root.child('iscsi-targets')?.children() ?? [];
    const last = targets[targets.length - 1];
    if (!last) return;
    for (const n of ['gateways', 'hosts', 'host-groups']) if (this.prefs.bookmarks[n] === undefined) this.prefs.bookmarks[n] = `${last.path}/${n}`;
  }

  prompt(): string {
    return `${shortPath(this.current.path)}> `;
  }

  /** Resolve a path (absolute, relative, '..', '.', '@bookmark') from a node; undefined if none. */
  lookup(from: UINode, path: string): UINode | undefined {
    let node: UINode | undefined = path.startsWith('/') ? from.root() : from;
    if (path.startsWith('@')) {
      const b = this.prefs.bookmarks[path.slice(1)];
      return b === undefined ? undefined : this.lookup(from.root(), b);
    }
    const segs = path.split('/').filter((s) => s.length > 0);
    for (let i = 0; i < segs.length && node; i++) {
      const s = segs[i];
      if (s === '.') continue;
      if (s === '..') {
        node = node.parent ?? node;
        continue;
      }
      const direct: UINode | undefined = node.child(s) ?? node.child(s.toLowerCase());
      if (direct) {
        node = direct;
      } else if (i + 1 < segs.length && node.child(`${s}/${segs[i + 1]}`)) {
        // Target disk nodes are named "<pool>/<image>", as in ceph-iscsi.
        node = node.child(`${s}/${segs[i + 1]}`);
        i++;
      } else {
        return undefined;
      }
    }
    return node;
  }

  private resolve(path: string): UINode {
    const n = this.lookup(this.current, path);
    if (n) return n;
    if (path.startsWith('@')) throw new CliError(`No bookmark ${path.slice(1)}.${didYouMean(path.slice(1), Object.keys(this.prefs.bookmarks))} Bookmarks: ${Object.keys(this.prefs.bookmarks).join(', ') || '(none)'}`, 'usage');
    // Name the deepest part that exists and what is there.
    const abs = path.startsWith('/') ? path : `${this.current.path === '/' ? '' : this.current.path}/${path}`;
    const segs = abs.split('/').filter((s) => s);
    let node: UINode = this.root;
    for (const s of segs) {
      const next = s === '..' ? node.parent ?? node : s === '.' ? node : this.lookup(node, s);
      if (!next) {
        const names = node.children().map((c) => c.name);
        throw new CliError(`No such path ${path}: '${s}' is not under ${node.path}.${didYouMean(s, names)}${names.length ? ` Children: ${names.join(', ')}` : ' It has no children.'}`, 'usage');
      }
      node = next;
    }
    return node;
  }

  commandsOf(node: UINode): Command[] {
    return node.commands();
  }

  private out(): Output {
    return {
      line: (t) => this.write(`${t}\n`),
      data: (v, render) => this.write(this.opts.json ? `${JSON.stringify(v, null, 2)}\n` : render().map((l) => `${l}\n`).join('')),
      ok: (t) => {
        if (!this.opts.json) this.write(`${this.c.green(t ?? 'ok')}\n`);
      },
      warn: (t) => this.writeErr(`${this.c.yellow(t)}\n`),
    };
  }

  private context(node: UINode): CommandContext {
    return {
      api: this.opts.api,
      model: this.model,
      out: this.out(),
      node,
      cd: (p) => {
        this.pendingCd = p;
      },
    };
  }
  private pendingCd?: string;

  /** Run one line. Throws CliError (usage, refused) or ApiUnreachableError. */
  async run(line: string): Promise<void> {
    const words = tokenize(line.trim());
    if (words.length === 0 || words[0].startsWith('#')) return;
    let node = this.current;
    // configshell accepts "<path> <command> …" too (batch mode uses it).
    if (words.length > 1 && (words[0].startsWith('/') || words[0].startsWith('.') || words[0].startsWith('@')) && words[0] !== '.' ) {
      node = this.resolve(words.shift()!);
    } else if (words.length === 1 && (words[0].startsWith('/') || words[0].startsWith('@'))) {
      words.unshift('cd');
    }
    const [name, ...rest] = words;
    const cmds = this.commandsOf(node);
    const cmd = cmds.find((c) => c.name === name);
    if (cmd) {
      // The model is at most a moment old (it is reloaded after every command); reload only when stale.
      if (Date.now() - this.loadedAt > FRESH_MS) await this.refresh();
      node = this.lookup(this.root, node.path) ?? this.root;
      const fresh = node.commands().find((c) => c.name === name) ?? cmd;
      const args = bindArgs(fresh, rest);
      this.pendingCd = undefined;
      await fresh.run(this.context(node), args);
      await this.refresh();
      if (this.pendingCd) this.cd(this.pendingCd);
      return;
    }
    if ((BUILTINS as readonly string[]).includes(name)) return this.builtin(node, name, rest);
    // configshell: a path alone changes to it.
    if (rest.length === 0 && this.lookup(node, name)) return this.builtin(node, 'cd', [name]);
    const all = [...new Set([...BUILTINS, ...cmds.map((c) => c.name)])];
    throw new CliError(`Command not found ${name} at ${node.path}.${didYouMean(name, all)} Commands here: ${all.sort().join(', ')}`, 'usage');
  }

  private cd(path: string): void {
    const n = this.resolve(path);
    this.current = n;
    this.currentPath = n.path;
    this.cdHistory.splice(this.cdIndex + 1);
    this.cdHistory.push(n.path);
    this.cdIndex = this.cdHistory.length - 1;
  }

  private async builtin(node: UINode, name: string, words: string[]): Promise<void> {
    const o = this.out();
    switch (name) {
      case 'cd': {
        const a = bindArgs({ name, params: [{ name: 'path', optional: true }] }, words);
        const p = a.named.path ?? '/';
        if (p === '<' || p === '>') {
          const i = this.cdIndex + (p === '<' ? -1 : 1);
          if (i < 0 || i >= this.cdHistory.length) throw new CliError(`No ${p === '<' ? 'previous' : 'next'} path in the cd history`, 'usage');
          const n = this.lookup(this.root, this.cdHistory[i]);
          if (!n) throw new CliError(`${this.cdHistory[i]} no longer exists`, 'usage');
          this.cdIndex = i;
          this.current = n;
          this.currentPath = n.path;
          return;
        }
        const target = this.lookup(node, p) ?? this.resolveFrom(node, p);
        this.current = node;
        this.cd(target.path);
        return;
      }
      case 'pwd':
        o.line(node.path);
        return;
      case 'ls': {
        const a = bindArgs({ name, params: [{ name: 'path', optional: true }, { name: 'depth', optional: true }] }, words);
        let depth = Infinity;
        if (a.named.depth !== undefined) {
          if (!/^\d+$/.test(a.named.depth)) throw new CliError(`depth must be a number (0 = unlimited), not '${a.named.depth}'`, 'usage');
          depth = Number(a.named.depth) || Infinity;
        }
        if (Date.now() - this.loadedAt > FRESH_MS) await this.refresh();
        const n = a.named.path ? this.resolveFrom(this.lookup(this.root, node.path) ?? this.root, a.named.path) : this.lookup(this.root, node.path) ?? this.root;
        o.data(this.treeJson(n, depth), () => this.tree(n, depth));
        return;
      }
      case 'info': {
        if (Date.now() - this.loadedAt > FRESH_MS) await this.refresh();
        const n = this.lookup(this.root, node.path) ?? this.root;
        if (n instanceof Disk) return n.printInfo(this.context(n));
        const info = n.info();
        if (!info) throw new CliError(`${n.path} has no info. Nodes with info: disks, targets, gateways, hosts, LUNs (see help)`, 'usage');
        o.data(info, () => renderInfo(info));
        return;
      }
      case 'help':
        return this.help(node, words[0]);
      case 'exit':
        this.exitRequested = true;
        return;
      case 'goto': {
        const b = words[0] ?? '/';
        if (b === '/') return this.cd('/');
        if (this.prefs.bookmarks[b] === undefined) throw new CliError(`No bookmark ${b}.${didYouMean(b, Object.keys(this.prefs.bookmarks))} Bookmarks: ${Object.keys(this.prefs.bookmarks).sort().join(', ') || '(none)'}`, 'usage');
        return this.cd(this.prefs.bookmarks[b]);
      }
      case 'bookmarks':
        return this.bookmarks(node, words);
    }
  }

  private resolveFrom(node: UINode, path: string): UINode {
    const saved = this.current;
    this.current = node;
    try {
      return this.resolve(path);
    } finally {
      this.current = saved;
    }
  }

  private bookmarks(node: UINode, words: string[]): void {
    const a = bindArgs({ name: 'bookmarks', params: [{ name: 'action' }, { name: 'bookmark', optional: true }] }, words);
    const action = a.named.action ?? 'show';
    const b = a.named.bookmark;
    const bm = this.prefs.bookmarks;
    const o = this.out();
    if (action === 'show') {
      o.data(bm, () => (Object.keys(bm).length ? Object.keys(bm).sort().map((k) => `${k} -> ${bm[k]}`) : ['(no bookmarks)']));
      return;
    }
    if (!['add', 'del', 'go'].includes(action)) throw new CliError(`bookmarks action must be add, del, go or show, not '${action}'.${didYouMean(action, ['add', 'del', 'go', 'show'])}`, 'usage');
    if (!b) throw new CliError(`missing bookmark name: bookmarks ${action} <name>`, 'usage');
    if (action === 'add') {
      if (!/^[\w.-]+$/.test(b)) throw new CliError(`bookmark name '${b}' is invalid: use letters, digits, '.', '_', '-'`, 'usage');
      bm[b] = node.path;
      this.prefs.save();
      o.line(`Bookmarked ${node.path} as ${b}.`);
      return;
    }
    if (bm[b] === undefined) throw new CliError(`No bookmark ${b}.${didYouMean(b, Object.keys(bm))} Bookmarks: ${Object.keys(bm).sort().join(', ') || '(none)'}`, 'usage');
    if (action === 'del') {
      delete bm[b];
      this.prefs.save();
      o.line(`Deleted bookmark ${b}.`);
      return;
    }
    this.cd(bm[b]);
  }

  private help(node: UINode, topic: string | undefined): void {
    const cmds = this.commandsOf(node);
    const builtinHelp: Record<string, string> = {
      bookmarks: 'bookmarks add|del|go|show [name]: named paths, kept across runs; cd @name goes there too.',
      cd: 'cd [path]: change node: absolute, relative, .., /, @bookmark, < (back) and > (forward).',
      exit: 'exit: leave the shell.',
      goto: 'goto <bookmark>: go to a bookmarked path (gateways, hosts, host-groups are set for the last target).',
      help: 'help [command]: commands of this node, or one command in detail.',
      info: 'info: details of this node.',
      ls: 'ls [path] [depth]: the tree below a node with each node\'s summary (--json in batch mode).',
      pwd: 'pwd: print the current path.',
    };
    const o = this.out();
    if (topic) {
      const c = cmds.find((x) => x.name === topic);
      if (c) {
        o.line(`SYNTAX: ${usage(c)}`);
        o.line(c.help);
        for (const p of c.params) o.line(`  ${p.name}${p.optional ? ' (optional)' : ''}`);
        return;
      }
      if (builtinHelp[topic]) return o.line(builtinHelp[topic]);
      throw new CliError(`No help for '${topic}' at ${node.path}.${didYouMean(topic, [...cmds.map((x) => x.name), ...BUILTINS])}`, 'usage');
    }
    o.line(`${node.kind} ${node.path}`);
    if (cmds.length) {
      o.line('Commands of this node:');
      for (const c of cmds) o.line(`  ${usage(c)}`);
    }
    o.line(`Shell commands: ${BUILTINS.join(', ')}. help <command> for details.`);
  }

  private colour(s: Summary): string {
    const t = `[${s.text}]`;
    return s.state === 'ok' ? this.c.green(t) : s.state === 'bad' ? this.c.red(t) : s.state === 'warn' ? this.c.yellow(t) : t;
  }

  /** configshell's `ls`: "o- name ..... [summary]", two spaces per level. */
  tree(node: UINode, depth: number): string[] {
    const width = Math.max(this.opts.width ?? 80, 60);
    const out: string[] = [];
    const walk = (n: UINode, level: number): void => {
      const s = n.summary();
      const head = `${'  '.repeat(level)}o- ${n.name} `;
      const tail = ` [${s.text}]`;
      const dots = Math.max(1, width - head.length - tail.length);
      out.push(`${head}${this.c.dim('.'.repeat(dots))} ${this.colour(s)}`);
      if (level < depth) for (const c of n.children()) walk(c, level + 1);
    };
    walk(node, 0);
    return out;
  }

  treeJson(node: UINode, depth: number, level = 0): Record<string, unknown> {
    const s = node.summary();
    return {
      name: node.name,
      path: node.path,
      summary: s.text,
      state: s.state,
      children: level < depth ? node.children().map((c) => this.treeJson(c, depth, level + 1)) : [],
    };
  }

  /** node:readline completer: commands, paths, parameter names and values. */
  complete(line: string): [string[], string] {
    try {
      return this.completeUnsafe(line);
    } catch {
      return [[], line];
    }
  }

  private completeUnsafe(line: string): [string[], string] {
    const endsWithSpace = /\s$/.test(line) || line === '';
    const words = tokenize(line);
    const current = endsWithSpace ? '' : words.pop() ?? '';
    let node = this.current;
    if (words.length > 0 && /^[/.@]/.test(words[0]) && words[0] !== '.') {
      const n = this.lookup(this.current, words[0]);
      if (n) {
        node = n;
        words.shift();
      }
    }
    const cmds = this.commandsOf(node);
    const match = (cands: readonly string[]): [string[], string] => {
      const hits = [...new Set(cands)].filter((c) => c.startsWith(current)).sort();
      return [hits, current];
    };
    if (words.length === 0) {
      if (/^[/.@]/.test(current)) return this.completePath(node, current);
      return match([...BUILTINS, ...cmds.map((c) => c.name)].map((c) => c));
    }
    const name = words[0];
    if (name === 'cd' || name === 'ls') {
      if (words.length === 1) return this.completePath(node, current);
      return [[], current];
    }
    if (name === 'goto' || (name === 'bookmarks' && words.length === 2)) return match(Object.keys(this.prefs.bookmarks));
    if (name === 'bookmarks') return match(['add', 'del', 'go', 'show']);
    if (name === 'help') return match([...BUILTINS, ...cmds.map((c) => c.name)]);
    const cmd = cmds.find((c) => c.name === name);
    if (!cmd) return [[], current];
    let given: Args = { named: {} };
    try {
      given = bindArgs(cmd, words.slice(1));
    } catch {
      // partial input: complete what we can
    }
    const ctx = this.context(node);
    const eq = /^(\w+)=(.*)$/.exec(current);
    if (eq) {
      const p = cmd.params.find((x) => x.name === eq[1]);
      const vals = p?.values ? p.values(ctx, given) : [];
      return match(vals.map((v) => `${eq[1]}=${v}`));
    }
    const next: Param | undefined = cmd.params.find((p) => given.named[p.name] === undefined);
    const vals = next?.values ? [...next.values(ctx, given)] : [];
    const keys = cmd.params.filter((p) => given.named[p.name] === undefined).map((p) => `${p.name}=`);
    return match([...vals, ...(current.length > 0 || vals.length === 0 ? keys : [])]);
  }

  private completePath(node: UINode, current: string): [string[], string] {
    const slash = current.lastIndexOf('/');
    const dir = slash >= 0 ? current.slice(0, slash + 1) : '';
    const base = dir === '' ? node : this.lookup(node, dir);
    if (!base) return [[], current];
    const rest = current.slice(dir.length);
    const names = base.children().map((c) => `${dir}${c.name}${c.children().length ? '/' : ''}`);
    if ('..'.startsWith(rest) && dir === '' && base.parent) names.push('../');
    return [names.filter((n) => n.startsWith(current)).sort(), current];
  }
}

export { ApiUnreachableError, Target };
