/**
 * `/cluster`: the image store behind the gateways (the embedded store now; Ceph's pools with the
 * Ceph backend) — pools, their images and provisioned size, from GET /api/pools.
 */
import { Command, Summary, UINode, humanSize } from '../node';
import { Model, PoolInfo } from '../model';

export class ClusterGroup extends UINode {
  readonly kind = 'Clusters';
  constructor(parent: UINode, model: Model) {
    super('cluster', parent, model);
  }
  protected buildChildren(): UINode[] {
    return [new Cluster(this, this.model)];
  }
  summary(): Summary {
    return { text: 'Clusters: 1', state: 'none' };
  }
  override commands(): Command[] {
    return [{ name: 'refresh', params: [], help: 'Re-read pools and usage.', run: async () => undefined }];
  }
}

export class Cluster extends UINode {
  readonly kind = 'Cluster';
  constructor(parent: UINode, model: Model) {
    super(model.clusterName, parent, model);
  }
  protected buildChildren(): UINode[] {
    return [new Pools(this, this.model)];
  }
  summary(): Summary {
    return { text: this.model.backend ? `${this.model.backend} store` : 'unknown', state: this.model.backend ? 'ok' : 'warn' };
  }
  override info(): Record<string, unknown> {
    const total = this.model.pools.reduce((a, p) => a + p.provisioned_bytes, 0);
    return { name: this.model.clusterName, backend: this.model.backend, pools: this.model.pools.length, provisioned: humanSize(total) };
  }
  override commands(): Command[] {
    return [{ name: 'refresh', params: [], help: 'Re-read pools and usage.', run: async () => undefined }];
  }
}

export class Pools extends UINode {
  readonly kind = 'Pools';
  constructor(parent: UINode, model: Model) {
    super('pools', parent, model);
  }
  protected buildChildren(): UINode[] {
    return this.model.pools.map((p) => new Pool(this, this.model, p));
  }
  summary(): Summary {
    return { text: `Pools: ${this.model.pools.length}`, state: 'none' };
  }
}

export class Pool extends UINode {
  readonly kind = 'Pool';
  constructor(
    parent: UINode,
    model: Model,
    private readonly p: PoolInfo,
  ) {
    super(p.name, parent, model);
  }
  protected buildChildren(): UINode[] {
    return [];
  }
  private commit(): number {
    let c = 0;
    for (const id of this.model.diskIds()) if (id.startsWith(`${this.p.name}/`)) c += this.model.disks.get(id)?.size ?? 0;
    return c;
  }
  summary(): Summary {
    return { text: `Images: ${this.p.images}, Provisioned: ${humanSize(this.p.provisioned_bytes)}, Commit: ${humanSize(this.commit())}`, state: 'none' };
  }
  override info(): Record<string, unknown> {
    return { name: this.p.name, images: this.p.images, provisioned_bytes: this.p.provisioned_bytes, commit: humanSize(this.commit()) };
  }
}
