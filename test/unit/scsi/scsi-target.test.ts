import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { ScsiTarget } from '../../../src/scsi/scsi-target';
import { LogicalUnitRegistry } from '../../../src/scsi/lu-registry';
import { MemoryBackstore } from '../../../src/block/memory-backstore';
import { TARGET, WWN } from './helpers';

function capture(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ base: undefined }, { write: (s: string) => lines.push(s) }), lines };
}

describe('ScsiTarget logging', () => {
  it('binds the target name once, whether or not the caller already did', () => {
    for (const prebound of [false, true]) {
      const { log, lines } = capture();
      const target = new ScsiTarget({
        targetName: TARGET, registry: new LogicalUnitRegistry(), logicalUnits: [],
        log: prebound ? log.child({ target: TARGET }) : log,
      });
      target.addLogicalUnit({ lun: 3, device: new MemoryBackstore({ size: 1 << 20 }), wwn: WWN, name: 'rbd/disk_1' });
      assert.equal(lines.length, 1);
      assert.equal(lines[0].split('"target":').length - 1, 1, lines[0]);
      const entry = JSON.parse(lines[0]) as { target: string; lun: number; msg: string };
      assert.deepEqual([entry.target, entry.lun, entry.msg], [TARGET, 3, 'logical unit added']);
    }
  });
});
