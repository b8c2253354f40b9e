// `infergate token create|list|revoke` (control-plane tokens, owner only) and `infergate login|logout`
// (remote use: the server and its token saved in the user's config, 0600). docs/security.md.

import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { Client, configPath, removeConfig, writeConfig } from '../client/index.js';
import { errorOf } from '../errors/index.js';
import { common, emit, print, serverClient, type CommonOptions } from './common.js';

export function accessCommands(program: Command): void {
  const token = program.command('token').description('Control-plane tokens: create (shown once), list, revoke (owner role)');

  common(token.command('create').description('Create a token; its secret is printed this once and never again'))
    .addOption(new Option('--role <role>', 'owner (everything), contributor (endpoints, deployments, assets, keys) or reader (list, show, logs, metrics)').choices(['owner', 'contributor', 'reader']).makeOptionMandatory())
    .option('--expires-in <duration>', 'lifetime, e.g. 30d, 12h, 15m, 90s (default: no expiry)')
    .option('--description <text>', 'what the token is for (shown by token list)')
    .action(async (o: CommonOptions & { role: string; expiresIn?: string; description?: string }) => {
      const created = await serverClient(o).createToken({
        role: o.role,
        ...(o.expiresIn !== undefined ? { expires_in: o.expiresIn } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
      });
      emit(created, o);
      if (process.stderr.isTTY) process.stderr.write('Store the token now: it cannot be shown again (only its SHA-256 is kept).\n');
    });

  common(token.command('list').description('List tokens: id, role, description, created, expires, last used (never the secrets)'))
    .action(async (o: CommonOptions) => {
      emit(await serverClient(o).listTokens(), o);
    });

  common(token.command('revoke').description('Revoke a token at once (by id, or the token itself)'))
    .argument('<id>', 'token id (from token list), or the whole igt_ token')
    .action(async (id: string, o: CommonOptions) => {
      // A whole token is accepted too (igt_<id>_<secret>): the id is its second part.
      const m = /^igt_([0-9a-f]+)_/.exec(id);
      emit(await serverClient(o).revokeToken(m ? m[1] : id), o);
    });

  common(program.command('login').description(`Save a control plane and its token for later commands (${configPath()}, 0600)`))
    .option('--token <token>', "the token ('-' reads it from stdin; default: $INFERGATE_TOKEN)")
    .action(async (o: CommonOptions & { token?: string }) => {
      if (!o.server) throw errorOf('ServerFlagMissing');
      // A token on the command line is visible to other users in ps; stdin or the environment are not.
      const given = o.token === '-' ? readFileSync(0, 'utf8') : (o.token ?? process.env.INFERGATE_TOKEN ?? '');
      const tokenText = given.trim();
      if (tokenText === '') throw errorOf('TokenFlagMissing');
      const server = o.server.replace(/\/+$/, '');
      // Checked before it is saved: a wrong URL or token fails here, not at the next command.
      const who = await new Client(server, tokenText).whoami();
      const file = writeConfig({ server, token: tokenText });
      emit({ server, token_id: who.token_id, role: who.role, expires_at: who.expires_at, config: file }, o);
    });

  program
    .command('logout')
    .description('Forget the control plane and token saved by login')
    .action(() => {
      print(removeConfig() ? `Removed ${configPath()}\n` : `Not logged in (${configPath()} does not exist)\n`);
    });
}
