/**
 * Overview: gateways (up / down / degraded, portals, sessions), counts, alerts, and live graphs
 * of throughput and IOPS per gateway and per LUN with latency percentiles, from the gateways'
 * own counters (GET /api/dashboard, /api/dashboard/stats; refreshed every 2 s).
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, api, bytes, seconds, seg } from '../api';
import { Banner, Chart, Series } from '../components';
import type { Overview, Point, Rates } from '../types';

const REFRESH_MS = 2000;
const WINDOW_MS = 10 * 60_000;

function lunLabel(key: string): string {
  const [target, lun, disk] = key.split('|');
  return `${disk} (LUN ${lun} of …${target.slice(-16)})`;
}

function series(points: Point[], pick: (p: Point) => Record<string, Rates>, value: (r: Rates) => number | null): Series[] {
  const keys = new Set<string>();
  for (const p of points) for (const k of Object.keys(pick(p))) keys.add(k);
  return [...keys].sort().map((k) => ({ label: k, values: points.map((p) => { const r = pick(p)[k]; return r ? value(r) : null; }) }));
}

export function OverviewPage() {
  const [overview, setOverview] = useState<Overview | undefined>();
  const [points, setPoints] = useState<Point[]>([]);
  const [error, setError] = useState<string | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const [tick, setTick] = useState(0);
  // Drain hands the gateway's disks to the others before maintenance; resume takes them back.
  const drain = async (gw: string, resume: boolean) => {
    if (!resume && !confirm(`Drain ${gw}? Its disks are handed over to the other gateways of their targets.`)) return;
    try {
      await api(resume ? 'DELETE' : 'PUT', `/api/drain/${seg(gw)}`);
      setNotice(resume ? `${gw} takes disks again.` : `${gw} is draining: its disks are being handed over.`);
      setError(undefined);
      setTick((n) => n + 1);
    } catch (e) {
      setError(e instanceof ApiFailure ? e.message : String(e));
    }
  };
  useEffect(() => {
    let alive = true;
    let last = 0;
    let all: Point[] = [];
    const load = async () => {
      try {
        const [o, s] = await Promise.all([
          api<Overview>('GET', '/api/dashboard'),
          api<{ points: Point[] }>('GET', `/api/dashboard/stats?since=${last}`),
        ]);
        if (!alive) return;
        if (s.points.length > 0) {
          last = s.points[s.points.length - 1].t;
          const cut = Date.now() - WINDOW_MS;
          all = [...all, ...s.points].filter((p) => p.t > cut);
          setPoints(all);
        }
        setOverview(o);
        setError(undefined);
      } catch (e) {
        if (alive) setError(e instanceof ApiFailure ? e.message : String(e));
      }
    };
    void load();
    const t = setInterval(() => void load(), REFRESH_MS);
    return () => {
      alive = false;
      clearInterval(t);
    };
  }, [tick]);
  if (!overview) return error ? <Banner kind="error">{error}</Banner> : <p>Loading…</p>;
  const times = points.map((p) => p.t);
  const gw = (p: Point) => p.gateways;
  const lu = (p: Point) => p.luns;
  const latest = points[points.length - 1];
  return (
    <section aria-labelledby="overview-h">
      <h1 id="overview-h">Overview</h1>
      {error && <Banner kind="error">{error}</Banner>}
      {notice && <Banner kind="ok">{notice}</Banner>}
      <div class="alerts" id="alerts">
        <h2>Alerts</h2>
        {overview.alerts.length === 0 ? <p class="muted">No alerts.</p> : (
          <ul>{overview.alerts.map((a) => <li class={`alert ${a.severity}`} data-kind={a.kind}>{a.message}</li>)}</ul>
        )}
      </div>
      <div class="counts">
        {(['gateways', 'targets', 'disks', 'hosts', 'sessions'] as const).map((k) => (
          <div class="count" id={`count-${k}`}><span class="n">{overview.counts[k]}</span><span class="k">{k}</span></div>
        ))}
      </div>
      <h2>Gateways</h2>
      <div class="table-wrap">
        <table id="gateways">
          <thead><tr><th scope="col">Gateway</th><th scope="col">State</th><th scope="col">Portals</th><th scope="col">Sessions</th><th scope="col">Config epoch</th><th scope="col">Throughput now</th><th scope="col">Maintenance</th></tr></thead>
          <tbody>
            {overview.gateways.map((g) => {
              const r = latest?.gateways[g.name];
              return (
                <tr data-gateway={g.name}>
                  <th scope="row">{g.name}</th>
                  <td><span class={`state ${g.state}`} data-state={g.state}>{g.state}</span>{g.reason && <div class="muted small">{g.reason}</div>}{Object.entries(g.flags).map(([k, v]) => <div class="muted small">{k}: {String(v)}</div>)}</td>
                  <td>{g.portals.join(', ') || '–'}</td>
                  <td>{g.sessions}</td>
                  <td>{g.applied_epoch ?? '–'} / {overview.epoch}</td>
                  <td>{r && g.state !== 'down' ? `${bytes(r.read_bps)}/s read, ${bytes(r.write_bps)}/s write` : '–'}</td>
                  <td>{g.state !== 'down' && (g.draining
                    ? <button type="button" class="secondary" data-action="resume" onClick={() => void drain(g.name, true)}>Resume</button>
                    : <button type="button" class="secondary" data-action="drain" onClick={() => void drain(g.name, false)}>Drain</button>)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <h2>Throughput and IOPS</h2>
      {points.length < 2 && <p class="muted">Collecting samples (every {REFRESH_MS / 1000} s)…</p>}
      <div class="charts">
        <Chart id="chart-gw-throughput" title="Throughput per gateway (read + write)" times={times} series={series(points, gw, (r) => r.read_bps + r.write_bps)} unit={(v) => `${bytes(v)}/s`} />
        <Chart id="chart-gw-iops" title="IOPS per gateway" times={times} series={series(points, gw, (r) => r.read_iops + r.write_iops + r.other_iops)} unit={(v) => v.toFixed(0)} />
        <Chart id="chart-lun-throughput" title="Throughput per LUN" times={times} series={series(points, lu, (r) => r.read_bps + r.write_bps).map((s) => ({ ...s, label: lunLabel(s.label) }))} unit={(v) => `${bytes(v)}/s`} />
        <Chart id="chart-lun-iops" title="IOPS per LUN" times={times} series={series(points, lu, (r) => r.read_iops + r.write_iops + r.other_iops).map((s) => ({ ...s, label: lunLabel(s.label) }))} unit={(v) => v.toFixed(0)} />
        <Chart id="chart-lun-read-latency" title="Read latency per LUN (p50 and p99 of each interval)" times={times} series={[
          ...series(points, lu, (r) => r.read_p50).map((s) => ({ ...s, label: `${lunLabel(s.label)} p50` })),
          ...series(points, lu, (r) => r.read_p99).map((s) => ({ ...s, label: `${lunLabel(s.label)} p99` })),
        ]} unit={seconds} />
        <Chart id="chart-lun-write-latency" title="Write latency per LUN (p50 and p99 of each interval)" times={times} series={[
          ...series(points, lu, (r) => r.write_p50).map((s) => ({ ...s, label: `${lunLabel(s.label)} p50` })),
          ...series(points, lu, (r) => r.write_p99).map((s) => ({ ...s, label: `${lunLabel(s.label)} p99` })),
        ]} unit={seconds} />
      </div>
      <h2>LUNs: paths and latency (last sample)</h2>
      <div class="table-wrap">
        <table id="luns">
          <thead><tr><th scope="col">Target</th><th scope="col">LUN</th><th scope="col">Disk</th><th scope="col">Owner</th><th scope="col">ALUA paths</th><th scope="col">Read p50 / p99</th><th scope="col">Write p50 / p99</th></tr></thead>
          <tbody>
            {overview.luns.map((l) => {
              const r = latest?.luns[`${l.target}|${l.lun_id}|${l.disk}`];
              return (
                <tr>
                  <td class="iqn">{l.target}</td><td>{l.lun_id}</td><td>{l.disk}</td><td>{l.owner ?? (Object.values(l.paths).every((p) => p === 'active/optimized') ? 'all (active/active)' : '–')}{l.preferred && l.preferred !== l.owner && <div class="muted small">preferred: {l.preferred}</div>}</td>
                  <td>{Object.entries(l.paths).map(([g, s]) => <div>{g}: <span class={`alua ${s.replace('/', '-')}`}>{s}</span></div>)}</td>
                  <td>{seconds(r?.read_p50)} / {seconds(r?.read_p99)}</td>
                  <td>{seconds(r?.write_p50)} / {seconds(r?.write_p99)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
