/**
 * Summary of a V8 .cpuprofile (node --cpu-prof): self and inclusive time per function, and
 * time per area (our layers, node internals, dependencies, GC, idle), as plain text.
 */
import * as fs from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: number[];
}

interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: number[];
  readonly timeDeltas?: number[];
}

export interface FunctionTime {
  readonly name: string;
  readonly area: string;
  readonly selfMs: number;
  readonly totalMs: number;
}

export interface ProfileSummary {
  readonly wallMs: number;
  /** Sampled time not spent idle. */
  readonly busyMs: number;
  readonly idleMs: number;
  readonly functions: FunctionTime[];
  readonly areas: Array<{ area: string; selfMs: number }>;
}

/** Which part of the program a frame belongs to. */
export function areaOf(frame: CallFrame, repoRoot: string): string {
  const fn = frame.functionName;
  if (!frame.url) {
    if (fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)' || fn === '(root)') return fn;
    return '(native/builtin)';
  }
  if (frame.url.startsWith('node:')) return 'node:' + frame.url.slice(5).split('/')[0];
  const file = frame.url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = file.slice(nm + 14).split('/');
    return 'dep:' + (rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]);
  }
  const rel = file.startsWith(repoRoot + '/') ? file.slice(repoRoot.length + 1) : file;
  const m = /^dist\/src\/([^/]+)\//.exec(rel);
  return m ? `src/${m[1]}` : rel;
}

function frameName(frame: CallFrame, repoRoot: string, caller?: CallFrame): string {
  const fn = frame.functionName || '(anonymous)';
  // Native bindings share names (socket and fs both have "writeBuffer"): say who called.
  if (!frame.url) return caller && caller.url && !fn.startsWith('(') ? `${fn} <- ${caller.functionName || '(anonymous)'}` : fn;
  let file = frame.url.replace(/^file:\/\//, '');
  if (file.startsWith(repoRoot + '/')) file = file.slice(repoRoot.length + 1);
  const nm = file.lastIndexOf('/node_modules/');
  if (nm >= 0) file = file.slice(nm + 1);
  return `${fn}  ${file}:${frame.lineNumber + 1}`;
}

export function summarizeCpuProfile(file: string, repoRoot: string): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  const self = new Map<string, { area: string; ms: number }>();
  const total = new Map<string, number>();
  const areas = new Map<string, number>();
  let idleMs = 0;
  let busyMs = 0;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the gap before sample i; a sample lasts until the next one.
    const ms = (i + 1 < deltas.length ? deltas[i + 1] : 0) / 1000;
    const node = byId.get(samples[i]);
    if (!node) continue;
    const area = areaOf(node.callFrame, repoRoot);
    if (area === '(idle)') {
      idleMs += ms;
      continue;
    }
    busyMs += ms;
    const callerId = parent.get(node.id);
    const name = frameName(node.callFrame, repoRoot, callerId === undefined ? undefined : byId.get(callerId)!.callFrame);
    const s = self.get(name) ?? { area, ms: 0 };
    s.ms += ms;
    self.set(name, s);
    areas.set(area, (areas.get(area) ?? 0) + ms);
    // Inclusive: each function once per stack, however deep it recurses.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (f.functionName === '(root)') continue;
      const up = parent.get(id);
      const fname = frameName(f, repoRoot, up === undefined ? undefined : byId.get(up)!.callFrame);
      if (seen.has(fname)) continue;
      seen.add(fname);
      total.set(fname, (total.get(fname) ?? 0) + ms);
    }
  }
  const functions: FunctionTime[] = [...total.entries()].map(([name, totalMs]) => ({
    name,
    area: self.get(name)?.area ?? '',
    selfMs: self.get(name)?.ms ?? 0,
    totalMs,
  }));
  return {
    wallMs: (p.endTime - p.startTime) / 1000,
    busyMs,
    idleMs,
    functions,
    areas: [...areas.entries()].map(([area, selfMs]) => ({ area, selfMs })).sort((a, b) => b.selfMs - a.selfMs),
  };
}

export function formatProfileSummary(s: ProfileSummary, top = 25): string {
  const pct = (ms: number) => `${((ms / Math.max(s.busyMs, 1e-9)) * 100).toFixed(1).padStart(5)}%`;
  const lines: string[] = [];
  lines.push(`main thread: ${(s.wallMs / 1000).toFixed(1)} s profiled, busy ${(s.busyMs / 1000).toFixed(2)} s (${((s.busyMs / s.wallMs) * 100).toFixed(0)}%), idle ${(s.idleMs / 1000).toFixed(2)} s`);
  lines.push('', 'self time by area (% of busy):');
  for (const a of s.areas.slice(0, 15)) lines.push(`  ${pct(a.selfMs)}  ${a.area}`);
  lines.push('', `top ${top} functions by self time (% of busy):`);
  for (const f of [...s.functions].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) {
    lines.push(`  ${pct(f.selfMs)} self ${pct(f.totalMs)} total  ${f.name}`);
  }
  lines.push('', `top ${top} functions by inclusive time (% of busy):`);
  for (const f of [...s.functions].sort((a, b) => b.totalMs - a.totalMs).slice(0, top)) {
    lines.push(`  ${pct(f.totalMs)} total ${pct(f.selfMs)} self  ${f.name}`);
  }
  return lines.join('\n');
}
