/** `/disks/<pool>/<image>` (Disk): resize, reconfigure, snapshots, flatten, info. */
import { seg } from '../api-client';
import { CliError, Command, CommandContext, Summary, UINode, didYouMean, humanSize } from '../node';
import { Model } from '../model';
import { call, checkControl, checkSize, controlJson, controlValues, diskParts, need } from './common';

const SNAP_ACTIONS = ['create', 'delete', 'rollback', 'protect', 'unprotect', 'clone', 'attach', 'list'] as const;

export class Disk extends UINode {
  readonly kind = 'Disk';
  readonly id: string;
  readonly pool: string;
  readonly image: string;
  constructor(parent: UINode, model: Model, image: string) {
    super(image, parent, model);
    this.pool = parent.name;
    this.image = image;
    this.id = `${this.pool}/${image}`;
  }
  protected buildChildren(): UINode[] {
    return [];
  }
  size(): number | undefined {
    return this.model.disks.get(this.id)?.size;
  }
  state(): string {
    return this.model.disks.get(this.id)?.state ?? 'Unknown';
  }
  summary(): Summary {
    const st = this.state();
    if (st === 'NOT FOUND') return { text: 'NOT FOUND', state: 'bad' };
    const d = this.model.config.disks[this.id];
    const ro = d?.snapshot ? ', read-only snapshot' : '';
    return { text: `${this.id} (${st}${ro}, ${humanSize(this.size())})`, state: st === 'Online' ? 'ok' : 'bad' };
  }
  override info(): Record<string, unknown> {
    const d = this.model.config.disks[this.id];
    const live = this.model.disks.get(this.id);
    const controls: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.model.limits.diskDefaults)) controls[k] = String(v);
    for (const [k, v] of Object.entries(d?.controls ?? {})) controls[k] = `${String(v)} (override)`;
    return {
      image: this.image,
      ceph_cluster: this.model.clusterName,
      pool: this.pool,
      ...(d?.snapshot ? { snapshot: d.snapshot, read_only: true } : {}),
      wwn: d?.wwn ?? '',
      size_h: humanSize(live?.size),
      size: live?.size,
      // Beyond ceph-iscsi (its ls line stays "(<state>, <size>)"): allocated bytes, like rbd du.
      ...(live?.used !== undefined ? { used_h: humanSize(live.used), used: live.used } : {}),
      owner: d?.owner ?? '',
      lock_owner: live?.lockOwner ?? '',
      state: live?.state ?? 'Unknown',
      backstore: d?.backstore ?? '',
      backstore_object_name: d?.backstore_object_name ?? '',
      control_values: controls,
    };
  }
  async printInfo(ctx: CommandContext): Promise<void> {
    const info = this.info();
    let snaps: Array<Record<string, unknown>> = [];
    if (!this.model.config.disks[this.id]?.snapshot) {
      const r = await ctx.api.request('GET', `/api/disksnap/${seg(this.pool)}/${seg(this.image)}`);
      if (r.status === 200 && Array.isArray(r.body.snapshots)) snaps = r.body.snapshots as Array<Record<string, unknown>>;
    }
    info.snapshots = snaps.map((s) => `${String(s.name)} (${humanSize(Number(s.size))}${s.protected ? ', protected' : ''})`);
    ctx.out.data(info, () => renderInfo(info));
  }

  async resize(ctx: CommandContext, size: string): Promise<void> {
    await call(ctx, 'PUT', `/api/disk/${seg(this.pool)}/${seg(this.image)}`, { mode: 'resize', size: checkSize(size), pool: this.pool });
    ctx.out.ok();
  }

  async reconfigure(ctx: CommandContext, attr: string, value: string): Promise<void> {
    const limits = this.model.limits.diskLimits;
    checkControl('disk', attr, value, limits);
    // An empty value resets to the default: send the default.
    const v = value === '' ? String(this.model.limits.diskDefaults[attr] ?? '') : value;
    const r = await call(ctx, 'PUT', `/api/disk/${seg(this.pool)}/${seg(this.image)}`, { mode: 'reconfigure', controls: controlJson(attr, v, limits), pool: this.pool });
    ctx.out.ok(typeof r.message === 'string' ? r.message : undefined);
  }

  override commands(): Command[] {
    const attrValues = (ctx: CommandContext): string[] => Object.keys(ctx.model.limits.diskLimits).sort();
    return [
      {
        name: 'resize',
        params: [{ name: 'size', values: () => ['1G', '10G', '100G'] }],
        help: 'Grow the disk (shrinking is refused): resize <N>[M|G|T].',
        run: async (ctx, a) => this.resize(ctx, need(a, 'size', 'resize <size>')),
      },
      {
        name: 'reconfigure',
        params: [
          { name: 'attribute', values: (ctx) => [...attrValues(ctx), this.id] },
          { name: 'value', optional: true, values: (ctx, g) => controlValues(ctx.model.limits.diskLimits[g.named.attribute ?? '']) },
          { name: 'extra', optional: true },
        ],
        help: 'Change a disk setting: reconfigure <attribute> <value> (also as the guide writes it: reconfigure <pool>/<image> <attribute> <value>). An empty value resets to the default. Disruptive: refused while an initiator with this LUN is logged in.',
        run: async (ctx, a) => {
          let attr = need(a, 'attribute', 'reconfigure <attribute> <value>');
          let value = a.named.value ?? '';
          if (attr.includes('/')) {
            if (attr !== this.id) throw new CliError(`this is disk ${this.id}, not ${attr}: use reconfigure <attribute> <value> here, or /disks reconfigure ${attr} <attribute> <value>`, 'usage');
            attr = need(a, 'value', `reconfigure ${this.id} <attribute> <value>`);
            value = a.named.extra ?? '';
          } else if (a.named.extra !== undefined) {
            throw new CliError(`too many arguments: usage: reconfigure <attribute> <value>`, 'usage');
          }
          await this.reconfigure(ctx, attr, value);
        },
      },
      {
        name: 'snapshot',
        params: [
          { name: 'action', values: () => [...SNAP_ACTIONS] },
          { name: 'name', optional: true },
          { name: 'dest', optional: true },
        ],
        help: 'Snapshots: snapshot create|delete|rollback|protect|unprotect <name>; snapshot clone <name> <pool>/<image> (a copy-on-write disk); snapshot attach <name> (the snapshot as a read-only disk <pool>/<image>@<name>); snapshot list.',
        run: async (ctx, a) => this.snapshot(ctx, need(a, 'action', 'snapshot create|delete|rollback <name>'), a.named.name, a.named.dest),
      },
      {
        name: 'flatten',
        params: [],
        help: "Copy a clone's parent data into it, so that it no longer depends on the parent snapshot.",
        run: async (ctx) => {
          await call(ctx, 'PUT', `/api/disk/${seg(this.pool)}/${seg(this.image)}`, { mode: 'flatten', pool: this.pool });
          ctx.out.ok();
        },
      },
    ];
  }

  private async snapshot(ctx: CommandContext, action: string, name: string | undefined, dest: string | undefined): Promise<void> {
    if (!(SNAP_ACTIONS as readonly string[]).includes(action)) {
      throw new CliError(`you can only ${SNAP_ACTIONS.join(', ')} - ${action} is invalid.${didYouMean(action, SNAP_ACTIONS)}`, 'usage');
    }
    const base = `/api/disksnap/${seg(this.pool)}/${seg(this.image)}`;
    if (action === 'list') {
      const r = await call(ctx, 'GET', base);
      const snaps = Array.isArray(r.snapshots) ? (r.snapshots as Array<Record<string, unknown>>) : [];
      ctx.out.data(snaps, () => (snaps.length ? snaps.map((s) => `${String(s.name)} (${humanSize(Number(s.size))}${s.protected ? ', protected' : ''}${Number(s.children) ? `, clones: ${String(s.children)}` : ''})`) : ['(no snapshots)']));
      return;
    }
    if (!name) throw new CliError(`missing snapshot name: usage: snapshot ${action} <name>`, 'usage');
    if (!/^[^/@]+$/.test(name)) throw new CliError(`snapshot name '${name}' is invalid: it must not contain '/' or '@'`, 'usage');
    if (action === 'delete') {
      await call(ctx, 'DELETE', `${base}/${seg(name)}`);
    } else if (action === 'clone') {
      if (!dest) throw new CliError(`missing destination: usage: snapshot clone ${name} <pool>/<image>`, 'usage');
      diskParts(dest);
      await call(ctx, 'PUT', `${base}/${seg(name)}`, { mode: 'clone', dest });
    } else {
      if (action === 'rollback') ctx.out.line('Please be patient, rollback might take time');
      await call(ctx, 'PUT', `${base}/${seg(name)}`, { mode: action === 'attach' ? 'export' : action });
    }
    ctx.out.ok();
  }
}

/** `info` rendering: "key: value", lists and dicts indented under their key. */
export function renderInfo(info: Record<string, unknown>): string[] {
  const out: string[] = [];
  const width = Math.max(0, ...Object.keys(info).map((k) => k.length));
  for (const [k, v] of Object.entries(info)) {
    if (v === undefined) continue;
    const key = `${k}${' '.repeat(width - k.length)}`;
    if (Array.isArray(v)) {
      out.push(`${key} .. ${v.length ? '' : '(none)'}`.trimEnd());
      for (const x of v) out.push(`  - ${typeof x === 'object' ? JSON.stringify(x) : String(x)}`);
    } else if (v && typeof v === 'object') {
      out.push(`${key} ..`);
      const sub = v as Record<string, unknown>;
      const w = Math.max(0, ...Object.keys(sub).map((x) => x.length));
      for (const [sk, sv] of Object.entries(sub)) out.push(`  ${sk}${' '.repeat(w - sk.length)}: ${typeof sv === 'object' ? JSON.stringify(sv) : String(sv)}`);
    } else {
      out.push(`${key} .. ${String(v)}`);
    }
  }
  return out;
}
