/** GET /api/config: the whole shared configuration, CHAP passwords decrypted on request. */
import { decryptConfigPasswords } from '../config/secrets';
import { SecretsError } from '../config/secrets';
import { ApiContext, Routes, current, fail, field } from './context';

export function registerConfig(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/config', [
    'Return the complete config object (it includes the CHAP credentials)',
    ':param decrypt_passwords: (bool) if true, passwords are decrypted',
  ], async (req) => {
    const c = await current(ctx);
    if ((field(req, 'decrypt_passwords') ?? 'false').toLowerCase() !== 'true') return c;
    try {
      return decryptConfigPasswords(c, ctx.secrets);
    } catch (e) {
      if (e instanceof SecretsError) fail(500, e.message);
      throw e;
    }
  });
}
