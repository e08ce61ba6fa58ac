/** Server-side dashboard sessions: expiry (idle and absolute), logout, the bound. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoginLimiter, WebSessions, sameSecret } from '../../../src/web/sessions';

describe('WebSessions', () => {
  it('a session ends after the idle timeout, use keeps it alive up to the absolute timeout', () => {
    let now = 1_000_000;
    const s = new WebSessions({ idleMs: 1000, absoluteMs: 5000 }, () => now);
    const a = s.create('admin');
    assert.notEqual(a.id, a.csrf);
    assert.equal(s.get(a.id)?.user, 'admin');
    now += 900;
    assert.ok(s.get(a.id), 'used within the idle time');
    now += 900;
    assert.ok(s.get(a.id));
    now += 1001;
    assert.equal(s.get(a.id), undefined, 'idle too long');
    const b = s.create('admin');
    for (let i = 0; i < 6; i++) {
      now += 900;
      if (i < 5) assert.ok(s.get(b.id), `use ${i}`);
    }
    assert.equal(s.get(b.id), undefined, 'past the absolute timeout even though in use');
  });

  it('destroy ends a session; unknown and empty ids are no session', () => {
    const s = new WebSessions();
    const a = s.create('admin');
    s.destroy(a.id);
    assert.equal(s.get(a.id), undefined);
    assert.equal(s.get(''), undefined);
    assert.equal(s.get(undefined), undefined);
    assert.equal(s.get('x'.repeat(43)), undefined);
  });

  it('stays bounded: the oldest session goes first', () => {
    const s = new WebSessions();
    const first = s.create('admin');
    for (let i = 0; i < 300; i++) s.create('admin');
    assert.equal(s.size, 256);
    assert.equal(s.get(first.id), undefined);
  });

  it('sameSecret compares in constant time over any lengths', () => {
    assert.equal(sameSecret('abc', 'abc'), true);
    assert.equal(sameSecret('abc', 'abcd'), false);
    assert.equal(sameSecret('', 'x'), false);
  });

  it('LoginLimiter blocks after five failures within a minute, a success clears', () => {
    let now = 0;
    const l = new LoginLimiter(() => now);
    for (let i = 0; i < 5; i++) {
      assert.equal(l.blocked('127.0.0.1'), false);
      l.failed('127.0.0.1');
    }
    assert.equal(l.blocked('127.0.0.1'), true);
    assert.equal(l.blocked('127.0.0.2'), false, 'per address');
    now += 60_001;
    assert.equal(l.blocked('127.0.0.1'), false, 'after the window');
    l.failed('127.0.0.1');
    l.succeeded('127.0.0.1');
    assert.equal(l.blocked('127.0.0.1'), false);
    assert.equal(l.total, 6);
  });
});
