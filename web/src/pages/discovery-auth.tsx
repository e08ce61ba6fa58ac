/** Discovery (SendTargets) CHAP of every gateway, as the Ceph Dashboard's targets list offers it. */
import { useState } from 'preact/hooks';
import { ApiFailure, api } from '../api';
import { Banner } from '../components';
import { credentialsProblem } from '../shared';
import type { Auth } from '../types';

export function DiscoveryAuth({ current, onSaved }: { current: Auth | undefined; onSaved: () => void }) {
  const [user, setUser] = useState(current?.username ?? '');
  const [pass, setPass] = useState('');
  const [muser, setMuser] = useState(current?.mutual_username ?? '');
  const [mpass, setMpass] = useState('');
  const [msg, setMsg] = useState<{ kind: 'ok' | 'error'; text: string } | undefined>();
  const save = async (e: Event) => {
    e.preventDefault();
    const creds = { username: user, password: pass, mutual_username: muser, mutual_password: mpass };
    const problem = credentialsProblem(creds);
    if (problem) {
      setMsg({ kind: 'error', text: problem });
      return;
    }
    try {
      const r = await api<{ message?: string }>('PUT', '/api/discoveryauth', creds);
      setMsg({ kind: 'ok', text: r.message ?? 'saved' });
      setPass('');
      setMpass('');
      onSaved();
    } catch (err) {
      setMsg({ kind: 'error', text: err instanceof ApiFailure ? err.message : String(err) });
    }
  };
  return (
    <details class="discovery">
      <summary>Discovery authentication {current?.username ? `(CHAP user ${current.username})` : '(none)'}</summary>
      <form onSubmit={(e) => void save(e)} noValidate aria-label="Discovery authentication">
        {msg && <Banner kind={msg.kind}>{msg.text}</Banner>}
        <p class="muted small">CHAP for SendTargets discovery on every gateway; all fields empty removes it.</p>
        <div class="grid4">
          <div><label for="da-user">User</label><input id="da-user" value={user} autocomplete="off" onInput={(e) => setUser(e.currentTarget.value)} /></div>
          <div><label for="da-pass">Password</label><input id="da-pass" type="password" autocomplete="new-password" value={pass} onInput={(e) => setPass(e.currentTarget.value)} /></div>
          <div><label for="da-muser">Mutual user</label><input id="da-muser" value={muser} autocomplete="off" onInput={(e) => setMuser(e.currentTarget.value)} /></div>
          <div><label for="da-mpass">Mutual password</label><input id="da-mpass" type="password" autocomplete="new-password" value={mpass} onInput={(e) => setMpass(e.currentTarget.value)} /></div>
        </div>
        <button type="submit">Save discovery authentication</button>
      </form>
    </details>
  );
}
