/**
 * The benchmark table: workloads (client command lines) and rows. A row compares a candidate
 * cell (target × workload) with a baseline cell; the usual row is "gateway vs tgt on the same
 * workload", but a row may also compare two workloads on one target (e.g. WRITE SAME of 1 GiB
 * vs writing the same 1 GiB through the initiator) or two gateway back ends (embedded-store
 * image vs plain file). To add a row: add its workload(s) here, and a target kind in
 * targets/index.ts if it needs one.
 */
import { IscsiPerfWorkload } from './iscsi-perf';
import { QemuImgBenchWorkload } from './qemu-img-bench';
import { Workload } from './workload';

export interface Cell {
  readonly target: string;
  readonly workload: string;
}

export interface Row {
  readonly id: string;
  readonly title: string;
  readonly baseline: Cell;
  readonly candidate: Cell;
  /** The ratio candidate/baseline (better-is-higher) the issue asks for. */
  readonly goal: number;
  /** Below this ratio the report must say where the time goes. */
  readonly explainBelow: number;
}

const IOPS = { unit: 'IOPS', higherIsBetter: true } as const;
const MIBPS = { unit: 'MiB/s', higherIsBetter: true } as const;

export function createWorkloads(): Workload[] {
  return [
    new IscsiPerfWorkload({ id: '4k-randread', title: '4k random read QD32 (iscsi-perf -r)', transferBytes: 4096, depth: 32, random: true, metric: IOPS }),
    new IscsiPerfWorkload({ id: '128k-seqread', title: '128k sequential read QD16 (iscsi-perf)', transferBytes: 131072, depth: 16, random: false, metric: MIBPS }),
    new QemuImgBenchWorkload({ id: '4k-write', title: '4k write QD32 (qemu-img bench -w)', write: true, transferBytes: 4096, depth: 32, metric: IOPS, probeCount: 20_000 }),
    new QemuImgBenchWorkload({ id: '128k-write', title: '128k write QD16 (qemu-img bench -w)', write: true, transferBytes: 131072, depth: 16, metric: MIBPS, probeCount: 3_000 }),
  ];
}

function compare(workload: Workload, baseline: string, candidate: string, suffix = '', note = ''): Row {
  return {
    id: workload.id + suffix,
    title: workload.title + note,
    baseline: { target: baseline, workload: workload.id },
    candidate: { target: candidate, workload: workload.id },
    goal: 1.0,
    explainBelow: 1.3,
  };
}

export function createRows(workloads: readonly Workload[]): Row[] {
  const byId = (id: string) => workloads.find((w) => w.id === id)!;
  return [
    // The rows, like for like: reads on both defaults; writes with the same semantics.
    // tgt's rdwr store acknowledges writes from the page cache (write-back), so its default is
    // compared with the gateway's write-back setting, emulate_write_cache=1 (the demo LUN's).
    compare(byId('4k-randread'), 'tgt', 'gateway'),
    compare(byId('128k-seqread'), 'tgt', 'gateway'),
    compare(byId('4k-write'), 'tgt', 'gateway-wce', '', ', both write-back'),
    compare(byId('128k-write'), 'tgt', 'gateway-wce', '', ', both write-back'),
    // The gateway's per-LUN default (emulate_write_cache=0, as LIO) against tgt with O_SYNC.
    ...['4k-write', '128k-write'].map((id) => compare(byId(id), 'tgt-sync', 'gateway', '-sync', ', both write-through')),
    // The same clients against null backstores: no storage, only the targets and the client
    // on this machine's two cores — the limit the write rows above can approach.
    ...['4k-write', '128k-write'].map((id) => compare(byId(id), 'tgt-null', 'gateway-null', '-null', ', both null backstores (the limit)')),
  ];
}

/**
 * `--only a,b`: the row whose id equals an entry, else the rows whose id starts with it ("4k"
 * selects every 4k row). Unknown entries are an error, not silently nothing.
 */
export function selectRows(rows: readonly Row[], only: readonly string[] | undefined): Row[] {
  if (!only || only.length === 0) return [...rows];
  const picked = new Set<Row>();
  for (const want of only) {
    const exact = rows.filter((r) => r.id === want);
    const hits = exact.length > 0 ? exact : rows.filter((r) => r.id.startsWith(want));
    if (hits.length === 0) throw new Error(`no benchmark row "${want}"; rows: ${rows.map((r) => r.id).join(', ')}`);
    hits.forEach((r) => picked.add(r));
  }
  return rows.filter((r) => picked.has(r));
}
