/**
 * CRC32C header and data digests (RFC 7143 §12.1; polynomial 0x1EDC6F41). The digest is sent
 * least significant byte first, as every implementation does (libiscsi, Linux).
 */
import { crc32c } from '@node-rs/crc32';

const ZERO_PAD = Buffer.alloc(3);

export function headerDigest(header: Buffer): number {
  return crc32c(header);
}

/** Digest over a data segment and its zero padding to a 4-byte boundary. */
export function dataDigest(data: Buffer): number {
  const pad = padLength(data.length);
  const crc = crc32c(data);
  return pad === 0 ? crc : crc32c(ZERO_PAD.subarray(0, pad), crc);
}

/** Digest over several buffers forming one data segment (then padding). */
export function dataDigestOf(parts: readonly Buffer[]): number {
  let crc = 0;
  let total = 0;
  for (const p of parts) {
    crc = crc32c(p, crc);
    total += p.length;
  }
  const pad = padLength(total);
  return pad === 0 ? crc : crc32c(ZERO_PAD.subarray(0, pad), crc);
}

export function padLength(length: number): number {
  return (4 - (length & 3)) & 3;
}

export function digestBytes(crc: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(crc >>> 0, 0);
  return b;
}
