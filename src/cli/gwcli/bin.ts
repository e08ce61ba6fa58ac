/** Entry point of the `gwcli` command (bin/gwcli). */
import { Command } from 'commander';
import { runGwcli, GwcliOptions, DEFAULT_SETTINGS_FILE } from './main';

const program = new Command('gwcli')
  .description('iSCSI gateway administration shell (ceph-iscsi gwcli)')
  .version('gwcli - 2.7 (iscsi-gateway 0.1.0)', '-v, --version')
  .option('--config <file>', `settings file of the gateway (default ${DEFAULT_SETTINGS_FILE} when present)`)
  .option('--json', 'JSON output for ls, info and export')
  .option('-f, --file <script>', "run the commands of a file ('-': stdin); stops at the first error")
  .argument('[words...]', '<path> <command> [args]: run one command and exit')
  .passThroughOptions()
  .showHelpAfterError()
  .action(async (words: string[], opts: GwcliOptions) => {
    process.exitCode = await runGwcli(opts, words);
  });
program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`gwcli: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
