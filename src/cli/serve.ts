/**
 * `iscsi-gateway serve`: run the gateway daemon in the foreground until SIGTERM/SIGINT.
 */
import { Command, Option } from 'commander';
import { defaultDataDir } from '../config/paths';
import { Gateway } from '../daemon/gateway';
import { DEMO_TARGET } from '../daemon/demo';
import { PortalAddress, PortalAddressError, formatAddress, parsePortal } from '../transport/portal';
import { rootLogger } from '../util/log';
import { installProcessGuard } from '../util/process-guard';

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
    .action(async (opts: { data?: string; portal?: PortalAddress[]; api?: PortalAddress }) => {
      const log = rootLogger();
      installProcessGuard(log);
      const dataDir = opts.data ?? defaultDataDir();
      const portals = opts.portal ?? [parsePortal('127.0.0.1:3260')];
      let gateway: Gateway;
      try {
        gateway = await Gateway.start({ dataDir, portals, log });
      } catch (e) {
        process.stderr.write(`iscsi-gateway: ${(e as Error).message}\n`);
        process.exit(1);
      }
      if (opts.api) {
        log.warn({ api: formatAddress(opts.api) }, 'the REST API is not part of this version yet; --api is ignored');
      }
      const bound = gateway.boundPortals();
      // One write, so that a reader who waits for "listening on" also has the demo lines.
      let banner = `iscsi-gateway: data in ${dataDir}; listening on ${bound.map(formatAddress).join(', ')}\n`;
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
        gateway.stop().then(
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
