/**
 * The web dashboard in a real browser (Debian's headless Chromium driven by playwright-core):
 * two gateway daemons (iscsi1 on 127.0.0.1 with the API and dashboard, iscsi2 on 127.0.0.2),
 * one shared data dir. Log in; create a disk; create a target with both gateways, the disk as
 * LUN 0 and a host with CHAP mapped to it, all through the forms. Then libiscsi logs in with
 * those credentials (iscsi-inq) and qemu-io writes and reads the LUN; the overview's graphs move
 * while qemu-img bench runs; the session shows on the Sessions page; deleting the target while
 * it is logged in is refused with the API's message; a stopped gateway shows as down within
 * 15 s. Screenshots of every page: test-output/web-dashboard/.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { invalidIqnMessage } from '../../src/config/validation';
import { call } from '../helpers/api';
import { startBrowser, TestBrowser } from '../helpers/browser';
import { freePort, run, tempDir } from '../helpers/daemon';
import { GatewayProcess, waitApplied } from '../helpers/gateways';
import { GWCLI, settingsFile } from '../helpers/gwcli';
import { qemuIoOk } from '../helpers/store';

const IQN = 'iqn.2003-01.com.example.iscsi-gw:web';
const HOST = 'iqn.1994-05.com.redhat:web-client';
const CHAP_USER = 'webiscsiuser';
const CHAP_PASSWORD = 'webiscsipass1';
const DISK = 'rbd/webdisk';

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('web dashboard in headless Chromium', () => {
  const gws: GatewayProcess[] = [];
  let browser: TestBrowser | undefined;
  let bench: ReturnType<typeof spawn> | undefined;
  after(async () => {
    bench?.kill('SIGKILL');
    await browser?.close();
    for (const g of gws) await g.stop();
  });

  it('log in, create disk/target/host through the forms, libiscsi uses them, graphs move, refusals and a down gateway show', async () => {
    const dir = tempDir();
    const port = await freePort();
    const apiPort = await freePort();
    const base = `http://127.0.0.1:${apiPort}`;
    gws.push(await GatewayProcess.start(dir, 'iscsi1', `127.0.0.1:${port}`, `127.0.0.1:${apiPort}`));
    gws.push(await GatewayProcess.start(dir, 'iscsi2', `127.0.0.2:${port}`));
    browser = await startBrowser('web-dashboard');
    const { page } = browser;
    page.on('dialog', (d) => void d.accept());

    // Not logged in: the page redirects to the login form.
    await page.goto(`${base}/ui/targets`);
    assert.match(page.url(), /\/ui\/login\?next=%2Fui%2Ftargets$/);
    await browser.screenshot('01-login');
    await page.fill('#password', 'wrong-password');
    await page.fill('#username', 'admin');
    await page.click('button[type=submit]');
    assert.equal((await page.textContent('#login-error'))?.trim(), 'username/password mismatch with the configuration file');
    // The second attempt by keyboard only: the user field has the focus, Tab, Enter.
    await page.fill('#username', '');
    await page.focus('#username');
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type('admin');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${base}/ui/targets`);

    // Disks: the client-side check speaks the API's words; then create the disk.
    await page.click('nav >> text=Disks');
    await page.waitForURL(`${base}/ui/disks`);
    await page.fill('#d-image', 'webdisk');
    await page.fill('#d-size', '64Q');
    await page.click('#create-disk');
    assert.equal((await page.textContent('#d-msg'))?.trim(), 'Size is invalid');
    await page.fill('#d-size', '64M');
    await page.click('#create-disk');
    await page.waitForSelector(`tr[data-disk="${DISK}"]`);
    // Manage it: a snapshot, a refused shrink (the API's words), a resize.
    await page.click(`tr[data-disk="${DISK}"] >> text=Manage`);
    await page.fill(`[id="sn-${DISK}"]`, 'before-web');
    await page.click('text=Create snapshot');
    await page.waitForSelector('table.snaps >> text=before-web');
    await page.fill(`[id="rs-${DISK}"]`, '32M');
    await page.click('button:has-text("Resize")');
    assert.equal((await (await page.waitForSelector('#disk-error')).textContent())?.trim(), `resize ${DISK}: resize value must be larger than the current size (64M/67108864)`);
    await page.fill(`[id="rs-${DISK}"]`, '96M');
    await page.click('button:has-text("Resize")');
    await page.waitForSelector(`tr[data-disk="${DISK}"] >> text=96.0 MiB`);
    await browser.screenshot('02-disks');

    // Targets: the create form.
    await page.click('nav >> text=Targets');
    await page.click('#create-target');
    await page.waitForURL(`${base}/ui/targets/_new`);
    await page.fill('#f-iqn', 'iqn.bad name');
    await page.click('#save-target');
    assert.equal((await page.textContent('#f-iqn-msg'))?.trim(), invalidIqnMessage('iqn.bad name'));
    await page.fill('#f-iqn', IQN);
    await page.check('#f-gw-iscsi1');
    await page.check('#f-gw-iscsi2');
    assert.equal(await page.inputValue('#f-gw-ip-iscsi1'), '127.0.0.1');
    assert.equal(await page.inputValue('#f-gw-ip-iscsi2'), '127.0.0.2');
    await page.click('#add-disk');
    await page.selectOption('#f-disk-0', DISK);
    await page.fill('#f-lun-0', '0');
    await page.click('#add-host');
    await page.fill('#f-host-0', HOST);
    await page.fill('#f-user-0', CHAP_USER);
    await page.fill('#f-pass-0', 'short');
    await page.click('#save-target');
    // The client-side CHAP check gives the API's message (src/config/validation.ts).
    assert.equal((await page.textContent('#f-host-msg-0'))?.trim(), 'Minimum length of password is 12 characters');
    await page.fill('#f-pass-0', CHAP_PASSWORD);
    await page.check(`[id="f-host-0-disk-${DISK}"]`);
    await browser.screenshot('03-target-form');
    await page.click('#save-target');
    await page.waitForURL(`${base}/ui/targets/${encodeURIComponent(IQN)}`, { timeout: 30_000 });
    await page.waitForSelector('#target-luns tbody tr');
    await browser.screenshot('04-target-detail');
    // Edit: a target setting outside its limit is refused with the API's message, one inside is saved.
    await page.click('text=Edit');
    await page.waitForURL(/\/edit$/);
    await page.click('summary:has-text("Target settings")');
    await page.fill('#f-c-cmdsn_depth', '70000');
    await page.click('#save-target');
    const limitMessage = (await (await page.waitForSelector('#form-error')).textContent()) ?? '';
    const direct = await call(base, 'PUT', `/api/target/${IQN}`, { mode: 'reconfigure', controls: '{"cmdsn_depth": 70000}' });
    assert.equal(direct.status, 400);
    assert.equal(limitMessage, `change target settings: ${String(direct.body.message)}`);
    await page.fill('#f-c-cmdsn_depth', '64');
    await page.click('#save-target');
    await page.waitForURL(`${base}/ui/targets/${encodeURIComponent(IQN)}`);

    // A second target without ACL, with target CHAP (the form disables the ACL before setting it).
    await page.goto(`${base}/ui/targets/_new`);
    await page.fill('#f-iqn', `${IQN}-open`);
    await page.check('#f-gw-iscsi1');
    await page.uncheck('#f-acl');
    await page.fill('#f-tuser', 'targetchapuser');
    await page.fill('#f-tpass', 'targetchappass1');
    await page.click('#save-target');
    await page.waitForURL(`${base}/ui/targets/${encodeURIComponent(`${IQN}-open`)}`);
    assert.match((await page.textContent('#auth-mode')) ?? '', /target CHAP \(one-way\), no ACL/);
    await page.click('text=← Targets');
    await page.waitForSelector(`#targets >> text=${IQN}-open`);
    await browser.screenshot('04b-targets');

    // What the forms sent is what the API holds.
    const config = (await call(base, 'GET', '/api/config')).body as {
      epoch: number;
      disks: Record<string, { owner?: string }>;
      targets: Record<string, { portals: Record<string, unknown>; disks: Record<string, { lun_id: number }>; clients: Record<string, { luns: Record<string, unknown>; auth: { username: string } }> }>;
    };
    const t = config.targets[IQN];
    assert.deepEqual(Object.keys(t.portals).sort(), ['iscsi1', 'iscsi2']);
    assert.equal(t.disks[DISK].lun_id, 0);
    assert.equal(t.clients[HOST].auth.username, CHAP_USER);
    assert.equal((t as unknown as { controls: Record<string, unknown> }).controls.cmdsn_depth, 64);
    const open = config.targets[`${IQN}-open`] as unknown as { acl_enabled: boolean; auth: { username: string } };
    assert.equal(open.acl_enabled, false);
    assert.equal(open.auth.username, 'targetchapuser');
    assert.deepEqual(Object.keys(t.clients[HOST].luns), [DISK]);
    await waitApplied(dir, ['iscsi1', 'iscsi2'], config.epoch);
    const owner = config.disks[DISK].owner;
    const ownerPortal = owner === 'iscsi2' ? `127.0.0.2:${port}` : `127.0.0.1:${port}`;

    // libiscsi logs in with the CHAP credentials set in the form, and reads and writes the LUN.
    const inq = await run('iscsi-inq', ['-i', HOST, `iscsi://${CHAP_USER}%${CHAP_PASSWORD}@${ownerPortal}/${IQN}/0`], { timeoutMs: 30_000 });
    assert.equal(inq.code, 0, inq.stderr);
    const lun = `json:${JSON.stringify({ file: { driver: 'iscsi', transport: 'tcp', portal: ownerPortal, target: IQN, lun: 0, 'initiator-name': HOST, user: CHAP_USER, password: CHAP_PASSWORD } })}`;
    await qemuIoOk(lun, ['write -P 0x5a 0 256k', 'read -P 0x5a 0 256k']);
    // The write shows as allocated bytes in GET /api/disk (an extra beyond ceph-iscsi).
    const used = (await call(base, 'GET', `/api/disk/${DISK}`)).body.used;
    assert.ok(typeof used === 'number' && used >= 256 * 1024, `used ${String(used)} after a 256 KiB write`);

    // The overview's graphs move while qemu-img bench runs.
    await page.click('nav >> text=Overview');
    await page.waitForSelector('#gateways tbody tr');
    const chart = '#chart-gw-throughput';
    const lastValues = async () => (await page.getAttribute(chart, 'data-last')) ?? '';
    bench = spawn('qemu-img', ['bench', '-f', 'raw', '-w', '-t', 'none', '-c', '100000000', '-d', '4', '-s', '4096', lun], { stdio: 'ignore' });
    const benchStart = Date.now();
    const busy = await until('the throughput graph shows traffic', 30_000, async () => {
      const v = await lastValues();
      return v.split(',').some((x) => Number(x) > 0) ? v : undefined;
    });
    console.log(`throughput graph showed the bench ${((Date.now() - benchStart) / 1000).toFixed(1)} s after it started (last values ${busy})`);
    const points = Number(await page.getAttribute(chart, 'data-points'));
    const moved = await until('the throughput graph gets new points', 15_000, async () => {
      const n = Number(await page.getAttribute(chart, 'data-points'));
      const v = await lastValues();
      return n > points && v !== '' ? { n, v } : undefined;
    });
    assert.ok(moved.n > points, `points ${points} -> ${moved.n}`);
    assert.ok(Number(await page.getAttribute('#chart-lun-iops', 'data-points')) > 0);
    await browser.screenshot('05-overview-under-load');
    await page.setViewportSize({ width: 390, height: 844 });
    await browser.screenshot('06-overview-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });


    // The session shows on the Sessions page.
    await page.click('nav >> text=Sessions');
    await page.waitForSelector(`tr[data-initiator="${HOST}"]`, { timeout: 15_000 });
    const row = (await page.textContent(`tr[data-initiator="${HOST}"]`)) ?? '';
    assert.match(row, /CHAP/);
    assert.match(row, new RegExp(DISK));
    // The initiator's address (libiscsi connects from 127.0.0.1 to either loopback portal) and digests.
    assert.match((await page.textContent(`tr[data-initiator="${HOST}"] td.address`)) ?? '', /^127\.0\.0\.1127\.0\.0\.1:\d+, CID \d+$/);
    assert.match((await page.textContent(`tr[data-initiator="${HOST}"] td.digests`)) ?? '', /^header (None|CRC32C), data (None|CRC32C)$/);
    const clientinfo = (await call(base, 'GET', `/api/clientinfo/${IQN}/${HOST}`)).body as { ip_address: string[]; state: { LOGGED_IN?: string[] } };
    assert.deepEqual(clientinfo.ip_address, ['127.0.0.1']);
    assert.deepEqual(clientinfo.state.LOGGED_IN, [owner]);
    // gwcli's host and disk info show the same (ip_address as ceph-iscsi; used as an extra).
    const cliDir = tempDir('igw-web-gwcli-');
    const cliCfg = settingsFile(cliDir, apiPort);
    const gwcli = async (args: string[]) => {
      const r = await run(process.execPath, [GWCLI, '--config', cliCfg, '--json', ...args], { env: { GWCLI_HOME: cliDir, NO_COLOR: '1' }, timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    const hostInfo = await gwcli([`/iscsi-targets/${IQN}/hosts/${HOST}`, 'info']);
    assert.equal(hostInfo.ip_address, '127.0.0.1', JSON.stringify(hostInfo));
    assert.match(String(hostInfo.logged_in), new RegExp(`^LOGGED_IN \\(${owner}\\)$`));
    const diskInfo = await gwcli([`/disks/${DISK}`, 'info']);
    assert.ok(typeof diskInfo.used === 'number' && diskInfo.used >= 256 * 1024, JSON.stringify(diskInfo));
    fs.rmSync(cliDir, { recursive: true, force: true });
    await browser.screenshot('07-sessions');

    // Deleting the target while the host is logged in is refused with the API's message.
    await page.goto(`${base}/ui/targets/${encodeURIComponent(IQN)}`);
    await page.click('#delete-target');
    const refusal = await page.waitForSelector('#target-error');
    const text = (await refusal.textContent()) ?? '';
    assert.match(text, new RegExp(`^Target ${IQN.replace(/\./g, '\\.')} was not deleted: .*${HOST.replace(/\./g, '\\.')}.*log these sessions out first`));
    await browser.screenshot('08-delete-refused');
    assert.ok((await call(base, 'GET', '/api/config')).body.targets !== undefined);
    assert.ok(((await call(base, 'GET', '/api/targets')).body.targets as string[]).includes(IQN), 'the refused delete changed nothing');
    bench.kill('SIGTERM');
    bench = undefined;

    // Maintenance: Drain hands iscsi2's disks to iscsi1 (the LUN table then names iscsi1 as the
    // gateway writing it), Resume lets it take disks again.
    await page.click('nav >> text=Overview');
    await page.click('tr[data-gateway="iscsi2"] button[data-action="drain"]');
    await page.waitForSelector('tr[data-gateway="iscsi2"] button[data-action="resume"]', { timeout: 15_000 });
    // (A string: this file is compiled without the DOM library.)
    await page.waitForFunction(`[...document.querySelectorAll('#luns tbody tr')].some((tr) => tr.children[0].textContent === ${JSON.stringify(IQN)}
      && tr.children[3].textContent.startsWith('iscsi1'))`, undefined, { timeout: 15_000 });
    await browser.screenshot('09-drained');
    await page.click('tr[data-gateway="iscsi2"] button[data-action="resume"]');
    await page.waitForSelector('tr[data-gateway="iscsi2"] button[data-action="drain"]', { timeout: 15_000 });

    // A stopped gateway shows as down within 15 s.
    await page.waitForSelector('tr[data-gateway="iscsi2"] [data-state="up"], tr[data-gateway="iscsi2"] [data-state="degraded"]');
    await gws[1].stop();
    const stopped = Date.now();
    await page.waitForSelector('tr[data-gateway="iscsi2"] [data-state="down"]', { timeout: 15_000 });
    const seconds = (Date.now() - stopped) / 1000;
    assert.ok(seconds < 15, `down after ${seconds} s`);
    console.log(`iscsi2 shown down ${seconds.toFixed(1)} s after its stop`);
    await page.waitForSelector('#alerts li[data-kind="gateway-down"]');
    await browser.screenshot('10-gateway-down');

    // Logout ends the session: pages go back to the login form.
    await page.click('text=Log out');
    await page.waitForURL(/\/ui\/login/);
    await page.goto(`${base}/ui/overview`);
    assert.match(page.url(), /\/ui\/login/);
  });
});
