/**
 * Persistent reservations that persist through power loss (APTPL, SPC-4 §5.13.5) kept in a
 * JSON file, as LIO keeps /var/target/pr/aptpl_<unit serial>: loaded when the logical unit
 * starts, rewritten atomically (temporary file, fsync, rename, fsync of the directory) on
 * every change while APTPL is set, removed when the last REGISTER turns APTPL off.
 *
 * The file is named after the unit serial number. The gateway daemon keeps the state of each
 * image in the shared LU state store (src/ha/lu-state-file.ts), which takes over such files
 * (migration from DATA/pr); this single-process store remains for embedding the SCSI layer.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsyncDir, writeFileAtomic } from '../sys/durable';
import { PrState, PrStateJson, prStateFromJson, prStateToJson } from './reservations';
import { LocalLuStateStore } from './lu-state';

const FORMAT = 'iscsi-gateway-aptpl-1';

interface AptplFile {
  readonly format: string;
  /** Unit serial number of the logical unit the state belongs to. */
  readonly wwn: string;
  readonly state: PrStateJson;
}

export class AptplFileError extends Error {
  readonly kind = 'aptpl-file';
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'AptplFileError';
  }
}

/** The file holding the APTPL state of the logical unit with this unit serial number. */
export function aptplFile(directory: string, wwn: string): string {
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(wwn)) throw new AptplFileError(directory, `unit serial ${JSON.stringify(wwn)} cannot name a file`);
  return path.join(directory, `aptpl_${wwn}.json`);
}

/** Read a saved APTPL state; undefined when there is none. Throws on a damaged file. */
export async function loadAptplState(file: string, wwn: string): Promise<PrState | undefined> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let doc: AptplFile;
  try {
    doc = JSON.parse(text) as AptplFile;
  } catch (e) {
    throw new AptplFileError(file, `not valid JSON (${(e as Error).message}); the reservations it held are unknown`);
  }
  if (doc?.format !== FORMAT) throw new AptplFileError(file, `unknown format ${JSON.stringify(doc?.format)}`);
  if (doc.wwn !== wwn) throw new AptplFileError(file, `belongs to unit serial ${doc.wwn}, not ${wwn}`);
  const s = doc.state;
  if (!s || !Array.isArray(s.registrations) || typeof s.generation !== 'number') throw new AptplFileError(file, 'has no reservation state');
  return prStateFromJson(s);
}

/** Write (or, for undefined, remove) the APTPL state durably. */
export async function saveAptplState(file: string, wwn: string, state: PrState | undefined): Promise<void> {
  if (state === undefined) {
    if (!fs.existsSync(file)) return;
    await fs.promises.rm(file, { force: true });
    await fsyncDir(path.dirname(file));
    return;
  }
  await fs.promises.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const doc: AptplFile = { format: FORMAT, wwn, state: prStateToJson(state) };
  await writeFileAtomic(file, JSON.stringify(doc, null, 1) + '\n', 0o600);
}

/** A reservation store for one logical unit whose APTPL state lives in `directory`. */
export async function openAptplReservationStore(directory: string, wwn: string): Promise<LocalLuStateStore> {
  const file = aptplFile(directory, wwn);
  const initial = await loadAptplState(file, wwn);
  return new LocalLuStateStore({ initial, persist: (state) => saveAptplState(file, wwn, state) });
}
