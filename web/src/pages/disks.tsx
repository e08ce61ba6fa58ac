/**
 * Disks: every disk with pool, size, snapshots, the targets it is mapped to, owner and status;
 * create or attach, resize, snapshots (create, rollback, delete, protect, clone), flatten,
 * disk settings and delete. Long operations show a progress indicator until the API answers.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, api, bytes, seg } from '../api';
import { Banner, Busy, StatusView } from '../components';
import { SIZE_INVALID, imageNameProblem, parseSize, poolNameProblem, snapshotNameProblem } from '../shared';
import type { DiskRow, Settings } from '../types';

function diskUrl(d: { pool: string; image: string }): string {
  return `/api/disk/${seg(d.pool)}/${seg(d.image)}`;
}

export function DisksPage() {
  const [rows, setRows] = useState<DiskRow[] | undefined>();
  const [settings, setSettings] = useState<Settings | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const [busy, setBusy] = useState<string | undefined>();
  const [pool, setPool] = useState('rbd');
  const [image, setImage] = useState('');
  const [size, setSize] = useState('');
  const [attach, setAttach] = useState(false);
  const [touched, setTouched] = useState(false);
  const [open, setOpen] = useState<string | undefined>();

  const reload = () => api<{ disks: DiskRow[] }>('GET', '/api/dashboard/disks').then((r) => setRows(r.disks), (e: unknown) => setError(String(e)));
  useEffect(() => {
    void reload();
    void api<Settings>('GET', '/api/settings').then(setSettings);
  }, []);

  const run = async (label: string, method: 'PUT' | 'DELETE', url: string, fields?: Record<string, string>) => {
    setBusy(label);
    setError(undefined);
    setNotice(undefined);
    try {
      const r = await api<{ message?: string }>(method, url, fields);
      setNotice(`${label}: ${r.message ?? 'done'}`);
      return true;
    } catch (e) {
      setError(`${label}: ${e instanceof ApiFailure ? e.message : String(e)}`);
      return false;
    } finally {
      setBusy(undefined);
      void reload();
    }
  };

  const sizeProblem = !attach && (size === '' || parseSize(size) === undefined) ? SIZE_INVALID : undefined;
  const nameProblem = poolNameProblem(pool) ?? imageNameProblem(image);
  const create = async (e: Event) => {
    e.preventDefault();
    setTouched(true);
    if (nameProblem || sizeProblem) return;
    const fields: Record<string, string> = { mode: 'create', pool, count: '1', create_image: attach ? 'false' : 'true', backstore: settings?.default_backstore ?? 'user:rbd' };
    if (!attach) fields.size = size;
    if (await run(`${attach ? 'attach' : 'create'} ${pool}/${image}`, 'PUT', diskUrl({ pool, image }), fields)) {
      setImage('');
      setSize('');
      setTouched(false);
    }
  };

  return (
    <section aria-labelledby="disks-h">
      <h1 id="disks-h">Disks</h1>
      {error && <Banner kind="error"><span id="disk-error">{error}</span></Banner>}
      {notice && <Banner kind="ok">{notice}</Banner>}
      {busy && <Busy label={busy} />}
      <form class="inline-form" onSubmit={(e) => void create(e)} noValidate aria-label="Create or attach a disk">
        <div><label for="d-pool">Pool</label><input id="d-pool" value={pool} onInput={(e) => setPool(e.currentTarget.value)} /></div>
        <div><label for="d-image">Image</label><input id="d-image" value={image} onInput={(e) => setImage(e.currentTarget.value)} aria-describedby="d-msg" /></div>
        <div><label for="d-size">Size (e.g. 64M, 10G)</label><input id="d-size" value={size} disabled={attach} onInput={(e) => setSize(e.currentTarget.value)} aria-describedby="d-msg" /></div>
        <div><input type="checkbox" id="d-attach" checked={attach} onChange={(e) => setAttach(e.currentTarget.checked)} /><label class="inline" for="d-attach">attach an existing image</label></div>
        <div><button type="submit" id="create-disk" disabled={!!busy}>{attach ? 'Attach disk' : 'Create disk'}</button></div>
        <p id="d-msg" class="field-msg">{touched ? nameProblem ?? sizeProblem ?? '' : ''}</p>
      </form>
      {!rows ? <p>Loading…</p> : rows.length === 0 ? <p class="muted">No disk is defined.</p> : (
        <div class="table-wrap"><table id="disks">
          <thead><tr><th scope="col">Disk</th><th scope="col">Pool</th><th scope="col">Size</th><th scope="col">Used</th><th scope="col">Snapshots</th><th scope="col">Mapped to</th><th scope="col">Owner / status</th><th scope="col">Actions</th></tr></thead>
          <tbody>{rows.map((d) => (
            <>
              <tr data-disk={d.id}>
                <th scope="row">{d.image}{d.snapshot && `@${d.snapshot}`}{d.parent && <div class="muted small">clone of {d.parent}</div>}</th>
                <td>{d.pool}</td><td>{bytes(d.size)}</td><td class="used">{d.used === null ? '–' : bytes(d.used)}</td><td>{d.snapshots.length}</td>
                <td>{d.targets.length === 0 ? '–' : d.targets.map((t) => <div class="iqn">{t.target} (LUN {t.lun_id})</div>)}</td>
                <td class="small">owner: {d.owner ?? '–'}<StatusView status={d.status} /></td>
                <td><button type="button" class="secondary" aria-expanded={open === d.id} onClick={() => setOpen(open === d.id ? undefined : d.id)}>{open === d.id ? 'Close' : 'Manage'}</button></td>
              </tr>
              {open === d.id && <tr class="detail"><td colSpan={8}><DiskActions d={d} settings={settings} run={run} /></td></tr>}
            </>
          ))}</tbody>
        </table></div>
      )}
    </section>
  );
}

type Run = (label: string, method: 'PUT' | 'DELETE', url: string, fields?: Record<string, string>) => Promise<boolean>;

function DiskActions({ d, settings, run }: { d: DiskRow; settings: Settings | undefined; run: Run }) {
  const [newSize, setNewSize] = useState('');
  const [snap, setSnap] = useState('');
  const [clone, setClone] = useState('');
  const [preserve, setPreserve] = useState(true);
  const [controls, setControls] = useState<Record<string, string>>(() => Object.fromEntries(Object.entries(d.controls).map(([k, v]) => [k, String(v)])));
  const snapBase = `/api/disksnap/${seg(d.pool)}/${seg(d.image)}`;
  const limits = settings?.disk_controls_limits[d.backstore] ?? {};
  const snapProblem = snap ? snapshotNameProblem(snap) : undefined;
  return (
    <div class="disk-actions">
      <div class="row">
        <label for={`rs-${d.id}`} class="inline">New size</label>
        <input id={`rs-${d.id}`} class="short" value={newSize} onInput={(e) => setNewSize(e.currentTarget.value)} />
        <button type="button" onClick={() => void run(`resize ${d.id}`, 'PUT', diskUrl(d), { mode: 'resize', size: newSize })}>Resize</button>
        {d.parent && <button type="button" onClick={() => void run(`flatten ${d.id}`, 'PUT', diskUrl(d), { mode: 'flatten' })}>Flatten</button>}
      </div>
      <div class="row">
        <label for={`sn-${d.id}`} class="inline">Snapshot name</label>
        <input id={`sn-${d.id}`} class="short" value={snap} onInput={(e) => setSnap(e.currentTarget.value)} />
        <button type="button" disabled={!snap || !!snapProblem} onClick={() => void run(`snapshot ${d.id}@${snap}`, 'PUT', `${snapBase}/${seg(snap)}`, { mode: 'create' })}>Create snapshot</button>
        <span class="field-msg">{snapProblem ?? ''}</span>
      </div>
      {d.snapshots.length > 0 && (
        <table class="snaps"><thead><tr><th scope="col">Snapshot</th><th scope="col">Size</th><th scope="col">Protected</th><th scope="col">Actions</th></tr></thead>
          <tbody>{d.snapshots.map((s) => (
            <tr><td>{s.name}</td><td>{bytes(s.size)}</td><td>{s.protected ? `yes (${s.children} clones)` : 'no'}</td>
              <td>
                <button type="button" class="secondary" onClick={() => { if (confirm(`Roll ${d.id} back to ${s.name}? Data written since is lost.`)) void run(`rollback ${d.id} to ${s.name}`, 'PUT', `${snapBase}/${seg(s.name)}`, { mode: 'rollback' }); }}>Rollback</button>
                <button type="button" class="secondary" onClick={() => void run(`${s.protected ? 'unprotect' : 'protect'} ${s.name}`, 'PUT', `${snapBase}/${seg(s.name)}`, { mode: s.protected ? 'unprotect' : 'protect' })}>{s.protected ? 'Unprotect' : 'Protect'}</button>
                <label for={`cl-${d.id}-${s.name}`} class="inline">clone to pool/image</label>
                <input id={`cl-${d.id}-${s.name}`} class="short" value={clone} onInput={(e) => setClone(e.currentTarget.value)} />
                <button type="button" class="secondary" disabled={!clone} onClick={() => void run(`clone ${s.name} to ${clone}`, 'PUT', `${snapBase}/${seg(s.name)}`, { mode: 'clone', dest: clone })}>Clone</button>
                <button type="button" class="danger" onClick={() => { if (confirm(`Delete snapshot ${s.name}?`)) void run(`delete snapshot ${s.name}`, 'DELETE', `${snapBase}/${seg(s.name)}`); }}>Delete</button>
              </td></tr>
          ))}</tbody></table>
      )}
      <details><summary>Disk settings</summary>
        <div class="grid3">{Object.entries(limits).map(([k, lim]) => (
          <div><label for={`dc-${d.id}-${k}`}>{k}</label>
            <input id={`dc-${d.id}-${k}`} type="number" {...(lim.type === 'int' ? { min: lim.min, max: lim.max } : {})} value={controls[k] ?? ''} placeholder={String(settings?.disk_default_controls[d.backstore]?.[k] ?? '')} onInput={(e) => setControls({ ...controls, [k]: e.currentTarget.value })} /></div>
        ))}</div>
        <button type="button" onClick={() => {
          const c: Record<string, number | string> = {};
          for (const [k, v] of Object.entries(controls)) if (String(d.controls[k] ?? '') !== v) c[k] = v === '' ? '' : Number(v);
          void run(`settings of ${d.id}`, 'PUT', diskUrl(d), { mode: 'reconfigure', controls: JSON.stringify(c) });
        }}>Save disk settings</button>
      </details>
      <div class="row">
        <input type="checkbox" id={`pr-${d.id}`} checked={preserve} onChange={(e) => setPreserve(e.currentTarget.checked)} />
        <label for={`pr-${d.id}`} class="inline">keep the image (only remove the disk from the gateways)</label>
        <button type="button" class="danger" onClick={() => { if (confirm(`Delete disk ${d.id}${preserve ? '' : ' and its image'}?`)) void run(`delete ${d.id}`, 'DELETE', diskUrl(d), { preserve_image: preserve ? 'true' : 'false' }); }}>Delete disk</button>
      </div>
    </div>
  );
}
