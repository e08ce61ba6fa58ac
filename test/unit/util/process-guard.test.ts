import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const GUARD = path.resolve(__dirname, '..', '..', '..', 'src', 'util', 'process-guard.js');

/** Run a script with the guard installed in a child process (the test runner has its own handlers). */
function runGuarded(body: string): { code: number | null; out: string } {
  const script = `
    const { installProcessGuard, runAs, boundTo } = require(${JSON.stringify(GUARD)});
    const lines = [];
    const log = { error: (o, m) => lines.push(m + ' ' + (o.owner ?? '-')) };
    installProcessGuard(log);
    const faults = [];
    const owner = (name) => ({ faultName: name, fault: (r) => faults.push(name + ': ' + r) });
    ${body}
    setTimeout(() => { console.log(JSON.stringify({ lines, faults })); }, 200);
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, out: r.stdout };
}

describe('process guard', () => {
  it('closes only the owner of a throw or an unhandled rejection, and the process lives on', () => {
    const r = runGuarded(`
      runAs(owner('conn-1'), () => setTimeout(() => { throw new Error('bug in a callback'); }, 5));
      runAs(owner('conn-2'), () => { Promise.reject(new Error('nobody handled me')); });
      const h = boundTo(owner('conn-3'), () => { throw new Error('bug in an event handler'); });
      setTimeout(h, 10);
      setTimeout(() => { throw new Error('outside any connection'); }, 15);
    `);
    assert.equal(r.code, 0, 'the process did not die');
    const { lines, faults } = JSON.parse(r.out) as { lines: string[]; faults: string[] };
    assert.deepEqual(faults.sort(), ['conn-1: internal error (uncaughtException)', 'conn-2: internal error (unhandledRejection)', 'conn-3: internal error (uncaughtException)']);
    assert.ok(lines.some((l) => l.startsWith('internal error outside any connection')));
  });
});
