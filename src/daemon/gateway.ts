/**
 * The gateway daemon: shared configuration -> reconciler -> backstores, SCSI target devices,
 * iSCSI service, portals. Start-up: migrate an old gateway.json, create the demo target on a
 * first loopback-only start, register this gateway, apply, then follow every commit (watch).
 * Owns the clean shutdown (initiators logged out, backstores flushed and closed).
 */
import type { Server } from 'node:net';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { FileConfigStore } from '../config/file-store';
import { configPath } from '../config/paths';
import { GatewayConfig, timestamp } from '../config/schema';
import { GatewaySettings, defaultSettings } from '../config/settings';
import type { MigratingGateway } from '../config/migrate';
import { ConfigSnapshot, ConfigStore } from '../config/store';
import { HaManager } from '../ha/manager';
import { FilePeerPlane, PeerPlane } from '../ha/peer-plane';
import { LeaseLocks } from '../ha/lease-lock';
import { RBD_LOCK_PREFIX, RbdLocks } from '../ha/rbd-lock';
import { RoutedLocks } from '../ha/routed-locks';
import type { CephCluster } from '../ceph/cluster';
import { reassignOwners } from '../ha/ownership';
import { assignTopologyIds } from '../ha/access-state';
import { IscsiService } from '../iscsi/service';
import type { LoginThrottleOptions } from '../iscsi/login-throttle';
import { PortalAddress, formatAddress, isLoopback, listenPortal } from '../transport/portal';
import type { Logger } from '../util/log';
import type { ImageProvider } from '../images/provider';
import { Backstores } from './backstores';
import { ConfiguredCatalog, PasswordDecoder } from './catalog';
import { DEMO_TARGET, createDemoImage, demoConfig } from './demo';
import { parseListenEntry } from './portals';
import { Reconciler } from './reconciler';
import { plannedStop } from './planned-stop';
import { LockAccessControl } from '../ha/lock-access';
import { pidAlive } from '../util/pid';
import type { ScsiTarget } from '../scsi/scsi-target';
import type { HaSample } from '../metrics/source';
import { AluaDiskView, DisruptiveChange, DisruptiveChangeError, GatewayStatus, RunningState, SessionInfo } from './running-state';
import { HEARTBEAT_MS, PeerLiveness, peerLiveness, publishStatus, readPeerStatuses, readStatuses } from './status';

export const DEFAULT_PORTAL = '127.0.0.1:3260';
/** Delay of the status publication after a login or logout (coalesces a burst of logins). */
const PUBLISH_SOON_MS = 100;

export interface GatewayOptions {
  readonly dataDir: string;
  /** This gateway's name in the configuration (`serve --name`; default: the host's FQDN). */
  readonly name: string;
  /**
   * Portals given on the command line (`--portal`): listened on now and recorded as this
   * gateway's addresses. Without them the configuration decides (first start: 127.0.0.1:3260).
   */
  readonly portals?: readonly PortalAddress[];
  readonly log: Logger;
  /** iscsi-gateway.cfg settings with command-line overrides (the API and metrics read them here). */
  readonly settings?: GatewaySettings;
  /** Seconds initiators get to log out on shutdown. */
  readonly shutdownGrace?: number;
  /** Failed-login throttling per source address (default: DEFAULT_LOGIN_THROTTLE). */
  readonly loginThrottle?: LoginThrottleOptions;
  /** Decodes stored CHAP passwords (RSA-OAEP with the configured key pair); default: clear text only. */
  readonly passwordDecoder?: PasswordDecoder;
  /**
   * The shared configuration when it is not the data dir's gateway.json (the RADOS object when
   * Ceph is configured, src/ceph/settings.ts). Closed by stop().
   */
  readonly configStore?: SharedConfigStore;
  /** Where image disks live when not in the embedded store (Ceph RBD); the caller closes it. */
  readonly images?: ImageProvider;
  /**
   * How gateways see each other (status, messages) when not through the data dir: the RADOS
   * plane when the configuration is in RADOS (src/ha/rados-peer-plane.ts). Closed by stop().
   */
  readonly peerPlane?: PeerPlane;
  /**
   * Ceph: `user:rbd` disks are owned under RBD's exclusive lock, taken by a librados client of
   * its own (`connect` makes one; src/ha/rbd-lock.ts), its registry in `pool`.
   */
  readonly cephLocks?: { readonly connect: () => Promise<CephCluster>; readonly pool: string };
}

/** A ConfigStore that can bring an older document to the current schema in place. */
export type SharedConfigStore = ConfigStore & { migrate(gateway: MigratingGateway): Promise<boolean> };

export class Gateway implements RunningState {
  private readonly catalog = new ConfiguredCatalog();
  private readonly backstores: Backstores;
  /** Run-time ownership of the disks (lock, hand-over, fencing, failback, drain). */
  readonly ha: HaManager;
  readonly service: IscsiService;
  readonly configStore: SharedConfigStore;
  /** Status documents and messages of all gateways (the data dir, or RADOS on Ceph). */
  readonly peerPlane: PeerPlane;
  /** A gateway's liveness by its heartbeat (for lock backends that must tell a dead holder). */
  readonly peerLiveness: (gateway: string) => Promise<PeerLiveness>;
  private readonly fileStore: FileConfigStore;
  private reconciler: Reconciler | undefined;
  private unwatch: (() => void) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** A publication soon after a login or logout (coalesced), so other gateways see sessions at once. */
  private publishSoonTimer: NodeJS.Timeout | undefined;
  private unsubscribeSessions: (() => void) | undefined;
  private unsubscribeLockLost: (() => void) | undefined;
  private peers: HaSample['peers'] = [];
  /** Set when this start created the demo target. */
  createdDemo = false;
  private stopping: Promise<void> | undefined;
  readonly gatewayName: string;
  readonly settings: GatewaySettings;

  private constructor(private readonly options: GatewayOptions) {
    this.gatewayName = options.name;
    this.settings = options.settings ?? defaultSettings();
    if (options.passwordDecoder) this.catalog.decode = options.passwordDecoder;
    this.service = new IscsiService(this.catalog, options.log, options.loginThrottle);
    this.fileStore = new FileConfigStore(configPath(options.dataDir));
    this.configStore = options.configStore ?? this.fileStore;
    const plane = options.peerPlane ?? new FilePeerPlane(options.dataDir);
    this.peerPlane = plane;
    this.peerLiveness = peerLiveness(plane);
    const s = this.settings;
    const haLog = options.log.child({ component: 'ha' });
    const leases = new LeaseLocks({ dataDir: options.dataDir, gateway: options.name, leaseMs: s.ha_lease_secs * 1000, log: haLog, send: (to, m) => plane.send(to, m) });
    const rbdLocks = options.cephLocks && options.images ? cephImageLocks(options, plane, s.ha_lease_secs * 1000, haLog) : undefined;
    this.backstores = new Backstores(options.dataDir, `iscsi-gateway@${options.name}`, options.log, options.images, rbdLocks);
    this.ha = new HaManager({
      gateway: options.name,
      dataDir: options.dataDir,
      locks: rbdLocks ? new RoutedLocks([{ prefix: RBD_LOCK_PREFIX, backend: rbdLocks }], leases) : leases,
      mailbox: plane,
      log: haLog,
      minHoldMs: s.ha_min_hold_ms,
      maxHoldMs: Math.max(s.ha_min_hold_ms, s.ha_max_hold_ms),
      failbackMs: s.ha_failback_secs * 1000,
      peers: () => this.livePeers(),
    });
  }

  /** Other gateways that are up and not draining, with the disks they serve. */
  private async livePeers(): Promise<Array<{ name: string; disks: readonly string[] }>> {
    // A peer that just died still looks up for a few heartbeats: on this host its pid tells.
    return (await readPeerStatuses(this.peerPlane))
      .filter((g) => g.up && !g.draining && g.name !== this.options.name && !(g.host === os.hostname() && g.pid !== undefined && !pidAlive(g.pid)))
      .map((g) => ({ name: g.name, disks: g.servedDisks ?? [] }));
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(options);
    try {
      await gw.boot();
    } catch (e) {
      await gw.stop();
      throw e;
    }
    return gw;
  }

  /** The configuration as this gateway last applied it. */
  get config(): GatewayConfig | undefined {
    return this.reconciler?.config();
  }

  private async boot(): Promise<void> {
    const { dataDir, log, name } = this.options;
    await fs.promises.mkdir(dataDir, { recursive: true, mode: 0o700 });
    // One process per gateway name: a second one would claim the same disks and portals.
    const twin = (await readStatuses(dataDir)).find((g) => g.name === name && g.up && g.host === os.hostname() && g.pid !== process.pid && g.pid !== undefined && pidAlive(g.pid));
    if (twin) {
      throw new Error(`gateway ${name} is already running on ${os.hostname()} (pid ${twin.pid}) with this data directory; start another gateway with its own --name`);
    }

    // Explicit portals are bound first: port 0 becomes a real port before it is recorded.
    const preBound = new Map<string, Server>();
    for (const p of this.options.portals ?? []) {
      let server: Server;
      try {
        server = await listenPortal(p, (socket) => this.service.accept(socket));
      } catch (e) {
        for (const s of preBound.values()) s.close();
        throw new Error(`cannot listen on ${formatAddress(p)}: ${(e as Error).message}`, { cause: e });
      }
      const a = server.address();
      if (a === null || typeof a === 'string') throw new Error('portal has no address');
      const bound = { host: a.address, port: a.port };
      preBound.set(formatAddress(bound), server);
      log.info({ portal: formatAddress(bound) }, 'portal listening');
    }
    const ownAddresses = preBound.size > 0 ? [...preBound.keys()] : undefined;

    const listen = ownAddresses ?? [DEFAULT_PORTAL];
    if (await this.configStore.migrate({ name, portals: listen })) {
      log.info({ file: this.configStore.location }, 'configuration migrated to schema version 11 (the old document is kept beside it)');
    }

    // First start: the demo target as ordinary configuration (loopback only, embedded store only:
    // a shared configuration in Ceph is never seeded with a demo).
    const first = await this.configStore.read();
    if (this.configStore === this.fileStore && first.epoch === 0 && Object.keys(first.config.targets).length === 0 && Object.keys(first.config.gateways).length === 0) {
      const loopbackOnly = listen.every((a) => isLoopback(parseListenEntry(a).host));
      // The demo image belongs to the embedded store; on a Ceph cluster nothing is created unasked.
      if (loopbackOnly && !this.options.images) {
        await createDemoImage(await this.backstores.imageStore());
        const demo = demoConfig();
        const r = await this.configStore.update((d) => {
          if (d.epoch !== 0 || Object.keys(d.targets).length > 0) return false;
          d.disks = demo.disks;
          d.targets = demo.targets;
          return true;
        });
        if (r.result) {
          this.createdDemo = true;
          log.info({ target: DEMO_TARGET }, 'empty data directory: created the demo target');
        }
      } else {
        log.info('empty data directory: no targets configured (the demo target is only created on loopback-only portals)');
      }
    }

    // Register this gateway. A configuration without any gateway (a first start, or a file
    // written by hand) is adopted: this gateway becomes the portal of every target and the
    // owner of every mapped disk.
    await this.configStore.update((d) => registerGateway(d, name, ownAddresses, listen));

    await this.ha.start();
    this.reconciler = new Reconciler({
      gateway: name,
      dataDir,
      service: this.service,
      catalog: this.catalog,
      backstores: this.backstores,
      log,
      preBound,
      ha: this.ha,
      alua: { store: this.configStore, provider: this.options.images?.kind === 'ceph' ? 'ceph' : 'embedded', defaultMode: this.settings.alua_failover_type },
    });
    // Ownership changes show in the published status at once (peers pick takers from it).
    this.ha.onStatus(() => void this.publish());
    const snap = await this.configStore.read();
    await this.reconciler.submit(snap.config);
    // At start, an image this gateway owns but cannot open for writing means another process
    // (a second daemon under the same name, a tool) writes it: refuse to start, naming the
    // holder, rather than serve the target with that LUN in standby. Later changes that meet a
    // held image (ownership moving) serve it in standby and retry instead.
    const held = this.reconciler.lastOwnedOpenFailures();
    if (held.length > 0) throw held[0];
    // Likewise a target the configuration describes but this gateway cannot build.
    const broken = this.reconciler.lastTargetFailures();
    if (broken.length > 0) throw broken[0];
    this.unwatch = this.configStore.watch((s: ConfigSnapshot) => {
      void this.reconciler?.submit(s.config).then(() => this.publish());
      this.storeTopologyIds(s.config);
    });
    // The watch may have missed a commit between read() and watch(): catch up once.
    const again = await this.configStore.read();
    if (again.epoch !== snap.epoch) await this.reconciler.submit(again.config);
    await this.publish();
    this.heartbeat = setInterval(() => void this.publish(), HEARTBEAT_MS);
    this.heartbeat.unref();
    // Disks that could not be opened (previous owner still closing) are retried.
    this.retryTimer = setInterval(() => void this.reconciler?.retry().then(() => this.publish()), HEARTBEAT_MS);
    this.retryTimer.unref();
    this.unsubscribeSessions = this.service.sessions.onChange(() => this.publishSoon());
    // Fenced (hung or cut off past the lease): commands that sat in our sockets meanwhile were
    // sent before the other gateway took over, and the initiator may have re-sent them there.
    // Run under a lock taken anew they would land after newer data, so every connection is
    // dropped in this same tick (unread PDUs with it, running tasks aborted); initiators log in
    // again and decide themselves what to re-send.
    this.unsubscribeLockLost = this.ha.onLockLost((disk, reason) => {
      const sessions = this.service.sessions.all().filter((s) => !s.isClosed);
      this.options.log.error({ disk, reason, sessions: sessions.length }, 'lost an image lock without releasing it: dropping every iSCSI connection');
      for (const s of sessions) void s.terminate(`image lock of ${disk} lost: ${reason}`);
    });
  }

  /** Publish within PUBLISH_SOON_MS (several logins at once make one publication). */
  private publishSoon(): void {
    if (this.publishSoonTimer || this.stopping) return;
    this.publishSoonTimer = setTimeout(() => {
      this.publishSoonTimer = undefined;
      void this.publish();
    }, PUBLISH_SOON_MS);
    this.publishSoonTimer.unref();
  }

  /** What metrics show of HA (sync: peers as of the last heartbeat). */
  haSample(): HaSample {
    const st = this.ha.status();
    return {
      draining: this.ha.isDraining,
      disks: Object.entries(st).map(([disk, d]) => ({
        disk, owned: d.owned, failovers: d.failovers, lockLost: d.lock_lost_cnt, fenced: d.fenced, bounces: d.bounces,
        ...(d.last_takeover_ms !== undefined ? { lastTakeoverSeconds: d.last_takeover_ms / 1000 } : {}),
      })),
      peers: this.peers,
    };
  }

  /**
   * A portal added without ALUA ids (by the API, an older gateway, a hand-written file): store
   * the ids every gateway derives, so they never change afterwards (src/ha/access-state.ts).
   */
  private storeTopologyIds(config: GatewayConfig): void {
    if (!assignTopologyIds(structuredClone(config))) return;
    this.configStore.update((d) => assignTopologyIds(d)).catch((e: unknown) => {
      this.options.log.warn({ err: e }, 'cannot store the ALUA target port group ids');
    });
  }

  private async publish(stopped = false): Promise<void> {
    const r = this.reconciler;
    if (!r) return;
    try {
      this.peers = (await readPeerStatuses(this.peerPlane)).filter((g) => g.name !== this.gatewayName)
        .map((g) => ({ name: g.name, up: g.up, draining: g.draining ?? false }));
    } catch {
      // keep the last view
    }
    try {
      await publishStatus(this.peerPlane, {
        name: this.gatewayName,
        pid: process.pid,
        host: os.hostname(),
        heartbeat: Date.now(),
        stopped,
        appliedEpoch: r.appliedEpoch(),
        portals: r.boundPortals().map(formatAddress),
        sessions: this.localSessions(),
        activeDisks: r.activeDisks(),
        error: r.lastProblems().length > 0 ? r.lastProblems().join('; ') : undefined,
        servedDisks: r.servedDisks(),
        draining: this.ha.isDraining,
        drainKept: this.ha.drainResult?.kept,
        ha: this.ha.status(),
      });
    } catch (e) {
      this.options.log.warn({ err: e }, 'cannot publish the gateway status');
    }
  }

  /** SCSI target devices by target name (metrics, statistics). */
  targets(): ReadonlyMap<string, ScsiTarget> {
    return this.reconciler?.scsiTargets() ?? new Map();
  }

  /** The portal addresses actually bound. */
  boundPortals(): PortalAddress[] {
    return this.reconciler?.boundPortals() ?? [];
  }

  // ------------------------------------------------------------------ RunningState

  appliedEpoch(): number {
    return this.reconciler?.appliedEpoch() ?? -1;
  }

  localSessions(): SessionInfo[] {
    const r = this.reconciler;
    return this.service.sessions.all().filter((s) => !s.isClosed).map((s) => ({
      gateway: this.gatewayName,
      target: s.target.name,
      initiator: s.params.initiatorName,
      isid: s.isid.toString('hex'),
      tsih: s.tsih,
      disks: visibleDisks(r?.config(), s.target.name, s.params.initiatorName, r?.targetDisks(s.target.name) ?? []),
      ip_address: s.connection?.initiatorAddress,
      alias: s.params.initiatorAlias,
    }));
  }

  async gateways(): Promise<GatewayStatus[]> {
    const others = (await readPeerStatuses(this.peerPlane)).filter((g) => g.name !== this.gatewayName);
    const r = this.reconciler;
    const me: GatewayStatus = {
      name: this.gatewayName,
      up: !this.stopping,
      heartbeat: Date.now(),
      appliedEpoch: this.appliedEpoch(),
      pid: process.pid,
      host: os.hostname(),
      portals: this.boundPortals().map(formatAddress),
      sessions: this.localSessions(),
      activeDisks: r?.activeDisks() ?? [],
      error: r && r.lastProblems().length > 0 ? r.lastProblems().join('; ') : undefined,
      servedDisks: r?.servedDisks() ?? [],
      draining: this.ha.isDraining,
      drainKept: this.ha.drainResult?.kept,
      ha: this.ha.status(),
    };
    return [me, ...others];
  }

  async allSessions(): Promise<SessionInfo[]> {
    return (await this.gateways()).filter((g) => g.up).flatMap((g) => g.sessions);
  }

  async sessionsInTheWay(change: DisruptiveChange): Promise<SessionInfo[]> {
    const all = await this.allSessions();
    switch (change.kind) {
      case 'disk-reconfigure':
      case 'snapshot-rollback':
        return all.filter((s) => s.disks.includes(change.disk));
      case 'disk-delete':
        return all.filter((s) => s.disks.includes(change.disk) && (change.target === undefined || s.target === change.target));
      case 'client-delete':
        return all.filter((s) => s.target === change.target && s.initiator === change.client);
      case 'target-delete':
        return all.filter((s) => s.target === change.target);
      case 'gateway-delete':
        return all.filter((s) => s.target === change.target && s.gateway === change.gateway);
    }
  }

  async refuseIfDisruptive(change: DisruptiveChange): Promise<void> {
    const sessions = await this.sessionsInTheWay(change);
    if (sessions.length === 0) return;
    const what = {
      'disk-reconfigure': () => `disk ${'disk' in change ? change.disk : ''} is in use`,
      'snapshot-rollback': () => `disk ${'disk' in change ? change.disk : ''} is in use`,
      'disk-delete': () => `disk ${'disk' in change ? change.disk : ''} is in use`,
      'client-delete': () => `client ${'client' in change ? change.client : ''} is logged in`,
      'target-delete': () => `target ${'target' in change ? change.target : ''} has active sessions`,
      'gateway-delete': () => `gateway ${'gateway' in change ? change.gateway : ''} has active sessions`,
    }[change.kind]();
    const list = sessions.map((s) => `${s.initiator} on ${s.gateway} (target ${s.target})`);
    throw new DisruptiveChangeError(`${what}: ${list.join(', ')}; log these sessions out first`, sessions);
  }

  async waitApplied(epoch: number, options: { readonly allUp?: boolean; readonly timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    const r = this.reconciler;
    if (!r) throw new Error('the gateway is not running');
    await Promise.race([
      r.whenApplied(epoch),
      new Promise<void>((_, reject) => {
        const t = setTimeout(() => reject(new Error(`gateway ${this.gatewayName} has not applied epoch ${epoch} after ${options.timeoutMs ?? 10_000} ms`)), Math.max(0, deadline - Date.now()));
        t.unref();
      }),
    ]);
    if (!options.allUp) return;
    for (;;) {
      const behind = (await this.gateways()).filter((g) => g.up && (g.appliedEpoch ?? -1) < epoch).map((g) => g.name);
      if (behind.length === 0) return;
      if (Date.now() > deadline) throw new Error(`gateways ${behind.join(', ')} have not applied epoch ${epoch} yet`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  async lockOwner(disk: string): Promise<string | undefined> {
    if (!this.ha.managed(disk)) return undefined;
    return (await this.ha.lockHolder(disk))?.gateway ?? '';
  }

  async requestDrain(gateway: string, drain: boolean): Promise<void> {
    const msg = { kind: drain ? 'drain' as const : 'resume' as const, from: this.gatewayName, at: Date.now() };
    await this.peerPlane.send(gateway, msg);
  }

  /**
   * Maintenance: hand every disk this gateway owns to another live gateway serving it; take
   * none until resume() or a restart. Returns what was handed over and what was kept.
   */
  async drain(): Promise<{ handed: string[]; kept: string[] }> {
    const r = await this.ha.drain();
    await this.publish();
    return r;
  }

  async resume(): Promise<void> {
    this.ha.resume();
    await this.publish();
  }

  aluaOf(disk: string): AluaDiskView[] {
    return (this.reconciler?.access.snapshot() ?? []).filter((a) => a.disk === disk).map(({ target, mode, groups }) => ({ target, mode, groups }));
  }

  // ------------------------------------------------------------------ shutdown

  /**
   * Clean shutdown: drain (hand the disks to other gateways, ha_drain_on_stop), stop accepting,
   * log initiators out (Async Message), flush and close backstores, release the locks.
   */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        const reconciler = this.reconciler;
        if (reconciler && this.settings.ha_drain_on_stop) {
          try {
            // Initiators move to other gateways before the sessions go (src/daemon/planned-stop.ts).
            const access = reconciler.access;
            await plannedStop({
              served: reconciler.servedDisks(),
              servedElsewhere: async () => new Set((await this.livePeers()).flatMap((g) => g.disks)),
              leave: access instanceof LockAccessControl ? (disks) => access.leave(disks) : undefined,
              // Bounded: a service manager's stop timeout (systemd: 90 s) must not be reached.
              drain: () => (this.ha.ownedDisks().length > 0 ? this.ha.drain(Math.min(this.ha.transitionTimeoutMs, 15_000)) : Promise.resolve({ handed: [], kept: [] })),
              targets: () => this.targets(),
              log: this.options.log,
            });
          } catch (e) {
            this.options.log.warn({ err: e }, 'drain before stopping failed');
          }
        }
        this.unwatch?.();
        this.unsubscribeSessions?.();
        this.unsubscribeLockLost?.();
        if (this.publishSoonTimer) clearTimeout(this.publishSoonTimer);
        if (this.heartbeat) clearInterval(this.heartbeat);
        if (this.retryTimer) clearInterval(this.retryTimer);
        this.reconciler?.closePortals();
        await this.service.shutdown((this.options.shutdownGrace ?? 3) * 1000);
        await this.reconciler?.shutdown();
        await this.ha.close();
        await this.publish(true);
        await this.peerPlane.close();
        await this.backstores.close();
        await this.configStore.close();
      })();
    }
    return this.stopping;
  }
}


/**
 * The RBD exclusive lock of `user:rbd` disks: liveness of the other gateways from their
 * published status (a dead pid on this host counts at once), hand-over requests through the HA
 * inbox.
 */
function cephImageLocks(o: GatewayOptions, plane: PeerPlane, leaseMs: number, log: Logger): RbdLocks {
  const c = o.cephLocks!;
  // Statuses read at most 200 ms ago: every non-owner asks about the holder every 200 ms.
  let cached: { at: number; statuses: Promise<GatewayStatus[]> } | undefined;
  return new RbdLocks({
    gateway: o.name,
    connect: c.connect,
    registryPool: c.pool,
    leaseMs,
    log,
    liveness: async (gw) => {
      const now = Date.now();
      if (!cached || now - cached.at > 200) {
        const statuses = readPeerStatuses(plane, now);
        cached = { at: now, statuses };
        statuses.catch(() => {
          if (cached?.statuses === statuses) cached = undefined;
        });
      }
      const st = (await cached.statuses).find((g) => g.name === gw);
      if (!st) return undefined;
      const gone = st.host === os.hostname() && st.pid !== undefined && !pidAlive(st.pid);
      return { alive: st.up && !gone, ...(st.heartbeat !== undefined ? { heartbeatAgoMs: Math.max(0, Date.now() - st.heartbeat) } : {}) };
    },
    sendHandover: (gw, key, reason) => plane.send(gw, { kind: 'handover', key, from: o.name, at: Date.now(), ...(reason ? { reason } : {}) }),
  });
}

/**
 * Disk ids an initiator sees through a target: every served LUN without ACL; in ACL mode its
 * own LUNs and its host group's (as the catalog's LUN masking, daemon/catalog.ts).
 */
function visibleDisks(config: GatewayConfig | undefined, target: string, initiator: string, served: string[]): string[] {
  const t = config?.targets[target];
  if (!t || !t.acl_enabled) return served;
  const name = initiator.toLowerCase();
  const entry = Object.entries(t.clients).find(([iqn]) => iqn.toLowerCase() === name);
  if (!entry) return [];
  const client = entry[1];
  const groupName = client.group_name || Object.entries(t.groups).find(([, g]) => g.members.some((m) => m.toLowerCase() === name))?.[0];
  const group = groupName ? t.groups[groupName] : undefined;
  const visible = new Set([...Object.keys(client.luns), ...Object.keys(group?.disks ?? {})]);
  return served.filter((d) => visible.has(d));
}

/**
 * Mutator: make sure `name` is a gateway of the configuration. `own`: addresses given on the
 * command line (recorded as its listen addresses); `fallback`: addresses for a new entry.
 */
export function registerGateway(d: GatewayConfig, name: string, own: readonly string[] | undefined, fallback: readonly string[]): void {
  const adopt = Object.keys(d.gateways).length === 0;
  const now = timestamp();
  const entry = d.gateways[name];
  if (!entry) {
    d.gateways[name] = { active_luns: 0, portal_ip_addresses: [...(own ?? fallback)], created: now };
  } else if (own && JSON.stringify(entry.portal_ip_addresses ?? []) !== JSON.stringify(own)) {
    entry.portal_ip_addresses = [...own];
    entry.updated = now;
  }
  assignTopologyIds(d);
  if (!adopt) return;
  const ips = [...new Set((own ?? fallback).map((a) => parseListenEntry(a).host))];
  for (const t of Object.values(d.targets)) {
    if (Object.keys(t.portals).length > 0) continue;
    t.portals[name] = { portal_ip_addresses: [...ips], inactive_portal_ips: [], gateway_ip_list: [...ips], tpgs: ips.length };
    t.ip_list = [...new Set([...t.ip_list, ...ips])];
  }
  reassignOwners(d);
  assignTopologyIds(d);
}
