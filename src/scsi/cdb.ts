/**
 * CDB field accessors (SPC-4 §4.2). Direct Buffer reads; no per-command allocation.
 * 64-bit LBAs become JS numbers: exact below 2^53, and anything above is far beyond any
 * capacity we can have (sizes fit in 2^53 bytes), so range checks stay correct.
 */

const TWO_32 = 0x100000000;

/** Big-endian unsigned 64-bit field as a number (inexact, but > 2^53, when huge). */
export function u64(cdb: Buffer, at: number): number {
  return cdb.readUInt32BE(at) * TWO_32 + cdb.readUInt32BE(at + 4);
}

export function u32(cdb: Buffer, at: number): number {
  return cdb.readUInt32BE(at);
}

export function u24(cdb: Buffer, at: number): number {
  return (cdb[at] << 16) | (cdb[at + 1] << 8) | cdb[at + 2];
}

export function u16(cdb: Buffer, at: number): number {
  return (cdb[at] << 8) | cdb[at + 1];
}

/** CDB length from the operation code's group (SPC-4 §4.2.5.1); 0 for variable/vendor groups. */
export function cdbLength(opcode: number): number {
  switch (opcode >> 5) {
    case 0: return 6;
    case 1: case 2: return 10;
    case 4: return 16;
    case 5: return 12;
    default: return 0; // group 3 (variable length 7Fh, reserved) and 6/7 (vendor specific)
  }
}

/** Write a 64-bit big-endian value from a JS number (0 <= v < 2^53). */
export function writeU64(buf: Buffer, v: number, at: number): void {
  buf.writeUInt32BE(Math.floor(v / TWO_32), at);
  buf.writeUInt32BE(v >>> 0, at + 4);
}

/** Highest set bit (0..7) of a byte, for the sense-key specific bit pointer. */
export function highestBit(b: number): number {
  return 31 - Math.clz32(b & 0xff);
}
