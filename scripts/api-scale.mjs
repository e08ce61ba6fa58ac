#!/usr/bin/env node
// Time to add the 1000th disk (image create + config commit) and its LUN mapping through the
// REST API, with 999 disks already mapped (issue 7's scale figure; ceph-iscsi ≈ 51 s at 250 LUNs).
// usage: npm run build && node scripts/api-scale.mjs [rounds]
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { startTestApi, seedTarget, TARGET } = require('../dist/test/helpers/api.js');

const rounds = Number(process.argv[2] ?? 7);
const api = await startTestApi();
try {
  await seedTarget(api);
  await api.store.update((c) => {
    for (let i = 0; i < 999; i++) {
      const id = `rbd/d${i}`;
      c.disks[id] = { pool: 'rbd', image: `d${i}`, wwn: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, backstore: 'user:rbd', backstore_object_name: `rbd.d${i}`, controls: {}, owner: i % 2 ? 'iscsi1' : 'iscsi2' };
      c.targets[TARGET].disks[id] = { lun_id: i };
    }
    c.gateways.iscsi1.active_luns = 499;
    c.gateways.iscsi2.active_luns = 500;
  });
  const times = [];
  for (let k = 0; k < rounds; k++) {
    const name = `last${k}`;
    const t0 = process.hrtime.bigint();
    const a = await api.call('PUT', `/api/disk/rbd/${name}`, { mode: 'create', size: '1G' });
    const b = await api.call('PUT', `/api/targetlun/${TARGET}`, { disk: `rbd/${name}` });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (a.status !== 200 || b.status !== 200) throw new Error(`${a.text} ${b.text}`);
    await api.call('DELETE', `/api/targetlun/${TARGET}`, { disk: `rbd/${name}` });
    await api.call('DELETE', `/api/disk/rbd/${name}`, { preserve_image: 'false' });
  }
  times.sort((x, y) => x - y);
  console.log(`1000th disk create + LUN mapping through the API: median ${times[Math.floor(rounds / 2)].toFixed(1)} ms over ${rounds} rounds (min ${times[0].toFixed(1)}, max ${times[rounds - 1].toFixed(1)})`);
} finally {
  await api.close();
}
