import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../core/errors.js';
import { createToken, listTokens, revokeToken } from '../../pipeline/token-flows.js';
import { printResult } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';

interface CreateArgs extends GlobalArgs {
  admin?: boolean;
  account?: number;
  name: string;
}

interface IdArgs extends GlobalArgs {
  id: string;
}

const create: CommandModule<GlobalArgs, CreateArgs> = {
  command: 'create',
  describe: 'Create an API token for `wharf serve` (shown once; only its hash is kept)',
  builder: (y) =>
    y
      .option('admin', { type: 'boolean', describe: 'a token that sees and changes every account' })
      .option('account', {
        type: 'number',
        describe: "a token that sees and changes only this account's objects",
      })
      .option('name', { type: 'string', default: '', describe: 'a label, e.g. who uses it' })
      .conflicts('admin', 'account') as unknown as Argv<CreateArgs>,
  handler: withRuntime<CreateArgs>(async (rt, args) => {
    if (!args.admin && args.account === undefined) {
      throw new UsageError('tokens create needs --admin or --account N');
    }
    if (args.account !== undefined && (!Number.isInteger(args.account) || args.account < 1)) {
      throw new UsageError(`invalid --account ${args.account}`, 'use a whole number of 1 or more');
    }
    const account = args.account === undefined ? null : String(args.account);
    const created = await createToken(rt, { account }, args.name);
    const token = created.token.reveal();
    printResult(rt.settings.json, { token, id: created.id, account }, () => [
      token,
      `token ${created.id} (${account === null ? 'admin' : `account ${account}`}); it is shown only this once: keep it now`,
    ]);
  }),
};

const list: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'list',
  describe: 'List API tokens (never the tokens themselves)',
  handler: withRuntime(async (rt) => {
    const all = await listTokens(rt);
    printResult(rt.settings.json, all, () =>
      all.length === 0
        ? ['no tokens; create one with `wharf tokens create --admin` or `--account N`']
        : all.map(
            (t) =>
              `${t.id}\t${t.account === null ? 'admin' : `account ${t.account}`}\t${t.name || '-'}\tcreated ${t.createdAt.toISOString()}\t${t.revokedAt ? `revoked ${t.revokedAt.toISOString()}` : 'active'}`,
          ),
    );
  }),
};

const revoke: CommandModule<GlobalArgs, IdArgs> = {
  command: 'revoke <id>',
  describe: 'Revoke an API token (it stops working at once)',
  handler: withRuntime<IdArgs>(async (rt, args) => {
    const t = await revokeToken(rt, String(args.id));
    printResult(rt.settings.json, t, () => [`token ${t.id} revoked`]);
  }),
};

export const tokensCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'tokens <action>',
  describe: 'Manage the API tokens of `wharf serve`',
  builder: (y) =>
    y.command(create).command(list).command(revoke).demandCommand(1) as unknown as Argv<GlobalArgs>,
  handler: () => {},
};
