/**
 * The `failover` section (issue 11): how long the Linux kernel initiator's I/O pauses when the
 * owner gateway of a LUN fails, through open-iscsi + dm-multipath in the project's QEMU VM
 * (test/helpers/kernel-multipath.ts, the same rig as test/integration/kernel-multipath.test.ts).
 * Also `node dist/bench/failover.js [--rounds N]`. Needs root (network namespace, tap, iptables).
 *
 * One VM boot, two gateway processes on the embedded store, an ext4 file system on the multipath
 * device carrying a verified write load (64 KiB files rewritten in place, each fsynced). Rounds:
 *   none:    the control: nothing happens for 4 s (the longest gap is the shared machine's noise);
 *   kill:    SIGKILL of the gateway carrying the I/O; it restarts, both paths return, the I/O
 *            fails back to the preferred owner;
 *   cut:     the gateway carrying the I/O is cut off the network (iptables) while it keeps
 *            running; reconnected after the writes resumed elsewhere; failback;
 *   restart: a rolling restart (SIGTERM = drain-on-stop, start, both paths back) of the gateway
 *            carrying the I/O, then of the other one.
 * The pause is the longest gap between two acknowledged writes around the event, measured in
 * the guest. After every round the load stops and the data is verified (e2fsck, every file's
 * last acknowledged checksum) and the guest is checked for I/O errors above the paths.
 */
import { median } from './lib/report';
import { KernelMultipathRig, MP_GW, MP_GW_NAMES, MpGwName, VERIFIED_OK, pauseAfter } from '../test/helpers/kernel-multipath';

export type FailoverEvent = 'none' | 'kill' | 'cut' | 'restart';

export interface FailoverRound {
  readonly event: FailoverEvent;
  /** The gateway the event hit (the one carrying the I/O). */
  readonly gateway: string;
  /** Longest gap between acknowledged writes (s). For `restart`: the owner's restart. */
  readonly pauseS: number;
  /** `restart`: the longest gap until the restarted process was started (the planned stop alone, s). */
  readonly stopPauseS?: number;
  /** `restart`: the longest gap while the other gateway restarted (s), and of it until its start. */
  readonly otherPauseS?: number;
  readonly otherStopPauseS?: number;
  /** kill/cut: when the first write after the event was acknowledged (s after it). */
  readonly resumedS?: number;
  /** cut: the cut-off gateway was still running after the takeover (not fenced by a kill). */
  readonly stillRunning?: boolean;
  /** From the gateway's (re)start or reconnection until the I/O was back on the preferred owner (s); null if it did not return within the bound. */
  readonly failbackS: number | null;
  readonly verified: boolean;
  readonly verifyLine: string;
  /** I/O errors above the paths (dm device, ext4, the load); '' for none. */
  readonly errors: string;
}

export interface FailoverSummary {
  readonly event: FailoverEvent;
  readonly rounds: number;
  readonly pausesS: number[];
  readonly medianS?: number;
  readonly minS?: number;
  readonly maxS?: number;
  readonly allVerified: boolean;
  readonly errorRounds: number;
}

export interface FailoverResult {
  readonly accel: string;
  readonly bootS: number;
  readonly totalS: number;
  readonly preferredOwner: string;
  readonly rounds: FailoverRound[];
  readonly summary: FailoverSummary[];
  readonly failures: string[];
}

const FAILBACK_BOUND_S = 120;
/** How long a restarted gateway stays down before it is started again. */
const RESTART_DOWN_S = 3;
/** The control round's window: about a restart's stop phase (stop + down time). */
const CONTROL_WINDOW_S = 4;

function summarize(event: FailoverEvent, rounds: FailoverRound[]): FailoverSummary {
  const mine = rounds.filter((r) => r.event === event);
  const pausesS = mine.map((r) => r.pauseS);
  return {
    event,
    rounds: mine.length,
    pausesS,
    medianS: median(pausesS),
    minS: pausesS.length ? Math.min(...pausesS) : undefined,
    maxS: pausesS.length ? Math.max(...pausesS) : undefined,
    allVerified: mine.length > 0 && mine.every((r) => r.verified),
    errorRounds: mine.filter((r) => r.errors !== '').length,
  };
}

export async function runFailoverBench(options: { rounds: number; events?: FailoverEvent[]; log: (line: string) => void }): Promise<FailoverResult> {
  const t0 = Date.now();
  const log = options.log;
  const rig = new KernelMultipathRig((l) => log(`  ${l}`));
  const rounds: FailoverRound[] = [];
  const failures: string[] = [];
  const events = options.events ?? ['none', 'kill', 'cut', 'restart'];
  try {
    await rig.setUp();
    const { paths } = await rig.login();
    log(`  logged in, ${paths.byDev.size} paths; mkfs + mount`);
    await rig.mkfsAndMount();
    const preferred = rig.owner0!;
    const other = (g: MpGwName): MpGwName => MP_GW_NAMES.find((n) => n !== g)!;

    /** Stop the load, verify the data, look for errors; the round's record. */
    const finish = async (r: Omit<FailoverRound, 'verified' | 'verifyLine' | 'errors'>): Promise<void> => {
      await rig.stopLoad();
      const out = await rig.verify();
      const verifyLine = out.trim().split('\n').pop() ?? '';
      const errors = await rig.appErrors();
      const round: FailoverRound = { ...r, verified: VERIFIED_OK.test(out), verifyLine, errors };
      rounds.push(round);
      const extra = [
        r.resumedS !== undefined ? `resumed ${r.resumedS.toFixed(2)} s after` : '',
        r.stopPauseS !== undefined ? `until its start ${r.stopPauseS.toFixed(2)} s` : '',
        r.otherPauseS !== undefined ? `then the other gateway's restart ${r.otherPauseS.toFixed(2)} s (until its start ${r.otherStopPauseS?.toFixed(2)} s)` : '',
        r.stillRunning !== undefined ? `still running: ${r.stillRunning}` : '',
        r.event === 'none' ? '' : `failback ${r.failbackS === null ? `none within ${FAILBACK_BOUND_S} s` : `${r.failbackS.toFixed(1)} s`}`,
      ].filter(Boolean).join(', ');
      log(`  ${r.event} ${r.gateway}: pause ${r.pauseS.toFixed(2)} s (${extra}); ${verifyLine}${errors ? `; ERRORS: ${errors.split('\n').join(' | ')}` : ''}`);
    };

    /** Back on the preferred owner (bounded); seconds since `since`, or null. */
    const failback = async (since: number): Promise<number | null> => {
      try {
        await rig.waitActive(preferred, FAILBACK_BOUND_S);
        return (Date.now() - since) / 1000;
      } catch {
        return null;
      }
    };

    /** Start the load and wait until it runs on the path it should (bounded). */
    const warm = async (): Promise<MpGwName> => {
      await rig.startLoad();
      await rig.waitWrites(await rig.guestUptime(), 20, 120);
      const g = await rig.activeGateway();
      if (!g) throw new Error(`no active path group:\n${(await rig.paths()).ll}`);
      return g;
    };

    for (const event of events) {
      for (let i = 0; i < options.rounds; i++) {
        try {
          const owner = await warm();
          if (event === 'none') {
            // The control: the longest gap of the same load over a window as long as a restart's
            // stop phase, with nothing happening (the shared machine's own noise).
            const from = await rig.guestUptime();
            await new Promise((r) => setTimeout(r, CONTROL_WINDOW_S * 1000));
            const lines = await rig.waitWrites(from, 1, 60);
            const to = from + CONTROL_WINDOW_S;
            const within = lines.filter((l) => l.up <= to);
            const lastOk = Math.max(from, ...within.filter((l) => l.ok).map((l) => l.up));
            await finish({ event, gateway: owner, pauseS: Math.max(pauseAfter(within, from).gap, to - lastOk), failbackS: 0 });
          } else if (event === 'kill') {
            const { gap, resumed } = await rig.killUnderLoad(owner, 20);
            const back = Date.now();
            await rig.startGw(owner);
            await rig.waitBothPaths(120);
            await finish({ event, gateway: owner, pauseS: gap, resumedS: resumed, failbackS: await failback(back) });
          } else if (event === 'cut') {
            const { gap, resumed, stillRunning } = await rig.cutUnderLoad(owner, 20, 20);
            const back = Date.now();
            if (!rig.gw(owner).running) await rig.startGw(owner);
            await rig.waitBothPaths(120);
            await finish({ event, gateway: owner, pauseS: gap, resumedS: resumed, stillRunning, failbackS: await failback(back) });
          } else {
            const first = await rig.restartUnderLoad(owner, 20, RESTART_DOWN_S);
            const second = await rig.restartUnderLoad(other(owner), 20, RESTART_DOWN_S);
            const back = Date.now();
            await finish({
              event, gateway: owner, pauseS: first.gap, stopPauseS: first.stopGap, otherPauseS: second.gap, otherStopPauseS: second.stopGap,
              failbackS: await failback(back),
            });
          }
        } catch (e) {
          failures.push(`${event} round ${i + 1}: ${(e as Error).message}`);
          log(`  FAILED ${event} round ${i + 1}: ${(e as Error).message.split('\n')[0]}`);
          // Bring the rig back for the next round: both gateways running, both paths, no load.
          for (const n of MP_GW_NAMES) if (!rig.gws.get(n)?.running) await rig.startGw(n).catch(() => undefined);
          for (const n of MP_GW_NAMES) await rig.ns?.restore(MP_GW[n]).catch(() => undefined);
          await rig.stopLoad().catch(() => undefined);
          await rig.waitBothPaths(120).catch(() => undefined);
        }
      }
    }
    return {
      accel: rig.vm?.accel ?? '',
      bootS: (rig.vm?.bootMs ?? 0) / 1000,
      totalS: (Date.now() - t0) / 1000,
      preferredOwner: preferred,
      rounds,
      summary: events.map((e) => summarize(e, rounds)),
      failures,
    };
  } finally {
    await rig.tearDown();
  }
}

const TITLES: Record<FailoverEvent, string> = {
  none: `no event (control: ${CONTROL_WINDOW_S} s of the load)`,
  kill: 'owner SIGKILLed',
  cut: 'owner cut off (still running)',
  restart: 'rolling restart (owner first)',
};

export function formatFailoverBench(r: FailoverResult): string {
  const fmt = (v: number | undefined): string => (v === undefined ? 'n/a' : v.toFixed(2));
  const lines = [
    `Linux kernel initiator (open-iscsi replacement_timeout 5 s, NOP-Out 1 s/2 s) + dm-multipath, 2 gateways, embedded store; VM on ${r.accel}`,
    `| event | rounds | pause median [min–max] (s) | every pause (s) | data verified | rounds with I/O errors | back on ${r.preferredOwner}, median (s) |`,
    `|---|---|---|---|---|---|---|`,
  ];
  for (const s of r.summary) {
    const mine = r.rounds.filter((x) => x.event === s.event);
    const fb = mine.map((x) => x.failbackS).filter((x): x is number => x !== null);
    const back = s.event === 'none' ? '–' : `${fmt(median(fb))}${fb.length < mine.length ? ` (${mine.length - fb.length} never within ${FAILBACK_BOUND_S} s)` : ''}`;
    lines.push(`| ${TITLES[s.event]} | ${s.rounds} | ${fmt(s.medianS)} [${fmt(s.minS)}–${fmt(s.maxS)}] | ${s.pausesS.map((p) => p.toFixed(2)).join(', ')} | ${s.allVerified ? 'yes' : 'NO'} | ${s.errorRounds} | ${back} |`);
  }
  const restarts = r.rounds.filter((x) => x.event === 'restart');
  const list = (v: Array<number | undefined>): string => v.map((p) => fmt(p)).join(', ');
  if (restarts.length) {
    lines.push(`rolling restart, the owner's planned stop alone (SIGTERM until the new process starts, ${RESTART_DOWN_S} s later): median ${fmt(median(restarts.map((x) => x.stopPauseS ?? NaN)))} s (${list(restarts.map((x) => x.stopPauseS))})`);
    lines.push(`rolling restart, then the other gateway (the owner by then): longest gaps ${list(restarts.map((x) => x.otherPauseS))} s; until its start ${list(restarts.map((x) => x.otherStopPauseS))} s`);
  }
  lines.push(`back on ${r.preferredOwner}: kill/cut from its restart/reconnection (failback after ha_failback_secs = 15 s + path checker); restart from the end of the second restart (its drain hands the disk back)`);
  lines.push(`section time ${(r.totalS / 60).toFixed(1)} min (VM boot ${r.bootS.toFixed(1)} s)`);
  if (r.failures.length) lines.push(`FAILURES (${r.failures.length}):`, ...r.failures.map((f) => `  ${f.split('\n').slice(0, 6).join('\n    ')}`));
  return lines.join('\n');
}

if (require.main === module) {
  const i = process.argv.indexOf('--rounds');
  const n = i > 0 ? Number(process.argv[i + 1]) : 5;
  const j = process.argv.indexOf('--events');
  const events = j > 0 ? (process.argv[j + 1].split(',') as FailoverEvent[]) : undefined;
  if (!Number.isInteger(n) || n <= 0 || (events && events.some((e) => !(e in TITLES)))) {
    console.error('usage: node dist/bench/failover.js [--rounds N] [--events none,kill,cut,restart]');
    process.exitCode = 2;
  } else {
    runFailoverBench({ rounds: n, events, log: (l) => console.log(l) }).then(
      (r) => {
        console.log(formatFailoverBench(r));
        if (r.failures.length) process.exitCode = 1;
      },
      (e: unknown) => {
        console.error(e);
        process.exitCode = 1;
      },
    );
  }
}
