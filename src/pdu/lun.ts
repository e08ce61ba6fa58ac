/**
 * The 8-byte LUN field (SAM-5 §4.7; RFC 7143 §11.2.1.7). We expose LUNs 0..16383 using
 * peripheral device addressing for 0..255 and flat space addressing above.
 */

/** Decode the first level of a LUN field; undefined when it uses an addressing we do not expose. */
export function decodeLun(field: Buffer): number | undefined {
  const method = field[0] >> 6;
  for (let i = 2; i < 8; i++) if (field[i] !== 0) return undefined;
  if (method === 0) return field[0] === 0 ? field[1] : undefined; // peripheral, bus 0
  if (method === 1) return ((field[0] & 0x3f) << 8) | field[1]; // flat space
  return undefined;
}

export function encodeLun(lun: number): Buffer {
  const b = Buffer.alloc(8);
  if (lun < 256) {
    b[1] = lun;
  } else {
    b[0] = 0x40 | ((lun >> 8) & 0x3f);
    b[1] = lun & 0xff;
  }
  return b;
}
