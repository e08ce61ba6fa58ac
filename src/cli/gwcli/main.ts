/**
 * `gwcli` (and `iscsi-gateway gwcli`): the administration shell of the user's guide.
 *
 *   gwcli [--config FILE] [--json]                      interactive shell
 *   gwcli [--config FILE] [--json] <path> <command> …   one command (batch mode)
 *   gwcli [--config FILE] --file SCRIPT | -             commands from a file or stdin
 *
 * Exit status: 0 success, 1 the gateway refused a command, 2 a usage error (unknown command,
 * path or parameter), 3 the API cannot be reached (ceph-iscsi's gwcli exits 0 on most errors).
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { Command } from 'commander';
import { defaultSettings, loadSettings, SettingsError } from '../../config/settings';
import type { GatewaySettings } from '../../config/settings';
import { ApiClient, ApiUnreachableError } from './api-client';
import { CliError } from './node';
import { Prefs } from './prefs';
import { Shell } from './shell';

export const DEFAULT_SETTINGS_FILE = '/etc/ceph/iscsi-gateway.cfg';
const EXIT: Record<string, number> = { refused: 1, usage: 2, unreachable: 3 };

export interface GwcliOptions {
  readonly config?: string;
  readonly json?: boolean;
  readonly file?: string;
}

function settingsFor(opts: GwcliOptions): GatewaySettings {
  if (opts.config) return loadSettings(opts.config).settings;
  if (fs.existsSync(DEFAULT_SETTINGS_FILE)) return loadSettings(DEFAULT_SETTINGS_FILE).settings;
  // As the daemon without a settings file (`npm start`): no TLS files, so plain HTTP.
  return { ...defaultSettings(), api_secure: false };
}

function colorWanted(): boolean {
  return Boolean(process.stdout.isTTY) && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb';
}

/** Print an error of a command and return the exit status it means. */
function report(e: unknown, where?: string): number {
  const prefix = where ? `${where}: ` : '';
  if (e instanceof CliError) {
    process.stderr.write(`${prefix}${e.message}\n`);
    return EXIT[e.kind];
  }
  if (e instanceof ApiUnreachableError) {
    process.stderr.write(`${prefix}Unable to contact the local API endpoint (${e.message})\n`);
    return EXIT.unreachable;
  }
  throw e;
}

export async function runGwcli(opts: GwcliOptions, words: string[]): Promise<number> {
  let settings: GatewaySettings;
  try {
    settings = settingsFor(opts);
  } catch (e) {
    if (e instanceof SettingsError) {
      process.stderr.write(`gwcli: ${e.message}\n`);
      return EXIT.usage;
    }
    throw e;
  }
  const api = ApiClient.fromSettings(settings);
  const interactive = words.length === 0 && !opts.file && Boolean(process.stdin.isTTY);
  const shell = new Shell({
    api,
    clusterName: settings.cluster_name,
    json: opts.json,
    color: colorWanted(),
    prefs: new Prefs(),
    width: process.stdout.isTTY ? process.stdout.columns : 80,
  });
  try {
    await shell.refresh();
  } catch (e) {
    if (e instanceof ApiUnreachableError) {
      process.stderr.write(`gwcli: Unable to contact the local API endpoint at ${api.baseUrl} (${e.message}): is the gateway running with its REST API (iscsi-gateway serve --config FILE)?\n`);
      return EXIT.unreachable;
    }
    throw e;
  }
  if (words.length > 0) {
    try {
      await shell.run(words.map((w) => (/\s/.test(w) ? `'${w}'` : w)).join(' '));
      return 0;
    } catch (e) {
      return report(e);
    }
  }
  if (!interactive) {
    const text = opts.file && opts.file !== '-' ? fs.readFileSync(opts.file, 'utf8') : fs.readFileSync(0, 'utf8');
    const lines = text.split('\n');
    for (let i = 0; i < lines.length && !shell.exitRequested; i++) {
      try {
        await shell.run(lines[i]);
      } catch (e) {
        // A script stops at its first error, so later lines never act on a half-done state.
        return report(e, `line ${i + 1} (${lines[i].trim()})`);
      }
    }
    return 0;
  }
  return interactiveLoop(shell);
}

async function interactiveLoop(shell: Shell): Promise<number> {
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    completer: (line: string) => shell.complete(line),
    history: shell.prefs.loadHistory(),
    historySize: 1000,
    removeHistoryDuplicates: true,
    terminal: true,
  });
  let history: string[] = shell.prefs.loadHistory();
  rl.on('history', (h: string[]) => {
    history = h;
    shell.prefs.saveHistory(h);
  });
  // Ctrl-C clears the line (configshell ignores it); Ctrl-D leaves.
  rl.on('SIGINT', () => {
    rl.write(null, { ctrl: true, name: 'u' });
    process.stdout.write('\n');
    rl.prompt();
  });
  let closed = false;
  rl.on('close', () => (closed = true));
  const ask = (): Promise<string | null> =>
    new Promise((resolve) => {
      if (closed) return resolve(null);
      const onClose = (): void => resolve(null);
      rl.once('close', onClose);
      rl.question(shell.prompt(), (a) => {
        rl.off('close', onClose);
        resolve(a);
      });
    });
  for (;;) {
    const line = await ask();
    if (line === null) break;
    try {
      await shell.run(line);
    } catch (e) {
      if (e instanceof CliError || e instanceof ApiUnreachableError) {
        const msg = e instanceof ApiUnreachableError ? `Unable to contact the local API endpoint (${e.message})` : e.message;
        process.stderr.write(`${shell.c.red(msg)}\n`);
      } else {
        throw e;
      }
    }
    if (shell.exitRequested) break;
  }
  shell.prefs.saveHistory(history);
  rl.close();
  return 0;
}

export function registerGwcliCommand(program: Command): Command {
  return program
    .command('gwcli')
    .description('administration shell (ceph-iscsi gwcli): interactive, or one command, or a script')
    .option('--config <file>', `settings file of the gateway (default ${DEFAULT_SETTINGS_FILE} when present)`)
    .option('--json', 'JSON output for ls, info and export')
    .option('-f, --file <script>', "run the commands of a file ('-': stdin); stops at the first error")
    .argument('[words...]', '<path> <command> [args]: run one command and exit')
    .action(async (words: string[], opts: GwcliOptions) => {
      process.exitCode = await runGwcli(opts, words);
    });
}
