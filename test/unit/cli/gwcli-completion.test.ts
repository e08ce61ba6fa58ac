/**
 * gwcli's TAB completion against a real REST API (in-process): commands of a node, paths,
 * target and host IQNs, pool/image names, setting names and values, true|false, key=value names.
 * Also the prompt shortening and argument binding rules.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { startTestApi, TestApi } from '../../helpers/api';
import { tempDir } from '../../helpers/daemon';
import { ApiClient } from '../../../src/cli/gwcli/api-client';
import { Prefs } from '../../../src/cli/gwcli/prefs';
import { bindArgs, Shell, shortPath } from '../../../src/cli/gwcli/shell';

const T = 'iqn.2003-01.org.linux-iscsi.iscsi.x86:testvol';
const H = 'iqn.1996-04.de.suse:01:e6ca28cc9f20';

describe('gwcli completion', () => {
  let api: TestApi;
  let shell: Shell;
  const out: string[] = [];
  before(async () => {
    api = await startTestApi();
    const steps: Array<[string, string, Record<string, string>?]> = [
      ['PUT', `/api/target/${T}`],
      ['PUT', `/api/gateway/${T}/iscsi1`, { ip_address: '127.0.0.1', skipchecks: 'true' }],
      ['PUT', '/api/disk/rbd/testvol', { mode: 'create', pool: 'rbd', size: '16M', count: '1', create_image: 'true' }],
      ['PUT', '/api/disk/iscsi-images/testvol', { mode: 'create', pool: 'iscsi-images', size: '16M', count: '1', create_image: 'true' }],
      ['PUT', `/api/client/${T}/${H}`],
    ];
    for (const [m, u, f] of steps) assert.equal((await api.call(m, u, f)).status, 200, `${m} ${u}`);
    const port = Number(new URL(api.url).port);
    shell = new Shell({ api: new ApiClient(`http://127.0.0.1:${port}`, 'admin', 'admin'), clusterName: 'ceph', prefs: new Prefs(path.join(tempDir(), 'home')), write: (s) => out.push(s), writeErr: (s) => out.push(s) });
    await shell.refresh();
  });
  after(async () => api.close());

  const hits = (line: string): string[] => shell.complete(line)[0];

  it('commands of the current node and the shell', async () => {
    await shell.run('cd /disks');
    assert.deepEqual(hits('at'), ['attach']);
    assert.deepEqual(hits('re'), ['reconfigure', 'resize']);
    assert.ok(hits('').includes('create') && hits('').includes('ls') && hits('').includes('bookmarks'));
    await shell.run(`cd /iscsi-targets/${T}/hosts`);
    assert.deepEqual(hits('a'), ['auth']);
    assert.deepEqual(hits('auth '), ['disable_acl', 'enable_acl', 'nochap']);
    assert.deepEqual(hits('auth dis'), ['disable_acl']);
  });

  it('paths: absolute, relative, .., IQNs as path names', async () => {
    await shell.run('cd /');
    assert.deepEqual(hits('cd /d'), ['/disks/']);
    assert.deepEqual(hits('cd /iscsi-targets/'), [`/iscsi-targets/${T}/`]);
    assert.deepEqual(hits(`cd /iscsi-targets/${T}/h`), [`/iscsi-targets/${T}/host-groups`, `/iscsi-targets/${T}/hosts/`]);
    await shell.run(`cd /iscsi-targets/${T}/gateways`);
    assert.deepEqual(hits('cd ../ho'), ['../host-groups', '../hosts/']);
    assert.deepEqual(hits('ls ../hosts/'), [`../hosts/${H}`]);
    assert.deepEqual(hits('cd /disks/rbd/'), ['/disks/rbd/testvol']);
  });

  it('parameter values: IQNs, pool/image names, setting names and values, true|false, key= names', async () => {
    await shell.run('cd /iscsi-targets');
    assert.deepEqual(hits('delete '), [T]);
    assert.deepEqual(hits('clearconfig confirm='), ['confirm=false', 'confirm=true']);
    await shell.run(`cd ${T}/hosts`);
    assert.deepEqual(hits('delete iqn.1996'), [H]);
    await shell.run(H);
    assert.deepEqual(hits('disk '), ['add', 'remove']);
    assert.deepEqual(hits('disk add '), ['iscsi-images/testvol', 'rbd/testvol']);
    assert.deepEqual(hits('disk add rb'), ['rbd/testvol']);
    assert.deepEqual(hits('auth mu'), ['mutual_password=', 'mutual_username=']);
    await shell.run(`cd /iscsi-targets/${T}`);
    assert.ok(hits('reconfigure ').includes('cmdsn_depth'));
    assert.deepEqual(hits('reconfigure login'), ['login_timeout']);
    assert.deepEqual(hits('reconfigure immediate_data '), ['false', 'true']);
    await shell.run(`cd /iscsi-targets/${T}/gateways`);
    assert.deepEqual(hits('create iscsi1 127.0.0.1 skip'), ['skipchecks=']);
    assert.deepEqual(hits('create iscsi1 127.0.0.1 skipchecks='), ['skipchecks=false', 'skipchecks=true']);
    await shell.run('cd /disks');
    assert.deepEqual(hits('create '), ['iscsi-images/', 'rbd/']);
    assert.deepEqual(hits('info r'), ['rbd/testvol']);
    assert.ok(hits('reconfigure rbd/testvol emulate_p').includes('emulate_pr'));
    assert.deepEqual(hits('create pool=rbd image=x size=1G backstore='), ['backstore=rbd', 'backstore=user:rbd']);
    await shell.run('cd /disks/rbd/testvol');
    assert.deepEqual(hits('reconfigure emulate_pr '), ['0', '1']);
    assert.deepEqual(hits('snapshot r'), ['rollback']);
  });

  it('prompt shortening as configshell (prompt_length 30) and argument binding', () => {
    assert.equal(shortPath(`/iscsi-targets/${T}/gateways`), '/iscsi-target...tvol/gateways');
    assert.equal(shortPath(`/iscsi-targets/${T}/hosts/${H}`), '/iscsi-target...:e6ca28cc9f20');
    assert.equal(shortPath(`/iscsi-targets/${T}/disks`), '/iscsi-target...testvol/disks');
    assert.equal(shortPath('/iscsi-targets'), '/iscsi-targets');
    const cmd = { name: 'create', params: [{ name: 'pool' }, { name: 'image' }, { name: 'size' }] };
    assert.deepEqual(bindArgs(cmd, ['size=1G', 'rbd', 'x']).named, { size: '1G', pool: 'rbd', image: 'x' });
    assert.throws(() => bindArgs(cmd, ['a', 'b', 'c', 'd']), /too many arguments for 'create' \('d'\): usage: create <pool> <image> <size>/);
    assert.throws(() => bindArgs(cmd, ['colour=red']), /'colour' is not a parameter of 'create'\. Parameters: pool, image, size/);
  });
});
