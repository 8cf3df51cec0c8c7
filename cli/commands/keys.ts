import type { Argv, CommandModule } from 'yargs';
import { rotateMasterKey } from '../../connectors/keys.js';
import { masterKeysFromEnv } from '../../connectors/master-key.js';
import { UsageError } from '../../core/errors.js';
import { printResult } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';

const rotate: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'rotate',
  describe: 'Re-wrap every data key under WHARF_MASTER_KEY (the old key in WHARF_MASTER_KEY_PREVIOUS)',
  handler: withRuntime(async (rt) => {
    const keys = masterKeysFromEnv();
    if (!keys.previous) {
      throw new UsageError(
        'keys rotate needs the old key too',
        'set WHARF_MASTER_KEY_PREVIOUS to the old key and WHARF_MASTER_KEY to the new one',
      );
    }
    await rt.connectors();
    const result = await rotateMasterKey(
      await rt.control(),
      rt.settings.controlSchema,
      keys.previous,
      keys.current,
    );
    printResult(rt.settings.json, result, () => [`re-wrapped ${JSON.stringify(result)}`]);
  }),
};

export const keysCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'keys <action>',
  describe: 'Manage the master key',
  builder: (y) => y.command(rotate).demandCommand(1) as unknown as Argv<GlobalArgs>,
  handler: () => {},
};
