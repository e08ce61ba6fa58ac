/**
 * Write-ahead journal that makes a write all-or-nothing across a crash (WRITE ATOMIC (16)).
 *
 * A write of one aligned page is atomic in the page cache by itself; anything larger could be
 * torn by a kill or a power cut between pages. So the new data is first made durable in a
 * journal record, then written in place and made durable, then the record is invalidated
 * (durably, so a later overlapping write is never rolled back by a stale replay). Opening a
 * device replays a complete record left by a crash; a torn record (bad checksum) was never
 * acknowledged and is dropped. Concurrency is the caller's (the SCSI layer holds a range lock
 * over the blocks until the write returns); records are serialized here.
 *
 * Record: 64-byte header (magic "IGWATOM1", offset, length, CRC32C of the data, CRC32C of the
 * header) followed by the data.
 */
import * as fs from 'node:fs';
import { crc32c } from '@node-rs/crc32';
import { fdatasyncFd as fdatasync, preadFull, pwriteFull } from '../sys/io';

const MAGIC = Buffer.from('IGWATOM1');
const HEADER = 64;

/** How the owner applies and makes durable a write in place. */
export interface JournalTarget {
  apply(offset: number, data: Buffer): Promise<void>;
  flush(): Promise<void>;
}

function encodeHeader(offset: number, data: Buffer): Buffer {
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(1, 8); // version
  h.writeBigUInt64LE(BigInt(offset), 16);
  h.writeUInt32LE(data.length, 24);
  h.writeUInt32LE(crc32c(data), 28);
  h.writeUInt32LE(crc32c(h.subarray(0, 60)), 60);
  return h;
}

export class AtomicJournal {
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly path: string,
  ) {}

  /** Open (creating) the journal at `path` and replay a record a crash left behind. */
  static async open(path: string, target: JournalTarget): Promise<AtomicJournal> {
    const fd = fs.openSync(path, fs.existsSync(path) ? 'r+' : 'w+', 0o600);
    const journal = new AtomicJournal(fd, path);
    try {
      await journal.recover(target);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return journal;
  }

  /** The record in the journal, if one is complete and intact. */
  private async pending(): Promise<{ offset: number; data: Buffer } | undefined> {
    const size = fs.fstatSync(this.fd).size;
    if (size < HEADER) return undefined;
    const h = Buffer.alloc(HEADER);
    await preadFull(this.fd, h, 0, HEADER, 0);
    if (!h.subarray(0, 8).equals(MAGIC) || crc32c(h.subarray(0, 60)) !== h.readUInt32LE(60)) return undefined;
    const offset = Number(h.readBigUInt64LE(16));
    const length = h.readUInt32LE(24);
    if (size < HEADER + length) return undefined;
    const data = Buffer.alloc(length);
    await preadFull(this.fd, data, 0, length, HEADER);
    if (crc32c(data) !== h.readUInt32LE(28)) return undefined;
    return { offset, data };
  }

  private async recover(target: JournalTarget): Promise<void> {
    const rec = await this.pending();
    if (rec) {
      await target.apply(rec.offset, rec.data);
      await target.flush();
    }
    await this.invalidate();
  }

  private async invalidate(): Promise<void> {
    fs.ftruncateSync(this.fd, 0);
    await fdatasync(this.fd);
  }

  /** Write `data` at `offset` atomically: all of it or none of it survives any crash. */
  write(offset: number, data: Buffer, target: JournalTarget): Promise<void> {
    const run = async () => {
      if (this.closed) throw new Error(`atomic journal ${this.path} is closed`);
      const header = encodeHeader(offset, data);
      await pwriteFull(this.fd, header, 0, HEADER, 0);
      await pwriteFull(this.fd, data, 0, data.length, HEADER);
      await fdatasync(this.fd);
      await target.apply(offset, data);
      await target.flush();
      await this.invalidate();
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    fs.closeSync(this.fd);
  }
}

/** Largest write made atomic through the journal. */
export const MAX_JOURNALED_ATOMIC_WRITE = 1024 * 1024;
