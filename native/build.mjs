#!/usr/bin/env node
// Builds the N-API addon with node-gyp (npm's bundled copy when run from an npm script).
// Uses the local Node headers (e.g. /usr/include/node from Debian's nodejs-dev) when they exist,
// so a fresh machine needs no header download.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = ['rebuild', '--directory', here];
const prefix = process.config?.variables?.node_prefix;
const candidates = [process.env.npm_config_nodedir, prefix, '/usr', '/usr/local'].filter(Boolean);
const nodedir = candidates.find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
if (nodedir) args.push(`--nodedir=${nodedir}`);

// npm sets npm_config_node_gyp to its bundled node-gyp; otherwise fall back to one on PATH or
// next to npm.
let gyp = process.env.npm_config_node_gyp;
if (!gyp || !existsSync(gyp)) {
  const besideNpm = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  gyp = existsSync(besideNpm) ? besideNpm : 'node-gyp';
}
const cmd = gyp.endsWith('.js') ? process.execPath : gyp;
const cmdArgs = gyp.endsWith('.js') ? [gyp, ...args] : args;
const r = spawnSync(cmd, cmdArgs, { stdio: 'inherit' });
if (r.error) {
  console.error(`native: cannot run node-gyp (${r.error.message}); install build-essential and python3`);
  process.exit(1);
}
process.exit(r.status ?? 1);
