/**
 * `iscsi-gateway serve`: run the gateway daemon in the foreground until SIGTERM/SIGINT.
 *
 *   --name NAME      this gateway's name in the shared configuration (default: host FQDN)
 *   --config FILE    settings in the INI form of iscsi-gateway.cfg ([config] section)
 *   --portal H:P     portals to listen on (first start, tests); else the configuration's
 *   --api H:P        REST API address (overrides api_host/api_port)
 *   --metrics H:P    Prometheus address (overrides prometheus_host/prometheus_port)
 */
import { parseLoginThrottle } from '../iscsi/login-throttle';
import { Command, Option } from 'commander';
import * as dns from 'node:dns';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultDataDir } from '../config/paths';
import { ChapSecrets } from '../config/secrets';
import { GatewaySettings, ParsedSettings, SettingsError, checkconfSubset, defaultSettings, loadSettings } from '../config/settings';
import { ApiServer, startDaemonApi } from '../api/server';
import { Gateway, SharedConfigStore } from '../daemon/gateway';
import { RadosConfigStore } from '../config/rados-store';
import { RadosPeerPlane } from '../ha/rados-peer-plane';
import { adoptCeph, cephSettings, closeCeph } from '../ceph/settings';
import { DEMO_TARGET } from '../daemon/demo';
import { PortalAddress, PortalAddressError, formatAddress, parsePortal } from '../transport/portal';
import { rootLogger } from '../util/log';
import { MetricsServer, startMetricsServer } from '../metrics/server';
import { gatewayMetricsSource } from '../metrics/source';
import { startLivePublisher } from '../web/live';
import { installProcessGuard } from '../util/process-guard';
import type { ImageProvider } from '../images/provider';
import { cephFromSettingsFile, connectCephImages } from '../images/select';
import { CephImageProvider } from '../images/ceph';
import { CephRbdClient } from '../images/ceph-client';

function collectPortal(value: string, previous: PortalAddress[] | undefined): PortalAddress[] {
  try {
    return [...(previous ?? []), parsePortal(value)];
  } catch (e) {
    if (e instanceof PortalAddressError) throw new Error(e.message, { cause: e });
    throw e;
  }
}

/** An address option's parser; `what` names it in the message ("metrics address"). */
function address(defaultPort: number, what: string) {
  return (v: string): PortalAddress => {
    try {
      return parsePortal(v, defaultPort);
    } catch (e) {
      if (e instanceof PortalAddressError) throw new Error(e.message.replace('portal address', what), { cause: e });
      throw e;
    }
  };
}

const GATEWAY_NAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$/;

/** The host's FQDN, as ceph-iscsi names gateways (socket.getfqdn()). */
export async function hostFqdn(): Promise<string> {
  const host = os.hostname();
  if (host.includes('.')) return host;
  try {
    const { address: ip } = await dns.promises.lookup(host);
    const names = await dns.promises.reverse(ip).catch(() => [] as string[]);
    const fqdn = names.find((n) => n.startsWith(`${host}.`));
    if (fqdn) return fqdn;
    const { hostname } = await dns.promises.lookupService(ip, 0);
    if (hostname.startsWith(`${host}.`)) return hostname;
  } catch {
    // no resolver entry: the short name it is
  }
  return host;
}

export interface ServeOptions {
  readonly data?: string;
  readonly name?: string;
  readonly config?: string;
  readonly portal?: PortalAddress[];
  readonly api?: PortalAddress;
  readonly metrics?: PortalAddress;
}

/** Settings file (or defaults) with the command-line overrides applied. */
export function effectiveSettings(opts: ServeOptions): ParsedSettings {
  const parsed: ParsedSettings = opts.config ? loadSettings(opts.config) : { settings: defaultSettings(), warnings: [] };
  const s: GatewaySettings = {
    ...parsed.settings,
    ...(opts.api ? { api_host: opts.api.host, api_port: opts.api.port } : {}),
    ...(opts.metrics ? { prometheus_host: opts.metrics.host, prometheus_port: opts.metrics.port } : {}),
  };
  return { ...parsed, settings: s };
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the iSCSI gateway (embedded image store by default)')
    .option('--data <dir>', 'data directory: configuration and images (env ISCSI_GATEWAY_DATA)')
    .option('--name <name>', "this gateway's name in the shared configuration (default: the host's FQDN)")
    .option('--config <file>', 'settings file in the INI form of iscsi-gateway.cfg ([config] section)')
    .option('--portal <host:port>', 'iSCSI portal to listen on; repeatable; IPv6 as [addr]:port (default: from the configuration, first start 127.0.0.1:3260)', collectPortal)
    .addOption(new Option('--api <host:port>', 'REST API address (overrides api_host/api_port)').argParser(address(5000, 'API address')))
    .addOption(new Option('--metrics <host:port>', 'Prometheus metrics address (overrides prometheus_host/prometheus_port)').argParser(address(9287, 'metrics address')))
    .action(async (opts: ServeOptions) => {
      const log = rootLogger();
      installProcessGuard(log);
      const dataDir = opts.data ?? defaultDataDir();
      let settings: ParsedSettings;
      try {
        settings = effectiveSettings(opts);
      } catch (e) {
        if (e instanceof SettingsError) {
          process.stderr.write(`iscsi-gateway: ${e.message}\n`);
          process.exit(2);
        }
        throw e;
      }
      for (const w of settings.warnings) log.warn({ file: settings.file }, `settings: ${w}`);
      const name = opts.name ?? (await hostFqdn());
      if (!GATEWAY_NAME.test(name)) {
        process.stderr.write(`iscsi-gateway: invalid gateway name "${name}": use a host name (letters, digits, '.', '-')\n`);
        process.exit(2);
      }
      let secrets: ChapSecrets;
      try {
        // CHAP passwords at rest: priv_key/pub_key relative to ceph_config_dir, as ceph-iscsi
        // (absent files = passwords stored in clear).
        const c = settings.settings;
        secrets = ChapSecrets.fromFiles({ privKeyFile: path.resolve(c.ceph_config_dir, c.priv_key), pubKeyFile: path.resolve(c.ceph_config_dir, c.pub_key) });
      } catch (e) {
        process.stderr.write(`iscsi-gateway: ${(e as Error).message}\n`);
        process.exit(2);
      }
      // Images: Ceph RBD when the settings file names a cluster (an error if it cannot be
      // reached: no silent fallback to the embedded store), else the embedded store.
      let images: ImageProvider | undefined;
      const cephImages = cephFromSettingsFile(settings.file);
      if (cephImages) {
        try {
          images = await connectCephImages(cephImages, { onError: (what, err) => log.warn({ err }, `ceph: ${what} failed`) });
        } catch (e) {
          process.stderr.write(`iscsi-gateway: ${(e as Error).message}\n`);
          process.exit(1);
        }
        log.info({ provider: 'ceph' }, 'images are RBD images of the Ceph cluster');
      }
      // With Ceph configured the shared configuration is the RADOS object (pool/gateway_conf),
      // over the image provider's connection (one librados client per process).
      const ceph = cephSettings(settings);
      let configStore: SharedConfigStore | undefined;
      // Gateways on other hosts share only the cluster: their status and messages go through
      // RADOS too whenever the configuration does (else through the data dir).
      let peerPlane: RadosPeerPlane | undefined;
      if (ceph) {
        if (images instanceof CephImageProvider && images.client instanceof CephRbdClient) adoptCeph(ceph, images.client.cluster);
        try {
          configStore = await RadosConfigStore.open(ceph, {
            onWatch: (event, detail) => (event === 'lost' ? log.warn({ detail }, 'configuration watch lost; re-watching') : log.info({ detail }, 'configuration watch restored')),
          });
          peerPlane = await RadosPeerPlane.open(ceph, { mirrorDataDir: dataDir, log: log.child({ component: 'peers' }) });
        } catch (e) {
          process.stderr.write(`iscsi-gateway: Ceph cluster of ${ceph.conf}: ${(e as Error).message}\n`);
          await closeCeph();
          await images?.close().catch(() => undefined);
          process.exit(1);
        }
      }
      let gateway: Gateway;
      try {
        // Failed-login throttling, tunable for tests and benches (e.g. "free=5,base=250,max=8000").
        const loginThrottle = parseLoginThrottle(process.env.ISCSI_GATEWAY_LOGIN_THROTTLE);
        gateway = await Gateway.start({ dataDir, name, portals: opts.portal, log, loginThrottle, settings: settings.settings, passwordDecoder: (stored, encrypted) => secrets.open(stored, encrypted), configStore, ...(images ? { images } : {}), ...(peerPlane ? { peerPlane } : {}) });
      } catch (e) {
        process.stderr.write(`iscsi-gateway: ${(e as Error).message}\n`);
        await closeCeph();
        await images?.close().catch(() => undefined);
        process.exit(1);
      }
      // The REST API runs when asked for (--api) or configured (--config): without either,
      // several daemons on one host (tests) would all claim api_port 5000.
      let api: ApiServer | undefined;
      if (opts.api || opts.config) {
        // No settings file means no TLS files either: plain HTTP (on the --api address).
        const s = opts.config ? settings.settings : { ...settings.settings, api_secure: false };
        try {
          api = await startDaemonApi({ dataDir, store: gateway.configStore, running: gateway, gatewayName: name, settings: s, secrets, checkconfSubset: checkconfSubset(s), log, ceph, ...(images ? { images } : {}), ...(peerPlane ? { peers: peerPlane } : {}) });
        } catch (e) {
          process.stderr.write(`iscsi-gateway: REST API: ${(e as Error).message}\n`);
          await gateway.stop();
          process.exit(1);
        }
      }
      // Metrics: on by default as ceph-iscsi's prometheus_exporter; an address given with
      // --metrics must be bound, the default one is best effort (several daemons on one host).
      let metrics: MetricsServer | undefined;
      const m = settings.settings;
      if (opts.metrics || m.prometheus_exporter) {
        const at = { host: m.prometheus_host, port: m.prometheus_port };
        try {
          metrics = await startMetricsServer({ ...at, source: gatewayMetricsSource(gateway, name), log });
        } catch (e) {
          if (opts.metrics) {
            process.stderr.write(`iscsi-gateway: cannot listen for metrics on ${formatAddress(at)}: ${(e as Error).message}\n`);
            await api?.close().catch(() => undefined);
            await gateway.stop();
            process.exit(1);
          }
          log.warn({ metrics: formatAddress(at), err: e }, 'metrics endpoint not started');
        }
      }
      // Live counters for the web dashboard (whichever gateway's API serves it graphs them all).
      const live = startLivePublisher(peerPlane ?? dataDir, name, gatewayMetricsSource(gateway, name), gateway, log);
      const bound = gateway.boundPortals();
      // One write, so that a reader who waits for "listening on" also has the demo lines.
      const where = configStore ? `; configuration in ${configStore.location}${peerPlane ? `; gateways meet in ${peerPlane.location}` : ''}` : '';
      let banner = `iscsi-gateway ${name}: data in ${dataDir}${where}; listening on ${bound.map(formatAddress).join(', ') || '(no portal configured)'}\n`;
      if (api) banner += `REST API on ${api.url}\n`;
      if (metrics) banner += `metrics on http://${formatAddress(metrics.address())}/metrics\n`;
      if (gateway.createdDemo && bound.length > 0) {
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
        Promise.all([api?.close().catch(() => undefined), metrics?.close().catch(() => undefined), live.stop().catch(() => undefined)]).then(() => gateway.stop())
          .then(() => closeCeph()).then(() => images?.close()).then(
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
