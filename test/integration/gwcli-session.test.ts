/**
 * The user's guide's gwcli session (§6.4.3-§6.4.5) typed into a real terminal (tmux send-keys,
 * checked with capture-pane after every step) against two gateway daemons (iscsi1 on 127.0.0.1,
 * iscsi2 on 127.0.0.2, one shared data dir, their APIs on the same port). Then an initiator logs
 * in with libiscsi using the guide's CHAP credentials and writes and reads the LUN, and a second
 * gwcli run finds the first run's history.
 *
 * CHAP enforcement at login is the auth branch's part (not in this branch's base): the
 * initiators offer the guide's credentials, and the target accepts them without checking.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, run, tempDir } from '../helpers/daemon';
import { GatewayProcess, waitApplied } from '../helpers/gateways';
import { GWCLI, settingsFile } from '../helpers/gwcli';
import { qemuIoOk, rbdOk } from '../helpers/store';
import { TestInitiator } from '../helpers/initiator';

const GUIDE_IQN = 'iqn.2003-01.org.linux-iscsi.iscsi.SYSTEM-ARCH:testvol';
const IQN = GUIDE_IQN.toLowerCase();
const HOST = 'iqn.1996-04.de.suse:01:e6ca28cc9f20';

/** One tmux server of our own (-L), one pane running the given command. */
class Terminal {
  private readonly sock = `gwcli-test-${process.pid}-${Date.now()}`;
  constructor(command: string) {
    this.tmux('-f', '/dev/null', 'new-session', '-d', '-s', 's', '-x', '200', '-y', '50', command);
  }
  tmux(...args: string[]): string {
    const r = spawnSync('tmux', ['-L', this.sock, ...args], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }
  screen(): string {
    return this.tmux('capture-pane', '-p', '-J', '-S', '-3000', '-t', 's')
      .replace(/\s+$/, '')
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n');
  }
  keys(...keys: string[]): void {
    this.tmux('send-keys', '-t', 's', ...keys);
  }
  text(s: string): void {
    this.tmux('send-keys', '-t', 's', '-l', s);
  }
  async waitFor(test: (screen: string) => boolean, what: string, ms = 20_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const s = this.screen();
      if (test(s)) return s;
      if (Date.now() > deadline) throw new Error(`terminal: ${what}; screen:\n${s}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  close(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // already gone
    }
  }
}

describe("the user's guide's gwcli session in a terminal", () => {
  const gws: GatewayProcess[] = [];
  let term: Terminal | undefined;
  after(async () => {
    term?.close();
    for (const g of gws) await g.stop();
  });

  it('§6.4.3-§6.4.5 typed line by line; the screen after each step; then libiscsi logs in with the CHAP credentials and reads/writes', async () => {
    const dir = tempDir('igw-gwcli-session-');
    const data = path.join(dir, 'data');
    const port = await freePort();
    const apiPort = await freePort();
    gws.push(await GatewayProcess.start(data, 'iscsi1', `127.0.0.1:${port}`, `127.0.0.1:${apiPort}`));
    gws.push(await GatewayProcess.start(data, 'iscsi2', `127.0.0.2:${port}`, `127.0.0.2:${apiPort}`));
    // The guide's `rbd --pool iscsi-images create --size=102400 testvol` (smaller here), and rbd/testvol.
    await rbdOk(data, '--pool', 'iscsi-images', 'create', '--size=64', 'testvol');
    await rbdOk(data, 'create', '--size=64', 'testvol');
    const cfg = settingsFile(dir, apiPort);
    const home = path.join(dir, 'home');
    const gwcli = `env GWCLI_HOME=${home} ${process.execPath} ${GWCLI} --config ${cfg}`;
    // Two runs in a row: the second one checks the history the first one kept.
    term = new Terminal(`${gwcli}; ${gwcli}; sleep 60`);
    const t = term;
    let prompt = '/> ';
    await t.waitFor((s) => s.endsWith(prompt.trimEnd()), 'first prompt');

    const T = `/iscsi-targets/${GUIDE_IQN}`;
    /** Type a line; wait for the next prompt; return what the command printed. */
    const type = async (line: string, next: string, expect?: RegExp): Promise<string> => {
      const echo = `${prompt}${line}`;
      const before = t.screen().length;
      t.text(line);
      t.keys('Enter');
      const s = await t.waitFor((sc) => sc.length > before && sc.lastIndexOf(echo) >= 0 && sc.endsWith(next.trimEnd()) && sc.lastIndexOf(echo) + echo.length < sc.length - next.trimEnd().length, `after '${line}' the prompt '${next}'`);
      const printed = s.slice(s.lastIndexOf(echo) + echo.length, s.length - next.trimEnd().length).trim();
      if (expect) assert.match(printed, expect, `'${line}' printed:\n${printed}`);
      else assert.equal(printed, '', `'${line}' printed:\n${printed}`);
      prompt = next;
      return printed;
    };
    const GW = '/iscsi-target...tvol/gateways> ';
    const TDISKS = '/iscsi-target...testvol/disks> ';
    const HOSTS = '/iscsi-target...testvol/hosts> ';
    const HOSTP = '/iscsi-target...:e6ca28cc9f20> ';
    const TGT = '/iscsi-target...-arch:testvol> ';

    // §6.4.3
    await type('cd /iscsi-targets', '/iscsi-targets> ');
    await type(`create ${GUIDE_IQN}`, '/iscsi-targets> ', /^ok$/);
    await type(`cd ${GUIDE_IQN}/gateways`, GW);
    await type('create iscsi1 127.0.0.1', GW, /^ok$/);
    await type('create iscsi2 127.0.0.2', GW, /^ok$/);
    let out = await type('ls', GW, /^o- gateways \.+ \[Up: 2\/2, Portals: 2\]$/m);
    assert.match(out, /^ {2}o- iscsi1 \.+ \[127\.0\.0\.1 \(UP\)\]$/m);
    assert.match(out, /^ {2}o- iscsi2 \.+ \[127\.0\.0\.2 \(UP\)\]$/m);
    const coloured = t.tmux('capture-pane', '-p', '-e', '-t', 's');
    assert.ok(coloured.includes('\u001b[32m[127.0.0.1 (UP)]'), `UP is green in a terminal:\n${JSON.stringify(coloured)}`);
    await type('help', GW, /create <gateway_name> <ip_addresses> \[nosync\] \[skipchecks\]/);
    await type('cd /disks', '/disks> ');
    await type('attach iscsi-images/testvol', '/disks> ', /^ok$/);
    await type(`cd ${T}/disks`, TDISKS);
    await type('add iscsi-images/testvol', TDISKS, /^ok$/);
    await type('ls', TDISKS, /^ {2}o- iscsi-images\/testvol \.+ \[Owner: iscsi[12], Lun: 0\]$/m);
    // §6.4.4.1
    await type('cd /', '/> ');
    await type(`cd ${T}/hosts`, HOSTS);
    await type('auth disable_acl', HOSTS, /^ok$/);
    // §6.4.4.2 (rbd/testvol registered first: the guide's `attach rbd/testvol backstore=user:rbd`)
    await type('cd /disks', '/disks> ');
    await type('attach rbd/testvol backstore=user:rbd', '/disks> ', /^ok$/);
    await type(`cd ${T}/hosts`, HOSTS);
    await type(`create ${HOST}`, HOSTP, /^ok$/);
    await type('disk add rbd/testvol', HOSTP, /^ok$/);
    // §6.4.4.3
    await type('cd /', '/> ');
    await type(`cd ${T}/hosts/${HOST}`, HOSTP);
    await type('auth username=common12 password=pass12345678', HOSTP, /^ok$/);
    out = await type('ls', HOSTP, /^o- iqn\.1996-04\.de\.suse:01:e6ca28cc9f20 \.+ \[Auth: CHAP, Disks: 1\(64M\)\]$/m);
    assert.match(out, /^ {2}o- lun1 \.+ \[rbd\/testvol\(64M\), Owner: iscsi[12]\]$/m);
    // §6.4.4.4
    await type('cd /', '/> ');
    await type('cd /iscsi-targets', '/iscsi-targets> ');
    await type('discovery_auth username=du123456 password=dp1234567890', '/iscsi-targets> ', /^ok$/);
    await type('ls / 1', '/iscsi-targets> ', /^ {2}o- iscsi-targets \.+ \[DiscoveryAuth: CHAP, Targets: \d+\]$/m);
    await type('discovery_auth nochap', '/iscsi-targets> ', /^ok$/);
    // §6.4.5.1
    await type('cd /', '/> ');
    await type(`cd ${T}`, TGT);
    await type('info', TGT, /^ {2}login_timeout +: 15$/m);
    await type('reconfigure login_timeout 20', TGT, /^ok$/);
    await type('info', TGT, /^ {2}login_timeout +: 20 \(override\)$/m);
    // §6.4.5.2
    await type('cd /', '/> ');
    await type('cd /disks/rbd/testvol', '/disks/rbd/testvol> ');
    await type('info', '/disks/rbd/testvol> ', /^ {2}emulate_pr +: 1$/m);
    await type('reconfigure rbd/testvol emulate_pr 0', '/disks/rbd/testvol> ', /^lun reconfigured/);
    await type('reconfigure emulate_pr 0', '/disks/rbd/testvol> ', /^lun reconfigured/);
    await type('info', '/disks/rbd/testvol> ', /^ {2}emulate_pr +: 0 \(override\)$/m);
    // An error is shown and the shell stays; TAB completes a path in the terminal.
    await type('reconfigure emulate_pr 2', '/disks/rbd/testvol> ', /^emulate_pr must be one of 0, 1, not '2'$/);
    await type('cd /', '/> ');
    t.text('cd /iscsi-targets/iqn.2003-01.org.linux-iscsi.iscsi.s');
    t.keys('Tab');
    await t.waitFor((s) => s.endsWith(`/> cd /iscsi-targets/${IQN}/`), 'TAB completes the target IQN');
    t.text('gateways');
    t.keys('Enter');
    await t.waitFor((s) => s.endsWith(`/> cd /iscsi-targets/${IQN}/gateways\n${GW.trimEnd()}`), 'the completed cd');
    prompt = GW;
    await type('exit', '/> ');

    // The second run: Up arrow recalls the first run's last commands; passwords are not kept.
    t.keys('Up');
    await t.waitFor((s) => s.endsWith('/> exit'), 'history: Up shows exit');
    t.keys('Up');
    await t.waitFor((s) => s.endsWith(`/> cd /iscsi-targets/${IQN}/gateways`), 'history: the line before');
    const hist = fs.readFileSync(path.join(home, 'history.txt'), 'utf8');
    assert.match(hist, /^cd \/disks\/rbd\/testvol$/m);
    assert.doesNotMatch(hist, /pass12345678|dp1234567890/);
    t.keys('C-u');
    t.text('exit');
    t.keys('Enter');

    // What the session configured, as the API reports it.
    const config = JSON.parse((await run(process.execPath, [GWCLI, '--config', cfg, '--json', 'export'], { env: { GWCLI_HOME: home } })).stdout) as {
      epoch: number;
      discovery_auth: { username: string };
      disks: Record<string, { owner?: string; controls: Record<string, unknown>; backstore: string }>;
      targets: Record<string, { acl_enabled: boolean; controls: Record<string, unknown>; disks: Record<string, { lun_id: number }>; clients: Record<string, { auth: { username: string }; luns: Record<string, unknown> }> }>;
    };
    const tc = config.targets[IQN];
    assert.equal(tc.acl_enabled, false);
    assert.equal(tc.controls.login_timeout, 20);
    assert.equal(config.discovery_auth.username, '');
    assert.equal(tc.clients[HOST].auth.username, 'common12');
    assert.deepEqual(Object.keys(tc.clients[HOST].luns), ['rbd/testvol']);
    assert.equal(config.disks['rbd/testvol'].controls.emulate_pr, 0);
    assert.equal(config.disks['rbd/testvol'].backstore, 'user:rbd');
    await waitApplied(data, ['iscsi1', 'iscsi2'], config.epoch);

    // libiscsi with the guide's CHAP credentials: discovery and LUNs through both portals.
    for (const ip of ['127.0.0.1', '127.0.0.2']) {
      const ls = await run('iscsi-ls', ['-s', '-i', HOST, `iscsi://common12%pass12345678@${ip}:${port}/`], { timeoutMs: 30_000 });
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, new RegExp(`Target:${IQN.replace(/\./g, '\\.')} Portal:127\\.0\\.0\\.1:${port},1`));
      assert.match(ls.stdout, new RegExp(`Target:${IQN.replace(/\./g, '\\.')} Portal:127\\.0\\.0\\.2:${port},2`));
      assert.match(ls.stdout, /Lun:1\s+Type:DIRECT_ACCESS \(Size:6[34]M\)/, ls.stdout);
    }
    const owner = config.disks['rbd/testvol'].owner === 'iscsi1' ? '127.0.0.1' : '127.0.0.2';
    const lun = tc.disks['rbd/testvol'].lun_id;
    await qemuIoOk(`iscsi://common12%pass12345678@${owner}:${port}/${IQN}/${lun}`, ['write -P 0x5a 0 128k', 'read -P 0x5a 0 128k', 'write -P 0xc3 32M 64k', 'read -P 0xc3 32M 64k']);

    // While the host is logged in, ls shows LOGGED-IN and sessions lists it.
    const ini = await TestInitiator.connect(port, owner);
    try {
      await ini.login({ targetName: IQN, initiatorName: HOST });
      const hostPath = `/iscsi-targets/${IQN}/hosts`;
      const deadline = Date.now() + 10_000;
      let ls = '';
      while (!/LOGGED-IN/.test(ls) && Date.now() < deadline) {
        ls = (await run(process.execPath, [GWCLI, '--config', cfg, 'ls', hostPath], { env: { GWCLI_HOME: home } })).stdout;
      }
      assert.match(ls, /o- iqn\.1996-04\.de\.suse:01:e6ca28cc9f20 \.+ \[LOGGED-IN, Auth: CHAP, Disks: 1\(64M\)\]/, ls);
      const sess = await run(process.execPath, [GWCLI, '--config', cfg, '--json', `/iscsi-targets/${IQN}`, 'sessions'], { env: { GWCLI_HOME: home } });
      const parsed = JSON.parse(sess.stdout) as { sessions: Array<{ initiator: string; gateways: string[]; luns: string[]; auth: string }> };
      assert.deepEqual(parsed.sessions.map((x) => [x.initiator, x.luns, x.auth]), [[HOST, ['rbd/testvol'], 'CHAP']]);
      // A disruptive change is refused with the session named; gwcli exits 1.
      const refused = await run(process.execPath, [GWCLI, '--config', cfg, '/disks/rbd/testvol', 'reconfigure', 'emulate_pr', '1'], { env: { GWCLI_HOME: home } });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /in use: .*iqn\.1996-04\.de\.suse:01:e6ca28cc9f20/);
      await ini.logout();
    } finally {
      ini.close();
    }
  });
});
