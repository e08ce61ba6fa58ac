#!/usr/bin/env node
// Builds the web dashboard (web/) into dist/web, offline, from the npm packages installed:
// esbuild bundles web/src/main.tsx (Preact, uPlot, the shared validation rules of
// src/config/validation.ts) into app.js + app.css; the HTML and the login style sheet are copied.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'dist', 'web');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(root, 'web', 'src', 'main.tsx') },
  outdir: out,
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'esm',
  target: ['es2020'],
  platform: 'browser',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  // validation.ts counts IQN bytes with Buffer.byteLength; the browser gets a TextEncoder one.
  inject: [join(root, 'web', 'src', 'buffer-shim.ts')],
  logLevel: 'warning',
  legalComments: 'linked',
});
for (const f of ['index.html', 'login.css']) copyFileSync(join(root, 'web', f), join(out, f));
console.log(`web dashboard built into ${out}`);
