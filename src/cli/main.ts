#!/usr/bin/env node
/**
 * Command-line entry: `iscsi-gateway <command>`. Interim version with the image tool only;
 * the daemon's `serve` registers here too.
 */
import { Command } from 'commander';
import { registerRbdCommand } from './rbd';

const program = new Command('iscsi-gateway').description('iSCSI gateway for thin block images').showHelpAfterError();
registerRbdCommand(program);
program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`iscsi-gateway: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
