/**
 * `iscsi-gateway` command-line entry point: `serve` (the daemon) and `rbd` (the image tool).
 */
import { Command } from 'commander';
import { registerRbdCommand } from './rbd';
import { registerServeCommand } from './serve';
import { registerGwcliCommand } from './gwcli/main';

const program = new Command('iscsi-gateway')
  .description('iSCSI gateway for thin-provisioned block images')
  .version('0.1.0')
  .showHelpAfterError();
registerServeCommand(program);
registerRbdCommand(program);
registerGwcliCommand(program);
program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`iscsi-gateway: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
