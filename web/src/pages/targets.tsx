/**
 * Targets: the list, one target's detail (portals, LUNs with owner and ALUA state, hosts, host
 * groups, auth mode, settings), the create/edit form and delete. Changes go through the same
 * REST calls as the Ceph Dashboard's (target, gateways, LUNs, ACL, clients, CHAP, client LUNs,
 * host groups); the server's refusal is shown as it is.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, api, seg } from '../api';
import { Banner, Busy, StatusView } from '../components';
import { navigate } from '../nav';
import type { Config, DiskRow, Overview, Settings, TargetConf } from '../types';
import { TargetForm } from './target-form';
import { DiscoveryAuth } from './discovery-auth';

interface Data {
  config: Config;
  overview: Overview;
  settings: Settings;
  disks: DiskRow[];
}

export async function loadData(): Promise<Data> {
  const [config, overview, settings, d] = await Promise.all([
    api<Config>('GET', '/api/config'),
    api<Overview>('GET', '/api/dashboard'),
    api<Settings>('GET', '/api/settings'),
    api<{ disks: DiskRow[] }>('GET', '/api/dashboard/disks'),
  ]);
  return { config, overview, settings, disks: d.disks };
}

function authMode(t: TargetConf): string {
  if (!t.acl_enabled) return t.auth.username ? `target CHAP (${t.auth.mutual_username ? 'mutual' : 'one-way'}), no ACL` : 'no ACL, no CHAP (every initiator)';
  return 'ACL (per-host CHAP)';
}

function Link({ href, children }: { href: string; children: string }) {
  return <a href={href} onClick={(e) => { if (e.button === 0 && !e.ctrlKey && !e.metaKey) { e.preventDefault(); navigate(href); } }}>{children}</a>;
}

export function TargetsPage({ path }: { path: string }) {
  const [data, setData] = useState<Data | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const [busy, setBusy] = useState<string | undefined>();
  const [sessions, setSessions] = useState<number | undefined>();
  const reload = () => loadData().then(setData, (e: unknown) => setError(e instanceof ApiFailure ? e.message : String(e)));
  useEffect(() => void reload(), [path]);
  const rest = decodeURIComponent(path.replace(/^\/ui\/targets\/?/, ''));
  useEffect(() => {
    setSessions(undefined);
    if (rest && rest !== '_new' && !rest.endsWith('/edit')) {
      void api<{ num_sessions: number }>('GET', `/api/targetinfo/${seg(rest)}`).then((r) => setSessions(r.num_sessions), () => undefined);
    }
  }, [rest, data]);
  if (!data) return error ? <Banner kind="error">{error}</Banner> : <p>Loading…</p>;
  if (rest === '_new' || rest.endsWith('/edit')) {
    const iqn = rest === '_new' ? undefined : rest.slice(0, -'/edit'.length);
    return <TargetForm iqn={iqn} {...data} onDone={(to) => navigate(to)} />;
  }
  const remove = async (iqn: string) => {
    if (!confirm(`Delete target ${iqn}?`)) return;
    setError(undefined);
    setBusy(`Deleting ${iqn}`);
    try {
      await api('DELETE', `/api/target/${seg(iqn)}`);
      setNotice(`Target ${iqn} deleted.`);
      navigate('/ui/targets');
    } catch (e) {
      setError(`Target ${iqn} was not deleted: ${e instanceof ApiFailure ? e.message : String(e)}`);
    } finally {
      setBusy(undefined);
      void reload();
    }
  };
  if (rest) {
    const t = data.config.targets[rest];
    if (!t) return <Banner kind="error">Target {rest} does not exist.</Banner>;
    const luns = data.overview.luns.filter((l) => l.target === rest);
    return (
      <section aria-labelledby="target-h">
        <p><Link href="/ui/targets">← Targets</Link></p>
        <h1 id="target-h" class="iqn">{rest}</h1>
        {error && <Banner kind="error"><span id="target-error">{error}</span></Banner>}
        {busy && <Busy label={busy} />}
        <div class="actions">
          <a class="button" href={`/ui/targets/${seg(rest)}/edit`} onClick={(e) => { e.preventDefault(); navigate(`/ui/targets/${seg(rest)}/edit`); }}>Edit</a>
          <button type="button" class="danger" id="delete-target" onClick={() => void remove(rest)}>Delete target</button>
        </div>
        <dl class="facts">
          <dt>Authentication</dt><dd id="auth-mode">{authMode(t)}</dd>
          <dt>Logged-in sessions</dt><dd id="target-sessions">{sessions ?? '…'}</dd>
        </dl>
        <h2>Portals</h2>
        <ul>{Object.entries(t.portals).map(([gw, p]) => {
          const g = data.overview.gateways.find((x) => x.name === gw);
          return <li>{gw}: {p.portal_ip_addresses.join(', ')} <span class={`state ${g?.state ?? 'down'}`}>{g?.state ?? 'down'}</span></li>;
        })}</ul>
        <h2>LUNs</h2>
        <div class="table-wrap"><table id="target-luns">
          <thead><tr><th scope="col">LUN</th><th scope="col">Disk</th><th scope="col">Owner</th><th scope="col">ALUA state per gateway</th><th scope="col">Lock / status</th></tr></thead>
          <tbody>{luns.map((l) => {
            const d = data.disks.find((x) => x.id === l.disk);
            return (
              <tr><td>{l.lun_id}</td><td>{l.disk}</td><td>{l.owner ?? '–'}</td>
                <td>{Object.entries(l.paths).map(([g, s]) => <div>{g}: <span class={`alua ${s.replace('/', '-')}`}>{s}</span></div>)}</td>
                <td>{d ? <StatusView status={d.status} /> : '–'}</td></tr>
            );
          })}</tbody>
        </table></div>
        <h2>Hosts</h2>
        {Object.keys(t.clients).length === 0 ? <p class="muted">No hosts.</p> : (
          <div class="table-wrap"><table id="target-hosts"><thead><tr><th scope="col">Host</th><th scope="col">CHAP</th><th scope="col">LUNs</th><th scope="col">Group</th></tr></thead>
            <tbody>{Object.entries(t.clients).map(([h, c]) => (
              <tr><td class="iqn">{h}</td><td>{c.auth.username ? `${c.auth.username}${c.auth.mutual_username ? ` (mutual: ${c.auth.mutual_username})` : ''}` : 'none'}</td>
                <td>{Object.entries(c.luns).map(([d, r]) => <div>{r.lun_id}: {d}</div>)}</td><td>{c.group_name || '–'}</td></tr>
            ))}</tbody></table></div>
        )}
        <h2>Host groups</h2>
        {Object.keys(t.groups).length === 0 ? <p class="muted">No host groups.</p> : (
          <ul>{Object.entries(t.groups).map(([g, v]) => <li>{g}: hosts {v.members.join(', ') || '–'}; disks {Object.keys(v.disks).join(', ') || '–'}</li>)}</ul>
        )}
        <h2>Settings</h2>
        <dl class="facts">{Object.keys(data.settings.target_controls_limits).map((k) => (
          <><dt>{k}</dt><dd>{String(t.controls[k] ?? data.settings.target_default_controls[k])}{t.controls[k] !== undefined ? ' (set)' : ''}</dd></>
        ))}</dl>
      </section>
    );
  }
  return (
    <section aria-labelledby="targets-h">
      <h1 id="targets-h">Targets</h1>
      {notice && <Banner kind="ok">{notice}</Banner>}
      {error && <Banner kind="error">{error}</Banner>}
      <div class="actions"><a class="button" id="create-target" href="/ui/targets/_new" onClick={(e) => { e.preventDefault(); navigate('/ui/targets/_new'); }}>Create target</a></div>
      {Object.keys(data.config.targets).length === 0 ? <p class="muted">No target is defined.</p> : (
        <div class="table-wrap"><table id="targets">
          <thead><tr><th scope="col">Target</th><th scope="col">Gateways</th><th scope="col">LUNs</th><th scope="col">Hosts</th><th scope="col">Auth</th></tr></thead>
          <tbody>{Object.entries(data.config.targets).map(([iqn, t]) => (
            <tr><th scope="row" class="iqn"><Link href={`/ui/targets/${seg(iqn)}`}>{iqn}</Link></th>
              <td>{Object.keys(t.portals).join(', ') || '–'}</td><td>{Object.keys(t.disks).length}</td><td>{Object.keys(t.clients).length}</td><td>{authMode(t)}</td></tr>
          ))}</tbody>
        </table></div>
      )}
      <DiscoveryAuth current={data.config.discovery_auth} onSaved={() => void reload()} />
    </section>
  );
}
