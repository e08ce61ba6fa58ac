/**
 * A REST API server in its own process on a given data dir (for tests with several writers):
 * `node api-child.js DIR NAME` prints "url <url>" once listening and stops on SIGTERM.
 */
import { startTestApi } from './api';

async function main(): Promise<void> {
  const [dir, name] = process.argv.slice(2);
  const api = await startTestApi({ dir, gatewayName: name });
  process.stdout.write(`url ${api.url}\n`);
  process.on('SIGTERM', () => {
    void api.close().then(() => process.exit(0));
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
