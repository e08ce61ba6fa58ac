import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { RateLimitedLog } from '../../../src/util/log';

function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('RateLimitedLog', () => {
  it('writes at most `burst` lines per kind and interval, then one summary of the suppressed ones', async () => {
    const { log, lines } = capture();
    let now = 1000;
    const limited = new RateLimitedLog(log, 5, 10_000, () => now);
    let written = 0;
    for (let i = 0; i < 1000; i++) if (limited.warn('reject', { i }, `Reject ${i}`)) written++;
    assert.equal(written, 5);
    assert.equal(limited.suppressed('reject'), 995);
    // Another kind has its own budget.
    assert.ok(limited.warn('data-out-error', {}, 'Data-Out error'));
    now += 10_000;
    assert.ok(limited.warn('reject', {}, 'Reject after the interval'));
    await flush();
    const summary = lines.find((l) => l.suppressed === 995);
    assert.ok(summary, 'a summary line counts the suppressed messages');
    assert.equal(summary.kind, 'reject');
    assert.equal(lines.filter((l) => String(l.msg).startsWith('Reject')).length, 6);
  });

  it('writes the summary on its own when the flood stops', async () => {
    const { log, lines } = capture();
    const limited = new RateLimitedLog(log, 1, 50);
    limited.warn('k', {}, 'one');
    limited.warn('k', {}, 'two');
    limited.warn('k', {}, 'three');
    await new Promise((r) => setTimeout(r, 120));
    assert.ok(lines.some((l) => l.suppressed === 2));
  });
});
