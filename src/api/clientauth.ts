/**
 * CHAP credentials of a client (empty fields = no CHAP), validated as ceph-iscsi and stored
 * encrypted when the key pair is configured. Every gateway applies them at the next login.
 */
import { timestamp } from '../config/schema';
import { credentialsProblem } from '../config/validation';
import { ApiContext, Routes, commit, current, fail, field, ok, params, requireTarget } from './context';
import { clientIqn } from './clients';
import { pathIqn } from './targets';

export function credentialFields(req: import('fastify').FastifyRequest) {
  return {
    username: field(req, 'username') ?? '',
    password: field(req, 'password') ?? '',
    mutual_username: field(req, 'mutual_username') ?? '',
    mutual_password: field(req, 'mutual_password') ?? '',
  };
}

export function registerClientAuth(r: Routes, ctx: ApiContext): void {
  r.add(['PUT'], '/api/clientauth/:target_iqn/:client_iqn', [
    'Set (or clear, with empty fields) the CHAP credentials of a client',
    ':param username: (str) 8-64 characters: alphanumeric, ".", ":", "@", "_", "-"',
    ':param password: (str) 12-16 characters: alphanumeric, "@", "-", "_", "/"',
    ':param mutual_username: (str) as username (mutual CHAP)',
    ':param mutual_password: (str) as password (mutual CHAP)',
  ], async (req, reply) => {
    const iqn = pathIqn(params(req).target_iqn);
    const client = clientIqn(params(req).client_iqn);
    if (!requireTarget(await current(ctx), iqn).clients[client]) fail(404, `Client '${client}' does not exist`);
    const creds = credentialFields(req);
    const problem = credentialsProblem(creds);
    if (problem) fail(400, problem);
    const sealed = ctx.secrets.sealAuth(creds);
    await commit(ctx, (c) => {
      const t = requireTarget(c, iqn);
      const cl = t.clients[client];
      if (!cl) fail(404, `Client '${client}' does not exist`);
      cl.auth = sealed;
      t.updated = timestamp();
    });
    return ok(reply, 'client auth successful');
  });
}
