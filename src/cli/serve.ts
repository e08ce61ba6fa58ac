/**
 * `iscsi-gateway serve`: run the gateway daemon in the foreground until SIGTERM/SIGINT.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { defaultDataDir } from '../config/paths';
import { Gateway } from '../daemon/gateway';
import { DEMO_TARGET } from '../daemon/demo';
import { PortalAddress, PortalAddressError, formatAddress, parsePortal } from '../transport/portal';
import { rootLogger } from '../util/log';
import { DEFAULT_METRICS_PORT, MetricsServer, startMetricsServer } from '../metrics/server';
import { gatewayMetricsSource } from '../metrics/source';

function collectPortal(value: string, previous: PortalAddress[] | undefined): PortalAddress[] {
  try {
    return [...(previous ?? []), parsePortal(value)];
  } catch (e) {
    if (e instanceof PortalAddressError) throw new Error(e.message, { cause: e });
    throw e;
  }
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the iSCSI gateway (embedded image store by default)')
    .option('--data <dir>', 'data directory: configuration and images (env ISCSI_GATEWAY_DATA)')
    .option('--portal <host:port>', 'iSCSI portal to listen on; repeatable; IPv6 as [addr]:port (default 127.0.0.1:3260)', collectPortal)
    .addOption(new Option('--api <host:port>', 'REST API address (management plane; reserved)').argParser((v) => parsePortal(v, 5000)))
    .addOption(new Option('--metrics <host:port>', `Prometheus endpoint address (port ${DEFAULT_METRICS_PORT} unless given; off when not set)`)
      .argParser(parseMetricsAddress))
    .action(async (opts: { data?: string; portal?: PortalAddress[]; api?: PortalAddress; metrics?: PortalAddress }) => {
      const log = rootLogger();
      const dataDir = opts.data ?? defaultDataDir();
      const portals = opts.portal ?? [parsePortal('127.0.0.1:3260')];
      let gateway: Gateway;
      try {
        gateway = await Gateway.start({ dataDir, portals, log });
      } catch (e) {
        process.stderr.write(`iscsi-gateway: ${(e as Error).message}\n`);
        process.exit(1);
      }
      let metrics: MetricsServer | undefined;
      if (opts.metrics) {
        try {
          metrics = await startMetricsServer({ ...opts.metrics, source: gatewayMetricsSource(gateway), log });
        } catch (e) {
          process.stderr.write(`iscsi-gateway: cannot listen for metrics on ${formatAddress(opts.metrics)}: ${(e as Error).message}\n`);
          await gateway.stop();
          process.exit(1);
        }
      }
      if (opts.api) {
        log.warn({ api: formatAddress(opts.api) }, 'the REST API is not part of this version yet; --api is ignored');
      }
      const bound = gateway.boundPortals();
      // One write, so that a reader who waits for "listening on" also has the demo lines.
      let banner = `iscsi-gateway: data in ${dataDir}; listening on ${bound.map(formatAddress).join(', ')}\n`;
      if (metrics) banner += `metrics on http://${formatAddress(metrics.address())}/metrics\n`;
      if (gateway.createdDemo) {
        const p = bound[0];
        const host = p.host.includes(':') ? `[${p.host}]` : p.host;
        const url = p.port === 3260 ? `iscsi://${host}/` : `iscsi://${host}:${p.port}/`;
        banner += `demo target ${DEMO_TARGET} (LUN 0: 1 GiB thin image) is ready: try\n  iscsi-ls ${url}\n`;
      }
      process.stdout.write(banner);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'shutting down');
        Promise.all([gateway.stop(), metrics?.close()]).then(
          () => process.exit(0),
          (e: unknown) => {
            log.error({ err: e }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}

function parseMetricsAddress(value: string): PortalAddress {
  try {
    return parsePortal(value, DEFAULT_METRICS_PORT);
  } catch (e) {
    if (e instanceof PortalAddressError) throw new InvalidArgumentError(e.message.replace('portal address', 'metrics address'));
    throw e;
  }
}
