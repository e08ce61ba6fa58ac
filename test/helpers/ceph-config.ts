/**
 * A gateway with Ceph configured keeps its configuration in RADOS (rbd/gateway.conf), not in
 * the data dir's gateway.json: tests that prepare a configuration before the daemon starts put
 * the same document there, with the `rados` CLI (the daemon migrates a v1 document as it would
 * the file, and an object written without the epoch xattr is read like one ceph-iscsi seeded).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, tempDir } from './daemon';

export async function seedRadosConfig(cephConf: string, document: string, pool = 'rbd', object = 'gateway.conf'): Promise<void> {
  const file = path.join(tempDir('igw-seed-'), 'gateway.conf');
  fs.writeFileSync(file, document);
  const r = await run('rados', ['-p', pool, 'put', object, file], { env: { CEPH_CONF: cephConf }, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`rados put ${pool}/${object} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
}
