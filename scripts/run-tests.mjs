#!/usr/bin/env node
// Runs the compiled test files with node's built-in test runner.
// usage: run-tests.mjs [unit|integration|<path fragment>...]
// Unit tests run in parallel; integration tests (real daemons, real initiators) one file at a time.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
function find(dir) {
  let out = [];
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (e.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}
const args = process.argv.slice(2);
const kinds = args.length === 0 ? ['unit', 'integration'] : args;
let failed = false;
for (const kind of ['unit', 'integration']) {
  const all = find(join(root, 'dist', 'test', kind));
  // Match fragments against the path below dist/test, not the checkout's own directory name.
  const files = kinds.includes(kind) ? all : all.filter((f) => kinds.some((k) => f.slice(root.length).includes(k)));
  if (files.length === 0) continue;
  const concurrency = kind === 'unit' ? '2' : '1';
  console.log(`# ${kind}: ${files.length} files`);
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], { stdio: 'inherit' });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
