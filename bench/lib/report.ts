/**
 * Summaries (median of the rounds, min/max), the ratio per row, and the printed tables.
 */
import { Row } from '../workloads';
import { Workload } from '../workloads/workload';
import { CellResult, Failure, Sample, cellKey, formatValue } from './runner';

export interface CellSummary {
  readonly target: string;
  readonly workload: string;
  readonly unit: string;
  readonly runs: number;
  readonly median?: number;
  readonly min?: number;
  readonly max?: number;
  readonly iops?: number;
  readonly mibPerSec?: number;
  /** Medians over the rounds. */
  readonly targetCpuPct?: number;
  readonly targetMainThreadPct?: number;
  readonly targetUsPerIo?: number;
  readonly targetSwitchesPerIo?: number;
  readonly targetThreads?: number;
  readonly machinePct?: number;
  readonly clientPct?: number;
  readonly clientUsPerIo?: number;
  /** Median CPU of other jobs during the measurements (% of one core). */
  readonly otherPct?: number;
  /** Samples kept although other jobs disturbed them. */
  readonly contaminatedRuns: number;
  readonly command?: string;
  readonly samples: Sample[];
}

export interface RowSummary {
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  readonly baseline: CellSummary;
  readonly candidate: CellSummary;
  /** candidate vs baseline, >1 means the candidate is better. */
  readonly ratio?: number;
  readonly goal: number;
  readonly explainBelow: number;
  readonly verdict: 'meets' | 'meets, explain (<1.3)' | 'BELOW GOAL' | 'no figure';
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function defined(values: Array<number | undefined>): number[] {
  return values.filter((v): v is number => v !== undefined && Number.isFinite(v));
}

export function summarizeCell(result: CellResult | undefined, target: string, workload: Workload): CellSummary {
  const samples = result?.samples ?? [];
  const values = samples.map((s) => s.value);
  return {
    target,
    workload: workload.id,
    unit: workload.metric.unit,
    runs: samples.length,
    median: median(values),
    min: values.length ? Math.min(...values) : undefined,
    max: values.length ? Math.max(...values) : undefined,
    iops: median(defined(samples.map((s) => s.iops))),
    mibPerSec: median(defined(samples.map((s) => s.mibPerSec))),
    targetCpuPct: median(defined(samples.map((s) => s.cpu?.processPct))),
    targetMainThreadPct: median(defined(samples.map((s) => s.cpu?.mainThreadPct))),
    targetUsPerIo: median(defined(samples.map((s) => s.cpu?.usPerIo))),
    targetSwitchesPerIo: median(defined(samples.map((s) => s.cpu?.switchesPerIo))),
    targetThreads: median(defined(samples.map((s) => s.cpu?.threads))),
    machinePct: median(defined(samples.map((s) => s.cpu?.machinePct))),
    otherPct: median(defined(samples.map((s) => s.otherPct))),
    clientPct: median(defined(samples.map((s) => s.cpu?.clientPct))),
    clientUsPerIo: median(defined(samples.map((s) => s.cpu?.clientUsPerIo))),
    contaminatedRuns: samples.filter((s) => s.contaminated).length,
    command: samples[samples.length - 1]?.command,
    samples,
  };
}

export function summarizeRows(rows: readonly Row[], cells: readonly CellResult[], workloads: readonly Workload[]): RowSummary[] {
  const byKey = new Map(cells.map((c) => [cellKey(c.target, c.workload), c]));
  const wl = new Map(workloads.map((w) => [w.id, w]));
  return rows.map((row) => {
    const bw = wl.get(row.baseline.workload)!;
    const cw = wl.get(row.candidate.workload)!;
    const baseline = summarizeCell(byKey.get(cellKey(row.baseline.target, bw.id)), row.baseline.target, bw);
    const candidate = summarizeCell(byKey.get(cellKey(row.candidate.target, cw.id)), row.candidate.target, cw);
    let ratio: number | undefined;
    if (baseline.median !== undefined && candidate.median !== undefined && baseline.median > 0 && candidate.median > 0) {
      ratio = cw.metric.higherIsBetter ? candidate.median / baseline.median : baseline.median / candidate.median;
    }
    const verdict: RowSummary['verdict'] =
      ratio === undefined ? 'no figure' : ratio < row.goal ? 'BELOW GOAL' : ratio < row.explainBelow ? 'meets, explain (<1.3)' : 'meets';
    return { id: row.id, title: row.title, unit: cw.metric.unit, baseline, candidate, ratio, goal: row.goal, explainBelow: row.explainBelow, verdict };
  });
}

function figure(c: CellSummary): string {
  if (c.median === undefined) return 'n/a';
  const spread = c.runs > 1 ? ` [${formatValue(c.min!)}–${formatValue(c.max!)}]` : '';
  return `${formatValue(c.median)}${spread}${c.contaminatedRuns > 0 ? ' *' : ''}`;
}

function table(header: string[], body: string[][], rightAlign: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (rightAlign.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function formatRowsTable(rows: readonly RowSummary[]): string {
  const body = rows.map((r) => [
    r.id,
    r.title,
    r.unit,
    `${r.baseline.target}: ${figure(r.baseline)}`,
    `${r.candidate.target}: ${figure(r.candidate)}`,
    r.ratio === undefined ? 'n/a' : r.ratio.toFixed(2),
    r.verdict,
  ]);
  return table(['row', 'workload', 'unit', 'baseline median [min–max]', 'candidate median [min–max]', 'ratio', 'goal ≥1.0'], body, new Set([5]));
}

export function formatCpuTable(rows: readonly RowSummary[]): string {
  const seen = new Set<string>();
  const body: string[][] = [];
  for (const r of rows) {
    for (const c of [r.baseline, r.candidate]) {
      const key = cellKey(c.target, c.workload);
      if (seen.has(key) || c.runs === 0) continue;
      seen.add(key);
      const pct = (v: number | undefined) => (v === undefined ? 'n/a' : `${v.toFixed(0)}%`);
      body.push([
        c.workload,
        c.target,
        c.iops === undefined ? 'n/a' : formatValue(c.iops),
        pct(c.targetCpuPct),
        pct(c.targetMainThreadPct),
        c.targetUsPerIo === undefined ? 'n/a' : c.targetUsPerIo.toFixed(1),
        c.targetSwitchesPerIo === undefined ? 'n/a' : c.targetSwitchesPerIo.toFixed(2),
        c.targetThreads === undefined ? 'n/a' : String(c.targetThreads),
        pct(c.clientPct),
        c.clientUsPerIo === undefined ? 'n/a' : c.clientUsPerIo.toFixed(1),
        pct(c.machinePct),
        pct(c.otherPct),
      ]);
    }
  }
  return table(
    ['workload', 'target', 'IOPS', 'target CPU', 'main thread', 'CPU µs/IO', 'ctx sw/IO', 'threads', 'client CPU', 'client µs/IO', 'machine busy', 'other jobs'],
    body,
    new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
  );
}

export function formatFailures(failures: readonly Failure[]): string {
  return failures
    .map((f) => {
      const lines = [`- round ${f.round}, ${f.target}${f.workload ? ` / ${f.workload}` : ''} (${f.phase}): ${f.message}`];
      if (f.command) lines.push(`  command: ${f.command}`);
      if (f.toolOutput) lines.push(`  tool output:\n${indent(f.toolOutput)}`);
      if (f.targetOutput) lines.push(`  target output (tail):\n${indent(f.targetOutput)}`);
      return lines.join('\n');
    })
    .join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

/**
 * The null-backstore rows as a limit: per workload, the null figure of each target and how
 * much of it the same target reaches with real storage (file backstore / rdwr store) in the
 * other rows of this run.
 */
export function formatLimits(rows: readonly RowSummary[]): string {
  const cells = new Map<string, CellSummary>();
  for (const r of rows) for (const c of [r.baseline, r.candidate]) if (c.median !== undefined) cells.set(cellKey(c.target, c.workload), c);
  const lines: string[] = [];
  for (const r of rows.filter((x) => x.baseline.target.endsWith('-null') && x.candidate.target.endsWith('-null'))) {
    const parts: string[] = [];
    for (const nul of [r.candidate, r.baseline]) {
      if (nul.median === undefined) continue;
      const base = nul.target.replace(/-null$/, '');
      const real = [...cells.values()].filter((c) => c.workload === nul.workload && (c.target === base || c.target.startsWith(`${base}-`)) && !c.target.endsWith('-null'));
      const reach = real.map((c) => `${c.target} ${formatValue(c.median!)} = ${((100 * c.median!) / nul.median!).toFixed(0)}%`).join(', ');
      parts.push(`${nul.target} ${formatValue(nul.median)} ${r.unit}${reach ? ` (${reach} of it)` : ''}`);
    }
    if (parts.length) lines.push(`${r.candidate.workload.padEnd(12)} ${parts.join('; ')}`);
  }
  return lines.join('\n');
}
