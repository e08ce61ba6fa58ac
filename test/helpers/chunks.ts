/**
 * Ways to cut a byte vector into TCP-like chunks, so every codec test also runs with the
 * vector split at the beginning, middle and end of a chunk (and, for short vectors, at every
 * byte boundary).
 */
export function* splits(bytes: Buffer): Generator<{ name: string; chunks: Buffer[] }> {
  yield { name: 'whole', chunks: [bytes] };
  if (bytes.length < 2) return;
  const points = new Set<number>();
  if (bytes.length <= 160) {
    for (let i = 1; i < bytes.length; i++) points.add(i);
  } else {
    for (const p of [1, 2, 3, 4, 47, 48, 49, 51, 52, 53, Math.floor(bytes.length / 2), bytes.length - 5, bytes.length - 4, bytes.length - 1]) {
      if (p > 0 && p < bytes.length) points.add(p);
    }
  }
  for (const p of points) yield { name: `split@${p}`, chunks: [bytes.subarray(0, p), bytes.subarray(p)] };
  // Three-way and byte-by-byte deliveries.
  const third = Math.floor(bytes.length / 3);
  if (third > 0) {
    yield { name: 'thirds', chunks: [bytes.subarray(0, third), bytes.subarray(third, 2 * third), bytes.subarray(2 * third)] };
  }
  yield { name: 'bytewise', chunks: [...bytes].map((b) => Buffer.from([b])) };
}

export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}
