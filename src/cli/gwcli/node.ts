/**
 * The gwcli node tree (configshell's UINode): every node has a name, children, a one-line
 * summary for `ls`, optional `info` attributes and its own commands. Nodes are rebuilt from the
 * model after every refresh, so they hold no state of their own.
 */
import { humanSize as formatSize } from '../../util/format';
import type { ApiClient } from './api-client';
import type { Model } from './model';

export type SummaryState = 'ok' | 'bad' | 'warn' | 'none';

export interface Summary {
  readonly text: string;
  readonly state: SummaryState;
}

/** A command's parameter: its name (for key=value), and values TAB completion offers. */
export interface Param {
  readonly name: string;
  readonly optional?: boolean;
  /** A trailing parameter that takes all remaining positional words. */
  readonly rest?: boolean;
  readonly values?: (ctx: CommandContext, given: Args) => readonly string[];
}

export interface Args {
  readonly named: Readonly<Record<string, string>>;
}

export interface Command {
  readonly name: string;
  readonly params: readonly Param[];
  readonly help: string;
  run(ctx: CommandContext, args: Args): Promise<void>;
}

/** Errors a user can fix: the exit status tells which kind. */
export type ErrorKind = 'usage' | 'refused' | 'unreachable';

export class CliError extends Error {
  constructor(
    message: string,
    readonly kind: ErrorKind = 'refused',
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export interface Output {
  line(text: string): void;
  /** Structured output (info, export, ls with --json); printed as JSON or rendered. */
  data(value: unknown, render: () => string[]): void;
  ok(text?: string): void;
  warn(text: string): void;
}

export interface CommandContext {
  readonly api: ApiClient;
  readonly model: Model;
  readonly out: Output;
  readonly node: UINode;
  /** Changes the shell's current node (create commands `cd` into what they made). */
  cd(path: string): void;
}

export abstract class UINode {
  private built?: UINode[];
  constructor(
    readonly name: string,
    readonly parent: UINode | null,
    protected readonly model: Model,
  ) {}

  get path(): string {
    if (!this.parent) return '/';
    const p = this.parent.path;
    return p === '/' ? `/${this.name}` : `${p}/${this.name}`;
  }

  /** Kind name for help ("Disks", "Target", …). */
  abstract readonly kind: string;
  protected abstract buildChildren(): UINode[];
  abstract summary(): Summary;

  children(): UINode[] {
    this.built ??= this.buildChildren();
    return this.built;
  }

  child(name: string): UINode | undefined {
    return this.children().find((c) => c.name === name);
  }

  /** Node-specific commands (the shell adds ls, cd, pwd, help, …). */
  commands(): Command[] {
    return [];
  }

  /** Attributes for `info`, or undefined when the node has none. */
  info(): Record<string, unknown> | undefined {
    return undefined;
  }

  root(): UINode {
    return this.parent ? this.parent.root() : this;
  }
}

/** Human size as gwcli prints it: 1024-based, one decimal where needed (e.g. "100G", "1.5T"). */
export function humanSize(bytes: number | undefined): string {
  return bytes === undefined ? '?' : formatSize(bytes);
}

/** Closest candidates by edit distance, for "did you mean …". */
export function suggest(word: string, candidates: readonly string[], max = 3): string[] {
  const d = (a: string, b: string): number => {
    const m = a.length;
    const n = b.length;
    let prev = Array.from({ length: n + 1 }, (_, j) => j);
    for (let i = 1; i <= m; i++) {
      const cur = [i];
      for (let j = 1; j <= n; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
    return prev[n];
  };
  const lw = word.toLowerCase();
  return candidates
    .map((c) => ({ c, s: c.toLowerCase().startsWith(lw) && lw.length > 0 ? 0 : d(lw, c.toLowerCase()) }))
    .filter((x) => x.s <= Math.max(2, Math.floor(word.length / 3)))
    .sort((a, b) => a.s - b.s)
    .slice(0, max)
    .map((x) => x.c);
}

export function didYouMean(word: string, candidates: readonly string[]): string {
  const s = suggest(word, candidates);
  return s.length ? ` Did you mean ${s.map((x) => `'${x}'`).join(' or ')}?` : '';
}
