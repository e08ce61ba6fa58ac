/**
 * Prometheus text exposition helpers for tests: a small parser of the samples, and
 * `promtool check metrics` (Debian package prometheus) over a scrape.
 */
import { run } from './daemon';

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

/** Samples of `name` whose labels include all of `labels`. */
export function samples(all: readonly PromSample[], name: string, labels: Record<string, string> = {}): PromSample[] {
  return all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The one sample of `name` matching `labels` (throws unless exactly one). */
export function value(all: readonly PromSample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples(all, name, labels);
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0].value;
}

/** Run `promtool check metrics` on the text: exit code and what it printed (lint problems). */
export async function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  const r = await run('promtool', ['check', 'metrics'], { input: text, timeoutMs: 30_000 });
  return { code: r.code, output: (r.stdout + r.stderr).trim() };
}
