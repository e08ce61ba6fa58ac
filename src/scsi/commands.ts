/**
 * The command set of a disk logical unit, assembled from the per-concern modules. Which
 * commands exist, and which CDB bits they evaluate, follows the LU's settings.
 */
import type { LogicalUnit } from './logical-unit';
import type { CommandDefinition } from './command-table';
import { inquiryCommands } from './inquiry';
import { requestSenseCommands } from './request-sense';
import { reportLunsCommands } from './report-luns';
import { reportOpcodesCommands } from './report-opcodes';
import { capacityCommands } from './capacity';
import { readWriteCommands } from './read-write';
import { modeCommands } from './mode-pages';
import { mediumCommands } from './medium';
import { defectDataCommands } from './defect-data';
import { reservationCommands } from './persistent-reservations';
import { provisioningCommands } from './provisioning';
import { atomicWriteCommands } from './atomic-writes';
import { extendedCopyCommands } from './extended-copy';
import { sanitizeCommands } from './sanitize';
import { targetPortGroupCommands } from './target-port-groups';

export function diskCommands(lu: LogicalUnit): CommandDefinition[] {
  const s = lu.settings;
  const caps = lu.device.capabilities;
  // A thin backstore frees space on discard. A read-only one (a snapshot) is thin all the
  // same: GET LBA STATUS reports its holes, and UNMAP is refused with DATA PROTECT like
  // every other write.
  const thin = caps.discard || (lu.device.readOnly && caps.mapStatus);
  const unmap = s.emulate_tpu === 1 && thin && s.max_unmap_lba_count > 0 && s.max_unmap_block_desc_count > 0;
  const writeSameUnmap = s.emulate_tpws === 1 && thin;
  return [
    ...inquiryCommands(),
    ...requestSenseCommands(),
    ...reportLunsCommands(),
    ...reportOpcodesCommands(),
    ...capacityCommands(),
    ...readWriteCommands(lu.dpofua),
    ...modeCommands(),
    ...mediumCommands(lu.removable),
    ...defectDataCommands(),
    ...atomicWriteCommands({
      compareAndWrite: s.emulate_caw === 1,
      writeAtomic: lu.maxAtomicTransferBlocks > 0,
      dpofua: lu.dpofua,
    }),
    ...provisioningCommands(unmap, writeSameUnmap),
    // Only where the administrator allows it; BLOCK ERASE deallocates every block, so only a
    // thin-provisioned LU (LBPME=1) offers it.
    ...(s.emulate_sanitize === 1 ? sanitizeCommands(unmap || writeSameUnmap) : []),
    ...(s.emulate_3pc === 1 ? extendedCopyCommands() : []),
    // emulate_pr=0 leaves reservations to nobody: the commands do not exist.
    ...(lu.settings.emulate_pr === 1 ? reservationCommands() : []),
    // ALUA: SET TARGET PORT GROUPS only where the initiator drives transitions (TPGS 11b).
    ...(lu.alua ? targetPortGroupCommands(lu.alua.mode === 'explicit') : []),
  ];
}
