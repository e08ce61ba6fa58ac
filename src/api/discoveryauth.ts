/** Discovery (SendTargets) CHAP, fabric-wide: every gateway applies it to discovery sessions. */
import { credentialsProblem } from '../config/validation';
import { ApiContext, Routes, commit, fail, ok } from './context';
import { credentialFields } from './clientauth';

export function registerDiscoveryAuth(r: Routes, ctx: ApiContext): void {
  const handler = async (req: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    const creds = credentialFields(req);
    const problem = credentialsProblem(creds);
    if (problem) fail(400, problem);
    const sealed = ctx.secrets.sealAuth(creds);
    await commit(ctx, (c) => {
      c.discovery_auth = sealed;
    });
    return ok(reply, 'discovery auth successful');
  };
  r.add(['PUT'], '/api/discoveryauth', [
    'Set (or clear, with empty fields) the discovery CHAP credentials of every gateway',
    ':param username: (str) 8-64 characters: alphanumeric, ".", ":", "@", "_", "-"',
    ':param password: (str) 12-16 characters: alphanumeric, "@", "-", "_", "/"',
    ':param mutual_username: (str) as username (mutual CHAP)',
    ':param mutual_password: (str) as password (mutual CHAP)',
  ], handler);
}
