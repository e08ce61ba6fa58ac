/**
 * gwcli in batch and script mode against a real REST API: exit status per kind of error (0 ok,
 * 1 refused, 2 usage, 3 API unreachable), errors on stderr naming the fix, --json parsed back,
 * the ls tree, bookmarks across runs, and the §1.5 validation rules with their messages.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, run, tempDir } from '../helpers/daemon';
import { GWCLI, GwcliEnv, settingsFile, startGwcliEnv } from '../helpers/gwcli';

const T = 'iqn.2003-01.org.linux-iscsi.iscsi.x86:testvol';
const H = 'iqn.1996-04.de.suse:01:e6ca28cc9f20';
const TP = `/iscsi-targets/${T}`;

describe('gwcli batch mode and scripts', () => {
  let env: GwcliEnv;
  before(async () => {
    env = await startGwcliEnv();
    await env.api.images.create('iscsi-images', 'testvol', 64 << 20);
  });
  after(async () => env.close());

  it('a script on stdin builds a target; exit 0; --json ls/info/export parse back; ls is a configshell tree', async () => {
    const script = [
      '# the guide, scripted',
      `cd /iscsi-targets`,
      `create ${T.replace('x86', 'X86')}`,
      `cd ${TP}/gateways`,
      'create iscsi1 127.0.0.1 skipchecks=true',
      'cd /disks',
      'attach iscsi-images/testvol',
      'create pool=rbd image=disk_1 size=32M',
      'create rbd/multi 16M 2',
      `cd ${TP}/disks`,
      'add iscsi-images/testvol',
      `${TP}/hosts create ${H}`,
      `disk add rbd/disk_1`,
      `auth username=common12 password=pass12345678`,
      `${TP}/host-groups create grp1`,
      '/disks/rbd/disk_1 snapshot create s1',
    ].join('\n');
    const r = await env.gwcli(['-f', '-'], script);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const cfg = (await env.api.call('GET', '/api/config?decrypt_passwords=true')).body as {
      targets: Record<string, { disks: Record<string, unknown>; clients: Record<string, { luns: Record<string, unknown>; auth: { username: string; password: string } }>; groups: Record<string, unknown> }>;
      disks: Record<string, unknown>;
    };
    assert.deepEqual(Object.keys(cfg.targets), [T], 'upper case normalised to lower case');
    assert.deepEqual(Object.keys(cfg.disks).sort(), ['iscsi-images/testvol', 'rbd/disk_1', 'rbd/multi1', 'rbd/multi2']);
    assert.deepEqual(Object.keys(cfg.targets[T].clients[H].luns), ['rbd/disk_1']);
    assert.ok(cfg.targets[T].disks['rbd/disk_1'], 'host disk add maps the disk to the target');
    assert.equal(cfg.targets[T].clients[H].auth.password, 'pass12345678');
    assert.ok(cfg.targets[T].groups.grp1);

    const ls = await env.gwcli(['ls']);
    assert.equal(ls.code, 0, ls.stderr);
    const lines = ls.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^o- \/ \.+ \[\.\.\.\]$/);
    for (const l of lines) assert.ok(l.length === 80 || / \. \[/.test(l), `every ls line is 80 columns unless it is too long for dots: ${JSON.stringify(l)}`);
    assert.ok(lines.some((l) => /^ {4}o- iscsi-images \.+ \[iscsi-images \(64M\)\]$/.test(l)), ls.stdout);
    assert.ok(lines.some((l) => /^ {6}o- testvol \.+ \[iscsi-images\/testvol \(Online, 64M\)\]$/.test(l)), ls.stdout);
    assert.ok(lines.some((l) => /^ {4}o- iqn\.2003-01\.org\.linux-iscsi\.iscsi\.x86:testvol \.+ \[Auth: None, Gateways: 1\]$/.test(l)), ls.stdout);
    assert.ok(lines.some((l) => /^ {8}o- iscsi1 \.+ \[127\.0\.0\.1 \(UP\)\]$/.test(l)), ls.stdout);
    assert.ok(lines.some((l) => /^ {6}o- hosts \.+ \[Auth: ACL_ENABLED, Hosts: 1\]$/.test(l)), ls.stdout);
    assert.ok(lines.some((l) => /^ {8}o- iqn\.1996-04\.de\.suse:01:e6ca28cc9f20 \.+ \[Auth: CHAP, Disks: 1\(32M\)\]$/.test(l)), ls.stdout);
    assert.ok(lines.some((l) => /^ {10}o- lun\d+ \.+ \[rbd\/disk_1\(32M\), Owner: iscsi1\]$/.test(l)), ls.stdout);
    assert.ok(lines.some((l) => /^ {8}o- grp1 \.+ \[Hosts: 0, Disks: 0\]$/.test(l)), ls.stdout);
    const depth1 = await env.gwcli(['ls', '/', '1']);
    assert.deepEqual(depth1.stdout.trimEnd().split('\n').map((l) => l.trim().split(' ')[1]), ['/', 'cluster', 'disks', 'iscsi-targets']);

    const json = await env.gwcli(['--json', 'ls', '/disks']);
    assert.equal(json.code, 0, json.stderr);
    const tree = JSON.parse(json.stdout) as { name: string; summary: string; children: Array<{ name: string; children: Array<{ name: string; summary: string }> }> };
    assert.equal(tree.name, 'disks');
    assert.equal(tree.summary, '128M, Disks: 4');
    assert.deepEqual(tree.children.map((c) => c.name), ['iscsi-images', 'rbd']);
    assert.deepEqual(tree.children[1].children.map((c) => c.name), ['disk_1', 'multi1', 'multi2']);
    const info = JSON.parse((await env.gwcli(['--json', '/disks/rbd/disk_1', 'info'])).stdout) as { size: number; state: string; snapshots: string[]; owner: string };
    assert.equal(info.size, 32 << 20);
    assert.equal(info.state, 'Online');
    assert.deepEqual(info.snapshots, ['s1 (32M)']);
    const tinfo = JSON.parse((await env.gwcli(['--json', TP, 'info'])).stdout) as { target_iqn: string; control_values: Record<string, string> };
    assert.equal(tinfo.target_iqn, T);
    assert.equal(tinfo.control_values.cmdsn_depth, '128');
    const exp = await env.gwcli(['--json', 'export']);
    const exported = JSON.parse(exp.stdout) as { targets: Record<string, unknown>; version: number };
    assert.equal(exported.version, 11);
    assert.deepEqual(Object.keys(exported.targets), [T]);
    const plain = await env.gwcli(['export']);
    assert.match(plain.stdout, /^\{\n {4}"created"/, 'export prints sorted keys, indent 4');
    assert.deepEqual(JSON.parse(plain.stdout), exported);
  });

  it('exit status: 0 ok, 1 refused, 2 usage, 3 unreachable; the message on stderr names the fix', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['/disks', 'info', 'rbd/disk_1'], 0, /^$/],
      [['/iscsi-targets', 'delete', 'iqn.2003-01.org.linux-iscsi.iscsi.x86:testvo'], 1, /target 'iqn\.2003-01\.org\.linux-iscsi\.iscsi\.x86:testvo' does not exist\. Did you mean 'iqn\.2003-01\.org\.linux-iscsi\.iscsi\.x86:testvol'\?/],
      [[TP, 'delete'], 2, /Command not found delete at \/iscsi-targets\/.*Commands here: .*reconfigure/],
      [['/disks', 'lss'], 2, /Command not found lss at \/disks\. Did you mean 'ls'\?/],
      [['/nope', 'ls'], 2, /No such path \/nope: 'nope' is not under \/\. .*Children: cluster, disks, iscsi-targets/],
      [['/disks', 'create', 'pool=rbd', 'image=x', 'sise=1G'], 2, /'sise' is not a parameter of 'create'\. Did you mean 'size'\?/],
      [['/disks', 'resize', 'rbd/disk_1', '16M'], 1, /resize value must be larger than the current size/],
      [['/disks', 'info', 'rbd/disk1'], 1, /disk 'rbd\/disk1' is not defined in the configuration\. Did you mean 'rbd\/disk_1'/],
      [[`${TP}/gateways`, 'create', 'iscsi9', '300.1.1.1'], 2, /'300\.1\.1\.1' is not an IPv4 or IPv6 address/],
      [[`${TP}/gateways`, 'create', 'iscsi9', '127.0.0.9', 'skipchecks=maybe'], 2, /skipchecks must be true or false, not 'maybe'/],
      [[`${TP}`, 'reconfigure', 'cmdsn_depth', '9999'], 2, /cmdsn_depth 9999 is out of range: valid 1-512/],
      [[`${TP}`, 'reconfigure', 'cmdsn_dept', '64'], 2, /'cmdsn_dept' is not a target setting\. Did you mean 'cmdsn_depth'\?.*Supported: /],
      [[`${TP}/hosts`, 'auth', 'disable_acll'], 2, /Invalid auth argument 'disable_acll'\. Use 'auth nochap\|disable_acl\|enable_acl'\. Did you mean 'disable_acl'/],
      [['goto', 'nosuch'], 2, /No bookmark nosuch\. .*Bookmarks: /],
      [['/', 'export', 'mode=paste'], 2, /Invalid export mode 'paste' requested - supported modes are: copy/],
      [['/iscsi-targets', 'clearconfig'], 2, /confirm=true/],
    ];
    for (const [args, code, re] of cases) {
      const r = await env.gwcli(args);
      assert.equal(r.code, code, `gwcli ${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
      assert.match(r.stderr.trim(), re, `gwcli ${args.join(' ')}`);
      if (code !== 0) assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
    // A script stops at its first error: the line after it is not run.
    const s = await env.gwcli(['-f', '-'], '/disks create rbd/s1 16M\n/disks create rbd/s2 1.5G\n/disks create rbd/s3 16M\n');
    assert.equal(s.code, 2);
    assert.match(s.stderr, /^line 2 \(\/disks create rbd\/s2 1\.5G\): Invalid size '1\.5G' requested\. Must be an integer, suffixed by M, G or T/);
    const disks = Object.keys(((await env.api.call('GET', '/api/config')).body as { disks: object }).disks);
    assert.ok(disks.includes('rbd/s1') && !disks.includes('rbd/s3'), disks.join(','));
    // Unreachable API: one line, exit 3.
    const dir = tempDir('igw-gwcli-');
    const dead = settingsFile(dir, await freePort());
    const u = await run(process.execPath, [GWCLI, '--config', dead, 'ls'], { env: { GWCLI_HOME: dir } });
    assert.equal(u.code, 3);
    assert.match(u.stderr, /^gwcli: Unable to contact the local API endpoint at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\): is the gateway running with its REST API/);
    assert.equal(u.stderr.trim().split('\n').length, 1);
    // Wrong credentials in the settings file: the API's 401 text, exit 3.
    const badCreds = settingsFile(dir, Number(new URL(env.api.url).port), 'api_user = admin\napi_password = wrong\n');
    const c = await run(process.execPath, [GWCLI, '--config', badCreds, 'ls'], { env: { GWCLI_HOME: dir } });
    assert.equal(c.code, 3);
    assert.match(c.stderr, /username\/password mismatch with the configuration file/);
    const missing = await run(process.execPath, [GWCLI, '--config', path.join(dir, 'nope.cfg'), 'ls'], { env: { GWCLI_HOME: dir } });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read settings file .*nope\.cfg: ENOENT/);
  });

  it('§1.5 validation rules: IQN, CHAP, names, size, count, WWN, backstore, group, snapshot, LUN id — each message names what is allowed', async () => {
    const auth = (...a: string[]) => [`${TP}/hosts/${H}`, 'auth', ...a];
    const cases: Array<[string[], RegExp]> = [
      [['/iscsi-targets', 'create', 'iqn.2003-1.org.x:y'], /IQN name 'iqn\.2003-1\.org\.x:y' is not valid for iSCSI: an IQN looks like iqn\.YYYY-MM\.reversed\.domain\[:name\]/],
      [['/iscsi-targets', 'create', 'iqn.2003-01.org.my_host:t'], /is not valid for iSCSI: .*no spaces or '_'/],
      [[`${TP}/hosts`, 'create', 'eui.02004567A425678D'], /IQN name 'eui\.02004567A425678D' is not valid for iSCSI/],
      [auth('password=pass12345678'), /^Username is required/],
      [auth('username=common12'), /^Password is required/],
      [auth('username=common12', 'password=pass12345678', 'mutual_username=mutual12'), /^Mutual password is required/],
      [auth('username=common12', 'password=pass12345678', 'mutual_password=pass12345678'), /^Mutual username is required/],
      [auth('username=short', 'password=pass12345678'), /^Minimum length of username is 8 characters/],
      [auth(`username=${'u'.repeat(65)}`, 'password=pass12345678'), /^Maximum length of username is 64 characters/],
      [auth('username=common12!', 'password=pass12345678'), /^Invalid username \(use 8-64 characters: letters, digits, '\.', ':', '@', '_', '-'\)/],
      [auth('username=common12', 'password=short'), /^Minimum length of password is 12 characters/],
      [auth('username=common12', 'password=pass123456789012345'), /^Maximum length of password is 16 characters/],
      [auth('username=common12', 'password=pass1234567&'), /^Invalid password \(use 12-16 characters: letters, digits, '@', '-', '_', '\/'\)/],
      [auth('username=common12', 'password=pass12345678', 'mutual_username=mu', 'mutual_password=pass12345678'), /^Minimum length of mutual username is 8 characters/],
      [auth('username=common12', 'password=pass12345678', 'mutual_username=mutual12', 'mutual_password=p'), /^Minimum length of mutual password is 12 characters/],
      [['/iscsi-targets', 'discovery_auth'], /To set or reset authentication, specify either username=<user> password=<password> \[mutual_username=<user> mutual_password=<password>\] or nochap/],
      [['/disks', 'create', 'rbd/bad!name', '1G'], /Invalid image name \(use alphanumeric, '_', '\.', or '-' characters\)/],
      [['/disks', 'create', 'pool=bad!pool', 'image=x', 'size=1G'], /Invalid pool name \(use alphanumeric, '_', '\.', or '-' characters\)/],
      [['/disks', 'create', 'rbd/x', '10K'], /Invalid size '10K' requested\. Must be an integer, suffixed by M, G or T, e\.g\. 100G/],
      [['/disks', 'create', 'rbd/x', '10G', '11'], /invalid count '11' specified, must be an integer \(1-10\)/],
      [['/disks', 'create', 'pool=rbd', 'image=x', 'size=1G', 'count=2', 'wwn=abc'], /WWN cannot be specified when count > 1/],
      [['/disks', 'create', 'pool=rbd', 'image=x', 'size=1G', 'backstore=fileio'], /Invalid 'fileio' backstore - Supported backstores: user:rbd, rbd/],
      [['/disks', 'attach', 'rbd/absent'], /absent/],
      [[`${TP}/host-groups`, 'create', 'bad group!'], /Invalid group name 'bad group!' - max of 32 chars of alphanumeric and -,_,@ characters/],
      [[`${TP}/host-groups`, 'create', 'g'.repeat(33)], /Invalid group name .* - max of 32 chars/],
      [['/disks/rbd/disk_1', 'snapshot', 'create', 'a@b'], /snapshot name 'a@b' is invalid: it must not contain '\/' or '@'/],
      [['/disks/rbd/disk_1', 'snapshot', 'create', 's1'], /[Ss]napshot s1 already exists/],
      [['/disks/rbd/disk_1', 'snapshot', 'remove', 's1'], /you can only create, delete, rollback, protect, unprotect, clone, attach, list - remove is invalid/],
      [[`${TP}/disks`, 'add', 'rbd/multi1', '99999'], /Lun id must be a number in 0-16383, not '99999'/],
      [[`${TP}/disks`, 'add', 'rbd/nodisk'], /Disk rbd\/nodisk is not defined in the configuration\..*Register it first: \/disks attach rbd\/nodisk/],
      [[`${TP}/hosts`, 'create', H], /already defined/],
    ];
    const before = (await env.api.call('GET', '/api/config')).text;
    for (const [args, re] of cases) {
      const r = await env.gwcli(args);
      assert.notEqual(r.code, 0, `gwcli ${args.join(' ')} must fail`);
      assert.match(r.stderr.trim(), re, `gwcli ${args.join(' ')}`);
    }
    assert.equal((await env.api.call('GET', '/api/config')).text, before, 'refused commands change nothing');
  });

  it('bookmarks are kept across runs; goto and cd @name go there; del removes', async () => {
    const add = await env.gwcli(['-f', '-'], `cd ${TP}/hosts\nbookmarks add myhosts\n`);
    assert.equal(add.code, 0, add.stderr);
    const prefs = JSON.parse(fs.readFileSync(path.join(env.home, 'prefs.json'), 'utf8')) as { bookmarks: Record<string, string> };
    assert.equal(prefs.bookmarks.myhosts, `${TP}/hosts`);
    const show = await env.gwcli(['bookmarks', 'show']);
    assert.match(show.stdout, new RegExp(`^myhosts -> ${TP.replace(/\./g, '\\.')}/hosts$`, 'm'));
    assert.match(show.stdout, /^gateways -> .*\/gateways$/m, 'ceph-iscsi bookmarks for the last target');
    const go = await env.gwcli(['-f', '-'], 'goto myhosts\npwd\ncd /\ncd @myhosts\npwd\nbookmarks go myhosts\npwd\ncd <\ncd <\npwd\ncd >\npwd\n');
    assert.equal(go.code, 0, go.stderr);
    assert.deepEqual(go.stdout.trim().split('\n'), [`${TP}/hosts`, `${TP}/hosts`, `${TP}/hosts`, '/', `${TP}/hosts`]);
    assert.equal((await env.gwcli(['bookmarks', 'del', 'myhosts'])).code, 0);
    const gone = await env.gwcli(['goto', 'myhosts']);
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, /No bookmark myhosts/);
  });
  it('beyond ceph-iscsi: snapshot protect/clone/attach (read-only disk)/unprotect, flatten, sessions, host groups, /cluster pools', async () => {
    const script = [
      '/disks/rbd/disk_1 snapshot create base',
      '/disks/rbd/disk_1 snapshot protect base',
      '/disks/rbd/disk_1 snapshot clone base rbd/child',
      '/disks/rbd/disk_1 snapshot attach base',
      `${TP}/disks add rbd/disk_1@base`,
      '/disks/rbd/child flatten',
      `${TP}/host-groups create grp2`,
      `${TP}/hosts create iqn.1994-05.com.redhat:rh7-client`,
      `${TP}/host-groups/grp2 host add iqn.1994-05.com.redhat:rh7-client`,
      `${TP}/host-groups/grp2 disk add rbd/multi2`,
    ].join('\n');
    const r = await env.gwcli(['-f', '-'], script);
    assert.equal(r.code, 0, r.stderr);
    const cfg = (await env.api.call('GET', '/api/config')).body as {
      disks: Record<string, { snapshot?: string }>;
      targets: Record<string, { disks: Record<string, unknown>; groups: Record<string, { members: string[]; disks: Record<string, unknown> }> }>;
    };
    assert.ok(cfg.disks['rbd/child'], 'the clone is a disk');
    assert.equal(cfg.disks['rbd/disk_1@base'].snapshot, 'base');
    assert.ok(cfg.targets[T].disks['rbd/disk_1@base'], 'the read-only snapshot disk is a LUN');
    assert.deepEqual(cfg.targets[T].groups.grp2.members, ['iqn.1994-05.com.redhat:rh7-client']);
    assert.deepEqual(Object.keys(cfg.targets[T].groups.grp2.disks), ['rbd/multi2']);
    assert.ok(cfg.targets[T].disks['rbd/multi2'], 'a group disk is mapped to the target');

    const list = JSON.parse((await env.gwcli(['--json', '/disks/rbd/disk_1', 'snapshot', 'list'])).stdout) as Array<{ name: string; protected: boolean; children: number }>;
    const base = list.find((x) => x.name === 'base');
    assert.ok(base?.protected && base.children === 0, JSON.stringify(list));
    const ls = await env.gwcli(['ls', '/disks/rbd']);
    assert.match(ls.stdout, /o- disk_1@base \.+ \[rbd\/disk_1@base \(Online, read-only snapshot, 32M\)\]/);
    const unprot = await env.gwcli(['/disks/rbd/disk_1', 'snapshot', 'unprotect', 'base']);
    assert.equal(unprot.code, 0, unprot.stderr);
    const sessions = await env.gwcli([TP, 'sessions']);
    assert.equal(sessions.code, 0, sessions.stderr);
    assert.match(sessions.stdout, /^Sessions: 0$/m);
    // A gateway whose API does not answer is DOWN; deleting it needs confirm=true.
    assert.equal((await env.gwcli([`${TP}/gateways`, 'create', 'iscsi9', '127.0.0.9', 'skipchecks=true'])).code, 0);
    const gls = await env.gwcli(['ls', `${TP}/gateways`]);
    assert.match(gls.stdout, /^o- gateways \.+ \[Up: 1\/2, Portals: 2\]$/m);
    assert.match(gls.stdout, /^ {2}o- iscsi9 \.+ \[127\.0\.0\.9 \(DOWN\)\]$/m);
    assert.ok(!gls.stdout.includes('\u001b'), 'no colour when not a terminal');
    const del = await env.gwcli([`${TP}/gateways`, 'delete', 'iscsi9']);
    assert.equal(del.code, 1);
    assert.match(del.stderr, /^Could not contact iscsi9\. If the gateway is permanently down, use confirm=true to force removal\./);
    const delOk = await env.gwcli([`${TP}/gateways`, 'delete', 'iscsi9', 'confirm=true']);
    assert.equal(delOk.code, 0, delOk.stderr);
    const cluster = await env.gwcli(['ls', '/cluster']);
    assert.match(cluster.stdout, /o- ceph \.+ \[no Ceph cluster \(embedded store\)\]/);
    assert.match(cluster.stdout, /o- iscsi-images \.+ \[Images: 1, Provisioned: 64M, Commit: 64M\]/);
    const dup = await env.gwcli([`${TP}/host-groups/grp2`, 'host', 'add', 'iqn.1994-05.com.redhat:rh7-client']);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /'iqn\.1994-05\.com\.redhat:rh7-client' already belongs to 'grp2'/);
    const nohost = await env.gwcli([`${TP}/host-groups/grp2`, 'host', 'add', 'iqn.1994-05.com.redhat:rh8-client']);
    assert.match(nohost.stderr, /host 'iqn\.1994-05\.com\.redhat:rh8-client' is not defined under hosts\. Did you mean 'iqn\.1994-05\.com\.redhat:rh7-client'\?.*Create it first: /);
  });
});
