/** Self-describing 4 KiB blocks for the crash test: (seq, block) determine every byte. */
export const BLOCK = 4096;

export function blockContent(seq: number, block: number): Buffer {
  const b = Buffer.allocUnsafe(BLOCK);
  b.writeUInt32LE(0xb10cb10c, 0);
  b.writeUInt32LE(seq, 4);
  b.writeUInt32LE(block, 8);
  let x = (Math.imul(seq + 1, 0x9e3779b1) ^ Math.imul(block + 7, 0x85ebca6b)) >>> 0;
  for (let i = 12; i < BLOCK; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

/** Human-readable description of a block's content for failure messages. */
export function describe(buf: Buffer): string {
  if (buf.every((v) => v === 0)) return 'zeros';
  if (buf.readUInt32LE(0) === 0xb10cb10c) return `write seq ${buf.readUInt32LE(4)} for block ${buf.readUInt32LE(8)}`;
  return 'garbage';
}
