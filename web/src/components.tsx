/** Small shared pieces: error/success banners, a busy indicator with elapsed time, a chart. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';

export function Banner({ kind, children }: { kind: 'error' | 'ok' | 'warning'; children: ComponentChildren }) {
  return <div class={`banner ${kind}`} role={kind === 'error' ? 'alert' : 'status'}>{children}</div>;
}

/** A long operation in flight: an indeterminate progress bar and the seconds it has taken. */
export function Busy({ label, steps }: { label: string; steps?: string[] }) {
  const [start] = useState(Date.now());
  const [, tick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => tick((n) => n + 1), 500);
    return () => clearInterval(t);
  }, []);
  return (
    <div class="busy" role="status" aria-live="polite">
      <progress aria-label={label} />
      <span>{label} – {((Date.now() - start) / 1000).toFixed(0)} s</span>
      {steps && steps.length > 0 && <ol class="steps">{steps.map((s) => <li>{s}</li>)}</ol>}
    </div>
  );
}

export interface Series {
  readonly label: string;
  readonly values: Array<number | null>;
}

const COLORS = ['#1f5fbf', '#d9480f', '#2b8a3e', '#862e9c', '#c92a2a', '#0b7285', '#e67700', '#5c940d'];

/** A time-series chart (uPlot) that keeps its element and redraws when the data changes. */
export function Chart({ title, times, series, unit, id }: { title: string; times: number[]; series: Series[]; unit: (v: number) => string; id: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.label).join('\u0000');
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = Math.max(280, el.clientWidth || 600);
    const opts: uPlot.Options = {
      width,
      height: 200,
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, value: (_u: uPlot, v: number | null) => (v === null ? '–' : unit(v)) }))],
      axes: [{}, { values: (_u: uPlot, vals: number[]) => vals.map(unit), size: 70 }],
      scales: { y: { range: (_u: uPlot, _min: number, max: number) => [0, max > 0 ? max * 1.1 : 1] } },
      legend: { show: true },
    };
    plot.current = new uPlot(opts, [times.map((t) => t / 1000), ...series.map((s) => s.values)], el);
    const onResize = () => plot.current?.setSize({ width: Math.max(280, el.clientWidth), height: 200 });
    addEventListener('resize', onResize);
    return () => {
      removeEventListener('resize', onResize);
      plot.current?.destroy();
      plot.current = null;
    };
    // Recreated only when the set of series changes; data updates go through setData.
  }, [shape]);
  useEffect(() => {
    plot.current?.setData([times.map((t) => t / 1000), ...series.map((s) => s.values)]);
  }, [times, series]);
  const last = series.map((s) => s.values[s.values.length - 1]);
  return (
    <figure class="chart" id={id} data-points={times.length} data-last={last.map((v) => (v === null || v === undefined ? '' : v.toFixed(1))).join(',')}>
      <figcaption>{title}</figcaption>
      <div ref={box} class="plot" />
    </figure>
  );
}

function scalar(v: unknown): boolean {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/**
 * A disk's `status` as GET /api/disk answers it, whatever fields it has: scalars as
 * "name: value", objects of objects (per gateway counters, lock and path states) one line each.
 */
export function StatusView({ status }: { status: Record<string, unknown> }) {
  return (
    <div class="small status">
      {Object.entries(status).map(([k, v]) => {
        if (scalar(v)) return <div>{k}: {String(v)}</div>;
        if (typeof v !== 'object' || v === null) return null;
        const entries = Object.entries(v as Record<string, unknown>);
        if (entries.length === 0) return null;
        return (
          <div>{k}:{entries.map(([name, inner]) => (
            <div class="indent">{name}: {scalar(inner) ? String(inner) : Object.entries((inner ?? {}) as Record<string, unknown>).filter(([, x]) => scalar(x)).map(([a, b]) => `${a} ${String(b)}`).join(', ')}</div>
          ))}</div>
        );
      })}
    </div>
  );
}
