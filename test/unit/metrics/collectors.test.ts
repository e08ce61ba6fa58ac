import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayMetrics } from '../../../src/metrics/collectors';
import type { LunSample, MetricsSource, SessionSample } from '../../../src/metrics/source';
import { LuStats, SessionStats, countLoginFailure } from '../../../src/metrics/stats';
import { ScsiStatus } from '../../../src/scsi/sam';
import { command, nexus } from '../scsi/helpers';
import { parseExposition, promtoolCheck, samples, value } from '../../helpers/prometheus';

const T1 = 'iqn.2003-01.org.example:t1';
const T2 = 'iqn.2003-01.org.example:t2';

/** A gateway view with real LuStats: two targets sharing disk rbd/a, one initiator on both. */
function source(): { src: MetricsSource; a1: LuStats; a2: LuStats; b: LuStats; sessions: SessionSample[] } {
  const a1 = new LuStats();
  const a2 = new LuStats();
  const b = new LuStats();
  const lun = (target: string, l: number, name: string, stats: LuStats): LunSample => ({
    target, lun: l, name, sizeBytes: 1 << 30, owner: 'gw1', mapped: true, tasks: 0, stats,
  });
  const sessions: SessionSample[] = [];
  const src: MetricsSource = {
    gatewayName: 'gw1',
    configEpoch: () => 42,
    targets: () => [{ name: T1, tpgs: 2 }, { name: T2, tpgs: 1 }],
    luns: () => [lun(T1, 0, 'rbd/a', a1), lun(T1, 1, 'rbd/b "quoted"\\', b), lun(T2, 3, 'rbd/a', a2)],
    clients: () => [{ target: T1, iqn: 'iqn.1994-05.com.example:c1', luns: [{ name: 'rbd/a', lun: 0 }] }],
    sessions: () => sessions,
  };
  return { src, a1, a2, b, sessions };
}

function write(stats: LuStats, n: number, bytes: number, seconds: number): void {
  stats.record(command([0x2a], { nexus: nexus(n), dataOutLength: bytes }), { status: ScsiStatus.Good, dataOutTransferLength: bytes }, seconds);
}

describe('GatewayMetrics', () => {
  it('exports ceph-iscsi metrics summed over targets and its own per target, in lint-clean exposition format', async () => {
    const { src, a1, a2, b, sessions } = source();
    write(a1, 1, 4096, 0.0002);
    write(a1, 1, 4096, 0.003);
    write(a2, 1, 8192, 0.0004);
    write(b, 2, 512, 2);
    sessions.push({ target: T1, initiator: nexus(1).initiatorName, isid: '400000000001', tsih: 1, stats: new SessionStats() });
    sessions.push({ target: T2, initiator: nexus(1).initiatorName, isid: '400000000002', tsih: 2, stats: new SessionStats() });
    countLoginFailure('not_found');
    const m = new GatewayMetrics(src);
    const text = await m.scrape();
    const lint = await promtoolCheck(text);
    assert.equal(lint.code, 0, lint.output);
    assert.equal(lint.output, '', 'no lint problems');
    const all = parseExposition(text);
    const ini = nexus(1).initiatorName;

    // ceph-iscsi names and label sets (no target label: rbd/a is summed over both targets).
    assert.equal(value(all, 'ceph_iscsi_lun_write_bytes', { gw_name: 'gw1', client_iqn: ini, lun_name: 'rbd/a' }), 4096 + 4096 + 8192);
    assert.equal(value(all, 'ceph_iscsi_lun_iops', { client_iqn: ini, lun_name: 'rbd/a' }), 3);
    assert.equal(value(all, 'ceph_iscsi_lun_iops', { client_iqn: 'iqn.1994-05.com.example:c1', lun_name: 'rbd/a' }), 0, 'mapped client, no I/O yet');
    assert.equal(value(all, 'ceph_iscsi_lun_size_bytes', { lun_name: 'rbd/a' }), 1 << 30);
    assert.equal(value(all, 'ceph_iscsi_lun_mapped', { lun_name: 'rbd/a', gw_owner: 'gw1' }), 1);
    assert.equal(value(all, 'ceph_iscsi_gateway_tpg_total', { gw_iqn: T1 }), 2);
    assert.equal(value(all, 'ceph_iscsi_client_login', { client_iqn: 'iqn.1994-05.com.example:c1' }), 0);
    assert.equal(value(all, 'ceph_iscsi_client_login', { client_iqn: ini }), 1);
    assert.equal(value(all, 'ceph_iscsi_client_lun', { client_iqn: 'iqn.1994-05.com.example:c1', lun_name: 'rbd/a' }), 0);
    assert.ok(value(all, 'ceph_iscsi_scrape_duration_seconds', { gw_name: 'gw1' }) >= 0);
    assert.match(text, /# TYPE ceph_iscsi_lun_iops untyped/);

    // Own metrics, per target and LUN; label values escaped.
    assert.equal(value(all, 'iscsi_gateway_lun_write_bytes_total', { target: T1, lun: '0' }), 8192);
    assert.equal(value(all, 'iscsi_gateway_lun_write_bytes_total', { target: T2, lun: '3' }), 8192);
    assert.equal(value(all, 'iscsi_gateway_lun_write_bytes_total', { lun_name: 'rbd/b "quoted"\\' }), 512);
    assert.equal(value(all, 'iscsi_gateway_lun_commands_total', { target: T1, lun: '0', op: 'write' }), 2);
    assert.equal(value(all, 'iscsi_gateway_lun_commands_total', { target: T1, lun: '0', op: 'read' }), 0);
    assert.equal(value(all, 'iscsi_gateway_initiator_write_bytes_total', { target: T1, client_iqn: ini }), 8192);
    assert.equal(value(all, 'iscsi_gateway_initiator_write_bytes_total', { target: T1, client_iqn: nexus(2).initiatorName }), 512);
    assert.equal(value(all, 'iscsi_gateway_initiator_commands_total', { target: T2, client_iqn: ini, op: 'write' }), 1);
    assert.equal(samples(all, 'iscsi_gateway_initiator_commands_total', { lun: '0' }).length, 0, 'per initiator and disk: the ceph_iscsi_lun_* series');
    assert.equal(value(all, 'iscsi_gateway_sessions', { target: T1, client_iqn: ini }), 1);
    assert.equal(value(all, 'iscsi_gateway_config_epoch'), 42);
    assert.ok(value(all, 'iscsi_gateway_login_failures_total', { reason: 'not_found' }) >= 1);

    // Histograms: cumulative buckets, +Inf = count, sum.
    const lat = { target: T1, lun: '0', op: 'write' };
    assert.equal(value(all, 'iscsi_gateway_lun_latency_seconds_bucket', { ...lat, le: '0.0001' }), 0);
    assert.equal(value(all, 'iscsi_gateway_lun_latency_seconds_bucket', { ...lat, le: '0.00025' }), 1);
    assert.equal(value(all, 'iscsi_gateway_lun_latency_seconds_bucket', { ...lat, le: '0.0025' }), 1);
    assert.equal(value(all, 'iscsi_gateway_lun_latency_seconds_bucket', { ...lat, le: '0.005' }), 2);
    assert.equal(value(all, 'iscsi_gateway_lun_latency_seconds_bucket', { target: T1, lun: '1', op: 'write', le: '2.5' }), 1);
    assert.equal(value(all, 'iscsi_gateway_lun_latency_seconds_bucket', { target: T1, lun: '1', op: 'write', le: '0.5' }), 0);
    assert.equal(value(all, 'iscsi_gateway_lun_latency_seconds_bucket', { ...lat, le: '+Inf' }), 2);
    assert.equal(value(all, 'iscsi_gateway_lun_latency_seconds_count', lat), 2);
    assert.ok(Math.abs(value(all, 'iscsi_gateway_lun_latency_seconds_sum', lat) - 0.0032) < 1e-12);
    assert.equal(samples(all, 'iscsi_gateway_lun_latency_seconds_count', { target: T1, lun: '0', op: 'read' }).length, 0, 'no empty histograms');
    // Per initiator: over its LUNs of one target.
    assert.equal(value(all, 'iscsi_gateway_initiator_latency_seconds_count', { target: T1, client_iqn: ini, op: 'write' }), 2);
    assert.equal(value(all, 'iscsi_gateway_initiator_latency_seconds_count', { target: T2, client_iqn: ini, op: 'write' }), 1);
  });

  it('reads the counters anew at each scrape (counters move, nothing is cached)', async () => {
    const { src, a1 } = source();
    const m = new GatewayMetrics(src, { processMetrics: false });
    write(a1, 1, 4096, 0.001);
    const first = parseExposition(await m.scrape());
    write(a1, 1, 4096, 0.001);
    write(a1, 1, 1000, 0.001);
    const second = parseExposition(await m.scrape());
    const labels = { target: T1, lun: '0' };
    assert.equal(value(first, 'iscsi_gateway_lun_write_bytes_total', labels), 4096);
    assert.equal(value(second, 'iscsi_gateway_lun_write_bytes_total', labels), 9192);
    assert.equal(samples(second, 'process_cpu_user_seconds_total').length, 0, 'process metrics off');
  });

  it('includes the process metrics by default, lint-clean', async () => {
    const text = await new GatewayMetrics(source().src).scrape();
    const all = parseExposition(text);
    assert.equal(samples(all, 'process_resident_memory_bytes').length, 1);
    assert.equal(samples(all, 'nodejs_active_handles_total').length, 0);
    const lint = await promtoolCheck(text);
    assert.equal(lint.code, 0, lint.output);
  });
});
