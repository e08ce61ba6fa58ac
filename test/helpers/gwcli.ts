/**
 * gwcli test helpers: a REST API (in-process, temporary data dir) with a settings file and a
 * GWCLI_HOME for gwcli, and a runner for the gwcli command (batch mode, scripts on stdin).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, run, RunResult, tempDir } from './daemon';
import { startTestApi, TestApi } from './api';

export const GWCLI = path.join(ROOT, 'bin', 'gwcli');

export interface GwcliEnv {
  readonly api: TestApi;
  readonly cfg: string;
  readonly home: string;
  gwcli(args: string[], input?: string): Promise<RunResult>;
  close(): Promise<void>;
}

/** A settings file in the daemon's INI form pointing at an API on 127.0.0.1:<port>. */
export function settingsFile(dir: string, port: number, extra = ''): string {
  const cfg = path.join(dir, 'iscsi-gateway.cfg');
  fs.writeFileSync(cfg, `[config]\napi_secure = false\napi_host = 127.0.0.1\napi_port = ${port}\n${extra}`);
  return cfg;
}

export async function startGwcliEnv(): Promise<GwcliEnv> {
  const api = await startTestApi();
  const dir = tempDir('igw-gwcli-');
  const cfg = settingsFile(dir, Number(new URL(api.url).port));
  const home = path.join(dir, 'home');
  return {
    api,
    cfg,
    home,
    gwcli: (args, input) => run(process.execPath, [GWCLI, '--config', cfg, ...args], { env: { GWCLI_HOME: home, NO_COLOR: '1' }, input, timeoutMs: 30_000 }),
    close: () => api.close(),
  };
}
