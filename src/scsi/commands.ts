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

export function diskCommands(lu: LogicalUnit): CommandDefinition[] {
  const s = lu.settings;
  const discard = lu.device.capabilities.discard;
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
    ...provisioningCommands(
      s.emulate_tpu === 1 && discard && s.max_unmap_lba_count > 0 && s.max_unmap_block_desc_count > 0,
      s.emulate_tpws === 1 && discard,
    ),
    // emulate_pr=0 leaves reservations to nobody: the commands do not exist.
    ...(lu.settings.emulate_pr === 1 ? reservationCommands() : []),
  ];
}
