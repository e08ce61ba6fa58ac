/**
 * Vital product data pages (SPC-4 §7.8, SBC-3 §6.5). What the pages claim is derived from
 * the logical unit's command table and settings, so a page never advertises a command the
 * LU does not execute.
 */
import { createHash } from 'node:crypto';
import type { ITNexus } from './sam';
import type { LogicalUnit } from './logical-unit';
import { writeU64 } from './cdb';
import { thirdPartyCopyDescriptors } from './extended-copy';

/** T10 vendor identification (INQUIRY bytes 8..15, T10 vendor ID designator). */
export const VENDOR_ID = 'ISCSI-GW';
export const PRODUCT_ID = 'Virtual Disk';
export const PRODUCT_REVISION = '0001';

/** Protocol identifier for iSCSI (SPC-4 table 362). */
const PROTOCOL_ISCSI = 0x5;

export const enum VpdPage {
  SupportedPages = 0x00,
  UnitSerialNumber = 0x80,
  DeviceIdentification = 0x83,
  ExtendedInquiry = 0x86,
  ThirdPartyCopy = 0x8f,
  BlockLimits = 0xb0,
  BlockDeviceCharacteristics = 0xb1,
  LogicalBlockProvisioning = 0xb2,
}

const VPD_PAGES: readonly number[] = [
  VpdPage.SupportedPages, VpdPage.UnitSerialNumber, VpdPage.DeviceIdentification, VpdPage.ExtendedInquiry,
  VpdPage.ThirdPartyCopy, VpdPage.BlockLimits, VpdPage.BlockDeviceCharacteristics, VpdPage.LogicalBlockProvisioning,
];

/** The VPD pages this LU supports: the third-party copy page only with a copy manager. */
export function supportedVpdPages(lu: LogicalUnit): number[] {
  return VPD_PAGES.filter((p) => p !== VpdPage.ThirdPartyCopy || lu.commands.find(0x83, 0x00) !== undefined);
}

/**
 * NAA IEEE "locally assigned" designator (NAA=3, 60 bits) derived from the unit serial
 * number, so every gateway exporting the same image reports the same identifier.
 */
export function deriveNaa(wwn: string): Buffer {
  const compact = wwn.replace(/-/g, '').toLowerCase();
  const hex = /^[0-9a-f]{32}$/.test(compact) ? compact : createHash('sha256').update(wwn).digest('hex');
  return Buffer.from('3' + hex.slice(0, 15), 'hex');
}

/** Printable ASCII, space padded to `length` (SPC-4 §4.4.1). */
export function ascii(s: string, length: number): Buffer {
  const b = Buffer.alloc(length, 0x20);
  for (let i = 0; i < Math.min(s.length, length); i++) {
    const c = s.charCodeAt(i);
    b[i] = c >= 0x20 && c <= 0x7e ? c : 0x3f;
  }
  return b;
}

function page(code: number, body: Buffer, longLength: boolean): Buffer {
  const out = Buffer.alloc(4 + body.length);
  out[1] = code;
  if (longLength) out.writeUInt16BE(body.length, 2);
  else out[3] = body.length;
  body.copy(out, 4);
  return out;
}

function designator(codeSet: number, piv: boolean, association: number, type: number, value: Buffer, protocol = 0): Buffer {
  const d = Buffer.alloc(4 + value.length);
  d[0] = (protocol << 4) | codeSet;
  d[1] = (piv ? 0x80 : 0) | (association << 4) | type;
  d[3] = value.length;
  value.copy(d, 4);
  return d;
}

/** SCSI name string: UTF-8, null terminated, padded to a multiple of 4 bytes. */
function scsiName(name: string): Buffer {
  const utf8 = Buffer.from(name, 'utf8');
  const len = Math.min(252, (utf8.length + 4) & ~3);
  const b = Buffer.alloc(len);
  utf8.copy(b, 0, 0, len - 1);
  return b;
}

function deviceIdentification(lu: LogicalUnit, nexus: ITNexus): Buffer {
  const rtpi = Buffer.alloc(4);
  rtpi.writeUInt16BE(nexus.relativeTargetPortId & 0xffff, 2);
  const tpg = Buffer.alloc(4);
  tpg.writeUInt16BE(nexus.targetPortGroup & 0xffff, 2);
  const body = Buffer.concat([
    // Logical unit: NAA, and T10 vendor ID + unit serial number.
    designator(1, false, 0, 3, lu.naa),
    designator(2, false, 0, 1, Buffer.concat([ascii(VENDOR_ID, 8), Buffer.from(lu.wwn, 'ascii')])),
    // Target port: relative target port, target port group, SCSI name string.
    designator(1, true, 1, 4, rtpi, PROTOCOL_ISCSI),
    designator(1, true, 1, 5, tpg, PROTOCOL_ISCSI),
    designator(3, true, 1, 8, scsiName(nexus.targetPortName), PROTOCOL_ISCSI),
    // Target device: its SCSI name string (the iSCSI target name).
    designator(3, true, 2, 8, scsiName(nexus.targetName), PROTOCOL_ISCSI),
  ]);
  return page(VpdPage.DeviceIdentification, body, true);
}

/** Thin-provisioning capabilities as the command table implements them. */
export function provisioning(lu: LogicalUnit): { lbpu: boolean; lbpws: boolean; lbpws10: boolean; lbpme: boolean; lbprz: boolean } {
  const unmap = lu.commands.find(0x42) !== undefined;
  const ws16 = lu.commands.find(0x93);
  const ws10 = lu.commands.find(0x41);
  const lbpws = ws16 !== undefined && (ws16.usage[1] & 0x08) !== 0;
  const lbpws10 = ws10 !== undefined && (ws10.usage[1] & 0x08) !== 0;
  const lbpme = unmap || lbpws || lbpws10;
  return { lbpu: unmap, lbpws, lbpws10, lbpme, lbprz: lbpme && lu.settings.unmap_zeroes_data === 1 && lu.device.capabilities.discardZeroes };
}

function blockLimits(lu: LogicalUnit): Buffer {
  const s = lu.settings;
  const b = Buffer.alloc(0x3c);
  const caw = lu.commands.find(0x89);
  const tp = provisioning(lu);
  const writeSame = lu.commands.find(0x93) !== undefined || lu.commands.find(0x41) !== undefined;
  // Offsets below are page offsets minus the 4-byte header.
  b[1] = caw ? Math.min(255, lu.maxCompareAndWriteBlocks) : 0; // MAXIMUM COMPARE AND WRITE LENGTH
  b.writeUInt16BE(1 << lu.physicalBlockExponent, 2); // OPTIMAL TRANSFER LENGTH GRANULARITY: a physical block
  b.writeUInt32BE(lu.maxTransferBlocks, 4); // MAXIMUM TRANSFER LENGTH
  b.writeUInt32BE(lu.optimalTransferBlocks, 8); // OPTIMAL TRANSFER LENGTH
  b.writeUInt32BE(0, 12); // MAXIMUM PREFETCH LENGTH: no limit reported
  if (tp.lbpu) {
    b.writeUInt32BE(s.max_unmap_lba_count, 16);
    b.writeUInt32BE(s.max_unmap_block_desc_count, 20);
  }
  if (tp.lbpme) {
    b.writeUInt32BE(s.unmap_granularity, 24);
    b.writeUInt32BE((0x80000000 | s.unmap_granularity_alignment) >>> 0, 28); // UGAVALID
  }
  if (writeSame) writeU64(b, s.max_write_same_len, 32);
  if (lu.commands.find(0x9c)) {
    b.writeUInt32BE(lu.maxAtomicTransferBlocks, 40); // MAXIMUM ATOMIC TRANSFER LENGTH
    b.writeUInt32BE(lu.atomicAlignmentBlocks, 44); // ATOMIC ALIGNMENT
    b.writeUInt32BE(lu.atomicAlignmentBlocks, 48); // ATOMIC TRANSFER LENGTH GRANULARITY
  }
  return page(VpdPage.BlockLimits, b, true);
}

function blockDeviceCharacteristics(lu: LogicalUnit): Buffer {
  const b = Buffer.alloc(0x3c);
  b.writeUInt16BE(lu.settings.is_nonrot ? 1 : 0, 0); // MEDIUM ROTATION RATE: 1 = non-rotating
  // WABEREQ 01b: a read of a block erased by SANITIZE BLOCK ERASE succeeds (unmapped data).
  if (lu.commands.find(0x48, 0x02)) b[3] = 0x40;
  b[4] = 0x02; // FUAB: FUA=1 makes data durable like SYNCHRONIZE CACHE does
  return page(VpdPage.BlockDeviceCharacteristics, b, true);
}

function logicalBlockProvisioning(lu: LogicalUnit): Buffer {
  const tp = provisioning(lu);
  const b = Buffer.alloc(4);
  b[1] = (tp.lbpu ? 0x80 : 0) | (tp.lbpws ? 0x40 : 0) | (tp.lbpws10 ? 0x20 : 0) | (tp.lbprz ? 0x04 : 0); // ANC_SUP=0
  b[2] = tp.lbpme ? 0x02 : 0x00; // PROVISIONING TYPE: thin / full
  return page(VpdPage.LogicalBlockProvisioning, b, true);
}

function extendedInquiry(lu: LogicalUnit): Buffer {
  const b = Buffer.alloc(0x3c);
  b[1] = 0x07; // HEADSUP ORDSUP SIMPSUP: all three task attributes are honoured
  b[3] = 0x01; // LUICLR: REPORTED LUNS DATA HAS CHANGED is cleared on every LU once reported
  void lu;
  return page(VpdPage.ExtendedInquiry, b, true);
}

/** The VPD page, or undefined when it is not supported. */
export function vpdPage(lu: LogicalUnit, code: number, nexus: ITNexus): Buffer | undefined {
  switch (code) {
    case VpdPage.SupportedPages: return page(code, Buffer.from(supportedVpdPages(lu)), true);
    case VpdPage.UnitSerialNumber: return page(code, Buffer.from(lu.wwn, 'ascii'), true);
    case VpdPage.DeviceIdentification: return deviceIdentification(lu, nexus);
    case VpdPage.ExtendedInquiry: return extendedInquiry(lu);
    case VpdPage.ThirdPartyCopy:
      return lu.commands.find(0x83, 0x00) ? page(code, thirdPartyCopyDescriptors(lu), true) : undefined;
    case VpdPage.BlockLimits: return blockLimits(lu);
    case VpdPage.BlockDeviceCharacteristics: return blockDeviceCharacteristics(lu);
    case VpdPage.LogicalBlockProvisioning: return logicalBlockProvisioning(lu);
    default: return undefined;
  }
}
