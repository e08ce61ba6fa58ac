/** CHAP passwords at rest: RSA-OAEP SHA-256, base64, flags; SHA-1 fallback; no key = clear. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChapSecrets, SecretsError, decryptConfigPasswords, generateChapKeyPair } from '../../../src/config/secrets';

const keys = generateChapKeyPair();

test('with both key files passwords are sealed (base64 OAEP-SHA256) and flagged', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igw-keys-'));
  fs.writeFileSync(path.join(dir, 'k.key'), keys.privateKey);
  fs.writeFileSync(path.join(dir, 'k-pub.key'), keys.publicKey);
  const s = ChapSecrets.fromFiles({ privKeyFile: path.join(dir, 'k.key'), pubKeyFile: path.join(dir, 'k-pub.key') });
  assert.equal(s.encryptionEnabled, true);
  const stored = s.sealAuth({ username: 'myiscsiusername', password: 'myiscsipassword', mutual_username: '', mutual_password: '' });
  assert.equal(stored.password_encryption_enabled, true);
  assert.equal(stored.mutual_password_encryption_enabled, false, 'empty stays clear');
  assert.notEqual(stored.password, 'myiscsipassword');
  // Anyone with the private key decrypts it as ceph-iscsi does (OAEP, SHA-256, MGF1 SHA-256).
  const clear = crypto.privateDecrypt({ key: keys.privateKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(stored.password, 'base64'));
  assert.equal(clear.toString(), 'myiscsipassword');
  assert.deepEqual(s.openAuth(stored), { username: 'myiscsiusername', password: 'myiscsipassword', mutual_username: '', mutual_password: '' });
});

test('older data encrypted with OAEP SHA-1 still decrypts', () => {
  const s = ChapSecrets.fromPem(keys.publicKey, keys.privateKey);
  const ct = crypto.publicEncrypt({ key: keys.publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from('oldpassword123'));
  assert.equal(s.open(ct.toString('base64'), true), 'oldpassword123');
});

test('without keys passwords are stored in clear; an encrypted one without the key is an error without the secret', () => {
  const none = ChapSecrets.fromFiles({ privKeyFile: '/nonexistent/a', pubKeyFile: '/nonexistent/b' });
  assert.equal(none.encryptionEnabled, false);
  assert.deepEqual(none.seal('myiscsipassword'), ['myiscsipassword', false]);
  const sealed = ChapSecrets.fromPem(keys.publicKey, keys.privateKey).seal('myiscsipassword')[0];
  assert.throws(() => none.open(sealed, true), (e: unknown) => e instanceof SecretsError && !e.message.includes(sealed));
  const other = ChapSecrets.fromPem(generateChapKeyPair().publicKey, generateChapKeyPair().privateKey);
  assert.throws(() => other.open(sealed, true), (e: unknown) => e instanceof SecretsError && !e.message.includes('myiscsipassword'));
});

test('decryptConfigPasswords: discovery, target and client auth in a copy, flags kept', () => {
  const s = ChapSecrets.fromPem(keys.publicKey, keys.privateKey);
  const auth = s.sealAuth({ username: 'myiscsiusername', password: 'myiscsipassword', mutual_username: 'mutualusername', mutual_password: 'mutualpassword1' });
  const config = { discovery_auth: auth, targets: { t: { auth, clients: { c: { auth } } } } };
  const plain = decryptConfigPasswords(config, s);
  for (const a of [plain.discovery_auth, plain.targets.t.auth, plain.targets.t.clients.c.auth]) {
    assert.equal(a.password, 'myiscsipassword');
    assert.equal(a.mutual_password, 'mutualpassword1');
    assert.equal(a.password_encryption_enabled, true);
  }
  assert.equal(config.discovery_auth.password, auth.password, 'the original is untouched');
});
