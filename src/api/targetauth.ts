/**
 * Target authentication (§1.6): ACL mode on/off (action=enable_acl|disable_acl) or
 * target-level CHAP (credential fields, no action), with ceph-iscsi's mutual constraints.
 */
import { timestamp } from '../config/schema';
import { credentialsProblem } from '../config/validation';
import { ApiContext, Routes, commit, current, fail, field, ok, params, requireTarget } from './context';
import { credentialFields } from './clientauth';
import { pathIqn } from './targets';

export function registerTargetAuth(r: Routes, ctx: ApiContext): void {
  r.add(['PUT'], '/api/targetauth/:target_iqn', [
    'Enable/disable ACL authentication (action) or set the target-level CHAP credentials of a target',
    ':param action: (str) enable_acl or disable_acl; absent: set the credentials below',
    ':param username: (str) target CHAP user (empty fields: no CHAP)',
    ':param password: (str) target CHAP password',
    ':param mutual_username: (str) mutual CHAP user',
    ':param mutual_password: (str) mutual CHAP password',
  ], async (req, reply) => {
    const iqn = pathIqn(params(req).target_iqn);
    requireTarget(await current(ctx), iqn);
    const action = field(req, 'action');
    if (action !== undefined && action !== '') {
      if (action !== 'enable_acl' && action !== 'disable_acl') fail(400, `Invalid auth ${action}`);
      await commit(ctx, (c) => {
        const t = requireTarget(c, iqn);
        if (action === 'disable_acl' && Object.keys(t.clients).length > 0) fail(400, 'Cannot disable ACL authentication because target has clients');
        if (action === 'enable_acl' && t.auth.username) fail(400, 'Cannot enable ACL authentication because target CHAP authentication is enabled');
        t.acl_enabled = action === 'enable_acl';
        t.updated = timestamp();
      });
      return ok(reply, `target auth ${action} - successful`);
    }
    const creds = credentialFields(req);
    const problem = credentialsProblem(creds);
    if (problem) fail(400, problem);
    const sealed = ctx.secrets.sealAuth(creds);
    await commit(ctx, (c) => {
      const t = requireTarget(c, iqn);
      if (creds.username && t.acl_enabled) fail(400, 'Cannot enable target CHAP authentication because ACL authentication is enabled');
      t.auth = sealed;
      t.updated = timestamp();
    });
    return ok(reply, 'target auth updated - successful');
  });
}
