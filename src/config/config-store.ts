/**
 * Where the gateway configuration lives. The interface is the seam for the multi-gateway
 * milestone (a store every gateway sees); FileConfigStore keeps it in the data dir and
 * replaces it atomically (temp file, fsync, rename, fsync directory).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../sys/durable';
import { GatewayConfig, GatewayConfigSchema, timestamp } from './schema';

export interface ConfigStore {
  /** Where it lives, for messages. */
  readonly location: string;
  /** The current configuration, or undefined when none was ever saved. */
  load(): Promise<GatewayConfig | undefined>;
  /** Replace the configuration (bumps epoch and `updated`). */
  save(config: GatewayConfig): Promise<GatewayConfig>;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export class FileConfigStore implements ConfigStore {
  constructor(readonly location: string) {}

  async load(): Promise<GatewayConfig | undefined> {
    let text: string;
    try {
      text = await fs.promises.readFile(this.location, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`${this.location}: not valid JSON: ${(e as Error).message}`);
    }
    const parsed = GatewayConfigSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw new ConfigError(`${this.location}: ${issues}`);
    }
    return parsed.data;
  }

  async save(config: GatewayConfig): Promise<GatewayConfig> {
    const next: GatewayConfig = { ...config, epoch: config.epoch + 1, updated: timestamp() };
    GatewayConfigSchema.parse(next);
    await fs.promises.mkdir(path.dirname(this.location), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.location, `${JSON.stringify(next, null, 2)}\n`, 0o600);
    return next;
  }
}
