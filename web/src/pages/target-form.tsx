/**
 * The create/edit form of a target, as the Ceph Dashboard's: IQN (validated with the server's
 * rule and message), gateways with their portal IPs, disks with LUN ids, ACL on/off, hosts with
 * CHAP and mutual CHAP and their disks, host groups, and the target settings within the limits
 * of /api/settings. Saving sends the REST calls one by one and lists them; the first refusal
 * stops it and is shown with the server's message.
 */
import { useState } from 'preact/hooks';
import { ApiFailure, api, seg } from '../api';
import { Banner, Busy } from '../components';
import { credentialsProblem, hostGroupNameProblem, invalidIqnMessage, normalizeIqn } from '../shared';
import type { Config, DiskRow, Overview, Settings } from '../types';

interface HostRow { iqn: string; user: string; password: string; muser: string; mpassword: string; disks: string[]; existing: boolean }
interface GroupRow { name: string; members: string[]; disks: string[]; existing: boolean }

interface Props {
  iqn?: string;
  config: Config;
  overview: Overview;
  settings: Settings;
  disks: DiskRow[];
  onDone: (to: string) => void;
}

function hostOfPortal(p: string): string {
  const v6 = /^\[([^\]]+)\]/.exec(p);
  if (v6) return v6[1];
  return p.replace(/:\d+$/, '');
}

export function TargetForm(props: Props) {
  const { config, overview, settings } = props;
  const editing = props.iqn !== undefined;
  const orig = editing ? config.targets[props.iqn as string] : undefined;
  const [iqn, setIqn] = useState(props.iqn ?? '');
  const [acl, setAcl] = useState(orig?.acl_enabled ?? true);
  // Target-level CHAP (only without ACL, as in ceph-iscsi); blank passwords of an existing one: unchanged.
  const [tuser, setTuser] = useState(orig?.auth.username ?? '');
  const [tpass, setTpass] = useState('');
  const [tmuser, setTmuser] = useState(orig?.auth.mutual_username ?? '');
  const [tmpass, setTmpass] = useState('');
  const [gws, setGws] = useState<Record<string, { on: boolean; ips: string }>>(() => {
    const out: Record<string, { on: boolean; ips: string }> = {};
    for (const g of overview.gateways) {
      const p = orig?.portals[g.name];
      out[g.name] = { on: !!p, ips: p ? p.portal_ip_addresses.join(',') : [...new Set(g.portals.map(hostOfPortal))].join(',') };
    }
    return out;
  });
  const [luns, setLuns] = useState<Array<{ disk: string; lun: string }>>(() => Object.entries(orig?.disks ?? {}).map(([disk, r]) => ({ disk, lun: String(r.lun_id) })));
  const [hosts, setHosts] = useState<HostRow[]>(() => Object.entries(orig?.clients ?? {}).map(([h, c]) => ({
    iqn: h, user: c.auth.username, password: '', muser: c.auth.mutual_username, mpassword: '', disks: Object.keys(c.luns), existing: true,
  })));
  const [groups, setGroups] = useState<GroupRow[]>(() => Object.entries(orig?.groups ?? {}).map(([name, g]) => ({ name, members: g.members, disks: Object.keys(g.disks), existing: true })));
  const [controls, setControls] = useState<Record<string, string>>(() => Object.fromEntries(Object.entries(orig?.controls ?? {}).map(([k, v]) => [k, String(v)])));
  const [error, setError] = useState<string | undefined>();
  const [steps, setSteps] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [touched, setTouched] = useState(false);

  const iqnProblem = iqn.trim() === '' ? 'The target IQN is required' : normalizeIqn(iqn) === undefined ? invalidIqnMessage(iqn) : undefined;
  const hostProblems = hosts.map((h) => {
    if (normalizeIqn(h.iqn) === undefined) return 'Invalid IQN name for iSCSI';
    // Existing CHAP passwords are not shown; blank ones mean "unchanged".
    if (h.existing && h.password === '' && h.mpassword === '') return undefined;
    return credentialsProblem({ username: h.user, password: h.password, mutual_username: h.muser, mutual_password: h.mpassword });
  });
  const groupProblems = groups.map((g) => hostGroupNameProblem(g.name));
  const targetAuthChanged = !acl && (tpass !== '' || tmpass !== '' || tuser !== (orig?.auth.username ?? '') || tmuser !== (orig?.auth.mutual_username ?? ''));
  const targetAuthProblem = targetAuthChanged ? credentialsProblem({ username: tuser, password: tpass, mutual_username: tmuser, mutual_password: tmpass }) : undefined;
  const diskIds = props.disks.map((d) => d.id);
  const targetDisks = luns.map((l) => l.disk).filter((d) => d);

  const save = async (e: Event) => {
    e.preventDefault();
    setTouched(true);
    if (iqnProblem || targetAuthProblem || hostProblems.some((p) => p) || groupProblems.some((p) => p)) {
      setError('Correct the fields marked below.');
      return;
    }
    const name = normalizeIqn(iqn) as string;
    const t = `/api/target/${seg(name)}`;
    const done: string[] = [];
    setSteps(done);
    setBusy(true);
    setError(undefined);
    const step = async (label: string, method: 'PUT' | 'DELETE', url: string, fields?: Record<string, string>) => {
      done.push(label);
      setSteps([...done]);
      await api(method, url, fields);
    };
    try {
      const changed: Record<string, string | number | boolean> = {};
      for (const [k, lim] of Object.entries(settings.target_controls_limits)) {
        const now = controls[k] ?? '';
        const before = orig?.controls[k] !== undefined ? String(orig.controls[k]) : '';
        if (now === before) continue;
        // "" resets a setting to its default; numbers and booleans travel typed, as the Ceph Dashboard sends them.
        changed[k] = now === '' ? '' : lim.type === 'int' ? Number(now) : lim.type === 'bool' ? now === 'true' : now;
      }
      if (!editing) await step(`create target ${name}`, 'PUT', t, Object.keys(changed).length ? { controls: JSON.stringify(changed) } : undefined);
      else if (Object.keys(changed).length) await step('change target settings', 'PUT', t, { mode: 'reconfigure', controls: JSON.stringify(changed) });
      for (const [gw, g] of Object.entries(gws)) {
        const had = !!orig?.portals[gw];
        if (g.on && !had) await step(`add gateway ${gw} (${g.ips})`, 'PUT', `/api/gateway/${seg(name)}/${seg(gw)}`, { ip_address: g.ips, nosync: 'false', skipchecks: 'false' });
      }
      const before = orig?.disks ?? {};
      for (const l of luns) {
        if (!l.disk || before[l.disk]) continue;
        await step(`map disk ${l.disk}${l.lun !== '' ? ` as LUN ${l.lun}` : ''}`, 'PUT', `/api/targetlun/${seg(name)}`, { disk: l.disk, ...(l.lun !== '' ? { lun_id: l.lun } : {}) });
      }
      const wasAcl = orig?.acl_enabled ?? true;
      const removedHosts = Object.keys(orig?.clients ?? {}).filter((h) => !hosts.some((x) => x.existing && x.iqn === h));
      for (const h of removedHosts) await step(`delete host ${h}`, 'DELETE', `/api/client/${seg(name)}/${seg(h)}`);
      const none = { username: '', password: '', mutual_username: '', mutual_password: '' };
      // ACL on again: the target CHAP goes first (the API refuses ACL while it is set).
      if (acl && !wasAcl && orig?.auth.username) await step('clear target CHAP', 'PUT', `/api/targetauth/${seg(name)}`, none);
      if (acl !== wasAcl) await step(acl ? 'enable ACL' : 'disable ACL', 'PUT', `/api/targetauth/${seg(name)}`, { action: acl ? 'enable_acl' : 'disable_acl' });
      if (targetAuthChanged) {
        await step(tuser ? 'set target CHAP' : 'clear target CHAP', 'PUT', `/api/targetauth/${seg(name)}`, { username: tuser, password: tpass, mutual_username: tmuser, mutual_password: tmpass });
      }
      for (const h of hosts) {
        const hi = normalizeIqn(h.iqn) as string;
        const c = `/api/client/${seg(name)}/${seg(hi)}`;
        const old = orig?.clients[hi];
        if (!h.existing) await step(`add host ${hi}`, 'PUT', c);
        const authChanged = !h.existing ? h.user !== '' : h.password !== '' || h.mpassword !== '' || h.user !== (old?.auth.username ?? '') || h.muser !== (old?.auth.mutual_username ?? '');
        if (authChanged) {
          await step(`set CHAP of ${hi}`, 'PUT', `/api/clientauth/${seg(name)}/${seg(hi)}`, { username: h.user, password: h.password, mutual_username: h.muser, mutual_password: h.mpassword });
        }
        const had = Object.keys(old?.luns ?? {});
        for (const d of h.disks) if (!had.includes(d)) await step(`give ${hi} disk ${d}`, 'PUT', `/api/clientlun/${seg(name)}/${seg(hi)}`, { disk: d });
        for (const d of had) if (!h.disks.includes(d)) await step(`take disk ${d} from ${hi}`, 'DELETE', `/api/clientlun/${seg(name)}/${seg(hi)}`, { disk: d });
      }
      for (const g of Object.keys(orig?.groups ?? {})) {
        if (!groups.some((x) => x.existing && x.name === g)) await step(`delete host group ${g}`, 'DELETE', `/api/hostgroup/${seg(name)}/${seg(g)}`);
      }
      for (const g of groups) {
        const old = orig?.groups[g.name];
        const url = `/api/hostgroup/${seg(name)}/${seg(g.name)}`;
        const addM = g.members.filter((m) => !old?.members.includes(m));
        const addD = g.disks.filter((d) => !old || !(d in old.disks));
        if (!old || addM.length || addD.length) await step(`host group ${g.name}: add`, 'PUT', url, { members: addM.join(','), disks: addD.join(','), action: 'add' });
        const remM = (old?.members ?? []).filter((m) => !g.members.includes(m));
        const remD = Object.keys(old?.disks ?? {}).filter((d) => !g.disks.includes(d));
        if (remM.length || remD.length) await step(`host group ${g.name}: remove`, 'PUT', url, { members: remM.join(','), disks: remD.join(','), action: 'remove' });
      }
      for (const d of Object.keys(before)) {
        if (!targetDisks.includes(d)) await step(`unmap disk ${d}`, 'DELETE', `/api/targetlun/${seg(name)}`, { disk: d });
      }
      for (const [gw, g] of Object.entries(gws)) {
        if (!g.on && orig?.portals[gw]) await step(`remove gateway ${gw}`, 'DELETE', `/api/gateway/${seg(name)}/${seg(gw)}`);
      }
      props.onDone(`/ui/targets/${seg(name)}`);
    } catch (err) {
      setError(`${done[done.length - 1]}: ${err instanceof ApiFailure ? err.message : String(err)}`);
    } finally {
      setBusy(false);
    }
  };

  const upd = <T,>(list: T[], i: number, set: (v: T[]) => void, patch: Partial<T>) => set(list.map((x, j) => (j === i ? { ...x, ...patch } : x)));
  const toggle = (list: string[], v: string, on: boolean) => (on ? [...list.filter((x) => x !== v), v] : list.filter((x) => x !== v));

  return (
    <section aria-labelledby="form-h">
      <h1 id="form-h">{editing ? `Edit ${props.iqn}` : 'Create target'}</h1>
      {error && <Banner kind="error"><span id="form-error">{error}</span></Banner>}
      {busy && <Busy label="Saving" steps={steps} />}
      <form onSubmit={(e) => void save(e)} noValidate>
        <fieldset>
          <legend>Target</legend>
          <label for="f-iqn">Target IQN</label>
          <input id="f-iqn" name="iqn" value={iqn} disabled={editing} aria-invalid={touched && !!iqnProblem} aria-describedby="f-iqn-msg" placeholder="iqn.2003-01.com.example.iscsi-gw:target" onInput={(e) => setIqn(e.currentTarget.value)} onBlur={() => setTouched(true)} />
          <p id="f-iqn-msg" class="field-msg">{touched && iqnProblem ? iqnProblem : ''}</p>
        </fieldset>
        <fieldset>
          <legend>Gateways (portals)</legend>
          {Object.entries(gws).map(([gw, g]) => (
            <div class="row">
              <input type="checkbox" id={`f-gw-${gw}`} checked={g.on} onChange={(e) => setGws({ ...gws, [gw]: { ...g, on: e.currentTarget.checked } })} />
              <label for={`f-gw-${gw}`} class="inline">{gw}</label>
              <label for={`f-gw-ip-${gw}`} class="inline muted">IP addresses</label>
              <input id={`f-gw-ip-${gw}`} value={g.ips} onInput={(e) => setGws({ ...gws, [gw]: { ...g, ips: e.currentTarget.value } })} />
            </div>
          ))}
          {Object.keys(gws).length === 0 && <p class="muted">No gateway has started yet.</p>}
        </fieldset>
        <fieldset>
          <legend>Disks</legend>
          {luns.map((l, i) => (
            <div class="row">
              <label for={`f-disk-${i}`} class="inline">Disk</label>
              <select id={`f-disk-${i}`} value={l.disk} onChange={(e) => upd(luns, i, setLuns, { disk: e.currentTarget.value })}>
                <option value="">(choose)</option>
                {diskIds.map((d) => <option value={d}>{d}</option>)}
              </select>
              <label for={`f-lun-${i}`} class="inline">LUN id</label>
              <input id={`f-lun-${i}`} class="short" inputMode="numeric" value={l.lun} placeholder="auto" onInput={(e) => upd(luns, i, setLuns, { lun: e.currentTarget.value })} />
              <button type="button" class="secondary" onClick={() => setLuns(luns.filter((_, j) => j !== i))}>Remove</button>
            </div>
          ))}
          <button type="button" class="secondary" id="add-disk" onClick={() => setLuns([...luns, { disk: '', lun: '' }])}>Add disk</button>
        </fieldset>
        <fieldset>
          <legend>Access</legend>
          <input type="checkbox" id="f-acl" checked={acl} onChange={(e) => setAcl(e.currentTarget.checked)} />
          <label for="f-acl" class="inline">ACL authentication (only the hosts below, each with its CHAP)</label>
          {!acl && (
            <>
              <p class="muted small">Without ACL every initiator may log in; target CHAP makes them all use one set of credentials.</p>
              <div class="grid4">
                <div><label for="f-tuser">Target CHAP user</label><input id="f-tuser" value={tuser} autocomplete="off" onInput={(e) => setTuser(e.currentTarget.value)} aria-describedby="f-tauth-msg" /></div>
                <div><label for="f-tpass">Target CHAP password</label><input id="f-tpass" type="password" autocomplete="new-password" value={tpass} placeholder={orig?.auth.username ? '(unchanged)' : ''} onInput={(e) => setTpass(e.currentTarget.value)} /></div>
                <div><label for="f-tmuser">Mutual CHAP user</label><input id="f-tmuser" value={tmuser} autocomplete="off" onInput={(e) => setTmuser(e.currentTarget.value)} /></div>
                <div><label for="f-tmpass">Mutual CHAP password</label><input id="f-tmpass" type="password" autocomplete="new-password" value={tmpass} onInput={(e) => setTmpass(e.currentTarget.value)} /></div>
              </div>
              <p id="f-tauth-msg" class="field-msg">{touched && targetAuthProblem ? targetAuthProblem : ''}</p>
            </>
          )}
        </fieldset>
        <fieldset>
          <legend>Hosts</legend>
          {hosts.map((h, i) => (
            <div class="host">
              <label for={`f-host-${i}`}>Host IQN</label>
              <input id={`f-host-${i}`} class="wide" value={h.iqn} disabled={h.existing} onInput={(e) => upd(hosts, i, setHosts, { iqn: e.currentTarget.value })} aria-describedby={`f-host-msg-${i}`} />
              <div class="grid4">
                <div><label for={`f-user-${i}`}>CHAP user</label><input id={`f-user-${i}`} value={h.user} autocomplete="off" onInput={(e) => upd(hosts, i, setHosts, { user: e.currentTarget.value })} /></div>
                <div><label for={`f-pass-${i}`}>CHAP password</label><input id={`f-pass-${i}`} type="password" autocomplete="new-password" value={h.password} placeholder={h.existing ? '(unchanged)' : ''} onInput={(e) => upd(hosts, i, setHosts, { password: e.currentTarget.value })} /></div>
                <div><label for={`f-muser-${i}`}>Mutual CHAP user</label><input id={`f-muser-${i}`} value={h.muser} autocomplete="off" onInput={(e) => upd(hosts, i, setHosts, { muser: e.currentTarget.value })} /></div>
                <div><label for={`f-mpass-${i}`}>Mutual CHAP password</label><input id={`f-mpass-${i}`} type="password" autocomplete="new-password" value={h.mpassword} onInput={(e) => upd(hosts, i, setHosts, { mpassword: e.currentTarget.value })} /></div>
              </div>
              <p id={`f-host-msg-${i}`} class="field-msg">{touched && hostProblems[i] ? hostProblems[i] : ''}</p>
              <div role="group" aria-label={`Disks of host ${i + 1}`} class="checks">
                {targetDisks.map((d) => (
                  <span><input type="checkbox" id={`f-host-${i}-disk-${d}`} checked={h.disks.includes(d)} onChange={(e) => upd(hosts, i, setHosts, { disks: toggle(h.disks, d, e.currentTarget.checked) })} /><label class="inline" for={`f-host-${i}-disk-${d}`}>{d}</label></span>
                ))}
              </div>
              <button type="button" class="secondary" onClick={() => setHosts(hosts.filter((_, j) => j !== i))}>Remove host</button>
            </div>
          ))}
          <button type="button" class="secondary" id="add-host" onClick={() => setHosts([...hosts, { iqn: '', user: '', password: '', muser: '', mpassword: '', disks: [], existing: false }])}>Add host</button>
        </fieldset>
        <fieldset>
          <legend>Host groups</legend>
          {groups.map((g, i) => (
            <div class="host">
              <label for={`f-group-${i}`}>Group name</label>
              <input id={`f-group-${i}`} class="wide" value={g.name} disabled={g.existing} onInput={(e) => upd(groups, i, setGroups, { name: e.currentTarget.value })} />
              <p class="field-msg">{touched && groupProblems[i] ? groupProblems[i] : ''}</p>
              <div role="group" aria-label="Members" class="checks">
                {hosts.map((h) => normalizeIqn(h.iqn)).filter((x): x is string => !!x).map((m) => (
                  <span><input type="checkbox" id={`f-group-${i}-m-${m}`} checked={g.members.includes(m)} onChange={(e) => upd(groups, i, setGroups, { members: toggle(g.members, m, e.currentTarget.checked) })} /><label class="inline" for={`f-group-${i}-m-${m}`}>{m}</label></span>
                ))}
              </div>
              <div role="group" aria-label="Disks" class="checks">
                {targetDisks.map((d) => (
                  <span><input type="checkbox" id={`f-group-${i}-d-${d}`} checked={g.disks.includes(d)} onChange={(e) => upd(groups, i, setGroups, { disks: toggle(g.disks, d, e.currentTarget.checked) })} /><label class="inline" for={`f-group-${i}-d-${d}`}>{d}</label></span>
                ))}
              </div>
              <button type="button" class="secondary" onClick={() => setGroups(groups.filter((_, j) => j !== i))}>Remove group</button>
            </div>
          ))}
          <button type="button" class="secondary" onClick={() => setGroups([...groups, { name: '', members: [], disks: [], existing: false }])}>Add host group</button>
        </fieldset>
        <details>
          <summary>Target settings</summary>
          <div class="grid3">
            {Object.entries(settings.target_controls_limits).map(([k, lim]) => (
              <div>
                <label for={`f-c-${k}`}>{k}</label>
                {lim.type === 'bool' ? (
                  <select id={`f-c-${k}`} value={controls[k] ?? ''} onChange={(e) => setControls({ ...controls, [k]: e.currentTarget.value })}>
                    <option value="">default ({String(settings.target_default_controls[k])})</option><option value="true">yes</option><option value="false">no</option>
                  </select>
                ) : lim.type === 'enum' ? (
                  <select id={`f-c-${k}`} value={controls[k] ?? ''} onChange={(e) => setControls({ ...controls, [k]: e.currentTarget.value })}>
                    <option value="">default ({String(settings.target_default_controls[k])})</option>{lim.values.map((v) => <option value={String(v)}>{String(v)}</option>)}
                  </select>
                ) : (
                  <input id={`f-c-${k}`} type="number" min={lim.min} max={lim.max} value={controls[k] ?? ''} placeholder={`${String(settings.target_default_controls[k])} (${lim.min}–${lim.max})`} onInput={(e) => setControls({ ...controls, [k]: e.currentTarget.value })} />
                )}
              </div>
            ))}
          </div>
        </details>
        <div class="actions">
          <button type="submit" id="save-target" disabled={busy}>{editing ? 'Save changes' : 'Create target'}</button>
          <button type="button" class="secondary" onClick={() => props.onDone(editing ? `/ui/targets/${seg(props.iqn as string)}` : '/ui/targets')}>Cancel</button>
        </div>
      </form>
    </section>
  );
}
