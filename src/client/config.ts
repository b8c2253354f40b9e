// The user's CLI configuration: `~/.config/infergate/config.json` (or $XDG_CONFIG_HOME/infergate, or
// $INFERGATE_CONFIG), written by `infergate login`: the control plane to use and its token. 0600 in a
// 0700 directory, as kubectl's kubeconfig and az's token cache are meant to be: it holds a secret.

import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface CliConfig {
  /** Control-plane URL, e.g. https://gpu-box.example:8470 */
  server: string;
  /** Bearer token for it (igt_...). */
  token: string;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.INFERGATE_CONFIG) return env.INFERGATE_CONFIG;
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'infergate', 'config.json');
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): CliConfig | undefined {
  try {
    const c = JSON.parse(readFileSync(configPath(env), 'utf8')) as Partial<CliConfig>;
    return typeof c.server === 'string' && typeof c.token === 'string' ? { server: c.server, token: c.token } : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the file whole (write + rename), owner-only from its first byte. */
export function writeConfig(config: CliConfig, env: NodeJS.ProcessEnv = process.env): string {
  const file = configPath(env);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  renameSync(tmp, file);
  chmodSync(file, 0o600);
  return file;
}

/** Removes the file; says whether there was one. */
export function removeConfig(env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    rmSync(configPath(env));
    return true;
  } catch {
    return false;
  }
}
