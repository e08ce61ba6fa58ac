/** Sessions: who is logged in where, with the parameters negotiated at login. */
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, api, bytes } from '../api';
import { Banner } from '../components';
import type { SessionRow } from '../types';

export function SessionsPage() {
  const [rows, setRows] = useState<SessionRow[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    let alive = true;
    const load = () => api<{ sessions: SessionRow[] }>('GET', '/api/dashboard/sessions').then(
      (r) => alive && (setRows(r.sessions), setError(undefined)),
      (e: unknown) => alive && setError(e instanceof ApiFailure ? e.message : String(e)),
    );
    void load();
    const t = setInterval(() => void load(), 3000);
    return () => {
      alive = false;
      clearInterval(t);
    };
  }, []);
  return (
    <section aria-labelledby="sessions-h">
      <h1 id="sessions-h">Sessions</h1>
      {error && <Banner kind="error">{error}</Banner>}
      {!rows ? <p>Loading…</p> : rows.length === 0 ? <p class="muted">No initiator is logged in.</p> : (
        <div class="table-wrap">
          <table id="sessions">
            <thead><tr><th scope="col">Initiator</th><th scope="col">Address</th><th scope="col">Gateway / portal</th><th scope="col">Target</th><th scope="col">LUNs</th><th scope="col">Auth</th><th scope="col">Since</th><th scope="col">Traffic</th><th scope="col">Digests</th><th scope="col">Negotiated</th></tr></thead>
            <tbody>
              {rows.map((s) => (
                <tr data-initiator={s.initiator}>
                  <th scope="row" class="iqn">{s.initiator}{s.alias && <div class="muted small">alias {s.alias}</div>}<div class="muted small">ISID {s.isid}, TSIH {s.tsih}</div></th>
                  <td class="address">{s.connection ? <>{s.connection.ip_address}<div class="muted small">{s.connection.initiator}, CID {s.connection.cid}</div></> : '—'}</td>
                  <td>{s.gateway}<div class="muted small">{s.connection ? `connected to ${s.connection.portal}` : s.portals.join(', ')} (TPG {s.target_portal_group})</div></td>
                  <td class="iqn">{s.target}</td>
                  <td>{s.luns.map((l) => <div>{l.lun_id ?? '?'}: {l.disk}</div>)}</td>
                  <td>{s.auth}</td>
                  <td>{new Date(s.login_time).toLocaleString()}</td>
                  <td>{s.commands} cmds, {bytes(s.data_in_bytes)} in, {bytes(s.data_out_bytes)} out{s.errors > 0 && `, ${s.errors} not GOOD`}</td>
                  <td class="digests">{s.connection ? `header ${s.connection.header_digest}, data ${s.connection.data_digest}` : '—'}</td>
                  <td><details open><summary>parameters</summary><dl class="params">{Object.entries(s.parameters).map(([k, v]) => <><dt>{k}</dt><dd>{String(v)}</dd></>)}</dl></details></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
