/**
 * The embedded config store against the ConfigStore contract (test/helpers/config-contract.ts):
 * compare-and-swap across processes loses no update, the lock lease of a killed holder blocks
 * others at most its expiry, invalid documents are refused, watchers see commits of other
 * processes, and a v1 gateway.json migrates without loss (the original kept beside it).
 */
import { describe } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileConfigStore } from '../../../src/config/file-store';
import { configStoreContract } from '../../helpers/config-contract';

function readIfAny(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

describe('FileConfigStore', () => {
  configStoreContract(async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'igw-config-')), 'gateway.json');
    return {
      open: async (o) => new FileConfigStore(file, o?.fastWatch ? { pollMs: 200 } : {}),
      childSpec: file,
      raw: async () => readIfAny(file),
      writeRaw: async (text) => fs.writeFileSync(file, text),
      backup: async (version) => readIfAny(`${file}.v${version}.bak`),
    };
  });
});
