/**
 * The Prometheus registry of a gateway: ceph-iscsi's rbd-target-gw metrics (reference §5.7,
 * same names and labels) and this gateway's own per-LUN / per-initiator counters, latency
 * histograms, sessions, login failures and config epoch, plus prom-client's process metrics.
 *
 * Nothing here runs on the data path: each scrape takes one synchronous snapshot of the
 * counters the logical units and sessions keep (src/metrics/stats.ts), and prom-client renders
 * it in the text exposition format.
 */
import { Gauge, MetricType, Registry, collectDefaultMetrics } from 'prom-client';
import type { HistogramView } from './histogram';
import { IoStats, IoStatsView, OP_NAMES, OpKind, loginFailures } from './stats';
import type { MetricsSource } from './source';

type Labels = Record<string, string | number>;

interface Row {
  /** Series name when it differs from the metric's (histograms: _bucket, _sum, _count). */
  readonly metricName?: string;
  readonly labels: Labels;
  readonly value: number;
}

type Kind = 'gauge' | 'counter' | 'untyped' | 'histogram';

/**
 * A metric whose samples come from the scrape's snapshot. prom-client's own classes keep
 * their values in label maps updated per observation (a library call per I/O); ours live in the
 * data path's plain counters, so this one hands the registry ready samples at scrape time.
 * It extends Gauge only to be a registrable prom-client Metric.
 */
class SnapshotMetric extends Gauge<string> {
  constructor(
    registry: Registry,
    private readonly metric: string,
    private readonly description: string,
    private readonly kind: Kind,
    private readonly rows: () => readonly Row[],
    /** Resolves when this metric may render: one family per event-loop turn, I/O in between. */
    private readonly turn: () => Promise<void>,
  ) {
    super({ name: metric, help: description, registers: [registry] });
  }

  override async get(): ReturnType<Gauge<string>['get']> {
    await this.turn();
    return {
      name: this.metric,
      help: this.description,
      // The typings declare a numeric enum; the registry prints the type name it is given.
      type: this.kind as unknown as MetricType,
      aggregator: 'sum',
      collect: () => undefined,
      values: this.rows() as Row[],
    };
  }
}

/** Sums (or keeps the largest of) values by label set: ceph-iscsi's label sets have no target. */
class Accumulator {
  private readonly rows = new Map<string, { labels: Labels; value: number }>();

  constructor(private readonly mode: 'sum' | 'max') {}

  add(labels: Labels, value: number): void {
    const key = JSON.stringify(labels);
    const row = this.rows.get(key);
    if (!row) this.rows.set(key, { labels, value });
    else row.value = this.mode === 'sum' ? row.value + value : Math.max(row.value, value);
  }

  list(): Row[] {
    return [...this.rows.values()];
  }
}

function histogramRows(name: string, labels: Labels, h: HistogramView): Row[] {
  const out: Row[] = [];
  let acc = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    acc += h.counts[i];
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: h.bounds[i] }, value: acc });
  }
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count });
  out.push({ metricName: `${name}_sum`, labels, value: h.sum });
  out.push({ metricName: `${name}_count`, labels, value: h.count });
  return out;
}

/** prom-client process metrics that `promtool check metrics` rejects (gauges named *_total). */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export interface GatewayRegistryOptions {
  /** Also export prom-client's process and Node.js metrics (CPU, memory, event loop, GC). Default true. */
  readonly processMetrics?: boolean;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private snapshot = new Map<string, Row[]>();

  constructor(private readonly source: MetricsSource, options: GatewayRegistryOptions = {}) {
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(name);
    }
    // A scrape of a thousand busy LUNs renders tens of thousands of lines: one family per
    // event-loop turn, so that commands keep flowing while it renders.
    let turns = Promise.resolve();
    const turn = (): Promise<void> => (turns = turns.then(() => new Promise<void>((resolve) => setImmediate(resolve))));
    const m = (name: string, kind: Kind, help: string) => {
      new SnapshotMetric(this.registry, name, help, kind, () => this.snapshot.get(name) ?? [], turn);
    };
    // ceph-iscsi rbd-target-gw (reference §5.7). Its counters have no _total suffix, which the
    // exposition format's lint rejects for TYPE counter; they are exported untyped (rate() works alike).
    m('ceph_iscsi_gateway_tpg_total', 'untyped', 'Number of target portal groups of the target');
    m('ceph_iscsi_lun_mapped', 'gauge', 'Disk mapped to a client (1) or not (0)');
    m('ceph_iscsi_lun_size_bytes', 'gauge', 'Size of the disk in bytes');
    m('ceph_iscsi_lun_iops', 'untyped', 'Commands from the client to the disk (a counter)');
    m('ceph_iscsi_lun_read_bytes', 'untyped', 'Bytes the client read from the disk (a counter)');
    m('ceph_iscsi_lun_write_bytes', 'untyped', 'Bytes the client wrote to the disk (a counter)');
    m('ceph_iscsi_client_login', 'gauge', 'Client logged in (1) or not (0)');
    m('ceph_iscsi_client_lun', 'gauge', 'LUN id of the disk the client sees');
    m('ceph_iscsi_scrape_duration_seconds', 'gauge', 'Time this scrape took to collect the statistics');
    // This gateway's own metrics.
    m('iscsi_gateway_info', 'gauge', 'Gateway name (always 1)');
    m('iscsi_gateway_config_epoch', 'gauge', 'Epoch of the configuration the gateway runs');
    m('iscsi_gateway_sessions', 'gauge', 'Logged-in iSCSI sessions by target and initiator');
    m('iscsi_gateway_login_failures_total', 'counter', 'Failed iSCSI logins by reason (login status detail)');
    m('iscsi_gateway_lun_commands_total', 'counter', 'SCSI commands completed by the logical unit, by data direction');
    m('iscsi_gateway_lun_read_bytes_total', 'counter', 'Data-In bytes of successful commands of the logical unit');
    m('iscsi_gateway_lun_write_bytes_total', 'counter', 'Data-Out bytes of successful commands of the logical unit');
    m('iscsi_gateway_lun_errors_total', 'counter', 'Commands of the logical unit that ended with a status other than GOOD');
    m('iscsi_gateway_lun_tasks', 'gauge', 'Tasks in the logical unit\'s task set');
    m('iscsi_gateway_lun_latency_seconds', 'histogram', 'Latency of the logical unit\'s reads and writes (commands with Data-In, Data-Out)');
    // Per initiator over its logical units of a target (per initiator and disk: ceph_iscsi_lun_*).
    m('iscsi_gateway_initiator_commands_total', 'counter', 'SCSI commands of an initiator to the target\'s logical units, by data direction');
    m('iscsi_gateway_initiator_read_bytes_total', 'counter', 'Data-In bytes of an initiator\'s successful commands to the target\'s logical units');
    m('iscsi_gateway_initiator_write_bytes_total', 'counter', 'Data-Out bytes of an initiator\'s successful commands to the target\'s logical units');
    m('iscsi_gateway_initiator_errors_total', 'counter', 'Commands of an initiator to the target\'s logical units that ended with a status other than GOOD');
    m('iscsi_gateway_initiator_latency_seconds', 'histogram', 'Command latency of an initiator over the target\'s logical units, by data direction');
    // High availability (src/ha): lock ownership, transitions, fencing, bouncing, peers.
    m('iscsi_gateway_lun_owner', 'gauge', 'This gateway holds the disk\'s image lock (its paths are active/optimized): 1, else 0');
    m('iscsi_gateway_lun_failovers_total', 'counter', 'Takeovers of the disk by this gateway (implicit/explicit transitions, failbacks, drain hand-overs)');
    m('iscsi_gateway_lun_lock_lost_total', 'counter', 'Times this gateway gave the disk\'s lock up (hand-over, drain) or lost it');
    m('iscsi_gateway_lun_fenced_total', 'counter', 'Stale lock holders of the disk this gateway fenced before breaking the lock');
    m('iscsi_gateway_lun_lock_bounces_total', 'counter', 'Take-backs of the disk shortly after handing it away (two initiators on two gateways: lock bouncing)');
    m('iscsi_gateway_lun_takeover_seconds', 'gauge', 'Duration of this gateway\'s last takeover of the disk');
    m('iscsi_gateway_draining', 'gauge', 'This gateway is draining (hands its disks over, takes none): 1, else 0');
    m('iscsi_gateway_peer_up', 'gauge', 'Another gateway (sharing the data dir or the cluster) is up (heartbeat fresh): 1, else 0');
  }

  /** The exposition text of one scrape. */
  async scrape(): Promise<string> {
    const started = performance.now();
    this.snapshot = this.collect();
    const seconds = (performance.now() - started) / 1000;
    this.snapshot.set('ceph_iscsi_scrape_duration_seconds', [{ labels: { gw_name: this.source.gatewayName }, value: seconds }]);
    await new Promise<void>((resolve) => setImmediate(resolve)); // let I/O run between reading and rendering
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One consistent, synchronous read of every counter (no I/O completes in between). */
  private collect(): Map<string, Row[]> {
    const src = this.source;
    const gw = src.gatewayName;
    const out = new Map<string, Row[]>();
    const put = (name: string, rows: Row[]) => out.set(name, rows);

    put('ceph_iscsi_gateway_tpg_total', src.targets().map((t) => ({ labels: { gw_iqn: t.name }, value: t.tpgs })));
    const luns = src.luns();
    const mapped = new Accumulator('max');
    const size = new Accumulator('max');
    const iops = new Accumulator('sum');
    const readBytes = new Accumulator('sum');
    const writeBytes = new Accumulator('sum');
    const lunCommands: Row[] = [];
    const lunRead: Row[] = [];
    const lunWrite: Row[] = [];
    const lunErrors: Row[] = [];
    const lunTasks: Row[] = [];
    const lunLatency: Row[] = [];
    const byInitiator = new Map<string, { labels: Labels; stats: IoStats }>();
    for (const l of luns) {
      mapped.add({ lun_name: l.name, gw_name: gw, gw_owner: l.owner }, l.mapped ? 1 : 0);
      size.add({ lun_name: l.name, gw_name: gw }, l.sizeBytes);
      const lunLabels = { target: l.target, lun: l.lun, lun_name: l.name };
      pushIo(l.stats.total, lunLabels, lunCommands, lunRead, lunWrite, lunErrors);
      lunTasks.push({ labels: lunLabels, value: l.tasks });
      // Reads and writes: what a per-LUN latency panel shows; the rest is in the initiator's.
      for (const k of [OpKind.Read, OpKind.Write]) {
        const h = l.stats.total.latency[k];
        if (h.count > 0) lunLatency.push(...histogramRows('iscsi_gateway_lun_latency_seconds', { ...lunLabels, op: OP_NAMES[k] }, h));
      }
      for (const [iqn, s] of l.stats.initiators) {
        const c = { gw_name: gw, client_iqn: iqn, lun_name: l.name };
        iops.add(c, s.commands[0] + s.commands[1] + s.commands[2]);
        readBytes.add(c, s.readBytes);
        writeBytes.add(c, s.writeBytes);
        const key = `${l.target}\n${iqn}`;
        let agg = byInitiator.get(key);
        if (!agg) byInitiator.set(key, (agg = { labels: { target: l.target, client_iqn: iqn }, stats: new IoStats() }));
        agg.stats.add(s);
      }
    }
    const sessions = src.sessions();
    const loggedIn = new Set(sessions.map((s) => s.initiator));
    const login = new Accumulator('max');
    const clientLun = new Accumulator('max');
    for (const c of src.clients()) {
      login.add({ gw_name: gw, client_iqn: c.iqn }, loggedIn.has(c.iqn) ? 1 : 0);
      for (const l of c.luns) {
        clientLun.add({ gw_name: gw, client_iqn: c.iqn, lun_name: l.name }, l.lun);
        // ceph-iscsi lists every mapped LUN of a client, with zeros before its first command.
        const labels = { gw_name: gw, client_iqn: c.iqn, lun_name: l.name };
        iops.add(labels, 0);
        readBytes.add(labels, 0);
        writeBytes.add(labels, 0);
      }
    }
    for (const iqn of loggedIn) login.add({ gw_name: gw, client_iqn: iqn }, 1);
    put('ceph_iscsi_lun_mapped', mapped.list());
    put('ceph_iscsi_lun_size_bytes', size.list());
    put('ceph_iscsi_lun_iops', iops.list());
    put('ceph_iscsi_lun_read_bytes', readBytes.list());
    put('ceph_iscsi_lun_write_bytes', writeBytes.list());
    put('ceph_iscsi_client_login', login.list());
    put('ceph_iscsi_client_lun', clientLun.list());

    put('iscsi_gateway_info', [{ labels: { gw_name: gw }, value: 1 }]);
    const epoch = src.configEpoch();
    put('iscsi_gateway_config_epoch', epoch === undefined ? [] : [{ labels: {}, value: epoch }]);
    const bySession = new Accumulator('sum');
    for (const s of sessions) bySession.add({ target: s.target, client_iqn: s.initiator }, 1);
    put('iscsi_gateway_sessions', bySession.list());
    put('iscsi_gateway_login_failures_total', [...loginFailures()].map(([reason, n]) => ({ labels: { reason }, value: n })));
    put('iscsi_gateway_lun_commands_total', lunCommands);
    put('iscsi_gateway_lun_read_bytes_total', lunRead);
    put('iscsi_gateway_lun_write_bytes_total', lunWrite);
    put('iscsi_gateway_lun_errors_total', lunErrors);
    put('iscsi_gateway_lun_tasks', lunTasks);
    put('iscsi_gateway_lun_latency_seconds', lunLatency);
    const iniCommands: Row[] = [];
    const iniRead: Row[] = [];
    const iniWrite: Row[] = [];
    const iniErrors: Row[] = [];
    const iniLat: Row[] = [];
    for (const { labels, stats } of byInitiator.values()) {
      pushIo(stats, labels, iniCommands, iniRead, iniWrite, iniErrors);
      for (let k = 0; k < OP_NAMES.length; k++) {
        const h = stats.latency[k];
        if (h.count > 0) iniLat.push(...histogramRows('iscsi_gateway_initiator_latency_seconds', { ...labels, op: OP_NAMES[k] }, h));
      }
    }
    put('iscsi_gateway_initiator_commands_total', iniCommands);
    put('iscsi_gateway_initiator_read_bytes_total', iniRead);
    put('iscsi_gateway_initiator_write_bytes_total', iniWrite);
    put('iscsi_gateway_initiator_errors_total', iniErrors);
    put('iscsi_gateway_initiator_latency_seconds', iniLat);
    const ha = src.ha?.();
    if (ha) {
      const lun = (d: { disk: string }) => ({ lun_name: d.disk });
      put('iscsi_gateway_lun_owner', ha.disks.map((d) => ({ labels: lun(d), value: d.owned ? 1 : 0 })));
      put('iscsi_gateway_lun_failovers_total', ha.disks.map((d) => ({ labels: lun(d), value: d.failovers })));
      put('iscsi_gateway_lun_lock_lost_total', ha.disks.map((d) => ({ labels: lun(d), value: d.lockLost })));
      put('iscsi_gateway_lun_fenced_total', ha.disks.map((d) => ({ labels: lun(d), value: d.fenced })));
      put('iscsi_gateway_lun_lock_bounces_total', ha.disks.map((d) => ({ labels: lun(d), value: d.bounces })));
      put('iscsi_gateway_lun_takeover_seconds', ha.disks.filter((d) => d.lastTakeoverSeconds !== undefined).map((d) => ({ labels: lun(d), value: d.lastTakeoverSeconds! })));
      put('iscsi_gateway_draining', [{ labels: { gw_name: gw }, value: ha.draining ? 1 : 0 }]);
      put('iscsi_gateway_peer_up', ha.peers.map((p) => ({ labels: { gw_name: gw, peer: p.name }, value: p.up ? 1 : 0 })));
    }
    return out;
  }
}

function pushIo(s: IoStatsView, labels: Labels, commands: Row[], read: Row[], write: Row[], errors: Row[]): void {
  for (let k = 0; k < OP_NAMES.length; k++) commands.push({ labels: { ...labels, op: OP_NAMES[k] }, value: s.commands[k] });
  read.push({ labels, value: s.readBytes });
  write.push({ labels, value: s.writeBytes });
  errors.push({ labels, value: s.errors });
}
