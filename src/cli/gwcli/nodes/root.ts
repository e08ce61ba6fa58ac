/** `/` (ISCSIRoot): export and info; children cluster, disks, iscsi-targets. */
import { Args, CliError, Command, CommandContext, Summary, UINode } from '../node';
import { Model } from '../model';
import { call } from './common';
import { ClusterGroup } from './cluster';
import { Disks } from './disks';
import { ISCSITargets } from './targets';

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

export class Root extends UINode {
  readonly kind = 'ISCSIRoot';
  constructor(model: Model) {
    super('/', null, model);
  }
  protected buildChildren(): UINode[] {
    return [new ClusterGroup(this, this.model), new Disks(this, this.model), new ISCSITargets(this, this.model)];
  }
  summary(): Summary {
    return { text: '...', state: 'none' };
  }
  override info(): Record<string, unknown> {
    const api = new URL(this.model.api.baseUrl);
    return {
      'HTTP mode': api.protocol.replace(':', ''),
      'Rest API port': this.model.api.port,
      'Local endpoint': this.model.api.baseUrl,
      'Local Ceph Cluster': this.model.clusterName,
      'Image store': this.model.backend || 'unknown',
    };
  }
  override commands(): Command[] {
    return [
      {
        name: 'export',
        params: [{ name: 'mode', optional: true, values: () => ['copy'] }],
        help: 'Print the whole configuration object as JSON (mode=copy, the only mode). CHAP passwords are printed as stored.',
        run: async (ctx: CommandContext, args: Args) => {
          const mode = args.named.mode ?? 'copy';
          if (mode !== 'copy') throw new CliError(`Invalid export mode '${mode}' requested - supported modes are: copy`, 'usage');
          const cfg = await call(ctx, 'GET', '/api/config');
          ctx.out.data(sortKeys(cfg), () => JSON.stringify(sortKeys(cfg), null, 4).split('\n'));
        },
      },
    ];
  }
}
