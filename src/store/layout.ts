/**
 * RBD's data layout arithmetic: which object holds which image bytes. An object is the unit
 * of copy-on-write, copy-up and the object map. With the default layout (stripe count 1)
 * object N is the byte range [N*objectSize, (N+1)*objectSize). With "fancy striping"
 * (stripe unit su < object size, stripe count sc > 1) consecutive stripe units rotate over
 * sc objects of an object set, as in librbd's Striper.
 *
 * Every data file of the store is addressed by image offset, so the layout only decides which
 * byte ranges move together; it never changes where bytes live inside a file.
 */
import { StoreError } from './errors';

export const MIN_ORDER = 12; // 4 KiB objects
export const MAX_ORDER = 25; // 32 MiB objects
export const DEFAULT_ORDER = 22; // 4 MiB
/** Keeps per-object maps small (1 byte per object): 64 Mi objects = 64 MiB of map. */
export const MAX_OBJECTS = 1 << 26;

export class Layout {
  readonly simple: boolean;
  private readonly unitsPerObject: number;

  constructor(
    readonly objectSize: number,
    readonly stripeUnit: number,
    readonly stripeCount: number,
  ) {
    this.simple = stripeCount === 1;
    this.unitsPerObject = objectSize / stripeUnit;
  }

  static validate(order: number, stripeUnit: number, stripeCount: number): void {
    if (!Number.isInteger(order) || order < MIN_ORDER || order > MAX_ORDER) {
      throw new StoreError(`order must be between ${MIN_ORDER} and ${MAX_ORDER} (object size 4 KiB to 32 MiB), got ${order}`, 'invalid-argument');
    }
    const objectSize = 2 ** order;
    if (!Number.isInteger(stripeCount) || stripeCount < 1) throw new StoreError(`stripe count must be at least 1, got ${stripeCount}`, 'invalid-argument');
    if (!Number.isInteger(stripeUnit) || stripeUnit < 1) throw new StoreError(`stripe unit must be positive, got ${stripeUnit}`, 'invalid-argument');
    if (stripeUnit > objectSize) throw new StoreError(`stripe unit ${stripeUnit} is larger than the object size ${objectSize}`, 'invalid-argument');
    if (objectSize % stripeUnit !== 0) throw new StoreError(`stripe unit ${stripeUnit} does not divide the object size ${objectSize}`, 'invalid-argument');
    if (stripeUnit % 512 !== 0) throw new StoreError(`stripe unit ${stripeUnit} is not a multiple of 512 bytes`, 'invalid-argument');
  }

  /** Number of objects that hold bytes of an image of `size` bytes. */
  objectCount(size: number): number {
    if (size <= 0) return 0;
    if (this.simple) return Math.ceil(size / this.objectSize);
    const setBytes = this.objectSize * this.stripeCount;
    const fullSets = Math.floor(size / setBytes);
    const rest = size - fullSets * setBytes;
    return fullSets * this.stripeCount + (rest > 0 ? Math.min(this.stripeCount, Math.ceil(rest / this.stripeUnit)) : 0);
  }

  objectOf(offset: number): number {
    if (this.simple) return Math.floor(offset / this.objectSize);
    const blockno = Math.floor(offset / this.stripeUnit);
    const stripeno = Math.floor(blockno / this.stripeCount);
    const stripepos = blockno % this.stripeCount;
    const objectset = Math.floor(stripeno / this.unitsPerObject);
    return objectset * this.stripeCount + stripepos;
  }

  /**
   * Split [offset, offset+length) into pieces that each lie in one object (and, when striped,
   * one stripe unit), in image order.
   */
  forEachPiece(offset: number, length: number, fn: (objectNo: number, offset: number, length: number) => void): void {
    const end = offset + length;
    const unit = this.simple ? this.objectSize : this.stripeUnit;
    let pos = offset;
    while (pos < end) {
      const next = Math.min(end, (Math.floor(pos / unit) + 1) * unit);
      fn(this.objectOf(pos), pos, next - pos);
      pos = next;
    }
  }

  /** Distinct objects touched by [offset, offset+length), ascending. */
  objectsIn(offset: number, length: number): number[] {
    if (length <= 0) return [];
    if (this.simple) {
      const first = Math.floor(offset / this.objectSize);
      const last = Math.floor((offset + length - 1) / this.objectSize);
      const out = new Array<number>(last - first + 1);
      for (let i = 0; i < out.length; i++) out[i] = first + i;
      return out;
    }
    const set = new Set<number>();
    this.forEachPiece(offset, length, (n) => set.add(n));
    return [...set].sort((a, b) => a - b);
  }

  /** Image byte ranges of object N, clipped to `size`, in image order. */
  objectExtents(objectNo: number, size: number): Array<[number, number]> {
    if (this.simple) {
      const start = objectNo * this.objectSize;
      const end = Math.min(start + this.objectSize, size);
      return end > start ? [[start, end - start]] : [];
    }
    const out: Array<[number, number]> = [];
    const set = Math.floor(objectNo / this.stripeCount);
    const pos = objectNo % this.stripeCount;
    for (let k = 0; k < this.unitsPerObject; k++) {
      const stripeno = set * this.unitsPerObject + k;
      const start = (stripeno * this.stripeCount + pos) * this.stripeUnit;
      if (start >= size) break;
      out.push([start, Math.min(this.stripeUnit, size - start)]);
    }
    return out;
  }

  /** First image byte of object N (its extents only grow from there). */
  objectStart(objectNo: number): number {
    if (this.simple) return objectNo * this.objectSize;
    const set = Math.floor(objectNo / this.stripeCount);
    const pos = objectNo % this.stripeCount;
    return (set * this.unitsPerObject * this.stripeCount + pos) * this.stripeUnit;
  }

  /** Objects holding any byte of [from, to): what a shrink from `to` to `from` cuts. */
  objectsCut(from: number, to: number): number[] {
    return this.objectsIn(from, Math.max(0, to - from));
  }
}
