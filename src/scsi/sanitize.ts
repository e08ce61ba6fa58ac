/**
 * SANITIZE (SBC-3 §5.26, §4.11): OVERWRITE with an initialization pattern (OWCOUNT passes,
 * INVERT), BLOCK ERASE on a thin LU (every block deallocated), EXIT FAILURE MODE. CRYPTOGRAPHIC
 * ERASE needs media encryption, which no backstore has: not offered.
 *
 * While a sanitize runs (IMMED or not, and whatever happens to the command's task) every
 * command but INQUIRY, REPORT LUNS and REQUEST SENSE gets NOT READY / SANITIZE IN PROGRESS;
 * REQUEST SENSE reports the progress. A failed sanitize leaves the medium unusable (MEDIUM
 * ERROR / SANITIZE COMMAND FAILED) until a sanitize succeeds or, if AUSE was set, EXIT
 * FAILURE MODE.
 */
import { ScsiResult, ScsiStatus } from './sam';
import type { LogicalUnit } from './logical-unit';
import type { Task } from './task-set';
import { CommandDefinition, CommandFlag } from './command-table';
import { u16 } from './cdb';
import { Asc, SenseError, SenseKey, invalidFieldInCdb, invalidFieldInParameterList } from './sense';

const enum Sa { Overwrite = 0x01, BlockErase = 0x02, ExitFailureMode = 0x1f }

/** A sanitize operation of a logical unit. */
export interface SanitizeState {
  /** 0..65535, for the progress indication of REQUEST SENSE. */
  progress: number;
}

/**
 * Bytes of one backstore WRITE SAME of an overwrite: each operation is bounded by the LU's
 * cmd_time_out, so a whole-medium pass is done in steps (which also move the progress).
 */
const OVERWRITE_STEP_BYTES = 64 * 1024 * 1024;

async function overwrite(lu: LogicalUnit, pattern: Buffer, passes: number, invert: boolean, state: SanitizeState): Promise<void> {
  const bs = lu.blockSize;
  const block = Buffer.alloc(bs);
  block.fill(pattern);
  const inverted = Buffer.from(block.map((b) => b ^ 0xff));
  const bytes = lu.capacity() * bs;
  const step = Math.max(bs, OVERWRITE_STEP_BYTES - (OVERWRITE_STEP_BYTES % bs));
  for (let pass = 0; pass < passes; pass++) {
    // Alternate when INVERT is set, ending on the pattern itself.
    const useInverted = invert && (passes - 1 - pass) % 2 === 1;
    for (let at = 0; at < bytes; at += step) {
      await lu.device.writeSame(at, Math.min(step, bytes - at), useInverted ? inverted : block, { fua: true });
      state.progress = Math.max(0, Math.floor((0x10000 * (pass + Math.min(bytes, at + step) / bytes)) / passes) - 1);
    }
    state.progress = Math.floor((0x10000 * (pass + 1)) / passes) - 1;
  }
}

/**
 * Wait for the sanitize; an abort (TMF, reset) ends the wait but not the sanitize, so a
 * LOGICAL UNIT RESET does not hang for the length of a whole-medium overwrite.
 */
function untilDoneOrAborted(done: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      done.catch(() => undefined);
      resolve();
      return;
    }
    const onAbort = (): void => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    done.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      () => {
        signal.removeEventListener('abort', onAbort);
        reject(new SenseError(SenseKey.MediumError, Asc.SanitizeCommandFailed));
      },
    );
  });
}

function start(lu: LogicalUnit, ause: boolean, run: (state: SanitizeState) => Promise<void>): Promise<void> {
  const state: SanitizeState = { progress: 0 };
  lu.sanitizing = state;
  const lock = lu.locks.acquire(0, Math.max(lu.capacity(), 1), true);
  const done = (async () => {
    try {
      if (lock.ready) await lock.ready;
      await run(state);
      await lu.device.flush();
      lu.sanitizeFailed = undefined;
      lu.log.info('sanitize completed');
    } catch (err) {
      lu.sanitizeFailed = { ause };
      lu.log.error({ err }, 'sanitize failed');
      throw err;
    } finally {
      lu.locks.release(lock);
      lu.sanitizing = undefined;
    }
  })();
  return done;
}

async function sanitize(lu: LogicalUnit, task: Task): Promise<ScsiResult> {
  const cdb = task.command.cdb;
  const immed = (cdb[1] & 0x80) !== 0;
  const ause = (cdb[1] & 0x20) !== 0;
  const sa = cdb[1] & 0x1f;
  const length = u16(cdb, 7);
  task.dataOutTransferLength = length;
  let run: ((state: SanitizeState) => Promise<void>) | undefined;
  if (sa === Sa.Overwrite) {
    if (length < 5 || length > lu.blockSize + 4) throw invalidFieldInCdb(7, 7);
    lu.checkWritable();
    const p = await lu.receiveDataOut(task, Math.min(length, task.command.dataOutLength));
    if (p.length < length) throw invalidFieldInCdb(7, 7);
    const passes = p[0] & 0x1f;
    const patternLength = u16(p, 2);
    if (p[0] & 0x60) throw invalidFieldInParameterList(0, 6); // TEST
    if (passes === 0) throw invalidFieldInParameterList(0, 4);
    if (p[1] !== 0) throw invalidFieldInParameterList(1, 7);
    if (patternLength === 0 || patternLength > lu.blockSize || patternLength !== length - 4) throw invalidFieldInParameterList(2, 7);
    const pattern = Buffer.from(p.subarray(4, 4 + patternLength));
    const invert = (p[0] & 0x80) !== 0;
    run = (state) => overwrite(lu, pattern, passes, invert, state);
  } else if (sa === Sa.BlockErase) {
    if (length !== 0) throw invalidFieldInCdb(7, 7);
    lu.checkWritable();
    run = async (state) => {
      await lu.device.discard(0, lu.capacity() * lu.blockSize);
      state.progress = 0xffff;
    };
  } else {
    if (length !== 0) throw invalidFieldInCdb(7, 7);
    // EXIT FAILURE MODE: allowed only after a failed sanitize that had AUSE set.
    if (!lu.sanitizeFailed) return { status: ScsiStatus.Good, dataOutTransferLength: 0 };
    if (!lu.sanitizeFailed.ause) throw invalidFieldInCdb(1, 4);
    lu.sanitizeFailed = undefined;
    return { status: ScsiStatus.Good, dataOutTransferLength: 0 };
  }
  lu.log.warn({ initiator: task.command.nexus.initiatorPortName, sa }, 'sanitize started');
  const done = start(lu, ause, run);
  if (immed) {
    done.catch(() => undefined);
  } else {
    await untilDoneOrAborted(done, task.signal);
  }
  return { status: ScsiStatus.Good, dataOutTransferLength: length };
}

export function sanitizeCommands(blockErase: boolean): CommandDefinition[] {
  const def = (sa: number, name: string): CommandDefinition => ({
    name: `SANITIZE (${name})`, opcode: 0x48, serviceAction: sa, timeouts: [60, 3600],
    flags: CommandFlag.NeedsMedium | CommandFlag.MediumWrite | CommandFlag.DataOut,
    usage: [0x48, 0xa0 | sa, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00],
    handler: sanitize,
  });
  return [
    def(Sa.Overwrite, 'OVERWRITE'),
    ...(blockErase ? [def(Sa.BlockErase, 'BLOCK ERASE')] : []),
    def(Sa.ExitFailureMode, 'EXIT FAILURE MODE'),
  ];
}
