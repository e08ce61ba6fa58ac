/**
 * The block device behind a LUN whose port is in standby on this gateway: it knows the size
 * (from a read-only view of the image, or a fixed size) so INQUIRY / READ CAPACITY (16) agree
 * on every path, and it never touches the data. The logical unit answers media access with
 * NOT READY / TARGET PORT IN STANDBY STATE before a command gets here; a call that still
 * arrives fails instead of reading or writing storage another gateway owns.
 */
import { BlockDevice, BlockDeviceCapabilities, BlockDeviceError, Extent, IoOptions } from '../block/block-device';

export class StandbyDevice implements BlockDevice {
  readonly readOnly = false;
  readonly capabilities: BlockDeviceCapabilities;

  /**
   * `view`: a read-only device of the image (closed with this one), or a fixed size.
   * `servesReads`: reads go to the view (embedded store: every gateway on the host shares the
   * page cache with the owner's writes, so a read sees every acknowledged write); writes never.
   */
  constructor(
    readonly name: string,
    private readonly view: BlockDevice | number,
    readonly servesReads = false,
    /** What the owner's device offers, when it differs from the view's (a read-only view lacks discard). */
    capabilities?: BlockDeviceCapabilities,
  ) {
    this.capabilities = capabilities ?? (typeof view === 'number'
      ? { discard: true, discardZeroes: true, mapStatus: true, atomicWriteBytes: 0 }
      : view.capabilities);
  }

  size(): number {
    return typeof this.view === 'number' ? this.view : this.view.size();
  }

  private refuse(): Promise<never> {
    return Promise.reject(new BlockDeviceError(`${this.name}: this gateway's path is in standby (another gateway owns the image)`, 'io'));
  }

  read(offset: number, length: number, into?: Buffer, options?: IoOptions): Promise<Buffer> {
    if (this.servesReads && typeof this.view !== 'number') return this.view.read(offset, length, into, options);
    return this.refuse();
  }

  write(): Promise<void> {
    return this.refuse();
  }

  flush(): Promise<void> {
    return this.refuse();
  }

  discard(): Promise<void> {
    return this.refuse();
  }

  writeSame(): Promise<void> {
    return this.refuse();
  }

  mapStatus(offset: number, length: number, options?: IoOptions): Promise<Extent[]> {
    if (this.servesReads && typeof this.view !== 'number') return this.view.mapStatus(offset, length, options);
    return this.refuse();
  }

  onResize(listener: (newSize: number) => void): () => void {
    return typeof this.view === 'number' ? () => undefined : this.view.onResize(listener);
  }

  async close(): Promise<void> {
    if (typeof this.view !== 'number') await this.view.close();
  }
}
