/**
 * `iscsi-gateway rbd ...`: the image tool, with rbd's syntax and output, on the embedded store.
 *
 *   iscsi-gateway rbd --pool iscsi-images create --size=102400 testvol
 *   iscsi-gateway rbd snap create iscsi-images/testvol@before
 *
 * Sizes are in MiB unless suffixed (K, M, G, T, P; B for bytes), as in rbd. The store is
 * <data>/store, where <data> is --data, $ISCSI_GATEWAY_DATA or the daemon's default.
 * Errors print "rbd: <what is wrong>" on stderr and exit with the errno rbd would use
 * (2 ENOENT, 16 EBUSY, 17 EEXIST, 22 EINVAL, ...).
 *
 * One file per command group: images.ts, snapshots.ts, clones.ts, transfer.ts, features.ts,
 * locks.ts, pools.ts; shared parts in context.ts (options, store, errors), args.ts, output.ts.
 */
import { Command, CommanderError } from 'commander';
import { DEFAULT_POOL } from '../../store/names';
import { EXIT_USAGE } from './context';
import { registerImageCommands } from './images';
import { registerSnapshotCommands } from './snapshots';
import { registerCloneCommands } from './clones';
import { registerTransferCommands } from './transfer';
import { registerFeatureCommands } from './features';
import { registerLockCommands } from './locks';
import { registerPoolCommands } from './pools';

export { parseSize } from './args';
export { ctime, prettyBytes } from './output';

export function registerRbdCommand(program: Command): Command {
  const rbd = program
    .command('rbd')
    .description('manage images of the embedded store (rbd syntax)')
    .option('-p, --pool <pool>', `pool name (default '${DEFAULT_POOL}')`)
    .option('--data <dir>', 'data directory (default: $ISCSI_GATEWAY_DATA or the daemon default)')
    .option('--format <format>', 'output format: plain or json')
    .option('--pretty-format', 'indent json output')
    .option('--no-progress', 'disable progress output')
    .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'rbd: ')) })
    .exitOverride((err: CommanderError) => {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') process.exit(0);
      process.exit(EXIT_USAGE);
    });

  registerImageCommands(rbd);
  registerSnapshotCommands(rbd);
  registerCloneCommands(rbd);
  registerTransferCommands(rbd);
  registerFeatureCommands(rbd);
  registerLockCommands(rbd);
  registerPoolCommands(rbd);
  return rbd;
}
