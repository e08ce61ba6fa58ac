/**
 * Resource limits of the data path: what one connection, one session and the whole gateway may
 * hold, so that no mix of stalled, slow or abusive initiators can grow the gateway's memory
 * without bound or starve the other sessions.
 */

export interface DataPathLimits {
  /**
   * Data-In bytes one connection may have queued for transmission or being read from the
   * backstore. Past it, READs wait before touching the backstore and MaxCmdSN stops advancing.
   * One command larger than this still runs when nothing else is queued.
   */
  readonly transmitQueueBytes: number;
  /** Queued output past which the connection stops reading input (a peer that floods and never reads). */
  readonly inputPauseBytes: number;
  /** Solicited Data-Out bytes one session may have buffers reserved for (one command always may). */
  readonly sessionDataOutBytes: number;
  /** Solicited Data-Out bytes the whole gateway may have buffers reserved for (beyond each session's first command). */
  readonly gatewayDataOutBytes: number;
  /** Immediate (I bit) SCSI commands one session may have outstanding; more get TASK SET FULL. */
  readonly immediateCommands: number;
  /**
   * Commands of all sessions of a target that may be in the SCSI layer at once (the LU's
   * queue_depth). A session always may run `minSessionTasks`; beyond that its share of
   * `targetTasks`, while a quarter of it stays free for the others (SessionRegistry.mayRun).
   */
  readonly targetTasks: number;
  readonly minSessionTasks: number;
  /** TCP connections one portal accepts at once. */
  readonly connectionsPerPortal: number;
  /** TCP connections one initiator address may have open at once. */
  readonly connectionsPerAddress: number;
}

const MIB = 1024 * 1024;

export const DEFAULT_LIMITS: DataPathLimits = {
  transmitQueueBytes: 8 * MIB,
  inputPauseBytes: 16 * MIB,
  sessionDataOutBytes: 32 * MIB,
  gatewayDataOutBytes: 128 * MIB,
  immediateCommands: 16,
  // The SCSI layer's default queue_depth per LU: the sessions' shares add up to it.
  targetTasks: 256,
  minSessionTasks: 16,
  connectionsPerPortal: 1024,
  connectionsPerAddress: 64,
};

/** Environment overrides (ISCSI_GATEWAY_<NAME>, e.g. ISCSI_GATEWAY_CONNECTIONS_PER_ADDRESS=8). */
const ENV_NAMES: Record<keyof DataPathLimits, string> = {
  transmitQueueBytes: 'ISCSI_GATEWAY_TRANSMIT_QUEUE_BYTES',
  inputPauseBytes: 'ISCSI_GATEWAY_INPUT_PAUSE_BYTES',
  sessionDataOutBytes: 'ISCSI_GATEWAY_SESSION_DATAOUT_BYTES',
  gatewayDataOutBytes: 'ISCSI_GATEWAY_GATEWAY_DATAOUT_BYTES',
  immediateCommands: 'ISCSI_GATEWAY_IMMEDIATE_COMMANDS',
  targetTasks: 'ISCSI_GATEWAY_TARGET_TASKS',
  minSessionTasks: 'ISCSI_GATEWAY_MIN_SESSION_TASKS',
  connectionsPerPortal: 'ISCSI_GATEWAY_CONNECTIONS_PER_PORTAL',
  connectionsPerAddress: 'ISCSI_GATEWAY_CONNECTIONS_PER_ADDRESS',
};

export class LimitsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LimitsError';
  }
}

/** The defaults with any environment overrides applied; a malformed value is an error, not ignored. */
export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): DataPathLimits {
  const out: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const [key, name] of Object.entries(ENV_NAMES)) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    if (!/^\d{1,15}$/.test(text) || Number(text) < 1) throw new LimitsError(`${name} must be a positive integer, got "${text}"`);
    out[key] = Number(text);
  }
  return out as unknown as DataPathLimits;
}

/**
 * Solicited Data-Out reservations across the gateway. Every session may always hold one
 * reservation (so no session can be starved by others); beyond that, its own and the gateway's
 * totals bound it.
 */
export class DataOutBudget {
  private used = 0;
  /** Sessions waiting for budget: told whenever some is released. */
  readonly onRelease = new Set<() => void>();

  constructor(private readonly limits: DataPathLimits) {}

  /** Try to reserve `bytes` for a session currently holding `sessionUsed`. */
  tryReserve(bytes: number, sessionUsed: number): boolean {
    if (sessionUsed > 0) {
      if (sessionUsed + bytes > this.limits.sessionDataOutBytes) return false;
      if (this.used + bytes > this.limits.gatewayDataOutBytes) return false;
    }
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
    for (const retry of this.onRelease) retry();
  }

  get reservedBytes(): number {
    return this.used;
  }
}
