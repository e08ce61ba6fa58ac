/**
 * Where the gateway keeps its state. One data directory holds everything: the gateway
 * configuration and the embedded image store. `--data DIR` wins, then $ISCSI_GATEWAY_DATA,
 * then a system path for root and a per-user path otherwise.
 */
import * as os from 'node:os';
import * as path from 'node:path';

export function defaultDataDir(): string {
  const env = process.env.ISCSI_GATEWAY_DATA;
  if (env) return path.resolve(env);
  if (typeof process.getuid === 'function' && process.getuid() === 0) return '/var/lib/iscsi-gateway';
  const xdg = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(xdg, 'iscsi-gateway');
}

/** The gateway configuration file inside a data directory. */
export function configPath(dataDir: string): string {
  return path.join(dataDir, 'gateway.json');
}

/** Root of the embedded image store inside a data directory. */
export function storeRoot(dataDir: string): string {
  return path.join(dataDir, 'store');
}
