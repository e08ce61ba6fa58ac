/**
 * Access control with real initiators (libiscsi tools, QEMU's iSCSI driver) and the raw test
 * initiator for exact login statuses: ACL mode with per-host CHAP and mutual CHAP, demo mode,
 * target-level CHAP, discovery authentication on and off, LUN masking and host groups, and
 * per-address throttling of failed logins. Credentials are the seed's (SES 7 guide §6.4.4).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configPath } from '../../src/config/paths';
import { migrateDocument } from '../../src/config/migrate';
import { AuthConfig, GatewayConfig } from '../../src/config/schema';
import { FileConfigStore } from '../../src/config/file-store';
import { writeFileAtomic } from '../../src/sys/durable';
import { Daemon, run } from '../helpers/daemon';
import { ChapLogin, LoginFailed, TestInitiator } from '../helpers/initiator';
import { MiB, dataDirWith } from '../helpers/scsi';

const ACL = 'iqn.2003-01.com.example.iscsi-gw:acl';
const DEMO = 'iqn.2003-01.com.example.iscsi-gw:open';
const TCHAP = 'iqn.2003-01.com.example.iscsi-gw:tchap';

const SEED_HOST = 'iqn.1996-04.de.suse:01:e6ca28cc9f20';
const HOST_B = 'iqn.2024-01.com.example:host-b';
const MUTUAL_HOST = 'iqn.2024-01.com.example:mutual';
const ESX1 = 'iqn.1998-01.com.vmware:esx1';
const ESX2 = 'iqn.1998-01.com.vmware:esx2';
const STRANGER = 'iqn.2024-01.com.example:stranger';

const SEED = { username: 'common12', secret: 'pass12345678' };
const MUTUAL = { username: 'mutual01', secret: 'mpassword1234', target: { username: 'target01', secret: 'tpassword1234' } };
const TARGET_CHAP = { username: 'tuser123', secret: 'tpass1234567', target: { username: 'tmutual1', secret: 'tmpass123456' } };
const DISCOVERY = { username: 'du123456', secret: 'dp1234567890' };

/** These tests fail logins on purpose, all from 127.0.0.1: throttle only the throttling test's daemon. */
const LENIENT = { ISCSI_GATEWAY_LOGIN_THROTTLE: 'free=1000' };

const STATUS = { authentication: 0x0201, authorization: 0x0202, notFound: 0x0203, missing: 0x0207, initiatorError: 0x0200 };

function chap(username = '', password = '', mutualUsername = '', mutualPassword = ''): AuthConfig {
  return {
    username, password, password_encryption_enabled: false,
    mutual_username: mutualUsername, mutual_password: mutualPassword, mutual_password_encryption_enabled: false,
  };
}

/** One data dir: three targets (ACL, demo, target CHAP), file disks, optional discovery CHAP. */
async function gatewayDir(discovery: boolean): Promise<string> {
  const disks = ['a0', 'a1', 'a2', 'g', 'd0', 'd1', 't0'].map((id) => ({ id: `${id}.img`, backstore: 'file' as const, size: 16 * MiB }));
  const { dir, config: v1 } = await dataDirWith(disks, [
    { iqn: ACL, luns: { 'a0.img': 0, 'a1.img': 1, 'a2.img': 2, 'g.img': 3 } },
    { iqn: DEMO, luns: { 'd0.img': 0, 'd1.img': 1 } },
    { iqn: TCHAP, luns: { 't0.img': 0 } },
  ]);
  // Schema v11 as ceph-iscsi writes it; the daemon adopts the targets as their gateway on start.
  const next = migrateDocument(v1, 'test');
  const acl = next.targets[ACL];
  acl.acl_enabled = true;
  acl.clients = {
    [SEED_HOST]: { auth: chap(SEED.username, SEED.secret), luns: { 'a0.img': { lun_id: 0 } }, group_name: '' },
    [HOST_B]: { auth: chap(), luns: { 'a1.img': { lun_id: 0 } }, group_name: '' },
    [MUTUAL_HOST]: {
      auth: chap(MUTUAL.username, MUTUAL.secret, MUTUAL.target.username, MUTUAL.target.secret),
      luns: { 'a0.img': { lun_id: 0 } }, group_name: '',
    },
    // esx1 has a disk of its own at LUN 0; the group's disk is LUN 5 on every member.
    [ESX1]: { auth: chap(), luns: { 'a2.img': { lun_id: 0 } }, group_name: 'esx' },
    [ESX2]: { auth: chap(), luns: {}, group_name: 'esx' },
  };
  acl.groups = { esx: { members: [ESX1, ESX2], disks: { 'g.img': { lun_id: 5 } } } };
  next.targets[TCHAP].auth = chap(TARGET_CHAP.username, TARGET_CHAP.secret, TARGET_CHAP.target.username, TARGET_CHAP.target.secret);
  if (discovery) next.discovery_auth = chap(DISCOVERY.username, DISCOVERY.secret);
  await writeFileAtomic(configPath(dir), JSON.stringify(next));
  return dir;
}

/** libiscsi URL; `?target_user=&target_password=` asks for mutual CHAP. */
function url(port: number, target: string, lun: number, auth?: { username: string; secret: string }, mutual?: { username: string; secret: string }): string {
  const who = auth ? `${auth.username}%${auth.secret}@` : '';
  const query = mutual ? `?target_user=${mutual.username}&target_password=${mutual.secret}` : '';
  return `iscsi://${who}127.0.0.1:${port}/${target}/${lun}${query}`;
}

async function inq(initiator: string, u: string, args: string[] = []) {
  return run('iscsi-inq', ['-i', initiator, ...args, u], { timeoutMs: 30_000 });
}

/** The raw initiator's login outcome: 0 on success, else the Login Response status. */
async function rawLogin(port: number, initiatorName: string, target: string, chapLogin?: ChapLogin, localAddress?: string): Promise<number | undefined> {
  const i = await TestInitiator.connect(port, '127.0.0.1', localAddress);
  try {
    await i.login({ initiatorName, targetName: target, chap: chapLogin, isid: Buffer.from('800000000abc', 'hex') });
    await i.logout();
    return 0;
  } catch (e) {
    if (e instanceof LoginFailed) return e.status;
    throw e;
  } finally {
    i.close();
  }
}

/** REPORT LUNS as this initiator sees it (raw initiator; LUN list in ascending order). */
async function reportLuns(port: number, initiatorName: string, target: string, chapLogin?: ChapLogin): Promise<number[]> {
  const i = await TestInitiator.connect(port);
  try {
    await i.login({ initiatorName, targetName: target, chap: chapLogin });
    const cdb = Buffer.alloc(12);
    cdb[0] = 0xa0;
    cdb.writeUInt32BE(4096, 6);
    const r = await i.scsi(cdb, { read: 4096 });
    assert.equal(r.status, 0, 'REPORT LUNS status');
    const n = r.data.readUInt32BE(0) / 8;
    const luns: number[] = [];
    for (let k = 0; k < n; k++) luns.push(r.data.readUInt16BE(8 + 8 * k) & 0x3fff);
    return luns;
  } finally {
    i.close();
  }
}

async function qemuIo(opts: string, commands: string[]) {
  const args = ['--image-opts'];
  for (const c of commands) args.push('-c', c);
  return run('qemu-io', [...args, opts], { timeoutMs: 60_000 });
}

function qemuOpts(port: number, target: string, lun: number, initiator: string, auth?: { username: string; secret: string }): string {
  const cred = auth ? `,user=${auth.username},password=${auth.secret}` : '';
  return `driver=iscsi,transport=tcp,portal=127.0.0.1:${port},target=${target},lun=${lun},initiator-name=${initiator}${cred}`;
}

describe('access control', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await Daemon.start({ dataDir: await gatewayDir(false), env: LENIENT });
  });
  after(async () => {
    assert.equal(await daemon.stop(), 0);
    for (const secret of [SEED.secret, MUTUAL.secret, MUTUAL.target.secret, TARGET_CHAP.secret, TARGET_CHAP.target.secret, 'wrongpass1234']) {
      assert.ok(!daemon.stdout.includes(secret) && !daemon.stderr.includes(secret), 'no secret in the log');
    }
  });

  describe('ACL mode with per-host CHAP (libiscsi)', () => {
    it('the seed host logs in with its credentials', async () => {
      const r = await inq(SEED_HOST, url(daemon.port, ACL, 0, SEED));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Peripheral Device Type:DIRECT_ACCESS/);
    });

    it('a wrong password and a wrong user fail alike: Authentication failure (513)', async () => {
      const wrongPassword = await inq(SEED_HOST, url(daemon.port, ACL, 0, { username: SEED.username, secret: 'wrongpass1234' }));
      const wrongUser = await inq(SEED_HOST, url(daemon.port, ACL, 0, { username: 'wronguser', secret: SEED.secret }));
      assert.notEqual(wrongPassword.code, 0);
      assert.match(wrongPassword.stderr, /Authentication failure\(513\)/);
      assert.equal(wrongUser.stderr, wrongPassword.stderr, 'indistinguishable');
      assert.equal(wrongUser.code, wrongPassword.code);
    });

    it('no credentials where CHAP is required: Authentication failure (513)', async () => {
      const r = await inq(SEED_HOST, url(daemon.port, ACL, 0));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Authentication failure\(513\)/);
    });

    it('a host without an ACL is refused: Authorization failure (514)', async () => {
      const r = await inq(STRANGER, url(daemon.port, ACL, 0));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Authorization failure\(514\)/);
    });

    it('a host with an ACL and no CHAP logs in without credentials', async () => {
      const r = await inq(HOST_B, url(daemon.port, ACL, 0));
      assert.equal(r.code, 0, r.stderr);
    });

    it('mutual CHAP: the right target secret logs in, a wrong one is refused by the initiator', async () => {
      const good = await inq(MUTUAL_HOST, url(daemon.port, ACL, 0, MUTUAL, MUTUAL.target));
      assert.equal(good.code, 0, good.stderr);
      const bad = await inq(MUTUAL_HOST, url(daemon.port, ACL, 0, MUTUAL, { username: MUTUAL.target.username, secret: 'wrongpass1234' }));
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /Invalid CHAP_R response from the target/);
    });

    it('mutual CHAP requested from a host whose target secret is not configured fails', async () => {
      const r = await inq(SEED_HOST, url(daemon.port, ACL, 0, SEED, MUTUAL.target));
      assert.notEqual(r.code, 0);
    });
  });

  describe('QEMU iSCSI driver', () => {
    it('reads and writes with user/password; a wrong password fails to open', async () => {
      const ok = await qemuIo(qemuOpts(daemon.port, ACL, 0, SEED_HOST, SEED), ['write -P 0x5a 0 64k', 'read -P 0x5a 0 64k']);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /read 65536\/65536 bytes/);
      const bad = await qemuIo(qemuOpts(daemon.port, ACL, 0, SEED_HOST, { username: SEED.username, secret: 'wrongpass1234' }), ['read 0 4k']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stdout + bad.stderr, /Authentication failure|Failed to connect|Login/i);
    });

    it('a denied host cannot open the target', async () => {
      const r = await qemuIo(qemuOpts(daemon.port, ACL, 0, STRANGER), ['read 0 4k']);
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, /Authorization failure/i);
    });

    it("host A cannot see or read host B's LUN", async () => {
      // Host B writes its disk (its LUN 0 = the target's LUN 1).
      const w = await qemuIo(qemuOpts(daemon.port, ACL, 0, HOST_B), ['write -P 0xb7 0 64k']);
      assert.equal(w.code, 0, w.stdout + w.stderr);
      // The seed host's LUN 0 is its own disk, not host B's.
      const own = await qemuIo(qemuOpts(daemon.port, ACL, 0, SEED_HOST, SEED), ['read -P 0xb7 0 64k']);
      assert.match(own.stdout, /Pattern verification failed/);
      // The target's LUN 1 does not exist for the seed host.
      const other = await qemuIo(qemuOpts(daemon.port, ACL, 1, SEED_HOST, SEED), ['read 0 4k']);
      assert.notEqual(other.code, 0, other.stdout);
      // libiscsi's connect (TEST UNIT READY) on LUN 1 gets LOGICAL UNIT NOT SUPPORTED.
      const tur = await inq(SEED_HOST, url(daemon.port, ACL, 1, SEED));
      assert.notEqual(tur.code, 0);
      assert.match(tur.stderr, /LOGICAL_UNIT_NOT_SUPPORTED\(0x2500\)/);
      // Each host's REPORT LUNS lists its own LUN 0 only; INQUIRY on LUN 1 says peripheral
      // qualifier 3 (no LU), and a READ there is LOGICAL UNIT NOT SUPPORTED.
      assert.deepEqual(await reportLuns(daemon.port, SEED_HOST, ACL, SEED), [0]);
      assert.deepEqual(await reportLuns(daemon.port, HOST_B, ACL), [0]);
      const i = await TestInitiator.connect(daemon.port);
      await i.login({ initiatorName: SEED_HOST, targetName: ACL, chap: SEED });
      const inquiry = await i.scsi(Buffer.from([0x12, 0, 0, 0, 96, 0]), { read: 96, lun: 1 });
      assert.equal(inquiry.status, 0);
      assert.equal(inquiry.data[0], 0x7f, 'peripheral qualifier 011b, device type 1Fh');
      const read = await i.scsi(Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), { read: 512, lun: 1 });
      assert.equal(read.status, 2);
      assert.equal(read.sense![2] & 0x0f, 0x05, 'ILLEGAL REQUEST');
      assert.equal(read.sense![12], 0x25, 'LOGICAL UNIT NOT SUPPORTED');
      i.close();
    });
  });

  describe('host groups', () => {
    it('every member sees the group disk under the same LUN id and unit serial', async () => {
      assert.deepEqual(await reportLuns(daemon.port, ESX1, ACL), [0, 5]);
      assert.deepEqual(await reportLuns(daemon.port, ESX2, ACL), [5]);
      const s1 = await inq(ESX1, url(daemon.port, ACL, 5), ['-e', '1', '-c', '128']);
      const s2 = await inq(ESX2, url(daemon.port, ACL, 5), ['-e', '1', '-c', '128']);
      assert.equal(s1.code, 0, s1.stderr);
      const serial = /Unit Serial Number:\[([^\]]+)\]/.exec(s1.stdout)?.[1];
      assert.ok(serial);
      assert.equal(/Unit Serial Number:\[([^\]]+)\]/.exec(s2.stdout)?.[1], serial);
      const w = await qemuIo(qemuOpts(daemon.port, ACL, 5, ESX1), ['write -P 0x3c 4096 4k']);
      assert.equal(w.code, 0, w.stdout + w.stderr);
      const r = await qemuIo(qemuOpts(daemon.port, ACL, 5, ESX2), ['read -P 0x3c 4096 4k']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /verification failed/);
    });
  });

  describe('demo mode and target-level CHAP', () => {
    it('demo mode: any initiator, every LUN', async () => {
      for (const lun of [0, 1]) {
        const r = await inq(STRANGER, url(daemon.port, DEMO, lun));
        assert.equal(r.code, 0, r.stderr);
      }
      assert.deepEqual(await reportLuns(daemon.port, STRANGER, DEMO), [0, 1]);
      const io = await qemuIo(qemuOpts(daemon.port, DEMO, 1, STRANGER), ['write -P 0x11 0 4k', 'read -P 0x11 0 4k']);
      assert.equal(io.code, 0, io.stdout + io.stderr);
    });

    it('target-level CHAP: right credentials and mutual secret log in; none or wrong ones do not', async () => {
      const good = await inq(STRANGER, url(daemon.port, TCHAP, 0, TARGET_CHAP));
      assert.equal(good.code, 0, good.stderr);
      const mutual = await inq(STRANGER, url(daemon.port, TCHAP, 0, TARGET_CHAP, TARGET_CHAP.target));
      assert.equal(mutual.code, 0, mutual.stderr);
      const wrongMutual = await inq(STRANGER, url(daemon.port, TCHAP, 0, TARGET_CHAP, { username: TARGET_CHAP.target.username, secret: 'wrongpass1234' }));
      assert.notEqual(wrongMutual.code, 0);
      const none = await inq(STRANGER, url(daemon.port, TCHAP, 0));
      assert.match(none.stderr, /Authentication failure\(513\)/);
      const wrong = await inq(STRANGER, url(daemon.port, TCHAP, 0, { username: TARGET_CHAP.username, secret: 'wrongpass1234' }));
      assert.match(wrong.stderr, /Authentication failure\(513\)/);
      const q = await qemuIo(qemuOpts(daemon.port, TCHAP, 0, STRANGER, TARGET_CHAP), ['read 0 4k']);
      assert.equal(q.code, 0, q.stdout + q.stderr);
    });
  });

  describe('exact login statuses (raw initiator)', () => {
    it('each CHAP_A digest, in the initiator\'s preference order', async () => {
      for (const algorithms of ['5', '6', '7', '8', '7,5', '8,6']) {
        assert.equal(await rawLogin(daemon.port, SEED_HOST, ACL, { ...SEED, algorithms }), 0, `CHAP_A=${algorithms}`);
      }
      assert.equal(await rawLogin(daemon.port, MUTUAL_HOST, ACL, { ...MUTUAL, algorithms: '8', mutual: MUTUAL.target }), 0, 'mutual SHA3-256');
    });

    it('0201 for a wrong secret or user, 0202 for a host without ACL, 0203 for an unknown target', async () => {
      assert.equal(await rawLogin(daemon.port, SEED_HOST, ACL, { ...SEED, secret: 'wrongpass1234' }), STATUS.authentication);
      assert.equal(await rawLogin(daemon.port, SEED_HOST, ACL, { ...SEED, username: 'wronguser' }), STATUS.authentication);
      assert.equal(await rawLogin(daemon.port, SEED_HOST, ACL), STATUS.authentication, 'AuthMethod=None offered, CHAP required');
      assert.equal(await rawLogin(daemon.port, STRANGER, ACL), STATUS.authorization);
      assert.equal(await rawLogin(daemon.port, SEED_HOST, 'iqn.2003-01.com.example.iscsi-gw:nope', SEED), STATUS.notFound);
    });

    it('a target that fails mutual CHAP is detected by the initiator', async () => {
      await assert.rejects(
        (async () => {
          const i = await TestInitiator.connect(daemon.port);
          try {
            await i.login({ initiatorName: MUTUAL_HOST, targetName: ACL, chap: { ...MUTUAL, mutual: { username: 'target01', secret: 'wrongpass1234' } } });
          } finally {
            i.close();
          }
        })(),
        /did not prove itself/,
      );
    });
  });
});

describe('discovery authentication', () => {
  let on: Daemon;
  let off: Daemon;
  before(async () => {
    on = await Daemon.start({ dataDir: await gatewayDir(true), env: LENIENT });
    off = await Daemon.start({ dataDir: await gatewayDir(false), env: LENIENT });
  });
  after(async () => {
    await on.stop();
    await off.stop();
  });

  const targetsOf = (stdout: string) => [...stdout.matchAll(/Target:(\S+) Portal:/g)].map((m) => m[1]).sort();

  it('on: the seed discovery credentials list the targets this host may log in to', async () => {
    const r = await run('iscsi-ls', ['-i', SEED_HOST, `iscsi://${DISCOVERY.username}%${DISCOVERY.secret}@127.0.0.1:${on.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(targetsOf(r.stdout), [ACL, DEMO, TCHAP].sort());
    assert.match(r.stdout, new RegExp(`Portal:127\\.0\\.0\\.1:${on.port},1`));
  });

  it('on: a host without an ACL is not shown the ACL target', async () => {
    const r = await run('iscsi-ls', ['-i', STRANGER, `iscsi://${DISCOVERY.username}%${DISCOVERY.secret}@127.0.0.1:${on.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(targetsOf(r.stdout), [DEMO, TCHAP].sort());
  });

  it('on: no or wrong discovery credentials are refused (0201)', async () => {
    const none = await run('iscsi-ls', ['-i', SEED_HOST, `iscsi://127.0.0.1:${on.port}/`]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /Authentication failure\(513\)/);
    const wrong = await run('iscsi-ls', ['-i', SEED_HOST, `iscsi://${DISCOVERY.username}%wrongpass1234@127.0.0.1:${on.port}/`]);
    assert.notEqual(wrong.code, 0);
    const i = await TestInitiator.connect(on.port);
    await assert.rejects(i.login({ initiatorName: SEED_HOST, sessionType: 'Discovery', chap: { username: 'du123456', secret: 'x12345678901' } }),
      (e: unknown) => e instanceof LoginFailed && e.status === STATUS.authentication);
    i.close();
  });

  it('on: target logins are independent of discovery credentials', async () => {
    const r = await inq(HOST_B, url(on.port, ACL, 0));
    assert.equal(r.code, 0, r.stderr);
  });

  it('off: anyone discovers, still only the targets it may log in to', async () => {
    const r = await run('iscsi-ls', ['-i', STRANGER, `iscsi://127.0.0.1:${off.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(targetsOf(r.stdout), [DEMO, TCHAP].sort());
    const seed = await run('iscsi-ls', ['-i', SEED_HOST, `iscsi://127.0.0.1:${off.port}/`]);
    assert.deepEqual(targetsOf(seed.stdout), [ACL, DEMO, TCHAP].sort());
  });

  it('raw SendTargets=All in a discovery session lists the same', async () => {
    const i = await TestInitiator.connect(on.port);
    await i.login({ initiatorName: STRANGER, sessionType: 'Discovery', chap: { username: DISCOVERY.username, secret: DISCOVERY.secret, algorithms: '7' } });
    const pairs = await i.text([['SendTargets', 'All']]);
    assert.deepEqual(pairs.filter(([k]) => k === 'TargetName').map(([, v]) => v).sort(), [DEMO, TCHAP].sort());
    i.close();
  });
});

describe('failed-login throttling', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await Daemon.start({ dataDir: await gatewayDir(false) });
  });
  after(async () => {
    await daemon.stop();
  });

  it('delays an address after repeated failures, not other addresses or established sessions', async () => {
    const attacker = '127.0.0.77';
    const established = await TestInitiator.connect(daemon.port);
    await established.login({ initiatorName: SEED_HOST, targetName: ACL, chap: SEED });
    for (let k = 0; k < 8; k++) {
      assert.equal(await rawLogin(daemon.port, SEED_HOST, ACL, { ...SEED, secret: 'wrongpass1234' }, attacker), STATUS.authentication);
    }
    // The next attempt from that address waits (>= the base delay doubled per failure past 5).
    const t0 = Date.now();
    assert.equal(await rawLogin(daemon.port, SEED_HOST, ACL, { ...SEED, secret: 'wrongpass1234' }, attacker), STATUS.authentication);
    assert.ok(Date.now() - t0 >= 900, `throttled attempt took ${Date.now() - t0} ms`);
    // Another address logs in with the right secret, and the established session still works.
    assert.equal(await rawLogin(daemon.port, SEED_HOST, ACL, SEED, '127.0.0.78'), 0);
    assert.deepEqual(await established.ping(), Buffer.from('ping'));
    established.close();
  });
});

describe('live access changes (committed while initiators are logged in)', () => {
  let daemon: Daemon;
  let dir: string;
  before(async () => {
    dir = await gatewayDir(false);
    daemon = await Daemon.start({ dataDir: dir, env: LENIENT });
  });
  after(async () => {
    await daemon.stop();
  });

  const commit = (mutate: (d: GatewayConfig) => void) => new FileConfigStore(configPath(dir)).update((d) => void mutate(d));

  it("a change in a host's mapping reaches it as REPORTED LUNS DATA HAS CHANGED", async () => {
    const i = await TestInitiator.connect(daemon.port);
    await i.login({ initiatorName: HOST_B, targetName: ACL });
    await i.clearUnitAttentions(0);
    await commit((d) => {
      d.targets[ACL].clients[HOST_B].luns['a2.img'] = { lun_id: 1 };
    });
    let ua: Buffer | undefined;
    for (let k = 0; k < 100 && !ua; k++) {
      const r = await i.scsi(Buffer.alloc(6), { lun: 0 });
      if (r.status === 2) ua = r.sense;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(ua, 'a unit attention arrived');
    assert.equal(ua[2] & 0x0f, 0x06, 'UNIT ATTENTION');
    assert.deepEqual([ua[12], ua[13]], [0x3f, 0x0e], 'REPORTED LUNS DATA HAS CHANGED');
    assert.deepEqual(await reportLuns(daemon.port, HOST_B, ACL), [0, 1]);
    i.close();
  });

  it('a removed host is logged out and refused (0202); a changed secret applies to the next login', async () => {
    const i = await TestInitiator.connect(daemon.port);
    await i.login({ initiatorName: HOST_B, targetName: ACL });
    await commit((d) => {
      delete d.targets[ACL].clients[HOST_B];
      d.targets[ACL].clients[SEED_HOST].auth = chap(SEED.username, 'newsecret1234');
    });
    assert.equal(await i.waitClosed(15_000), true, 'the removed host lost its session');
    assert.equal(await rawLogin(daemon.port, HOST_B, ACL), STATUS.authorization);
    assert.equal(await rawLogin(daemon.port, SEED_HOST, ACL, SEED), STATUS.authentication);
    assert.equal(await rawLogin(daemon.port, SEED_HOST, ACL, { ...SEED, secret: 'newsecret1234' }), 0);
  });
});
