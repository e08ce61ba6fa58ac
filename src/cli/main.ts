/**
 * `iscsi-gateway` command-line entry point.
 */
import { Command } from 'commander';
import { registerServeCommand } from './serve';

const program = new Command();
program.name('iscsi-gateway').description('iSCSI gateway for thin-provisioned block images').version('0.1.0');
registerServeCommand(program);
program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`iscsi-gateway: ${(e as Error).message}\n`);
  process.exit(1);
});
