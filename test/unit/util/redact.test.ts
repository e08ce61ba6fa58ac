import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { SECRET_SAFE } from '../../../src/util/log';
import { REDACTED, scrubSecrets } from '../../../src/util/redact';

function capture(): { log: pino.Logger; lines: () => string } {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  return { log: pino({ ...SECRET_SAFE, base: undefined }, sink), lines: () => out };
}

describe('secrets in logs', () => {
  it('censors secret fields of logged objects at any of the first levels', () => {
    const { log, lines } = capture();
    log.info({
      auth: { username: 'admin1', password: 'pass12345678', mutual_username: 'm1', mutual_password: 'mutualpass123' },
      target: { clients: { iqn: { auth: { password: 'deepsecret999' } } } },
      req: { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } },
      api_password: 'apipass777',
    }, 'config changed');
    log.child({ conn: 1 }).warn({ keys: { CHAP_R: '0x0123456789abcdef', CHAP_C: '0xfeedface' } }, 'chap');
    const text = lines();
    for (const s of ['pass12345678', 'mutualpass123', 'YWRtaW46YWRtaW4=', 'apipass777', '0x0123456789abcdef', '0xfeedface']) {
      assert.ok(!text.includes(s), `${s} leaked: ${text}`);
    }
    assert.ok(text.includes('"username":"admin1"'), 'non-secret fields stay');
    assert.ok(text.includes(REDACTED));
  });

  it('scrubs messages and error messages', () => {
    const { log, lines } = capture();
    log.warn('login failed: password=hunter2xyz for user bob');
    log.error({ err: new Error('bad CHAP secret: s3cr3tvalue (api_password: "p@ss w0rd")') }, 'failed');
    const text = lines();
    assert.ok(!text.includes('hunter2xyz'), text);
    assert.ok(!text.includes('s3cr3tvalue'), text);
    assert.ok(!text.includes('p@ss') && !text.includes('w0rd'), text);
    assert.ok(text.includes('user bob'));
  });

  it('scrubSecrets handles key=value, key: value, form fields and HTTP credentials', () => {
    assert.equal(scrubSecrets('username=a&password=b1234&x=1'), `username=a&password=${REDACTED}&x=1`);
    assert.equal(scrubSecrets('{"password": "abc"}'), `{"password": "${REDACTED}"}`);
    assert.equal(scrubSecrets('CHAP_R=0xabc CHAP_N=user'), `CHAP_R=${REDACTED} CHAP_N=user`);
    assert.equal(scrubSecrets('Authorization: Basic YWRtaW46YWRtaW4='), `Authorization: ${REDACTED}`);
    assert.equal(scrubSecrets("secret='two words' next"), `secret='${REDACTED}' next`);
    assert.equal(scrubSecrets('password: [Redacted]'), 'password: [Redacted]');
    assert.equal(scrubSecrets('nothing to see'), 'nothing to see');
  });
});
