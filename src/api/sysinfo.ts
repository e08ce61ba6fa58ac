/** GET /api/sysinfo/<q>: ip_addresses, hostname, checkconf, checkversions (Basic auth only, §2.2). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { ApiContext, Routes, fail, params } from './context';

/** Non-loopback, non-link-local addresses of this host. */
export function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv6' && /^fe80:/i.test(a.address)) continue;
      if (a.family === 'IPv4' && a.address.startsWith('169.254.')) continue;
      out.push(a.address);
    }
  }
  return out;
}

function osRelease(): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const line of fs.readFileSync('/etc/os-release', 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) out[m[1]] = m[2].replace(/^"|"$/g, '');
    }
    return out;
  } catch {
    return {};
  }
}

/** The OS check of ceph-iscsi (rhel >= 7.4, suse >= 15.1, debian >= 10, ubuntu >= 18.04). */
export function versionErrors(): string[] {
  const rel = osRelease();
  const translate: Record<string, string> = { centos: 'rhel', 'opensuse-leap': 'suse', sles: 'suse' };
  const minimum: Record<string, number> = { rhel: 7.4, suse: 15.1, debian: 10, ubuntu: 18.04 };
  const id = translate[(rel.ID ?? '').toLowerCase()] ?? (rel.ID ?? '').toLowerCase();
  if (!(id in minimum)) return ['OS is unsupported'];
  const v = Number((rel.VERSION_ID ?? '0').split('.').slice(0, 2).join('.'));
  return v < minimum[id] ? ['OS version is unsupported'] : [];
}

export function registerSysinfo(r: Routes, ctx: ApiContext): void {
  r.add(['GET'], '/api/sysinfo/:query_type', [
    'Provide system information based on the query_type',
    'Valid query types are: ip_addresses, hostname, checkconf and checkversions',
  ], async (req, reply) => {
    switch (params(req).query_type) {
      case 'ip_addresses':
        return { data: hostAddresses() };
      case 'hostname':
        return { data: ctx.gatewayName };
      case 'checkconf':
        return { data: ctx.checkconf() };
      case 'checkversions': {
        const errors = versionErrors();
        if (errors.length) return reply.code(500).send({ data: errors });
        return { data: 'checks passed' };
      }
      default:
        fail(404, 'Unknown /sysinfo query');
    }
  });
}
